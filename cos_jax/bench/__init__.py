"""VBVR-Bench runner: generate a video per bench sample with a pluggable backend (toy world, Wan I2V).

Does not load the model stack until a model backend is built (`make_generator`).
"""

from cos_jax.bench.generators import (
    GENERATORS,
    FunctionGenerator,
    Generator,
    Request,
    ToyGenerator,
    make_generator,
    register_generator,
)
from cos_jax.bench.runner import BenchRunError, parse_shard, run_bench, sample_seed, select

__all__ = [
    "GENERATORS",
    "BenchRunError",
    "FunctionGenerator",
    "Generator",
    "Request",
    "ToyGenerator",
    "make_generator",
    "parse_shard",
    "register_generator",
    "run_bench",
    "sample_seed",
    "select",
]
