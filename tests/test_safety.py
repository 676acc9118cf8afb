"""Loading user files safely: every `torch.load` in the package and scripts passes weights_only=True (no
pickle code runs), and every `np.load` refuses pickles. Writing them: atomically, readable like any file."""

import re
from pathlib import Path

ROOT = Path(__file__).parents[1]


def _calls(pattern: str):
    for path in sorted([*ROOT.glob("cos_jax/**/*.py"), *ROOT.glob("scripts/**/*.py")]):
        text = path.read_text()
        for match in re.finditer(pattern, text):
            depth, end = 0, match.end() - 1
            for end in range(match.end() - 1, len(text)):  # the call's arguments, up to its closing parenthesis
                depth += {"(": 1, ")": -1}.get(text[end], 0)
                if depth == 0:
                    break
            yield path.relative_to(ROOT), text[match.start() : end + 1]


def test_torch_load_is_weights_only():
    calls = list(_calls(r"torch\.load\("))
    assert calls, "expected the .pth reader in cos_jax/convert/sources.py"
    bad = [f"{p}: {c}" for p, c in calls if "weights_only=True" not in c]
    assert not bad, bad


def test_np_load_never_allows_pickle():
    bad = [f"{p}: {c}" for p, c in _calls(r"np\.load\(") if "allow_pickle=True" in c]
    assert not bad, bad


def test_atomic_write_gives_the_usual_permissions(tmp_path):
    """Results written through the temporary file end with the mode a plain open() gives (umask 022: 0644),
    not the temporary file's owner-only 0600; a failed write leaves nothing."""
    import os

    import pytest

    from cos_jax.arrays_io import _new_file_mode, atomic_write

    old = os.umask(0o022)
    _new_file_mode.cache_clear()
    try:
        path = atomic_write(tmp_path / "results.json", lambda tmp: Path(tmp).write_text("{}"))
    finally:
        os.umask(old)
        _new_file_mode.cache_clear()
    assert path.read_text() == "{}" and path.stat().st_mode & 0o777 == 0o644

    def fail(tmp):
        Path(tmp).write_text("half")
        raise RuntimeError("killed")

    with pytest.raises(RuntimeError):
        atomic_write(tmp_path / "other.json", fail)
    assert sorted(p.name for p in tmp_path.iterdir()) == ["results.json"]
