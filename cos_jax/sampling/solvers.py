"""Flow-matching solvers as pure step functions with an explicit state pytree.

`step(state, x, v, i, sigmas) -> (x_next, state)` advances the latent x at step i (σ_i = sigmas[i]) given
the guided velocity v. Both work in float32 like the reference implementations.

- Euler: x_{i+1} = x_i + (σ_{i+1} − σ_i)·v.
- UniPC (order 2, B(h) = expm1 variant "bh2", data prediction, UniC corrector from step 1 on,
  lower order at the first and last step, final σ = 0), as in Wan2.2's `FlowUniPCMultistepScheduler` and
  diffusers' `UniPCMultistepScheduler(use_flow_sigmas=True)`. With m_i = x_i − σ_i·v_i (from the
  uncorrected x_i), α = 1 − σ and λ = log α − log σ:
    corrector (i ≥ 1, order p of the previous predictor):
      x_i ← σ_i/σ_{i−1}·x_{i−1} − α_i·φ·m_{i−1} − α_i·φ·(ρ_1·D + ρ_last·(m_i − m_{i−1}))
    predictor (order q = 1 at the first and the last step, else 2):
      x_{i+1} = σ_{i+1}/σ_i·x_i − α_{i+1}·φ·m_i − α_{i+1}·φ·½·D    (D term only when q = 2)
  where h = λ_target − λ_source, φ = expm1(−h), D = (m_older − m_newer)/r with r the λ-step ratio, and
  ρ solves the 2×2 system of the B(h) recurrence (ρ = ½ when p = 1). When σ_{i+1} = 0 the predictor
  returns m_i exactly.
"""

from __future__ import annotations

from typing import NamedTuple

import jax
import jax.numpy as jnp

F32 = jnp.float32


def euler_init(x: jax.Array) -> tuple:
    return ()


def euler_step(state: tuple, x: jax.Array, v: jax.Array, i: jax.Array, sigmas: jax.Array):
    return x + (sigmas[i + 1] - sigmas[i]) * v, state


class UniPCState(NamedTuple):
    prev_m: jax.Array  # m_{i−1}
    prev2_m: jax.Array  # m_{i−2}
    last_x: jax.Array  # corrected x_{i−1}, the predictor's input at the previous step
    last_order: jax.Array  # order of the previous predictor (0 before the first step)


def unipc_init(x: jax.Array) -> UniPCState:
    zeros = jnp.zeros_like(x, F32)
    return UniPCState(zeros, zeros, zeros, jnp.zeros((), jnp.int32))


def _lambda(sigma):
    return jnp.log(1 - sigma) - jnp.log(sigma)


def _corrector_rhos(h, r):
    """ρ for the order-2 corrector: solve [[1, 1], [r, 1]]·ρ = b of the bh2 recurrence."""
    hh = -h
    phi = jnp.expm1(hh)
    b1 = (phi / hh - 1) / phi
    b2 = ((phi / hh - 1) / hh - 0.5) * 2 / phi
    rho_first = (b1 - b2) / (1 - r)  # from ρ_1 + ρ_2 = b1 and r·ρ_1 + ρ_2 = b2
    return rho_first, b1 - rho_first


def unipc_step(state: UniPCState, x: jax.Array, v: jax.Array, i: jax.Array, sigmas: jax.Array):
    x, v = x.astype(F32), v.astype(F32)
    num_steps = sigmas.shape[0] - 1
    s_prev2, s_prev, s_cur, s_next = (
        sigmas[jnp.maximum(i - 2, 0)],
        sigmas[jnp.maximum(i - 1, 0)],
        sigmas[i],
        sigmas[i + 1],
    )
    lam_prev2, lam_prev, lam_cur = _lambda(s_prev2), _lambda(s_prev), _lambda(s_cur)
    m = x - s_cur * v

    # UniC corrector of x_i, using m_i; order = the previous predictor's order.
    h = lam_cur - lam_prev
    phi = jnp.expm1(-h)
    alpha = 1 - s_cur
    base = s_cur / s_prev * state.last_x - alpha * phi * state.prev_m
    r = (lam_prev2 - lam_prev) / h
    rho_d, rho_last2 = _corrector_rhos(h, r)
    d_older = (state.prev2_m - state.prev_m) / r
    corrected2 = base - alpha * phi * (rho_d * d_older + rho_last2 * (m - state.prev_m))
    corrected1 = base - alpha * phi * 0.5 * (m - state.prev_m)
    x = jnp.where(state.last_order == 2, corrected2, jnp.where(state.last_order == 1, corrected1, x))

    # UniP predictor to x_{i+1}.
    order = jnp.where((i == 0) | (i == num_steps - 1), 1, 2)
    h = _lambda(s_next) - lam_cur
    phi = jnp.expm1(-h)
    alpha_next = 1 - s_next
    predicted1 = s_next / s_cur * x - alpha_next * phi * m
    r = (lam_prev - lam_cur) / h
    predicted2 = predicted1 - alpha_next * phi * 0.5 * (state.prev_m - m) / r
    x_next = jnp.where(order == 2, predicted2, predicted1)
    x_next = jnp.where(s_next == 0, m, x_next)
    return x_next, UniPCState(prev_m=m, prev2_m=state.prev_m, last_x=x, last_order=order.astype(jnp.int32))


SOLVERS = {"euler": (euler_init, euler_step), "unipc": (unipc_init, unipc_step)}


def get_solver(name: str):
    try:
        return SOLVERS[name]
    except KeyError:
        raise ValueError(f"unknown solver {name!r}; choose one of {sorted(SOLVERS)}") from None
