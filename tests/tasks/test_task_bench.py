"""VBVR-Bench folder I/O, the evaluator (missing / unreadable videos score 0) and the CLI end to end."""

import json
import shutil

import numpy as np

from cos_jax.cli import main
from cos_jax.tasks import TASKS
from cos_jax.tasks.bench import evaluate, format_report, list_bench, read_sample, write_bench
from cos_jax.tasks.video_io import read_video, write_gif


def test_bench_round_trip_and_evaluator(tmp_path):
    bench, videos = tmp_path / "bench", tmp_path / "videos"
    write_bench(bench, ["maze", "clock", "rotation"], n=2, resolution=32, num_frames=9, progress=False)
    entries = list_bench(bench)
    assert {(e.split_dir, e.task) for e in entries} == {
        ("In-Domain", "maze"), ("In-Domain", "clock"), ("Out-of-Domain", "rotation")}  # fmt: skip
    for e in entries:
        assert {p.name for p in e.folder.iterdir()} == {
            "first_frame.png", "final_frame.png", "ground_truth.mp4", "prompt.txt", "meta.json"}  # fmt: skip
        s = read_sample(e.folder)
        assert s.meta["param_hash"] == TASKS[s.task].generate_for_split("test", int(e.sample_id), 2, 32, 9).meta[
            "param_hash"]  # fmt: skip
        out = videos / e.split_dir / e.task / f"{e.sample_id}.mp4"
        out.parent.mkdir(parents=True, exist_ok=True)
        if (e.task, e.sample_id) == ("maze", "00000"):
            continue  # missing
        if (e.task, e.sample_id) == ("clock", "00000"):
            out.write_bytes(b"not a video")  # unreadable
            continue
        shutil.copy(e.folder / "ground_truth.mp4", out)
    report = evaluate(videos, bench, progress=False)
    by = {(r["task"], r["sample"]): r for r in report["samples"]}
    assert by[("maze", "00000")]["score"] == 0 and "missing" in by[("maze", "00000")]["error"]
    assert by[("clock", "00000")]["score"] == 0 and "cannot decode" in by[("clock", "00000")]["error"]
    assert all(r["success"] for k, r in by.items() if k not in {("maze", "00000"), ("clock", "00000")})
    s = report["summary"]
    assert s["overall"]["num_samples"] == 6 and np.isclose(s["overall"]["mean_score"], 4 / 6)
    assert np.isclose(s["In-Domain"]["mean_score"], 2 / 4) and s["Out-of-Domain"]["mean_score"] == 1.0
    assert set(s["overall"]["by_category"]) == {"Knowledge", "Spatiality", "Transformation"}
    assert "2 of 6 videos missing or unreadable" in format_report(report)


def test_gif_round_trip(tmp_path):
    s = TASKS["tictactoe"].generate(0, 2, 32, 9)
    v = read_video(write_gif(tmp_path / "a.gif", s.video))
    assert v.shape == s.video.shape and TASKS["tictactoe"].score(v, s.meta).success


def test_cli_generate_score_list(tmp_path, capsys):
    bench = tmp_path / "bench"
    assert main(["tasks", "generate", "--task", "select_next", "--n", "2", "--out", str(bench), "--resolution", "32",
                 "--frames", "9"]) == 0  # fmt: skip
    videos = tmp_path / "videos" / "In-Domain" / "select_next"
    videos.mkdir(parents=True)
    for i in range(2):
        shutil.copy(bench / "In-Domain" / "select_next" / f"{i:05d}" / "ground_truth.mp4", videos / f"{i:05d}.mp4")
    out = tmp_path / "r.json"
    assert (
        main(["tasks", "score", "--videos", str(tmp_path / "videos"), "--bench", str(bench), "--json", str(out)]) == 0
    )
    assert json.loads(out.read_text())["summary"]["overall"]["mean_score"] == 1.0
    assert main(["tasks", "score", "--videos", str(tmp_path), "--bench", str(tmp_path / "nope")]) == 2
    assert main(["tasks", "list"]) == 0
    assert "tictactoe" in capsys.readouterr().out
