"""The denoising scan: determinism, x̂0, the expert switch, intervention plans as data, and runs started from
a kept state."""

import itertools

import jax
import jax.numpy as jnp
import numpy as np
import pytest

from cos_jax.probes import (
    Inject,
    LatentNoise,
    Plan,
    capture_plan,
    ensemble_matrix,
    inject_plan,
    mix_plan,
    noise_plan,
    swap_matrix,
)
from cos_jax.probes.transforms import perturb_latent
from cos_jax.sampling import Conditions, Trajectory, initial_noise, sample, sampling_preset
from cos_jax.sampling.api import _run_jitted
from cos_jax.sampling.loop import keep_x0, run_trajectory
from cos_jax.wan.config import DiTConfig
from cos_jax.wan.dit import init_dit

CFG = DiTConfig("i2v", dim=32, ffn_dim=48, num_heads=2, num_layers=3, in_dim=36, out_dim=16, text_dim=16)
LATENT = (3, 4, 6, 16)  # F, H, W, C -> 3 * 2 * 3 = 18 tokens
STEPS = 6
CONFIG = sampling_preset("paper").replace(steps=STEPS)


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


def test_deterministic_and_last_x0_is_final_latent(experts, cond):
    for solver in ("euler", "unipc"):
        config = CONFIG.replace(solver=solver)
        a = sample(experts, cond, config, LATENT, seeds=[3, 4])
        b = sample(experts, cond, config, LATENT, seeds=[3, 4])
        np.testing.assert_array_equal(a.latent, b.latent)
        np.testing.assert_array_equal(a.x0_at(STEPS - 1), a.latent)
        assert a.x0.shape == (STEPS, 2, *LATENT)
        assert np.abs(a.latent[0] - a.latent[1]).max() > 1e-3  # different seeds differ


def test_progress_records_when_each_step_finished_and_keeps_the_result(experts, cond):
    """With a progress bar, each step's end time is recorded once (over both experts' scans), in order;
    the trajectory is the one without it."""
    plain = sample(experts, cond, CONFIG, LATENT, seeds=[3])
    timed = sample(experts, cond, CONFIG, LATENT, seeds=[3], progress=True)
    done = timed.meta["step_done_s"]
    assert len(done) == STEPS and all(a <= b for a, b in itertools.pairwise(done)) and done[0] > 0
    assert "step_done_s" not in plain.meta
    np.testing.assert_array_equal(timed.latent, plain.latent)


@pytest.mark.parametrize("name", ["official-t2v-a14b", "official-i2v-a14b", "paper"])
def test_two_experts_switch_at_the_preset_boundary(experts, cond, name):
    config = sampling_preset(name)
    switch = config.switch_step()
    high, low = experts
    both = sample((high, low), cond, config, LATENT, keep_steps=range(config.steps))
    only_high = sample((high, high), cond, config, LATENT)
    assert np.abs(both.x0[:switch] - only_high.x0[:switch]).max() == 0  # same expert up to the switch
    assert np.abs(both.x0[switch] - only_high.x0[switch]).max() > 1e-4  # low-noise expert from the switch on
    assert both.meta["switch_step"] == switch


def _full_plan(worlds, latent_frames=3):
    """Every plan part present with nothing selected."""
    source = jnp.zeros((1, 2, worlds, 18, CFG.dim))
    return Plan(
        noise=LatentNoise(jnp.zeros((STEPS, latent_frames)), jnp.ones(worlds), jnp.asarray(1.0), "renoise"),
        mix=mix_plan(ensemble_matrix(worlds), STEPS, CFG.num_layers, steps=[], layers=[]),
        inject=Inject(source, -jnp.ones((STEPS, CFG.num_layers), jnp.int32), jnp.ones(2), jnp.ones(worlds)),
        capture=capture_plan(STEPS, CFG.num_layers, [1], [2], reducer="full", branches="both"),
    )


def test_identity_plan_is_bit_identical(experts, cond):
    plain = sample(experts, cond, CONFIG, LATENT, seeds=[0, 1])
    planned = sample(experts, cond, CONFIG, LATENT, seeds=[0, 1], plan=_full_plan(2))
    np.testing.assert_array_equal(planned.latent, plain.latent)
    np.testing.assert_array_equal(planned.x0, plain.x0)
    assert planned.captures.shape == (1, 1, 2, 2, 18, CFG.dim)


@pytest.mark.parametrize("mode", ["replace", "add", "renoise"])
def test_frame_noise_changes_only_that_frame_at_every_step(mode):
    x = jax.random.normal(jax.random.key(0), (2, 5, 4, 6, 16))
    x0_prev = jax.random.normal(jax.random.key(1), x.shape)
    plan = noise_plan(STEPS, 5, 2, frames=3, mode=mode, alpha=0.5)
    for step in range(STEPS):
        out = perturb_latent(plan, jnp.asarray(step), x, x0_prev, jnp.asarray(0.7), jax.random.key(100 + step))
        changed = np.abs(np.asarray(out - x)).max(axis=(0, 2, 3, 4)) > 0
        assert changed.tolist() == [False, False, False, True, False]
    step_plan = noise_plan(STEPS, 5, 2, steps=2, worlds=1)
    same = perturb_latent(step_plan, jnp.asarray(1), x, x0_prev, jnp.asarray(0.7), jax.random.key(99))
    np.testing.assert_array_equal(np.asarray(same), np.asarray(x))
    hit = perturb_latent(step_plan, jnp.asarray(2), x, x0_prev, jnp.asarray(0.7), jax.random.key(99))
    assert np.array_equal(np.asarray(hit[0]), np.asarray(x[0])) and not np.array_equal(
        np.asarray(hit[1]), np.asarray(x[1])
    )


def test_step_noise_changes_the_outcome(experts, cond):
    plain = sample(experts, cond, CONFIG, LATENT)
    noisy = sample(experts, cond, CONFIG, LATENT, plan=Plan(noise=noise_plan(STEPS, 3, 1, steps=2)))
    np.testing.assert_array_equal(noisy.x0[:2], plain.x0[:2])
    assert np.abs(noisy.latent - plain.latent).max() > 1e-3


def test_ensemble_of_identical_worlds_equals_plain_run(experts, cond):
    plain = sample(experts, cond, CONFIG, LATENT, seeds=[7])
    mix = mix_plan(ensemble_matrix(3), STEPS, CFG.num_layers, steps=[0, 1], layers=[1, 2])
    ensembled = sample(experts, cond, CONFIG, LATENT, seeds=[7, 7, 7], plan=Plan(mix=mix))
    for w in range(3):
        np.testing.assert_allclose(ensembled.latent[w], plain.latent[0], rtol=0, atol=1e-5)


def test_swap_by_mix_equals_swap_by_inject(experts, cond):
    at_step, at_layer = 1, 1
    worlds = dict(seeds=[0, 1])
    swap = mix_plan(swap_matrix(2, [(0, 1)]), STEPS, CFG.num_layers, steps=at_step, layers=at_layer)
    swapped = sample(experts, cond, CONFIG, LATENT, plan=Plan(mix=swap), **worlds)

    cap = capture_plan(STEPS, CFG.num_layers, [at_step], [at_layer], reducer="full", branches="both")
    recorded = sample(experts, cond, CONFIG, LATENT, plan=Plan(capture=cap), **worlds).captures[0, 0]  # [2, W, L, D]
    # the same batch, injecting the other world's recorded state
    source = jnp.asarray(recorded[:, ::-1])[None]
    injected = sample(experts, cond, CONFIG, LATENT, plan=Plan(inject=inject_plan(source, STEPS, CFG.num_layers,
                      at=[(at_step, at_layer)])), **worlds)  # fmt: skip
    np.testing.assert_array_equal(injected.latent, swapped.latent)
    # a run of world 0 alone that receives world 1's state (runs that cannot share a batch)
    alone = sample(experts, cond, CONFIG, LATENT, seeds=[0], plan=Plan(inject=inject_plan(
        jnp.asarray(recorded[:, 1:2])[None], STEPS, CFG.num_layers, at=[(at_step, at_layer)])))  # fmt: skip
    np.testing.assert_allclose(alone.latent[0], swapped.latent[0], rtol=0, atol=1e-5)


def test_sweeping_the_injection_step_compiles_once(experts, cond):
    traces = []

    def counted(*args, **kwargs):
        traces.append(1)
        return run_trajectory(*args, **kwargs)

    run = jax.jit(counted, static_argnames=("config", "policy", "attention_backend"))
    noise = initial_noise([0], LATENT)
    source = jnp.zeros((1, 2, 1, 18, CFG.dim))
    keep = keep_x0(STEPS)
    finals = []
    for step in range(STEPS):
        for layer in (0, 2):
            plan = Plan(inject=inject_plan(source, STEPS, CFG.num_layers, at=[(step, layer)]),
                        capture=capture_plan(STEPS, CFG.num_layers, [step], [layer]))  # fmt: skip
            out = run(experts, cond, noise, plan, jax.random.key(0), keep, config=CONFIG)
            finals.append(np.asarray(out["latent"]))
    assert len(traces) == 1
    assert len({f.tobytes() for f in finals}) == len(finals)  # every choice acted differently


def test_captures_reducers_and_memory(experts, cond):
    for reducer, shape in [("token_norm", (1, 2, 18)), ("mean", (1, 2, 32)), ("subsample", (1, 2, 5, 32))]:
        cap = capture_plan(STEPS, CFG.num_layers, [0, 3], [0, 1, 2], reducer=reducer, stride=4)
        traj = sample(experts, cond, CONFIG, LATENT, seeds=[0, 1], plan=Plan(capture=cap))
        assert traj.captures.shape == (2, 3, *shape)
        assert traj.capture_steps.tolist() == [0, 3] and traj.capture_layers.tolist() == [0, 1, 2]
    full = capture_plan(STEPS, CFG.num_layers, [2], [1], reducer="full", branches="cond")
    traj = sample(experts, cond, CONFIG, LATENT, seeds=[0, 1], plan=Plan(capture=full))
    norms = sample(experts, cond, CONFIG, LATENT, seeds=[0, 1],
                   plan=Plan(capture=capture_plan(STEPS, CFG.num_layers, [2], [1]))).captures  # fmt: skip
    np.testing.assert_allclose(np.linalg.norm(traj.captures, axis=-1), norms, rtol=1e-5)


def test_trajectory_round_trip(tmp_path, experts, cond):
    cap = capture_plan(STEPS, CFG.num_layers, [1], [0])
    traj = sample(experts, cond, CONFIG, LATENT, seeds=[5], keep_steps=[0, 5, 0], plan=Plan(capture=cap))
    assert traj.x0_steps.tolist() == [0, 5] and traj.x0.shape[0] == 2  # a repeated step is kept once
    path = traj.save(tmp_path / "run")
    back = Trajectory.load(path)
    np.testing.assert_array_equal(back.x0, traj.x0)
    np.testing.assert_array_equal(back.captures, traj.captures)
    assert back.meta["sampling"]["solver"] == "euler" and back.meta["seeds"] == [5]
    assert list(tmp_path.iterdir()) == [path]
    with pytest.raises(KeyError, match="kept steps"):
        back.x0_at(3)


def test_x0_cast_and_stride(tmp_path, experts, cond):
    full = sample(experts, cond, CONFIG, LATENT, keep_steps=[2])
    small = sample(experts, cond, CONFIG, LATENT, keep_steps=[2], x0_dtype="bfloat16", x0_stride=2)
    assert small.x0.shape == (1, 1, 3, 2, 3, 16) and small.x0.dtype == jnp.bfloat16
    np.testing.assert_array_equal(
        small.x0.astype(np.float32), full.x0[:, :, :, ::2, ::2].astype(jnp.bfloat16).astype(np.float32)
    )
    back = Trajectory.load(small.save(tmp_path / "bf16.npz"))
    assert back.x0.dtype == jnp.bfloat16
    np.testing.assert_array_equal(back.x0, small.x0)
    with pytest.raises(ValueError, match="must lie in"):
        sample(experts, cond, CONFIG, LATENT, keep_steps=[STEPS])


def test_bad_plan_inputs():
    with pytest.raises(ValueError, match="frame 9 is out of range"):
        noise_plan(STEPS, 3, 1, frames=9)
    with pytest.raises(ValueError, match="unknown noise mode"):
        noise_plan(STEPS, 3, 1, mode="scramble")
    with pytest.raises(ValueError, match="inject source must be"):
        inject_plan(jnp.zeros((2, 2, 1, 18, 32)), STEPS, 3, at=[(0, 0)])


def test_a_mesh_spreads_the_call_and_keeps_the_trajectory(experts, cond):
    """Two experts, 4 worlds over data=4, the sequence over context=2 (all-to-all attention), captures kept:
    the trajectory of one device."""
    import jax

    from cos_jax.parallel import make_mesh

    if len(jax.devices()) < 8:
        pytest.skip("needs XLA_FLAGS=--xla_force_host_platform_device_count=8")
    plan = Plan(capture=capture_plan(CONFIG.steps, CFG.num_layers, [0, 2], [1], "full"))
    a = sample(experts, cond, CONFIG, LATENT, seeds=[0, 1, 2, 3], plan=plan)
    b = sample(experts, cond, CONFIG, LATENT, seeds=[0, 1, 2, 3], plan=plan, mesh=make_mesh("data=4,context=2"))
    for x, y in ((a.latent, b.latent), (a.x0, b.x0), (a.captures, b.captures)):
        assert np.abs(y - x).max() <= 1e-5 * np.abs(x).max()


@pytest.mark.parametrize("solver", ["euler", "unipc"])
def test_a_run_from_a_kept_state_equals_the_run_from_the_noise(experts, cond, solver):
    config = CONFIG.replace(solver=solver)
    assert 0 < config.switch_step() < STEPS
    kw = dict(seeds=[3, 4], plan_seed=7)
    clean = sample(experts, cond, config, LATENT, keep_states=True, keep_steps=range(STEPS), **kw)
    for mode in ("replace", "renoise", "add"):
        for at in (2, config.switch_step(), STEPS - 1):  # before, at and after the switch
            plan = Plan(noise=noise_plan(STEPS, LATENT[0], 2, steps=at, mode=mode, alpha=0.7))
            whole = sample(experts, cond, config, LATENT, plan=plan, **kw)
            resumed = sample(experts, cond, config, LATENT, plan=plan, start=clean.state_at(at), **kw)
            np.testing.assert_array_equal(resumed.latent, whole.latent)  # bit-identical on CPU
            np.testing.assert_array_equal(resumed.x0[at:], whole.x0[at:])
            assert not resumed.x0[:at].any()  # skipped steps write nothing


def test_the_start_step_is_data_and_bad_starts_are_refused(experts, cond):
    kw = dict(seeds=[3], plan_seed=1)
    clean = sample(experts, cond, CONFIG, LATENT, keep_states=[1, 4], keep_steps=[0], **kw)  # states apart from x̂0
    assert clean.x0.shape[0] == 1 and clean.state_steps.tolist() == [1, 4]
    before = _run_jitted._cache_size()
    for at in (1, 4):
        sample(experts, cond, CONFIG, LATENT, start=clean.state_at(at), **kw)
    assert _run_jitted._cache_size() - before == 1
    with pytest.raises(KeyError, match="not kept"):
        clean.state_at(0)
    with pytest.raises(KeyError, match="keep_states"):
        sample(experts, cond, CONFIG, LATENT, keep_steps=[1], **kw).state_at(1)
    bad = clean.state_at(1)
    with pytest.raises(ValueError, match="start state holds latents"):
        sample(experts, cond, CONFIG, LATENT, seeds=[3, 4], start=clean.state_at(1))
    with pytest.raises(ValueError, match="start step"):
        sample(experts, cond, CONFIG, LATENT, start=type(bad)(np.int32(STEPS), bad.x, bad.solver, bad.x0_prev), **kw)
