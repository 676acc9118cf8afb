"""Test setup: 8 fake CPU devices for the sharding tests (must be set before JAX initialises)."""

import os

os.environ["XLA_FLAGS"] = (os.environ.get("XLA_FLAGS", "") + " --xla_force_host_platform_device_count=8").strip()
os.environ.setdefault("JAX_PLATFORMS", "cpu")

import pytest

from cos_jax.wan.config import DiTConfig


@pytest.fixture(scope="session")
def tiny_config() -> DiTConfig:
    return DiTConfig("t2v", dim=48, ffn_dim=64, num_heads=2, num_layers=3, in_dim=16, out_dim=16, text_dim=32)
