"""Whole-model parity against diffusers' WanTransformer3DModel (random weights, fp32, CPU)."""

import numpy as np
import pytest

from cos_jax.convert import reference
from cos_jax.convert.dit_keys import rename
from cos_jax.convert.parity import PARITY_CASES, TOLERANCE, run_case

pytest.importorskip("diffusers")


@pytest.mark.parametrize("case", PARITY_CASES, ids=lambda c: c.name)
@pytest.mark.parametrize("layout", ["diffusers", "official"])
def test_output_matches_reference(case, layout):
    result = run_case(case, layout=layout)
    assert result.relative <= TOLERANCE, result


def test_official_names_agree_with_diffusers_own_converter():
    """Our official-layout names, fed to diffusers' single-file converter, give back the diffusers dict."""
    from diffusers.loaders.single_file_utils import convert_wan_transformer_to_diffusers

    case = PARITY_CASES[1]
    weights = reference.state_dict_numpy(reference.random_reference_dit(case.config))
    official = rename(weights, "diffusers", "official")
    assert set(official) != set(weights)
    import torch

    back = convert_wan_transformer_to_diffusers({k: torch.from_numpy(v) for k, v in official.items()})
    assert set(back) == set(weights)
    for key, value in back.items():
        np.testing.assert_array_equal(value.numpy(), weights[key], err_msg=key)
