"""The layer-level experiments on the toy world: token norms from captures against a direct hooked forward,
layer swaps (identical worlds, step-0 stream swap, one compilation), the ensemble recipes (identical seeds,
recipe 2's noise statistics), shards, and the one-line errors of bad inputs."""

from pathlib import Path

import jax
import jax.numpy as jnp
import numpy as np
import pytest

from cos_jax.cli import main
from cos_jax.experiments.config import load_config
from cos_jax.experiments.models import load_model, take_worlds
from cos_jax.experiments.runner import merge, run
from cos_jax.probes.plan import Plan, capture_plan, group_mean_matrix, merge_plan, mix_plan, swap_matrix
from cos_jax.probes.transforms import merge_latent
from cos_jax.sampling import initial_noise, sample
from cos_jax.sampling.api import _run_jitted

ROOT = Path(__file__).parents[2]
STEPS = 3


@pytest.fixture(scope="module")
def toy():
    return load_model("toy")


@pytest.fixture(scope="module")
def worlds(toy):
    """Conditions of a pair of maze problems (one prompt, another goal) and one initial noise for both."""
    from cos_jax.tasks import get_task

    samples = get_task("maze").pair_for_split("test", 0, 1, 32, 17)
    cond = toy.conditions(np.stack([s.first_frame for s in samples]), [s.prompt for s in samples], "fp32")
    noise = jnp.asarray(initial_noise([7, 7], toy.latent_shape))
    return cond, noise


@pytest.fixture
def spread_calls(monkeypatch):
    """The calls that went over a mesh (`shard_world_call`), recorded; skips without the 8 host devices."""
    import cos_jax.parallel

    if len(jax.devices()) < 8:
        pytest.skip("needs XLA_FLAGS=--xla_force_host_platform_device_count=8")
    calls = []
    shard = cos_jax.parallel.shard_world_call
    monkeypatch.setattr(cos_jax.parallel, "shard_world_call", lambda *a: calls.append(1) or shard(*a))
    return calls


def _run(toy, cond, noise, plan, keep_steps=()):
    config = toy.sampling({"steps": STEPS, "shift": 5.0, "guidance": 5.0, "boundary": 875.0})
    return sample(toy.dit, cond, config, noise=noise, plan=plan, keep_steps=list(keep_steps))


def test_token_norms_from_captures_equal_a_direct_hooked_forward(toy, worlds):
    cond, noise = worlds
    layers = [0, 5, 7]
    plan = Plan(capture=capture_plan(STEPS, toy.num_layers, [0], layers, "token_norm", "cond"))
    captured = np.asarray(_run(toy, cond, noise, plan).captures)[0, :, 0]  # [Lc, W, L]
    config = toy.sampling({"steps": STEPS, "shift": 5.0, "guidance": 5.0, "boundary": 875.0})
    t0 = float(config.schedule().timesteps[0])
    buffer = jnp.zeros((toy.num_layers, 4, captured.shape[-1], toy.experts[0].config.dim))
    context = jnp.concatenate([cond.context, jnp.broadcast_to(cond.negative[:1], cond.context.shape)])
    _, outputs = toy.dit.forward_hooked(
        jnp.concatenate([noise, noise]), jnp.full((4,), t0), context, jnp.concatenate([cond.y, cond.y]),
        hook=lambda h, _p, layer, buf, _in: (h, buf.at[layer].set(h)), state=buffer,
    )  # fmt: skip
    direct = np.linalg.norm(np.asarray(outputs)[layers, :2], axis=-1)  # the conditional branch: first W rows
    np.testing.assert_allclose(captured, direct, rtol=1e-5, atol=1e-5)


@pytest.mark.parametrize("part", ["stream", "update"])
def test_swapping_two_identical_worlds_changes_nothing(toy, worlds, part):
    cond, noise = worlds
    same = take_worlds(cond, np.array([0, 0]), 2)
    swap = Plan(mix=mix_plan(swap_matrix(2, [(0, 1)]), STEPS, toy.num_layers, steps=[0], layers=[3], part=part))
    np.testing.assert_allclose(_run(toy, same, noise, swap).latent, _run(toy, same, noise, Plan()).latent, atol=1e-6)


def test_a_stream_swap_at_step_0_hands_world_a_the_step_0_output_of_b(toy, worlds):
    cond, noise = worlds
    clean = _run(toy, cond, noise, Plan(), keep_steps=[0]).x0[0]
    assert np.abs(clean[0] - clean[1]).max() > 0.1  # the problems differ
    a_takes_b = np.array([[0, 1], [0, 1]], np.float32)  # A's stream replaced by B's, B untouched
    plan = Plan(mix=mix_plan(a_takes_b, STEPS, toy.num_layers, steps=[0]))  # at every layer of step 0
    swapped = _run(toy, cond, noise, plan, keep_steps=[0]).x0[0]
    np.testing.assert_allclose(swapped, clean[[1, 1]], atol=1e-5)
    for layer in (0, 4, 7):  # a two-way swap at any single layer: same x, t and prompt, so the stream decides
        plan = Plan(mix=mix_plan(swap_matrix(2, [(0, 1)]), STEPS, toy.num_layers, steps=[0], layers=[layer]))
        swapped = _run(toy, cond, noise, plan, keep_steps=[0]).x0[0]
        np.testing.assert_allclose(swapped, clean[[1, 0]], atol=1e-5)
    update = Plan(mix=mix_plan(swap_matrix(2, [(0, 1)]), STEPS, toy.num_layers, steps=[0], layers=[4], part="update"))
    swapped = _run(toy, cond, noise, update, keep_steps=[0]).x0[0]
    assert np.abs(swapped[0] - clean[1]).max() > 1e-3 and np.abs(swapped[0] - clean[0]).max() > 1e-4


@pytest.mark.parametrize(
    "plan_of",
    [
        lambda n: Plan(mix=mix_plan(group_mean_matrix(1, 3), STEPS, n, steps=[0, 1], layers=[2, 3, 4])),
        lambda n: Plan(merge=merge_plan(group_mean_matrix(1, 3), STEPS, [1], mode="latent")),
        lambda n: Plan(merge=merge_plan(group_mean_matrix(1, 3), STEPS, [1, 2], mode="x0")),
    ],
    ids=["hidden", "latent", "x0"],
)
def test_an_ensemble_of_identical_seeds_equals_one_seed(toy, worlds, plan_of):
    cond, noise = worlds
    one = take_worlds(cond, np.array([1]), 2)
    three = take_worlds(cond, np.array([1, 1, 1]), 2)
    single = _run(toy, one, noise[1:], Plan()).latent
    merged = _run(toy, three, jnp.concatenate([noise[1:]] * 3), plan_of(toy.num_layers)).latent
    np.testing.assert_allclose(merged, np.repeat(single, 3, 0), atol=1e-4)  # 1/3 + 1/3 + 1/3 rounding only


def test_merge_noise_statistics():
    """After merging, the noise part of x is N(0, σ²) per world: rescaled in recipe 2 (a plain average would
    shrink it to σ/√W), each world's own in recipe 3."""
    w, sigma = 3, 0.8
    k1, k2 = jax.random.split(jax.random.key(0))
    x0 = jax.random.normal(k1, (w, 4, 8, 8, 16)) * 0.5 + 0.2
    eps = jax.random.normal(k2, x0.shape)
    x = (1 - sigma) * x0 + sigma * eps
    for mode in ("latent", "x0"):
        merge = merge_plan(group_mean_matrix(1, w), 2, [1], mode=mode)
        out = merge_latent(merge, jnp.asarray(1), x, x0, jnp.asarray(sigma))
        noise = np.asarray(out - (1 - sigma) * x0.mean(0, keepdims=True)) / sigma
        assert abs(noise.mean()) < 0.02 and abs(noise.std() - 1) < 0.02, (mode, noise.std())
        assert np.allclose(np.asarray(out[0]), np.asarray(out[1])) == (mode == "latent")  # one trajectory
    naive = np.asarray(eps.mean(0))
    assert abs(naive.std() - 1 / np.sqrt(w)) < 0.02
    untouched = merge_latent(merge, jnp.asarray(0), x, x0, jnp.asarray(sigma))
    np.testing.assert_array_equal(untouched, x)


SWAP = ["per_task=1", f"steps={STEPS}", "batch=4", "layers=[0,7]", "tasks=['maze@1','tictactoe']"]


def test_layer_swap_compiles_once_and_shards_merge(toy, tmp_path):
    config = load_config(ROOT / "configs/toy/layer_swap.toml", SWAP)
    before = _run_jitted._cache_size()
    full = run(config, tmp_path / "full", progress=False, model=toy)
    assert _run_jitted._cache_size() - before == 1  # the no-swap point and every layer: one program
    assert full["pairs"] == 2 and set(full["layers"]) == {"0", "7"}
    for k in range(2):
        assert run(config, tmp_path / f"s{k}", shard=(k, 2), progress=False, model=toy) is None
    merge(tmp_path / "merged", [tmp_path / "s0", tmp_path / "s1"])
    assert (tmp_path / "merged/results.json").read_bytes() == (tmp_path / "full/results.json").read_bytes()
    assert "Layer swap" in (tmp_path / "full/report.html").read_text()


def test_token_maps_runs_and_reports(toy, tmp_path):
    config = load_config(ROOT / "configs/toy/token_maps.toml",
                         ["per_task=2", f"steps={STEPS}", "show_steps=[0,2]", "tasks=['select_next','maze@1']",
                          "layers=[0,7]"])  # fmt: skip
    results = run(config, tmp_path / "tm", progress=False, model=toy)
    assert np.asarray(results["mean_norm"][0]).shape == (STEPS, 2)
    assert np.asarray(results["pca_share"]).shape == (2, 2, 2, 3)  # detail samples × shown steps × layers × 3
    assert 0 < np.asarray(results["pca_share"]).sum(-1).max() <= 1 + 1e-6
    assert len(list((tmp_path / "tm/figures").glob("maps_*.png"))) == 4


def test_token_maps_detail_runs_over_the_configs_mesh(toy, spread_calls):
    """The detail point's PCA (eigh over the captures) runs over a config's mesh (`Session.call`) and agrees
    with one device; XLA:CPU's batched eigh deadlocked there (every host device waiting on the thread pool;
    the suite's timeout turns a deadlock into a failure)."""
    from cos_jax.experiments.base import Point
    from cos_jax.experiments.registry import EXPERIMENTS
    from cos_jax.experiments.session import build_session

    config = load_config(ROOT / "configs/toy/token_maps.toml",
                         ["per_task=1", f"steps={STEPS}", "show_steps=[0,2]", "tasks=['select_next','maze@1']",
                          "layers=[0,7]", "batch=4"])  # fmt: skip
    records = [EXPERIMENTS["token_maps"].run_point(build_session({**config, "mesh": mesh}, toy), Point("detail", {}))
               for mesh in ("", "data=2,context=4")]  # fmt: skip
    one, spread = records
    assert spread_calls == [1]
    assert one["pca_share"].shape == (2, 2, 2, 3) and 0 < one["pca_share"].sum(-1).max() <= 1 + 1e-6
    for key in ("pca_share", "channel_var", "pca_rgb"):
        np.testing.assert_allclose(spread[key], one[key], rtol=1e-4, atol=1e-4, err_msg=key)


@pytest.mark.parametrize(
    ("config", "sets", "message"),
    [
        ("ensemble", ["seeds_per_problem=1"], "needs at least 2 seeds"),
        ("ensemble", ["layer_ranges=[[4,12]]"], "[4, 12] is not a layer range"),
        ("layer_swap", ["tasks=['majority_colour']"], "majority_colour has no paired problems"),
        ("layer_swap", ["layers=[8]"], "layer(s) [8] out of range"),
        ("token_maps", ["layers=[0,9]"], "layer(s) [9] out of range"),
    ],
)
def test_bad_inputs_get_one_line(config, sets, message, tmp_path, capsys):
    args = ["experiment", "run", str(ROOT / f"configs/toy/{config}.toml"), "--out", str(tmp_path / "o"), "--set",
            *sets]  # fmt: skip
    assert main(args) == 2
    err = capsys.readouterr().err
    assert message in err and "Traceback" not in err and err.count("\n") == 1
    assert not (tmp_path / "o").exists()


def test_propagation_runs_over_the_configs_mesh(toy, spread_calls):
    """`propagation` reduces on device in its own jitted program; under a config's mesh it runs over it
    (`Session.call`) and agrees with one device."""
    from cos_jax.experiments.base import Point
    from cos_jax.experiments.registry import EXPERIMENTS
    from cos_jax.experiments.session import build_session

    config = load_config(ROOT / "configs/toy/propagation.toml",
                         ["per_task=1", "tasks=['select_next','maze@1']", f"steps={STEPS}", "layers=[0]", "batch=4",
                          "inject_steps=[1]", "modes=['renoise']"])  # fmt: skip
    point = Point("renoise-t01", {"mode": "renoise", "alpha": 1.0, "at": 1})
    records = []
    for mesh in ("", "data=2,context=4"):
        session = build_session({**config, "mesh": mesh}, toy)
        assert (session.device_mesh is None) == (not mesh)
        records.append(EXPERIMENTS["propagation"].run_point(session, point))
    one, spread = records
    assert len(spread_calls) == 2 * len(session.chunks(pair=True))  # the prefix's calls and the point's
    for key in ("cka_x0", "ucka_layer0", "cka_latent", "success"):
        np.testing.assert_allclose(spread[key], one[key], rtol=1e-5, atol=1e-6, err_msg=key)
