"""umT5 encoder parity against transformers' UMT5EncoderModel (tiny config, random weights, fp32)."""

import jax.numpy as jnp
import numpy as np
import pytest
import torch

from cos_jax.convert.dit_keys import KeyMismatchError
from cos_jax.convert.t5_keys import T5_RULES, t5_params, umt5_from_state_dict
from cos_jax.wan.dit import count_params
from cos_jax.wan.t5 import UMT5_XXL, T5Config, abstract_umt5, relative_position_buckets

transformers = pytest.importorskip("transformers")

CFG = T5Config(vocab_size=120, dim=32, head_dim=8, num_heads=4, ffn_dim=48, num_layers=3)


def _reference(seed=0):
    torch.manual_seed(seed)
    hf = transformers.UMT5Config(vocab_size=CFG.vocab_size, d_model=CFG.dim, d_kv=CFG.head_dim, d_ff=CFG.ffn_dim,
                                 num_layers=CFG.num_layers, num_heads=CFG.num_heads, relative_attention_num_buckets=32,
                                 relative_attention_max_distance=128, feed_forward_proj="gated-gelu",
                                 layer_norm_epsilon=1e-6)  # fmt: skip
    model = transformers.UMT5EncoderModel(hf).eval()
    with torch.no_grad():
        for p in model.parameters():
            p.add_(0.2 * torch.randn_like(p))
    return model


def test_buckets_match_transformers():
    from transformers.models.umt5.modeling_umt5 import UMT5Attention

    attn = UMT5Attention(_reference().config, has_relative_attention_bias=True)
    rel = torch.arange(600)[None, :] - torch.arange(600)[:, None]
    np.testing.assert_array_equal(relative_position_buckets(600, 32, 128), attn._relative_position_bucket(rel).numpy())


@pytest.mark.parametrize("layout", ["diffusers", "official"])
def test_encoder_matches_transformers(layout):
    ref = _reference()
    ids = np.random.default_rng(0).integers(2, CFG.vocab_size, (2, 150))
    mask = np.zeros((2, 150), np.int64)
    mask[0, :150], mask[1, :37] = 1, 1
    ids = ids * mask  # pad id 0 after the prompt
    with torch.no_grad():
        expected = ref(input_ids=torch.from_numpy(ids), attention_mask=torch.from_numpy(mask)).last_hidden_state.numpy()
    expected = expected * mask[..., None]  # the official pipeline cuts at the true length and zero-pads
    weights = {k: v.numpy() for k, v in ref.state_dict().items()}
    if layout == "official":
        rename = {r.diffusers.replace("{i}", str(i)): r.official.replace("{i}", str(i))
                  for r in T5_RULES for i in range(CFG.num_layers)}  # fmt: skip
        weights = {rename[k]: v for k, v in weights.items() if k in rename}
    model = umt5_from_state_dict(weights, CFG)
    got = np.asarray(model(jnp.asarray(ids), jnp.asarray(mask)))
    assert np.abs(got - expected).max() <= 1e-5 * np.abs(expected).max()
    assert (got[1, 37:] == 0).all()


def test_strict_keys_and_full_size_count():
    weights = {k: v.numpy() for k, v in _reference().state_dict().items()}
    weights.pop("encoder.block.2.layer.1.DenseReluDense.wo.weight")
    with pytest.raises(KeyMismatchError, match=r"1 missing tensors \[encoder\.block\.2\.layer\.1\.DenseReluDense\.wo"):
        t5_params(weights, CFG)
    assert count_params(abstract_umt5(UMT5_XXL)) == 5_680_910_336  # wan22.md §2.9
