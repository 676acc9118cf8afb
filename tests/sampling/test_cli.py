"""`cos-jax sample` end to end on a random tiny model."""

import argparse

import pytest

from cos_jax.cli import main
from cos_jax.sampling import Trajectory
from cos_jax.sampling.cli_args import parse_steps


def test_parse_steps():
    assert parse_steps("0-2,5,7-8") == [0, 1, 2, 5, 7, 8]
    assert parse_steps("all") is None
    with pytest.raises(argparse.ArgumentTypeError, match="bad step range"):
        parse_steps("3-x")


def test_sample_writes_a_trajectory(tmp_path):
    out = tmp_path / "traj.npz"
    code = main(["sample", "--model", "random:toy", "--preset", "official-ti2v-5b", "--latent", "1x4x4",
                 "--seeds", "0", "1", "--keep-steps", "0-1,49", "--out", str(out)])  # fmt: skip
    assert code == 0
    traj = Trajectory.load(out)
    assert traj.x0_steps.tolist() == [0, 1, 49] and traj.latent.shape == (2, 1, 4, 4, 48)
    assert traj.meta["model_spec"] == "random:toy"


def test_sample_defaults_to_the_toy_world(tmp_path):
    out = tmp_path / "toy.npz"
    assert main(["sample", "--task", "tictactoe", "--seeds", "3", "--keep-steps", "0,7", "--preset",
                 "official-ti2v-5b", "--out", str(out)]) == 0  # fmt: skip
    traj = Trajectory.load(out)
    assert traj.meta["model_spec"] == "toy" and traj.latent.shape == (1, 5, 16, 16, 48)
    assert (tmp_path / "toy_world0.mp4").is_file()
