"""Loading user files safely: every `torch.load` in the package and scripts passes weights_only=True (no
pickle code runs), and every `np.load` refuses pickles."""

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
