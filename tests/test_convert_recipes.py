"""The conversion recipes in `convert/`: each runs end to end on its tiny stand-in (convert with --expect,
then validate --stream), and every expected manifest's counts agree with the reference PyTorch modules
built at full size on the meta device."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest
import recipe_standins

from cos_jax.convert.reference import diffusers_config
from cos_jax.convert.vae_reference import diffusers_vae_config
from cos_jax.wan.config import preset
from cos_jax.wan.vae import vae_preset

ROOT = Path(__file__).resolve().parents[1]
RECIPES = ROOT / "convert"
EXPECTED = sorted((RECIPES / "expected").glob("*.json"))


def _run_recipe(name: str, args: list[str], expect: str) -> subprocess.CompletedProcess:
    env = {**os.environ, "EXPECT": expect, "PATH": f"{Path(sys.executable).parent}{os.pathsep}{os.environ['PATH']}"}
    script = RECIPES / f"{name}.sh"
    return subprocess.run(["bash", str(script), *args], capture_output=True, text=True, env=env, check=False)


def test_every_recipe_has_its_expected_manifest_and_stand_in():
    scripts = sorted(p.stem for p in RECIPES.glob("*.sh"))
    assert scripts == sorted(p.stem for p in EXPECTED) == sorted(recipe_standins.RECIPES)


@pytest.mark.parametrize("name", sorted(recipe_standins.RECIPES))
def test_recipe_on_its_stand_in(name, tmp_path):
    src, expected, extra = recipe_standins.write_standin(name, str(tmp_path))
    out = tmp_path / "out"
    proc = _run_recipe(name, [src, *extra, str(out)], str(tmp_path / "expected.json"))
    assert proc.returncode == 0, proc.stdout[-2000:] + proc.stderr[-3000:]
    assert "all passed" in proc.stdout
    manifest = json.loads((out / "manifest.json").read_text())
    assert list(manifest["components"]) == list(expected["components"])
    for comp, fields in expected["components"].items():
        got = manifest["components"][comp]
        assert {k: got.get(k) for k in ("kind", "layout", "tensors", "parameters")} == {
            k: fields.get(k) for k in ("kind", "layout", "tensors", "parameters")
        }
    if name == "wan22_i2v_a14b":  # the full-size manifest refuses the stand-in before writing anything
        refused = _run_recipe(name, [src, str(tmp_path / "refused")], str(RECIPES / "expected" / f"{name}.json"))
        assert refused.returncode == 2 and "Traceback" not in refused.stderr
        assert "high_noise.parameters is" in refused.stderr and "expected 14288901184" in refused.stderr
        assert not any(p.name.startswith("refused") for p in tmp_path.iterdir())


def _meta_counts(component: dict) -> dict:
    """Tensors and parameters of the full-size reference module for an expected component."""
    import torch
    import transformers
    from diffusers import AutoencoderKLWan, WanTransformer3DModel

    with torch.device("meta"):
        if component["kind"] == "wan_dit":
            module = WanTransformer3DModel(**diffusers_config(preset(component["preset"])))
        elif component["kind"] == "wan_vae":
            module = AutoencoderKLWan(**diffusers_vae_config(vae_preset(component["preset"])))
        else:  # google/umt5-xxl's encoder
            config = transformers.UMT5Config(vocab_size=256384, d_model=4096, d_kv=64, d_ff=10240, num_layers=24,
                                             num_heads=64, feed_forward_proj="gated-gelu")  # fmt: skip
            module = transformers.UMT5EncoderModel(config)
    return recipe_standins.module_counts(module)


@pytest.mark.parametrize("path", EXPECTED, ids=lambda p: p.stem)
def test_expected_manifest_counts_match_reference_modules(path):
    expected = json.loads(path.read_text())
    for name, component in expected["components"].items():
        if component["kind"] == "tokenizer":
            continue
        counts = {k: component[k] for k in ("tensors", "parameters")}
        assert counts == _meta_counts(component), (path.name, name)
        if "lora_pairs" in component:  # the VBVR targets: q, k, v, o of both attentions, ffn.0, ffn.2
            assert component["lora_pairs"] == 10 * preset(component["preset"]).num_layers
