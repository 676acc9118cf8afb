"""Multi-process runs: 2 CPU processes of 4 devices each (`cos-jax --coordinator …`, jax.distributed over
localhost with gloo) run an experiment over one 8-device mesh and get the records of 1 process of 8."""

import os
import socket
import subprocess
import sys
from pathlib import Path

import jax
import numpy as np
import pytest

from cos_jax.experiments.config import load_config
from cos_jax.experiments.runner import load_records, run
from cos_jax.parallel import initialize_distributed

ROOT = Path(__file__).parents[1]
SETS = ["per_task=1", "tasks=['select_next','tictactoe']", "steps=3", "batch=2", "noise_steps=[1]",
        "noise_frames=[4]", "alphas=[1.0]", "modes=['replace']", "calibrate_modes=[]",
        "mesh='data=2,context=4'"]  # fmt: skip


def _command(out: Path, *flags: str) -> list[str]:
    return [sys.executable, "-m", "cos_jax.cli", *flags, "experiment", "run", str(ROOT / "configs/toy/perturb.toml"),
            "--out", str(out), "--set", *SETS]  # fmt: skip


def _env(devices: int) -> dict:
    return {**os.environ, "JAX_PLATFORMS": "cpu", "XLA_FLAGS": f"--xla_force_host_platform_device_count={devices}"}


def test_two_processes_run_an_experiment_like_one_process(tmp_path):
    with socket.socket() as s:
        s.bind(("localhost", 0))
        port = s.getsockname()[1]
    flags = ["--coordinator", f"localhost:{port}", "--num-processes", "2", "--process-id"]
    procs = [subprocess.Popen(_command(tmp_path / "two", *flags, str(i)), env=_env(4), stdout=subprocess.PIPE,
                              stderr=subprocess.STDOUT, text=True) for i in range(2)]  # fmt: skip
    if len(jax.devices()) == 8:  # this process has the 8 devices of the conftest: it is the single process
        run(load_config(ROOT / "configs/toy/perturb.toml", SETS), tmp_path / "one", progress=False)
    else:
        one = subprocess.run(_command(tmp_path / "one"), env=_env(8), capture_output=True, text=True, timeout=900)
        assert one.returncode == 0, one.stderr[-2000:]
    logs = [p.communicate(timeout=900)[0] for p in procs]
    assert [p.returncode for p in procs] == [0, 0], logs[0][-2000:] + logs[1][-2000:]
    single, multi = load_records(tmp_path / "one"), load_records(tmp_path / "two")
    assert sorted(single) == sorted(multi) and (tmp_path / "two" / "results.json").is_file()
    for point, record in single.items():
        for key, value in record.items():
            if isinstance(value, np.ndarray) and value.dtype.kind == "f":
                np.testing.assert_allclose(multi[point][key], value, rtol=1e-4, atol=1e-5, err_msg=f"{point} {key}")
            elif key != "seconds":
                np.testing.assert_array_equal(multi[point][key], value, err_msg=f"{point} {key}")


def test_distributed_settings_need_all_three_values():
    from cos_jax.errors import UsageError

    assert initialize_distributed(environ={}) is False  # nothing asked: a single process
    with pytest.raises(UsageError, match="needs the number of processes and this process's id"):
        initialize_distributed(environ={"JAX_COORDINATOR_ADDRESS": "localhost:1234"})
    with pytest.raises(UsageError, match="JAX_PROCESS_ID='x'"):
        initialize_distributed("localhost:1234", 2, environ={"JAX_PROCESS_ID": "x"})
