"""`cos-jax bench run | evaluate` end to end with a registered stand-in backend, and the CLI's errors."""

import json

import numpy as np
import pytest

from cos_jax.bench import GENERATORS
from cos_jax.cli import main
from cos_jax.tasks.bench import write_bench
from cos_jax.tasks.video_io import probe_video, write_mp4, write_png

pytestmark = pytest.mark.filterwarnings("ignore:os.fork")


class Still:
    """The first frame held (scores 0 on every task)."""

    name = "still"
    batch_size = 4
    layout = {"worlds_per_call": 4}  # noqa: RUF012

    def __init__(self, steps, guidance, batch):
        self.settings = {"steps": steps, "guidance": guidance}

    def note(self, request):
        return None

    def generate(self, requests):
        return [np.repeat(q.first_frame[None], q.num_frames, 0) for q in requests]


@pytest.fixture
def still(monkeypatch):
    monkeypatch.setitem(GENERATORS, "still", Still)


def test_run_then_evaluate(tmp_path, still, capsys):
    data, out = tmp_path / "data", tmp_path / "out"
    write_bench(data, ["maze", "clock", "rotation"], n=3, resolution=32, num_frames=9, progress=False)
    args = ["bench", "run", str(data), str(out), "--model", "still", "--steps", "2", "--quiet"]
    assert main([*args, "--tasks", "maze,rotation", "--limit", "2", "--split", "all"]) == 0
    assert sorted(str(p.relative_to(out)) for p in out.glob("*/*/*.mp4")) == [
        "In-Domain/maze/00000.mp4", "In-Domain/maze/00001.mp4",
        "Out-of-Domain/rotation/00000.mp4", "Out-of-Domain/rotation/00001.mp4"]  # fmt: skip
    assert "4 generated, 0 already done, 0 failed of 4 selected" in capsys.readouterr().out
    assert main([*args, "--split", "id"]) == 0  # the rest of the in-domain samples
    assert "4 generated, 2 already done" in capsys.readouterr().out
    assert probe_video(out / "In-Domain/clock/00002.mp4") == (9, 32, 32)
    record = json.loads((out / "run.json").read_text())
    assert record["model"] == "still" and record["settings"] == {"steps": 2, "guidance": 5.0, "base_seed": 0}
    assert [r["generated"] for r in record["runs"]] == [4, 4]

    assert main(["bench", "evaluate", str(data), str(out)]) == 0
    report = json.loads((out / "cos_jax_results.json").read_text())
    assert report["summary"]["overall"]["num_samples"] == 9  # the one OOD video not made counts as 0
    assert sum(r["error"] is not None for r in report["samples"]) == 1
    assert "1 of 9 videos missing or unreadable" in capsys.readouterr().out

    # another --steps into the same folder is refused instead of mixing two settings
    assert main([*args[:-3], "--steps", "3", "--quiet"]) == 2
    assert "settings.steps: 2 -> 3" in capsys.readouterr().err


def test_cli_errors(tmp_path, still, capsys):
    data = tmp_path / "data"
    write_bench(data, ["maze"], n=1, resolution=32, num_frames=9, progress=False)
    run = ["bench", "run", str(data), str(tmp_path / "out"), "--model", "still", "--quiet"]
    cases = [
        ([*run, "--shard", "2/2"], "bad --shard '2/2'"),
        ([*run, "--tasks", "maze,mase"], "unknown task(s) mase"),
        ([*run, "--model", "nope"], "unknown model 'nope'"),
        (["bench", "run", str(tmp_path / "missing"), str(tmp_path / "out")], "does not exist"),
        (["bench", "run", str(data / "In-Domain"), str(tmp_path / "out")], "pass the folder above it"),
        (["bench", "evaluate", str(data), str(tmp_path / "none")], "no videos folder"),
        ([*run, "--vae-precision", "tf32"], "the still backend has no VAE (only --model wan does)"),
    ]
    for argv, message in cases:
        assert main(argv) == 2, argv
        assert message in capsys.readouterr().err

    vbvr = tmp_path / "vbvr"
    folder = vbvr / "In-Domain_50" / "G-45_key_door_matching_data-generator" / "00000"
    write_png(folder / "first_frame.png", np.zeros((32, 32, 3), np.uint8))
    write_mp4(folder / "ground_truth.mp4", np.zeros((5, 32, 32, 3), np.uint8))
    (folder / "prompt.txt").write_text("p")
    assert main(["bench", "evaluate", str(vbvr), str(tmp_path / "out")]) == 2
    assert "VBVR-EvalKit: python run_evaluation.py --model_path" in capsys.readouterr().err
