"""Every subcommand on inputs a user can get wrong: status 2, one `error: …` line naming the input, no
traceback, nothing written. (Checkpoint and LoRA mismatches: tests/test_convert_errors.py; experiment
configs: tests/experiments.)"""

import json
import struct
from pathlib import Path

import numpy as np
import pytest
from PIL import Image

from cos_jax.cli import main
from cos_jax.wan.config import preset


@pytest.fixture(scope="module")
def files(tmp_path_factory):
    d = tmp_path_factory.mktemp("inputs")
    (d / "garbage.png").write_bytes(b"not an image")
    Image.fromarray(np.zeros((40, 40, 3), np.uint8)).save(d / "big.png")
    Image.fromarray(np.zeros((32, 32), np.uint8), mode="L").save(d / "gray.png")
    huge = d / "huge"
    huge.mkdir()
    header = json.dumps({"x": {"dtype": "F32", "shape": [2], "data_offsets": [0, 8]}}).encode()
    (huge / "diffusion_pytorch_model.safetensors").write_bytes(struct.pack("<Q", 10**12) + header)
    forged = np.lib.format.header_data_from_array_1_0(np.zeros(3, np.float32)) | {"shape": (10**6, 10**6)}
    with open(d / "forged.npy", "wb") as f:  # a header declaring 4 TB over 12 bytes of data
        np.lib.format.write_array_header_1_0(f, forged)
        f.write(np.zeros(3, np.float32).tobytes())
    np.save(d / "objects.npy", np.array([{"a": 1}], dtype=object), allow_pickle=True)
    toy = preset("toy")
    np.save(d / "nan.npy", np.full((toy.text_len, toy.text_dim), np.nan, np.float32))
    (d / "empty").mkdir()
    (d / "busy").mkdir()
    (d / "busy" / "notes.txt").write_text("mine")
    return d


CASES = [
    (["sample", "--model", "nowhere"], "not 'toy', 'random:PRESET' nor a folder"),
    (["sample", "--model", "random:nosuch"], "unknown DiT preset 'nosuch'"),
    (["sample", "--model", "random:toy", "--latent", "5x8"], "expected FxHxW"),
    (["sample", "--task", "nosuch"], "--task 'nosuch': unknown task"),
    (["sample", "--model", "random:toy", "--context", "{d}/forged.npy"], "declares 4000000000000 bytes of data"),
    (["sample", "--model", "random:toy", "--context", "{d}/objects.npy"], "Python objects (a pickle)"),
    (["sample", "--model", "random:toy", "--context", "{d}/garbage.png"], "not a numpy .npy/.npz file"),
    (["sample", "--model", "random:toy", "--latent", "1x2x2", "--context", "{d}/nan.npy"],
     "NaN/inf appeared while sampling (world 0 at step 0)"),
    (["demo", "--weights", "{d}/forged.npy", "--out", "{out}"], "declares 4000000000000 bytes"),
    (["sample", "--image", "{d}/garbage.png", "--prompt", "p"], "is not an image file"),
    (["sample", "--image", "{d}/gray.png", "--prompt", "p"], "gray.png"),
    (["sample", "--image", "{d}/big.png", "--prompt", "p"], "takes 32x32 first frames"),
    (["sample", "--image", "{d}/big.png"], "--image needs --prompt"),
    (["tasks", "generate", "--task", "nosuch", "--n", "1", "--out", "{out}"], "unknown task 'nosuch'"),
    (["convert", "{d}/huge", "{out}"], "header length 1000000000000 does not fit a file of"),
    (["convert", "{d}/missing", "{out}"], "missing: no such file or folder"),
    (["convert", "{d}/empty", "{out}"], "empty"),
    (["validate", "{d}/huge"], "header length 1000000000000"),
    (["validate", "{d}/missing"], "no such file or folder"),
    (["experiment", "run", "configs/toy/perturb.toml", "--set", "experiment=nosuch", "--out", "{out}"],
     "unknown experiment 'nosuch'"),
    (["experiment", "run", "configs/toy/perturb.toml", "--set", "tasks=['nosuch']", "--out", "{out}"],
     "unknown task 'nosuch'"),
    (["experiment", "run", "configs/toy/perturb.toml", "--out", "{d}/busy"], "holds other files"),
    (["experiment", "report", "{d}/empty"], "holds no experiment"),
    (["experiment", "run", "configs/toy/perturb.toml", "--set", "mesh=data=3", "--out", "{out}"],
     "mesh = 'data=3' needs 3 devices; there are"),
    (["experiment", "run", "configs/toy/perturb.toml", "--set", "mesh=pipe=2", "--out", "{out}"],
     "bad mesh spec entry 'pipe=2'"),
    (["train-lora", "{d}/missing", "{d}/missing", "--out", "{out}", "--expert", "high"], "missing"),
    (["--coordinator", "localhost:1", "selfcheck"], "needs the number of processes and this process's id"),
]  # fmt: skip


@pytest.mark.parametrize(("args", "message"), CASES, ids=lambda v: " ".join(v[:3]) if isinstance(v, list) else None)
def test_bad_input_is_one_line_and_status_2(args, message, files, tmp_path, capsys, monkeypatch):
    monkeypatch.chdir(Path(__file__).parents[1])  # the configs are named relative to the project
    out = tmp_path / "out"
    argv = [a.format(d=files, out=out) for a in args]
    if args[0] == "sample":
        argv += ["--out", str(out / "s.npz")]
    assert main(argv) == 2
    err = capsys.readouterr().err
    lines = [line for line in err.replace("\r", "\n").splitlines() if line and not line.startswith("denoising")]
    assert len(lines) == 1 and lines[0].startswith("error: ") and "Traceback" not in err, err  # beside a progress bar
    assert message in err, err
    assert not out.exists()
    assert sorted(p.name for p in (files / "busy").iterdir()) == ["notes.txt"]
