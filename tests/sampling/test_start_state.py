"""Starting a trajectory from a kept state: the steps before it are skipped, the rest is the run from the
noise (same plan seed, a plan that acts from that step on), for both solvers and across the expert switch,
with one program for every start step."""

import jax.numpy as jnp
import numpy as np
import pytest

from cos_jax.probes import Plan, noise_plan
from cos_jax.sampling import Conditions, sample, sampling_preset
from cos_jax.sampling.api import _run_jitted
from cos_jax.wan.config import DiTConfig
from cos_jax.wan.dit import init_dit

CFG = DiTConfig("i2v", dim=32, ffn_dim=48, num_heads=2, num_layers=3, in_dim=36, out_dim=16, text_dim=16)
LATENT = (3, 4, 6, 16)
STEPS = 6
CONFIG = sampling_preset("paper").replace(steps=STEPS)  # the switch falls inside the 6 steps


@pytest.fixture(scope="module")
def experts():
    return init_dit(CFG, seed=0), init_dit(CFG, seed=1)


@pytest.fixture(scope="module")
def cond():
    rng = np.random.default_rng(0)
    return Conditions(
        context=jnp.asarray(rng.standard_normal((1, 5, 16)), jnp.float32),
        negative=jnp.zeros((1, 5, 16)),
        y=jnp.asarray(rng.standard_normal((1, 3, 4, 6, 20)), jnp.float32),
    )


@pytest.mark.parametrize("solver", ["euler", "unipc"])
def test_a_run_from_a_kept_state_equals_the_run_from_the_noise(experts, cond, solver):
    config = CONFIG.replace(solver=solver)
    assert 0 < config.switch_step() < STEPS
    kw = dict(seeds=[3, 4], plan_seed=7)
    clean = sample(experts, cond, config, LATENT, keep_states=True, keep_steps=range(STEPS), **kw)
    for mode in ("replace", "renoise", "add"):
        for at in (0, 2, config.switch_step(), STEPS - 1):
            plan = Plan(noise=noise_plan(STEPS, LATENT[0], 2, steps=at, mode=mode, alpha=0.7))
            whole = sample(experts, cond, config, LATENT, plan=plan, **kw)
            resumed = sample(experts, cond, config, LATENT, plan=plan, start=clean.state_at(at), **kw)
            np.testing.assert_array_equal(resumed.latent, whole.latent)  # bit-identical on CPU
            np.testing.assert_array_equal(resumed.x0[at:], whole.x0[at:])
            assert not resumed.x0[:at].any()  # skipped steps write nothing


def test_the_start_step_is_data_and_bad_starts_are_refused(experts, cond):
    kw = dict(seeds=[3], plan_seed=1)
    clean = sample(experts, cond, CONFIG, LATENT, keep_states=True, keep_steps=[1, 4], **kw)
    before = _run_jitted._cache_size()
    for at in (1, 4):
        sample(experts, cond, CONFIG, LATENT, start=clean.state_at(at), **kw)
    assert _run_jitted._cache_size() - before == 1
    with pytest.raises(KeyError, match="not kept"):
        clean.state_at(2)
    with pytest.raises(KeyError, match="keep_states"):
        sample(experts, cond, CONFIG, LATENT, keep_steps=[1], **kw).state_at(1)
    bad = clean.state_at(1)
    with pytest.raises(ValueError, match="start step"):
        sample(experts, cond, CONFIG, LATENT, start=type(bad)(np.int32(STEPS), bad.x, bad.solver, bad.x0_prev), **kw)
