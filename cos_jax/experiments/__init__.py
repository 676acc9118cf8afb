"""The paper's experiments, one module each: config -> sweep points -> plans -> trajectories -> results record.

`cos-jax experiment run CONFIG` runs one (`cos_jax.experiments.runner`); each experiment is an object with
`defaults`, `check`, `points`, `next_points`, `plan_for`, `keep_steps`, `run_point`, `summarise` and
`report`, registered in `cos_jax.experiments.registry.EXPERIMENTS`.
"""
