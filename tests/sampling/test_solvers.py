"""Solvers against diffusers' schedulers on a common σ grid, fed the same model outputs."""

import jax
import jax.numpy as jnp
import numpy as np
import pytest
import torch

from cos_jax.sampling.schedules import make_schedule
from cos_jax.sampling.solvers import get_solver

SHAPE = (2, 3, 4, 5)


def fake_velocity(x: np.ndarray, i: int) -> np.ndarray:
    """A fixed, step-dependent nonlinear 'model' both sides evaluate identically."""
    rng = np.random.default_rng(100 + i)
    return (np.tanh(x) * 0.7 + rng.standard_normal(x.shape).astype(np.float32) * 0.3).astype(np.float32)


def run_ours(name: str, sigmas: np.ndarray, x: np.ndarray) -> list[np.ndarray]:
    init, step = get_solver(name)
    step = jax.jit(step)
    state, xj, out = init(jnp.asarray(x)), jnp.asarray(x), []
    for i in range(len(sigmas) - 1):
        v = fake_velocity(np.asarray(xj), i)
        xj, state = step(state, xj, jnp.asarray(v), jnp.asarray(i), jnp.asarray(sigmas))
        out.append(np.asarray(xj))
    return out


def run_reference(scheduler, x: np.ndarray) -> list[np.ndarray]:
    xt, out = torch.from_numpy(x.copy()), []
    for i, t in enumerate(scheduler.timesteps):
        v = torch.from_numpy(fake_velocity(xt.numpy(), i))
        xt = scheduler.step(v, t, xt, return_dict=False)[0]
        out.append(xt.numpy().copy())
    return out


@pytest.mark.parametrize(("steps", "shift"), [(40, 12.0), (10, 5.0), (3, 1.0), (2, 5.0)])
def test_unipc_matches_diffusers(steps, shift):
    from diffusers import UniPCMultistepScheduler

    schedule = make_schedule("official", steps, shift)
    ref = UniPCMultistepScheduler(use_flow_sigmas=True, prediction_type="flow_prediction", flow_shift=1.0,
                                  solver_order=2, solver_type="bh2", lower_order_final=True)  # fmt: skip
    ref.set_timesteps(sigmas=schedule.sigmas[:-1].astype(np.float64))
    np.testing.assert_array_equal(ref.sigmas.numpy(), schedule.sigmas)
    x = np.random.default_rng(0).standard_normal(SHAPE).astype(np.float32)
    ours, theirs = run_ours("unipc", schedule.sigmas, x), run_reference(ref, x)
    for i, (a, b) in enumerate(zip(ours, theirs, strict=True)):
        assert np.abs(a - b).max() <= 1e-6 * max(np.abs(b).max(), 1.0), f"step {i}"


def test_euler_matches_diffusers():
    from diffusers import FlowMatchEulerDiscreteScheduler

    schedule = make_schedule("diffsynth", 50, 5.0)
    ref = FlowMatchEulerDiscreteScheduler(shift=1.0)
    ref.set_timesteps(sigmas=schedule.sigmas[:-1].tolist())
    np.testing.assert_allclose(ref.sigmas.numpy(), schedule.sigmas, rtol=0, atol=1e-7)
    x = np.random.default_rng(1).standard_normal(SHAPE).astype(np.float32)
    ours, theirs = run_ours("euler", schedule.sigmas, x), run_reference(ref, x)
    for i, (a, b) in enumerate(zip(ours, theirs, strict=True)):
        assert np.abs(a - b).max() <= 1e-6 * max(np.abs(b).max(), 1.0), f"step {i}"


def test_final_step_returns_the_clean_estimate():
    schedule = make_schedule("official", 4, 5.0)
    x = np.random.default_rng(2).standard_normal(SHAPE).astype(np.float32)
    for name in ("euler", "unipc"):
        init, step = get_solver(name)
        state, xj = init(jnp.asarray(x)), jnp.asarray(x)
        for i in range(4):
            v = jnp.asarray(fake_velocity(np.asarray(xj), i))
            x_before = xj
            xj, state = step(state, xj, v, jnp.asarray(i), jnp.asarray(schedule.sigmas))
        np.testing.assert_array_equal(np.asarray(xj), np.asarray(x_before - schedule.sigmas[3] * v))
