"""The VBVR-Bench runner: toy generation at each sample's size, resume, regeneration of broken outputs,
sharding, VBVR-Bench-Data folder names and the errors a user can hit."""

import json
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest

from cos_jax.bench import BenchRunError, Generator, Request, make_generator, parse_shard, run_bench, sample_seed, select
from cos_jax.bench.generators import FunctionGenerator, ToyGenerator
from cos_jax.cli import main
from cos_jax.tasks import get_task
from cos_jax.tasks.base import prepare_frames
from cos_jax.tasks.bench import evaluate, list_samples, split_of, write_bench
from cos_jax.tasks.video_io import probe_video, read_video, write_mp4, write_png

pytestmark = pytest.mark.filterwarnings("ignore:os.fork")  # ffmpeg subprocesses beside JAX's threads


class StillGenerator:
    """A fast stand-in backend: the first frame held for every frame, at the requested size."""

    name = "still"
    layout = {"worlds_per_call": 3}  # noqa: RUF012
    batch_size = 3

    def __init__(self, tag: str = "v1"):
        self.settings = {"tag": tag}
        self.calls: list[list[Request]] = []

    def note(self, request: Request) -> str | None:
        return None

    def generate(self, requests: list[Request]) -> list[np.ndarray]:
        self.calls.append(requests)
        return [np.repeat(prepare_frames(q.first_frame[None], (q.height, q.width), 1), q.num_frames, 0)
                for q in requests]  # fmt: skip


def _keys(out: Path) -> set[str]:
    return {str(p.relative_to(out).with_suffix("")) for p in out.glob("*/*/*.mp4")}


def test_toy_run_layout_resume_regenerate_and_evaluate(tmp_path):
    data, out = tmp_path / "data", tmp_path / "out"
    write_bench(data, ["maze", "rotation"], n=2, resolution=32, num_frames=17, progress=False)
    write_bench(data, ["clock"], n=1, resolution=64, num_frames=9, progress=False)  # the toy must resize
    gen = ToyGenerator(steps=2, batch=2, devices=2)
    assert isinstance(gen, Generator) and gen.batch_size == 2 and gen.layout["devices"] == 2

    s = run_bench(data, out, gen, progress=False)
    assert (s["selected"], s["generated"], s["skipped"], s["failed"]) == (5, 5, 0, 0)
    expected = {"In-Domain/maze/00000", "In-Domain/maze/00001", "In-Domain/clock/00000",
                "Out-of-Domain/rotation/00000", "Out-of-Domain/rotation/00001"}  # fmt: skip
    assert _keys(out) == expected
    assert probe_video(out / "In-Domain/maze/00000.mp4") == (17, 32, 32)
    assert probe_video(out / "In-Domain/clock/00000.mp4") == (9, 64, 64)
    record = json.loads((out / "run.json").read_text())
    assert record["model"] == "toy" and record["settings"]["sampling"]["steps"] == 2
    samples = record["samples"]
    assert set(samples) == expected
    assert samples["In-Domain/maze/00000"]["notes"] == []
    assert "resized to 64x64, 9 frames" in samples["In-Domain/clock/00000"]["notes"][0]
    assert samples["In-Domain/maze/00001"]["seed"] == sample_seed("maze", "00001")
    assert all(r["seconds"] > 0 for r in samples.values())
    report = evaluate(out, data, progress=False)
    assert report["summary"]["overall"]["num_samples"] == 5
    assert all(r["error"] is None for r in report["samples"])

    # resume through the CLI: everything is done, so no model is loaded and nothing is generated
    args = ["bench", "run", str(data), str(out), "--steps", "2", "--batch", "2", "--devices", "2", "--quiet"]
    assert main(args) == 0
    record = json.loads((out / "run.json").read_text())
    assert (record["runs"][-1]["skipped"], record["runs"][-1]["generated"]) == (5, 0)

    # a truncated and a garbage output (and a killed writer's temp file) are regenerated, nothing else
    first = read_video(out / "In-Domain/maze/00000.mp4")
    blob = (out / "In-Domain/maze/00000.mp4").read_bytes()
    (out / "In-Domain/maze/00000.mp4").write_bytes(blob[: len(blob) // 2])
    (out / "Out-of-Domain/rotation/00001.mp4").write_bytes(b"not a video")
    (out / "In-Domain/maze/.00000.x1y2.mp4").write_bytes(blob[:100])
    calls = []
    generate = gen.generate
    gen.generate = lambda reqs: calls.append(len(reqs)) or generate(reqs)
    s = run_bench(data, out, gen, progress=False)
    assert (s["generated"], s["skipped"], calls) == (2, 3, [2])
    assert not list(out.glob("*/*/.*.mp4"))
    # same seed, other batch companion: the same video (worlds do not interact)
    np.testing.assert_array_equal(read_video(out / "In-Domain/maze/00000.mp4"), first)
    assert probe_video(out / "Out-of-Domain/rotation/00001.mp4") == (17, 32, 32)


def test_shards_cover_every_sample_exactly_once(tmp_path):
    data, out = tmp_path / "data", tmp_path / "out"
    write_bench(data, ["maze", "clock", "symmetry"], n=3, resolution=32, num_frames=9, progress=False)
    gens = [StillGenerator(), StillGenerator()]
    for i, g in enumerate(gens):
        assert run_bench(data, out, g, shard=(i, 2), progress=False)["failed"] == 0
    made = [{f"{r.prompt}|{r.seed}" for c in g.calls for r in c} for g in gens]
    assert len(made[0]) + len(made[1]) == 9 and not made[0] & made[1]
    records = [json.loads((out / f"run.shard-{i}-of-2.json").read_text())["samples"] for i in range(2)]
    assert not set(records[0]) & set(records[1])
    assert set(records[0]) | set(records[1]) == _keys(out) and len(_keys(out)) == 9
    assert not (out / "run.json").exists()

    entries = list_samples(data)
    for n in (1, 2, 3, 4):
        parts = [select(entries, limit=2, shard=(i, n)) for i in range(n)]
        flat = [e.folder for p in parts for e in p]
        assert len(flat) == len(set(flat)) == 6  # 3 tasks x limit 2, each exactly once


def test_vbvr_bench_data_folder_names(tmp_path):
    """VBVR-Bench-Data layout: In-Domain_50 / Out-of-Domain_50, task folders named after generators,
    no meta.json: the size comes from ground_truth.mp4 (here 13 frames of 48x64, not square)."""
    data, out = tmp_path / "VBVR-Bench-Data", tmp_path / "out"
    video = np.zeros((13, 48, 64, 3), np.uint8)
    video[:, 10:20, 5:30] = (255, 0, 0)
    tasks = {"In-Domain_50": "G-45_key_door_matching_data-generator", "Out-of-Domain_50": "O-39_maze_data-generator"}
    for split, task in tasks.items():
        for i in range(2):
            folder = data / split / task / f"{i:05d}"
            write_png(folder / "first_frame.png", video[0])
            write_png(folder / "final_frame.png", video[-1])
            write_mp4(folder / "ground_truth.mp4", video)
            (folder / "prompt.txt").write_text("Move the key to the door.\n")
    (data / "README.md").write_text("not a split")
    assert [split_of(n) for n in ("In-Domain_50", "Out-of-Domain_50", "In-Domain", "train")] == [
        "id",
        "ood",
        "id",
        None,
    ]
    entries = list_samples(data)
    assert {(e.split_dir, e.task) for e in entries} == set(tasks.items())

    gen = StillGenerator()
    s = run_bench(data, out, gen, split="ood", progress=False)
    assert s["generated"] == 2 and _keys(out) == {"Out-of-Domain_50/O-39_maze_data-generator/00000",
                                                  "Out-of-Domain_50/O-39_maze_data-generator/00001"}  # fmt: skip
    q = gen.calls[0][0]
    assert (q.num_frames, q.height, q.width, q.prompt) == (13, 48, 64, "Move the key to the door.")
    assert q.seed == sample_seed("O-39_maze_data-generator", "00000")
    assert probe_video(out / "Out-of-Domain_50/O-39_maze_data-generator/00001.mp4") == (13, 48, 64)
    assert run_bench(data, out, gen, progress=False)["generated"] == 2  # now the in-domain ones
    with pytest.raises(FileNotFoundError, match="pass the folder above it"):
        list_samples(data / "In-Domain_50")


def test_errors_name_the_bad_input(tmp_path):
    data, out = tmp_path / "data", tmp_path / "out"
    (tmp_path / "empty").mkdir()
    with pytest.raises(FileNotFoundError, match="no samples under"):
        list_samples(tmp_path / "empty")
    with pytest.raises(FileNotFoundError, match="does not exist"):
        list_samples(tmp_path / "nope")
    for bad in ("2/2", "a/b", "1", "-1/2", "0/0"):
        with pytest.raises(BenchRunError, match="bad --shard"):
            parse_shard(bad)
    assert parse_shard("3/4") == (3, 4)

    write_bench(data, ["maze", "clock"], n=2, resolution=32, num_frames=9, progress=False)
    with pytest.raises(BenchRunError, match=r"unknown task\(s\) mase .* it holds clock, maze"):
        run_bench(data, out, StillGenerator(), tasks=["mase"], progress=False)
    with pytest.raises(BenchRunError, match="no samples left after --split ood"):
        run_bench(data, out, StillGenerator(), split="ood", progress=False)
    with pytest.raises(BenchRunError, match="bad --limit"):
        run_bench(data, out, StillGenerator(), limit=0, progress=False)

    # a broken sample is recorded and skipped; the others are generated
    (data / "In-Domain/maze/00001/first_frame.png").write_bytes(b"broken")
    (data / "In-Domain/clock/00001/meta.json").unlink()
    (data / "In-Domain/clock/00001/ground_truth.mp4").unlink()
    s = run_bench(data, out, StillGenerator(), progress=False)
    assert (s["generated"], s["failed"]) == (2, 2)
    failed = {k: v["error"] for k, v in json.loads((out / "run.json").read_text())["samples"].items() if "error" in v}
    assert set(failed) == {"In-Domain/maze/00001", "In-Domain/clock/00001"}
    assert "neither ground_truth.mp4 nor a meta.json" in failed["In-Domain/clock/00001"]

    # resuming with other settings would mix two models' videos
    with pytest.raises(BenchRunError, match=r"other settings \(run.json: settings.tag: 'v1' -> 'v2'\)"):
        run_bench(data, out, StillGenerator("v2"), progress=False)
    with pytest.raises(BenchRunError, match="base_seed"):
        run_bench(data, out, StillGenerator(), seed=1, progress=False)

    with pytest.raises(ValueError, match="unknown model 'sora'; choose from toy, wan"):
        make_generator("sora")
    with pytest.raises(ValueError, match="cannot load generator function"):
        make_generator("cos_jax.nothing:here")
    with pytest.raises(ValueError, match="--devices 99"):
        make_generator("toy", devices=99)


def still_video(prompt, first_frame, num_frames, height, width, seed, steps=50):
    return np.zeros((num_frames, height, width, 3), np.uint8)


def test_function_backend_and_wan_hook(tmp_path):
    gen = make_generator(f"{__name__}:still_video", steps=4, guidance=2.0)
    assert isinstance(gen, FunctionGenerator) and gen.options == {"steps": 4} and gen.ignored == ["guidance"]
    assert gen.settings["function"].endswith(":still_video")
    (v,) = gen.generate([Request("p", np.zeros((8, 8, 3), np.uint8), 5, 16, 24, 0)])
    assert v.shape == (5, 16, 24, 3)
    with pytest.raises(ValueError, match="--model wan needs --weights DIR"):
        make_generator("wan")


def test_seed_policy_is_stable():
    assert sample_seed("maze", "00000") == sample_seed("maze", "00000") != sample_seed("maze", "00001")
    assert sample_seed("maze", "00000", base=1) == (sample_seed("maze", "00000") + 1) % 2**31
    assert 0 <= sample_seed("G-45_key_door_matching_data-generator", "00004") < 2**31
    assert get_task("maze").split == "id"


def test_importing_the_runner_loads_no_model_stack():
    code = (
        "import sys, cos_jax.bench, cos_jax.bench.cli\n"
        "bad = [m for m in sys.modules if m.startswith(('jax', 'flax', 'cos_jax.wan', 'cos_jax.sampling',"
        " 'cos_jax.pipelines'))]\n"
        "assert not bad, bad\n"
    )
    subprocess.run([sys.executable, "-c", code], check=True)


def test_a_bench_run_under_a_perturbation(tmp_path):
    """`--perturb`: the noise lands in every trajectory (toy and Wan backends); α = 0 changes nothing, the
    setting is recorded, and resuming a folder with another setting is refused."""
    from cos_jax.bench.generators import Perturbation, parse_perturbation

    data = tmp_path / "data"
    write_bench(data, ["maze"], n=2, resolution=32, num_frames=17, progress=False)
    videos = {}
    for name, perturb in (("clean", None), ("zero", "replace:step=2:alpha=0"), ("late", "replace:step=2:alpha=1")):
        gen = ToyGenerator(steps=3, batch=2, devices=2, perturb=parse_perturbation(perturb))
        run_bench(data, tmp_path / name, gen, progress=False)
        videos[name] = read_video(tmp_path / name / "In-Domain/maze/00000.mp4")
    np.testing.assert_array_equal(videos["zero"], videos["clean"])
    assert np.abs(videos["late"].astype(int) - videos["clean"]).mean() > 5  # the last step rebuilt from noise
    record = json.loads((tmp_path / "late" / "run.json").read_text())
    assert record["settings"]["perturb"] == {"mode": "replace", "alpha": 1.0, "step": 2, "frame": None}
    with pytest.raises(BenchRunError, match="other settings"):
        run_bench(data, tmp_path / "late", ToyGenerator(steps=3, batch=2, devices=2), progress=False)
    assert parse_perturbation("add:frame=4:alpha=0.5") == Perturbation("add", 0.5, frame=4)
    for spec in ("add:frame=4:alpha=0.5", "replace:step=20:alpha=1"):
        assert parse_perturbation(spec).spec == spec  # the record's setting spelled as --perturb reads it
    for bad in ("blur:step=2", "replace:alpha=1", "replace:step=x", "replace:step=1:frame=2", "replace:step=1:k=2"):
        with pytest.raises(ValueError, match=r"--perturb .*MODE:step=S:alpha=A"):
            parse_perturbation(bad)

    from cos_jax.pipelines import wan
    from cos_jax.pipelines.components import random_components
    from cos_jax.pipelines.wan_reference import tiny_spec

    spec = tiny_spec("i2v-a14b")
    components = random_components(spec.dit, spec.vae, spec.t5, param_dtype=np.float32, boundary_ratio=0.9,
                                   source="tiny")  # fmt: skip
    image = np.full((spec.height, spec.width, 3), 128, np.uint8)

    def latent(perturb):
        pipe = wan.WanI2V(components, steps=3, perturb=perturb)
        return pipe.sample("a red ball", image, spec.frames, spec.height, spec.width, 0).trajectory.latent

    clean = latent(None)
    np.testing.assert_array_equal(latent(Perturbation("replace", 0.0, step=2)), clean)
    assert np.abs(latent(Perturbation("replace", 1.0, frame=1)) - clean).max() > 0.1


def test_wan_backend_vae_precision(tmp_path):
    """`--vae-precision tf32` reaches the loaded VAE and the run record; the default fp32 is not recorded."""
    from cos_jax.pipelines.wan_reference import build_tiny_pipeline

    build_tiny_pipeline(tmp_path / "i2v", "i2v-a14b")
    default = make_generator("wan", steps=2, weights=str(tmp_path / "i2v"))
    tf32 = make_generator("wan", steps=2, weights=str(tmp_path / "i2v"), vae_precision="tf32")
    assert "vae_precision" not in default.settings and tf32.settings["vae_precision"] == "tf32"
    assert default.fn.__self__.components.vae.config.conv_precision == "highest"
    assert tf32.fn.__self__.components.vae.config.conv_precision == "default"
