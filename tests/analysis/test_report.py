"""HTML / markdown reports and the PNG figure helpers."""

import base64
import re
import subprocess
import sys

import numpy as np
import pytest

from cos_jax.analysis.report import Figure, Section, Table, curves, heatmap, write_html, write_markdown

PNG_SIGNATURE = b"\x89PNG\r\n\x1a\n"


@pytest.fixture(scope="module")
def png_file(tmp_path_factory):
    path = tmp_path_factory.mktemp("figs") / "curve.png"
    x = np.arange(10)
    series = {"accuracy": (x / 10, x / 10 - 0.05, x / 10 + 0.05), "no band": (1 - x / 10, None, None)}
    return curves(path, x, series, "title", "step", "value", vlines={"switch": 4.5}, ylim=(0, 1))


def _sections(png_file):
    table = Table(["name", "value", "n"], [["a<b", 3.14159265, 7], ["c", np.float32(0.000123456), None]], "tab cap")
    return [
        Section("First & only", ['x < y & "quoted"', "second paragraph"], [table], [Figure(path=png_file)]),
        Section(
            "Second",
            figures=[Figure(png=png_file.read_bytes(), caption="inline bytes")],
            code=["print('<hi>')\n```nested```"],
        ),
    ]


def test_figure_helpers_write_png(tmp_path, png_file):
    assert png_file.read_bytes().startswith(PNG_SIGNATURE) and png_file.stat().st_size > 1000
    m = np.arange(30, dtype=float).reshape(5, 6) / 30
    m[1, 2] = np.nan
    out = heatmap(
        tmp_path / "sub" / "heat.png",
        m,
        list(range(6)),
        [f"L{i}" for i in range(5)],
        "CKA",
        "step",
        "layer",
        "CKA",
        vmin=0,
        vmax=1,
        marks={"expert switch": (2.5, 1.5)},
    )
    assert out == tmp_path / "sub" / "heat.png"
    assert out.read_bytes().startswith(PNG_SIGNATURE) and out.stat().st_size > 1000
    import matplotlib.pyplot as plt

    assert plt.imread(out).shape[2] in (3, 4)
    assert sorted(p.name for p in (tmp_path / "sub").iterdir()) == ["heat.png"]
    with pytest.raises(ValueError, match="does not match"):
        heatmap(tmp_path / "bad.png", m, [0, 1], [0], "t", "x", "y", "c")


def test_html_report(tmp_path, png_file):
    meta = {"model": "wan-tiny", "command": "cos-jax cka --steps 40 <x>", "config": {"layers": [1, 2]}, "n": 12}
    out = write_html(tmp_path / "report.html", "CKA <report>", _sections(png_file), meta)
    text = out.read_text()
    assert text.count("CKA &lt;report&gt;") == 2 and "<report>" not in text
    assert "x &lt; y &amp; &quot;quoted&quot;" in text and "First &amp; only" in text
    assert "<td>a&lt;b</td>" in text and "<td>3.142</td>" in text and "<td>0.0001235</td>" in text
    assert "<td>7</td>" in text and "<td></td>" in text and "tab cap" in text
    images = re.findall(r'src="data:image/png;base64,([A-Za-z0-9+/=]+)"', text)
    assert len(images) == 2 and all(base64.b64decode(i) == png_file.read_bytes() for i in images)
    assert "print(&#x27;&lt;hi&gt;&#x27;)" in text and "wan-tiny" in text and "&lt;x&gt;" in text
    assert '"layers"' not in text and "&quot;layers&quot;" in text
    assert [p.name for p in tmp_path.iterdir()] == ["report.html"]  # no temp file left behind


def test_markdown_report(tmp_path, png_file):
    out = write_markdown(tmp_path / "rep.md", "CKA report", _sections(png_file), {"n": 3}, tmp_path / "figs")
    text = out.read_text()
    assert text.startswith("# CKA report\n") and "## First & only" in text and '"n": 3' in text
    assert "| a<b | 3.142 | 7 |" in text and "| c | 0.0001235 |  |" in text
    links = re.findall(r"!\[[^\]]*\]\(([^)]+)\)", text)
    assert len(links) == 2 and links[1] == "figs/s1_f0.png"
    assert all((tmp_path / link).resolve().read_bytes() == png_file.read_bytes() for link in links)
    assert "````\nprint('<hi>')\n```nested```\n````" in text
    assert sorted(p.name for p in tmp_path.iterdir()) == ["figs", "rep.md"]
    default = write_markdown(tmp_path / "other.md", "t", _sections(png_file)[1:])
    assert "(other_figures/s0_f0.png)" in default.read_text() and (tmp_path / "other_figures" / "s0_f0.png").exists()


def test_bad_inputs(tmp_path):
    with pytest.raises(ValueError, match="path or png"):
        write_html(tmp_path / "r.html", "t", [Section("s", figures=[Figure()])])
    with pytest.raises(ValueError, match="header has 2"):
        write_markdown(tmp_path / "r.md", "t", [Section("s", tables=[Table(["a", "b"], [[1]])])])
    assert list(tmp_path.iterdir()) == []


def test_analysis_modules_do_not_import_jax():
    code = (
        "import sys, cos_jax.analysis.cka, cos_jax.analysis.stats, cos_jax.analysis.report\n"
        "bad = [m for m in sys.modules if m.split('.')[0] in ('jax', 'flax')"
        " or m.startswith(('cos_jax.wan', 'cos_jax.sampling', 'cos_jax.probes', 'cos_jax.experiments'))]\n"
        "assert not bad, bad\n"
    )
    subprocess.run([sys.executable, "-c", code], check=True)
