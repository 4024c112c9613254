"""End to end: `sacmap run` on a tiny spec (a few structures relaxed through FireWorks on the embedded calculator,
one small image) writes every table and figure, the numbers in the HTML are those of the CSVs, and a rerun
resumes without recomputing."""

from __future__ import annotations

import json
import re
from html.parser import HTMLParser
from pathlib import Path

import numpy as np
import pandas as pd
import pytest

from sacmap.workflows import cli
from sacmap.workflows.job.html import format_value

pytestmark = pytest.mark.slow

SPEC = """
name: tiny
calculation: {{calculator: embedded, fmax: 0.15, max_steps: 60}}
structures:
  slab: {{nx: 9, ny: 6, vacuum: 15.0}}
  sets:
    - {{name: site, type: site, kinds: [4N]}}
    - {{name: Pd_site, type: site, kinds: [4N], metals: [Pd]}}
    - {{name: Pd2_dimer, type: dimer, kinds: [4N], metals: [Pd], orientations: [v]}}
    - {{name: gas_Pd, type: gas_atom, metals: [Pd]}}
    - {{name: gas_Pd2, type: gas_dimer, metals: [Pd]}}
images: [{image}]
sampling: {{runs: 6, n_boot: 4}}
"""


class _Tables(HTMLParser):
    """Collect every <table data-csv=...> as a list of rows of cell texts."""

    def __init__(self):
        super().__init__()
        self.tables: list[tuple[str, list[list[str]]]] = []
        self._rows = None
        self._cell = None

    def handle_starttag(self, tag, attrs):
        a = dict(attrs)
        if tag == "table" and "data-csv" in a:
            self.tables.append((a["data-csv"], []))
            self._rows = self.tables[-1][1]
        elif tag == "tr" and self._rows is not None:
            self._rows.append([])
        elif tag in ("td", "th") and self._rows is not None:
            self._cell = ""

    def handle_endtag(self, tag):
        if tag in ("td", "th") and self._cell is not None:
            self._rows[-1].append(self._cell)
            self._cell = None
        elif tag == "table":
            self._rows = None

    def handle_data(self, data):
        if self._cell is not None:
            self._cell += data


@pytest.fixture(scope="module")
def small_image(tmp_path_factory):
    """A 256×256 synthetic HAADF image with 20 Pt atoms, saved as a calibrated TIFF."""
    from sacmap.detection.simulate import random_positions, save_tiff, simulate_image

    d = tmp_path_factory.mktemp("img")
    px = 0.0293
    field = 256 * px
    xy = random_positions(0.5, (field, field), seed=3)
    image, truth = simulate_image(xy, shape=(256, 256), pixel_size_nm=px, seed=3)
    path = save_tiff(d / "tiny.tif", image, px)
    return Path(path), truth


@pytest.fixture(scope="module")
def job(tmp_path_factory, small_image):
    root = tmp_path_factory.mktemp("job")
    spec = root / "tiny.yaml"
    spec.write_text(SPEC.format(image=small_image[0]))
    out = root / "out"
    rc = cli.main(["run", str(spec), "-o", str(out), "--no-progress"])
    assert rc == 0
    return spec, out


def test_every_table_and_figure_exists(job):
    _, out = job
    for rel in ["report.html", "structures/index.csv", "energetics/dimer_formation.csv",
                "energetics/site_site_potential.csv", "detection/tiny.csv", "detection/tiny.json",
                "detection/tiny.png", "statistics/descriptors.csv", "statistics/descriptors.json",
                "sampling/sweep.csv", "sampling/per_image.csv", "sampling/dft_fit.json",
                "figures/fig3a_multimer_share.png", "figures/fig3b_nnd_mean.png", "figures/fig3c_nuclearity.png",
                "figures/fig3d_nnd_distributions.png", "energetics/fig4a_dimer_formation.png"]:
        assert (out / rel).is_file(), rel
        assert (out / rel).stat().st_size > 0, rel
    idx = pd.read_csv(out / "structures" / "index.csv")
    assert len(idx) == 5
    # all five calculations are in the results database
    summary = json.loads((out / "run_summary.json").read_text())
    import ase.db

    db = ase.db.connect(summary["campaign"]["db"])
    assert {r.config_id for r in db.select()} == set(idx["id"])


def test_html_numbers_match_csvs(job):
    _, out = job
    html = (out / "report.html").read_text()
    assert "data:image/png;base64," in html  # self-contained figures
    assert not re.search(r'<img[^>]+src="(?!data:)', html)
    parser = _Tables()
    parser.feed(html)
    assert len(parser.tables) >= 5
    for rel, rows in parser.tables:
        df = pd.read_csv(out / rel, dtype={"image": str, "site_kinds": str, "id": str})
        header, body = rows[0], rows[1:]
        assert header == [str(c) for c in df.columns], rel
        assert len(body) == min(len(df), len(body)) and len(body) > 0, rel
        for i, row in enumerate(body):
            expected = [format_value(v.item() if hasattr(v, "item") else v) for v in df.iloc[i].tolist()]
            expected = ["" if e in ("nan", "None") else e for e in expected]
            assert row == expected, f"{rel} row {i}"


def test_summary_numbers_come_from_descriptors(job):
    _, out = job
    html = (out / "report.html").read_text()
    desc = pd.read_csv(out / "statistics" / "descriptors.csv")
    row = desc.iloc[0]
    assert f"{row['nnd_mean_nm']:.3g} nm" in html
    assert f"Clark–Evans {row['clark_evans']:.3g}" in html
    # the random reference is describe()'s (same window, runs and seed as `sacmap stats`), not another draw
    assert f"vs {row['nnd_mean_random_same_window_nm']:.3g} nm random (same window)" in html


def test_detection_finds_the_simulated_atoms(job, small_image):
    _, out = job
    _, truth = small_image
    det = pd.read_csv(out / "detection" / "tiny.csv")
    from sacmap.detection.evaluate import evaluate_xy

    res = evaluate_xy(det[["x_px", "y_px"]].to_numpy(), truth[["x_px", "y_px"]].to_numpy(), radius_px=5)
    assert res["f1"] >= 0.7  # smoke check; detection quality itself is tested in tests/detection


def test_rerun_resumes_without_recomputing(job):
    spec, out = job
    before = {p: p.stat().st_mtime_ns for p in [out / "statistics" / "descriptors.csv", out / "sampling" / "sweep.csv",
                                                out / "detection" / "tiny.csv", out / "structures" / "index.csv"]}
    rc = cli.main(["run", str(spec), "-o", str(out), "--no-progress"])
    assert rc == 0
    for p, t in before.items():
        assert p.stat().st_mtime_ns == t, f"{p} was rewritten on a rerun"
    summary = json.loads((out / "run_summary.json").read_text())
    assert summary["timings_s"]["calculations"] < 30  # nothing relaxed again


def test_bad_spec_gives_clear_error(tmp_path, capsys):
    spec = tmp_path / "bad.yaml"
    spec.write_text("name: x\nimages: [missing-folder]\n")
    rc = cli.main(["run", str(spec), "-o", str(tmp_path / "o")])
    assert rc == 2
    err = capsys.readouterr().err
    assert "bad.yaml" in err and "missing-folder" in err


def test_unknown_sampling_key_is_named(tmp_path, capsys):
    spec = tmp_path / "bad2.yaml"
    spec.write_text("name: x\nsampling: {runz: 3}\n")
    rc = cli.main(["run", str(spec), "-o", str(tmp_path / "o")])
    assert rc == 2
    assert "runz" in capsys.readouterr().err


def test_format_value_is_what_tables_show():
    assert format_value(0.123456) == "0.1235"
    assert format_value(float("nan")) == ""
    assert format_value("4N") == "4N"
    assert np.isclose(float(format_value(2.0 / 3.0)), 0.6667)


@pytest.mark.browser
def test_report_renders_in_chromium(job, tmp_path):
    """Open the report in headless Chromium: every figure decodes, every table is there; keep a screenshot."""
    import os

    chromium = os.environ.get("SACMAP_CHROMIUM") or "/usr/bin/chromium"
    if not (Path(chromium).is_file() and os.access(chromium, os.X_OK)):
        pytest.skip("Chromium not installed (apt-get install chromium)")
    sync_api = pytest.importorskip("playwright.sync_api")
    _, out = job
    args = ["--headless", "--no-sandbox", "--disable-gpu", "--disable-quic", "--no-first-run",
            "--disable-background-networking", "--disable-component-update", "--disable-sync"]
    with sync_api.sync_playwright() as pw:
        browser = pw.chromium.launch(executable_path=chromium, headless=True, args=args)
        page = browser.new_page(viewport={"width": 1300, "height": 1000})
        page.goto((out / "report.html").as_uri())
        assert "sacmap report" in page.title()
        n_img = page.locator("img").count()
        decoded = page.evaluate("Array.from(document.images).filter(i => i.complete && i.naturalWidth > 0).length")
        assert n_img >= 6 and decoded == n_img
        assert page.locator("table").count() >= 5
        assert page.locator("section.summary li").count() >= 1
        shot = tmp_path / "report.png"
        page.screenshot(path=str(shot), full_page=True)
        browser.close()
    assert shot.stat().st_size > 10_000
