"""The key tables are bijections on the real full-size key sets (diffusers built on the meta device, no
weights), shapes included, and the config is recovered from the shapes alone."""

import pytest

pytest.importorskip("diffusers")

import torch

from cos_jax.convert.dit_config import config_from_shapes, known_from_json, match_preset
from cos_jax.convert.dit_keys import expected_keys, plan_sources, rename, source_shape, target_shapes
from cos_jax.convert.reference import diffusers_config
from cos_jax.wan.config import preset

PRESETS = [("t2v_a14b", 1095), ("i2v_a14b", 1095), ("ti2v_5b", 825)]


def _meta_diffusers_shapes(cfg) -> dict[str, tuple[int, ...]]:
    import diffusers

    with torch.device("meta"):
        model = diffusers.WanTransformer3DModel(**diffusers_config(cfg))
    return {k: tuple(v.shape) for k, v in model.state_dict().items()}


@pytest.mark.parametrize(("name", "count"), PRESETS)
def test_tables_are_bijections_at_full_size(name, count):
    from diffusers.loaders.single_file_utils import convert_wan_transformer_to_diffusers

    cfg = preset(name)
    shapes = {"diffusers": _meta_diffusers_shapes(cfg)}
    assert len(shapes["diffusers"]) == count
    shapes["official"] = rename(shapes["diffusers"], "diffusers", "official")
    # diffusers' own converter maps our official names back onto its real key set, one to one
    meta = {k: torch.empty(s, device="meta") for k, s in shapes["official"].items()}
    assert set(convert_wan_transformer_to_diffusers(meta)) == set(shapes["diffusers"])
    per_layer = target_shapes(cfg)
    for layout, named in shapes.items():
        assert set(named) == set(expected_keys(cfg, layout))
        plan = plan_sources(named, cfg, layout)  # raises unless every key is used exactly once
        used = [n for _, names in plan for n in names]
        assert len(used) == len(set(used)) == count
        for rule, names in plan:
            for n in names:
                assert named[n] == source_shape(rule, per_layer[rule.target]), (layout, n)
        assert config_from_shapes(named, layout) == cfg
        assert match_preset(config_from_shapes(named, layout)) == name


def test_diffusers_config_json_is_read():
    cfg = preset("i2v_a14b")
    raw = {
        "_class_name": "WanTransformer3DModel",
        **diffusers_config(cfg),
        "image_dim": None,
        "added_kv_proj_dim": None,
    }
    raw["patch_size"] = list(raw["patch_size"])
    known = known_from_json(raw)
    assert known["num_heads"] == 40 and known["dim"] == 5120 and known["in_dim"] == 36 and known["out_dim"] == 16
    assert config_from_shapes(_meta_diffusers_shapes(cfg), "diffusers", **known) == cfg
