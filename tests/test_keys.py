"""Key tables: counts, round trips, layout detection and strict errors."""

import numpy as np
import pytest

from cos_jax.convert.dit_keys import (
    KeyMismatchError,
    detect_layout,
    expected_keys,
    from_cos_params,
    rename,
    to_cos_params,
)
from cos_jax.convert.load import dit_from_state_dict, dit_to_state_dict
from cos_jax.wan.config import preset
from cos_jax.wan.dit import init_dit


@pytest.mark.parametrize(("name", "count"), [("t2v_a14b", 1095), ("i2v_a14b", 1095), ("ti2v_5b", 825)])
def test_tensor_counts_match_official_checkpoints(name, count):
    for layout in ("official", "diffusers"):
        keys = expected_keys(preset(name), layout)
        assert len(keys) == len(set(keys)) == count


def _weights(cfg):
    return dit_to_state_dict(init_dit(cfg, seed=3), "diffusers")


def test_round_trip_both_layouts(tiny_config):
    weights = _weights(tiny_config)
    for layout in ("diffusers", "official"):
        named = weights if layout == "diffusers" else rename(weights, "diffusers", "official")
        assert detect_layout(named) == layout
        back = from_cos_params(to_cos_params(named, tiny_config), tiny_config, layout)
        assert set(back) == set(named)
        for k in named:
            np.testing.assert_array_equal(back[k], named[k])
    assert rename(rename(weights, "diffusers", "official"), "official", "diffusers").keys() == weights.keys()


def test_single_file_prefix_is_accepted(tiny_config):
    official = rename(_weights(tiny_config), "diffusers", "official")
    prefixed = {f"model.diffusion_model.{k}": v for k, v in official.items()}
    params = to_cos_params(prefixed, tiny_config)
    np.testing.assert_array_equal(params["head_modulation"], official["head.modulation"][0])


def test_missing_and_unexpected_keys_are_named(tiny_config):
    weights = _weights(tiny_config)
    weights.pop("blocks.1.attn1.to_q.weight")
    weights["blocks.0.attn2.add_k_proj.weight"] = np.zeros(1)
    with pytest.raises(
        KeyMismatchError, match=r"diffusers layout: 1 missing .*blocks\.1\.attn1\.to_q\.weight.*add_k_proj"
    ):
        to_cos_params(weights, tiny_config)


def test_wrong_shapes_are_named(tiny_config):
    weights = _weights(tiny_config)
    with pytest.raises(KeyMismatchError, match="wrong shape"):
        dit_from_state_dict(weights, tiny_config.replace(ffn_dim=96))


def test_unknown_layout_is_explained():
    with pytest.raises(KeyMismatchError, match="pass layout= explicitly"):
        detect_layout(["foo.weight"])
