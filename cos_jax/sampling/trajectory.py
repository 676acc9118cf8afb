"""The result of one sampling run, saved to / loaded from a single .npz with JSON metadata."""

from __future__ import annotations

import dataclasses
import json
import os
from pathlib import Path
from typing import Any

import ml_dtypes
import numpy as np

from cos_jax.arrays_io import write_npz
from cos_jax.errors import UsageError


class NonFiniteError(UsageError):
    """NaN or inf appeared while sampling; the message names the step and the worlds."""


@dataclasses.dataclass
class Trajectory:
    """latent [W, F, H, W, C] (final), x0 [K, W, …] at `x0_steps` (and xs, the DiT's input latents there, when
    kept), captures [S', L', branches, W, …] at
    `capture_steps` × `capture_layers` (or None), the σ/t schedule, the `StartState`s of `state_steps` (when
    kept; in memory only), and free-form metadata."""

    latent: np.ndarray
    x0: np.ndarray
    x0_steps: np.ndarray
    sigmas: np.ndarray
    timesteps: np.ndarray
    captures: np.ndarray | None = None
    xs: np.ndarray | None = None
    capture_steps: np.ndarray | None = None
    capture_layers: np.ndarray | None = None
    finite: np.ndarray | None = None  # [S, W]: x̂0 of step s in world w free of NaN/inf
    states: Any = None  # StartState with a leading axis over `state_steps` (kept with `keep_states`; not saved)
    state_steps: np.ndarray | None = None
    meta: dict[str, Any] = dataclasses.field(default_factory=dict)

    def check_finite(self) -> None:
        """Raise NonFiniteError naming the first step at which NaN/inf appeared, per world."""
        bad_final = ~np.isfinite(np.asarray(self.latent, np.float32).reshape(self.latent.shape[0], -1)).all(axis=1)
        first = {}
        if self.finite is not None and self.finite.size:
            for s, w in zip(*np.nonzero(~self.finite), strict=True):
                first.setdefault(int(w), int(s))
        for w in np.flatnonzero(bad_final):
            first.setdefault(int(w), None)
        if first:
            where = ", ".join(f"world {w} at step {s}" if s is not None else f"world {w} in the final latent"
                              for w, s in sorted(first.items()))  # fmt: skip
            raise NonFiniteError(
                f"NaN/inf appeared while sampling ({where}); nothing was saved; check the weights (cos-jax "
                "validate), lower the guidance or the plan's perturbation, or sample with --policy fp32"
            )

    def x0_at(self, step: int) -> np.ndarray:
        """x̂0 [W, …] of one kept step."""
        where = np.flatnonzero(self.x0_steps == step)
        if not where.size:
            raise KeyError(f"x̂0 of step {step} was not kept; kept steps: {self.x0_steps.tolist()}")
        return self.x0[where[0]]

    def state_at(self, step: int):
        """The `StartState` of one kept step (needs `keep_states`), to pass as `sample(..., start=)`."""

        if self.states is None:
            raise KeyError("no states were kept; sample with keep_states=True")
        where = np.flatnonzero(self.state_steps == step)
        if not where.size:
            raise KeyError(f"the state of step {step} was not kept; kept states: {self.state_steps.tolist()}")
        return self.states.take(int(where[0]))

    def save(self, path: str | os.PathLike) -> Path:
        """Write atomically (temp file in the same folder, then rename); a trajectory holding NaN/inf is
        refused (NonFiniteError), never saved as a result."""
        self.check_finite()
        path = Path(path)
        if path.suffix != ".npz":
            path = path.with_suffix(".npz")
        arrays, dtypes = {}, {}
        for field in dataclasses.fields(self):  # not asdict: that deep-copies every array first
            k, v = field.name, getattr(self, field.name)
            if k in ("meta", "states", "state_steps") or v is None:
                continue
            v = np.asarray(v)
            if v.dtype == ml_dtypes.bfloat16:  # npz has no bfloat16: store the bits, note the dtype
                v, dtypes[k] = v.view(np.uint16), "bfloat16"
            arrays[k] = v
        arrays["meta_json"] = np.asarray(json.dumps(self.meta, default=str))
        arrays["dtypes_json"] = np.asarray(json.dumps(dtypes))
        return write_npz(path, arrays)

    @classmethod
    def load(cls, path: str | os.PathLike) -> Trajectory:
        with np.load(path, allow_pickle=False) as data:
            fields = {f.name for f in dataclasses.fields(cls)} - {"meta"}
            dtypes = json.loads(str(data["dtypes_json"])) if "dtypes_json" in data else {}
            values = {k: data[k].view(dtypes[k]) if k in dtypes else data[k] for k in fields if k in data}
            meta = json.loads(str(data["meta_json"])) if "meta_json" in data else {}
        return cls(**values, meta=meta)
