"""Import layering at runtime: the task suite and datasets never load the model stack."""

import subprocess
import sys


def test_tasks_and_data_do_not_load_the_model_stack():
    code = (
        "import sys, cos_jax.tasks, cos_jax.data\n"
        "bad = [m for m in sys.modules if m.startswith(('cos_jax.wan', 'cos_jax.sampling', 'cos_jax.probes'))]\n"
        "assert not bad, bad\n"
    )
    subprocess.run([sys.executable, "-c", code], check=True)
