"""`cos-jax sample --model DIR` input errors on a tiny saved I2V-A14B pipeline (the files it writes are checked
in test_wan_parity.py, where its output is compared with diffusers)."""

import re
import shutil

import numpy as np
import pytest
from PIL import Image

pytest.importorskip("diffusers")

from cos_jax.cli import main
from cos_jax.pipelines.wan_cli import grid_frames
from cos_jax.pipelines.wan_reference import build_tiny_pipeline
from cos_jax.sampling.cli_args import parse_guidance, parse_size


@pytest.fixture(scope="module")
def folder(tmp_path_factory):
    root = tmp_path_factory.mktemp("cli")
    build_tiny_pipeline(root / "i2v", "i2v-a14b")
    shutil.copytree(root / "i2v", root / "no_tokenizer")
    (root / "no_tokenizer" / "tokenizer" / "tokenizer.json").unlink()
    frame = np.random.default_rng(0).integers(0, 256, (32, 48, 3), dtype=np.uint8)
    Image.fromarray(frame).save(root / "first.png")
    Image.fromarray(frame).convert("RGBA").save(root / "rgba.png")
    return root


@pytest.mark.parametrize(
    ("args", "message"),
    [
        (["--image", "first.png", "--frames", "10"], r"frames=10: Wan needs 4n\+1 frames \(e\.g\. 9 or 13\)"),
        (["--image", "first.png", "--size", "36*32"], r"width=36 is not a multiple of 8 .*use 32 or 40"),
        ([], "image-to-video model .*needs a first frame; pass image= \\(or --image first.png\\)"),
        (["--image", "rgba.png"], r"RGBA image.*convert\('RGB'\)"),
        (["--image", "first.png", "--decode-steps", "2-5"], r"steps \[3, 4, 5\] are outside 0-2"),
        (["--image", "first.png", "--preset", "fast"], "unknown sampling preset 'fast'"),
        (["--image", "first.png", "--model", "no_tokenizer"], r"tokenizer has no tokenizer\.json"),
    ],
)
def test_cli_errors(folder, tmp_path, args, message, capsys):
    args = [str(folder / a) if a.endswith(".png") or a == "no_tokenizer" else a for a in args]
    status = main(["sample", "--model", str(folder / "i2v"), "--prompt", "a cat", "--frames", "9", "--size", "48*32",
                   "--steps", "3", *args, "--out", str(tmp_path / "x")])  # fmt: skip
    err = capsys.readouterr().err
    last = err.strip().splitlines()[-1]  # after the loading bar
    assert status == 2 and last.startswith("error: ") and re.search(message, last) and "Traceback" not in err, err
    assert not (tmp_path / "x").exists()


def test_size_guidance_and_grid_frames():
    assert grid_frames(5) == [0, 1, 2, 3, 4] and grid_frames(81) == [0, 11, 23, 34, 46, 57, 69, 80]
    assert parse_size("832*480") == (480, 832) and parse_size("832x480") == (480, 832)
    assert parse_guidance("5") == 5.0 and parse_guidance("4,3") == (4.0, 3.0)
    for bad in ("832", "a*b"):
        with pytest.raises(Exception, match="WIDTH\\*HEIGHT"):
            parse_size(bad)
