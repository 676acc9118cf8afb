"""Peak RSS while converting a multi-shard checkpoint stays bounded by the batch / largest tensor, not the model."""

import sys

import pytest

from cos_jax.convert.synthetic import measure_conversion
from cos_jax.wan.config import DiTConfig

MB = 1 << 20


@pytest.mark.skipif(not sys.platform.startswith("linux"), reason="reads /proc/self/status")
def test_peak_rss_is_bounded(tmp_path):
    cfg = DiTConfig("t2v", dim=1024, ffn_dim=4096, num_heads=8, num_layers=8, in_dim=16, out_dim=16)
    r = measure_conversion(cfg, "bf16", shard_bytes=64 * MB, workdir=str(tmp_path), batch_bytes=32 * MB)
    assert r["shards"] >= 8
    bound = 3 * max(32 * MB, r["largest_tensor_bytes"]) + 200 * MB
    print(f"peak RSS above baseline {r['peak_rss_above_baseline'] / MB:.0f} MiB for {r['total_bytes'] / MB:.0f} MiB "
          f"of source, {r['mb_per_s']:.0f} MB/s")  # fmt: skip
    assert r["peak_rss_above_baseline"] < bound
    assert r["peak_rss_above_baseline"] < r["total_bytes"] / 2
