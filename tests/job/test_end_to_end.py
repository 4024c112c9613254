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
simulated_images: {{densities_nm2: [1.0], size_px: 192, seed: 1}}
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
                "statistics/descriptors.csv", "statistics/descriptors.json", "statistics/envelope_tests.csv",
                "statistics/envelope_curves.csv", "figures/envelopes_tiny.png",
                "statistics/simulated_detected_vs_true.csv", "simulated/simulated_1_per_nm2.tif",
                "simulated/simulated_1_per_nm2_truth.csv", "detection/simulated_1_per_nm2.csv",
                "sampling/sweep.csv", "sampling/per_image.csv", "sampling/dft_fit.json",
                "figures/fig3a_multimer_share.png", "figures/fig3b_nnd_mean.png", "figures/fig3c_nuclearity.png",
                "figures/fig3d_nnd_distributions.png", "figures/fig4a_dimer_formation.png",
                "figures/overlay_tiny.jpg", "figures/overlay_simulated_1_per_nm2.jpg",
                "figures/simulated_detected_vs_true.png"]:
        assert (out / rel).is_file(), rel
        assert (out / rel).stat().st_size > 0, rel
    idx = pd.read_csv(out / "structures" / "index.csv")
    assert len(idx) == 5
    # all five calculations are in the results database
    summary = json.loads((out / "run_summary.json").read_text())
    import ase.db

    db = ase.db.connect(summary["campaign"]["db"])
    assert {r.config_id for r in db.select()} == set(idx["id"])


def _cell_matches(cell: str, value, header: str) -> bool:
    """A shown cell is the CSV value rounded as shown (shares in %, booleans as yes/no, counts blank when < 0,
    image names shortened)."""
    from sacmap.workflows.job.figures import short_image_name

    if value is None or (isinstance(value, float) and np.isnan(value)):
        return cell == ""
    if isinstance(value, (bool, np.bool_)) or str(value) in ("True", "False"):
        return cell == ("yes" if str(value) == "True" else "no")
    if isinstance(value, str):
        return cell in (value, short_image_name(value))
    v = float(value) * (100.0 if "(%)" in header else 1.0)
    if cell == "":
        return v < 0  # a count that does not apply (-1)
    decimals = len(cell.split(".")[1]) if "." in cell and "e" not in cell.lower() else 0
    tol = 0.5 * 10.0 ** -decimals if "e" not in cell.lower() else abs(v) * 1e-3
    return abs(float(cell) - v) <= tol * (1 + 1e-9) + 1e-12 or format_value(value) == cell


def test_html_numbers_match_csvs(job):
    """Every table cell is the number in the CSV it links (rounded as shown), column by column."""
    _, out = job
    html = (out / "report.html").read_text()
    assert "data:image/png;base64," in html  # self-contained figures
    assert not re.search(r'<img[^>]+src="(?!data:)', html)
    parser = _Tables()
    parser.feed(html)
    assert len(parser.tables) >= 8
    columns = dict(re.findall(r'<table data-csv="([^"]+)" data-columns="([^"]*)"', html))
    for rel, rows in parser.tables:
        df = pd.read_csv(out / rel, dtype={"image": str, "site_kinds": str, "id": str})
        header, body = rows[0], rows[1:]
        names = columns[rel].split("|")
        assert len(names) == len(header) and set(names) <= set(df.columns), rel
        assert 0 < len(body) <= len(df), rel
        for i, row in enumerate(body):
            for name, head, cell in zip(names, header, row):
                v = df.iloc[i][name]
                v = v.item() if hasattr(v, "item") else v
                assert _cell_matches(cell, v, head), f"{rel} row {i} column {name}: {cell!r} vs {v!r}"


def test_energies_have_meaningful_precision(job):
    """Total energies in full (4 decimals), relative ones to 1 meV; never 4 significant digits of a total."""
    _, out = job
    html = (out / "report.html").read_text()
    dim = pd.read_csv(out / "energetics" / "dimer_formation.csv").iloc[0]
    assert f"{dim['E_dimer_eV']:.4f}" in html
    assert f"{dim['E_dimer_from_isolated_eV']:.3f}" in html
    assert f"<td>{dim['E_dimer_eV']:.4g}</td>" not in html
    for internal in ("ENCUT=?", "|U=none|", ">sq<"):
        assert internal not in html


def test_run_header_and_findings(job):
    _, out = job
    import sacmap

    html = (out / "report.html").read_text()
    assert f"<dd>{sacmap.__version__}</dd>" in html
    meta = json.loads((out / "detection" / "tiny.json").read_text())
    assert meta["weights"] and meta["weights"] in html  # detector weights digest
    assert "CHGNet" in html and "fmax 0.15 eV/Å" in html
    assert html.index("<h2>Findings</h2>") < html.index("<h2>Energetics</h2>")
    rows = re.findall(r"<tr><td>(.*?)</td>.*?<td class='[a-z]*'>(yes|no|partly|not tested)</td>", html)
    assert len(rows) == 6
    # the dimer row states this run's number and calls it a trend
    dim = pd.read_csv(out / "energetics" / "dimer_formation.csv").iloc[0]
    assert f"{dim['E_dimer_from_isolated_eV']:+.3f} eV" in html and "not DFT" in html
    # every simulated image is labelled as such wherever it appears
    assert "simulated, 1 atoms/nm²" in html


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
                                                out / "detection" / "tiny.csv", out / "structures" / "index.csv",
                                                out / "statistics" / "envelope_curves.csv"]}
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
    """Open the report in headless Chromium at 1400 px: no horizontal overflow, every figure decodes, the tables
    and the Findings are there; keep a screenshot."""
    import os

    chromium = os.environ.get("SACMAP_CHROMIUM") or "/usr/bin/chromium"
    if not (Path(chromium).is_file() and os.access(chromium, os.X_OK)):
        if os.environ.get("SACMAP_CHROMIUM"):
            pytest.fail(f"SACMAP_CHROMIUM={chromium} is not an executable")
        pytest.skip("Chromium not installed (apt-get install chromium)")
    sync_api = pytest.importorskip("playwright.sync_api")
    _, out = job
    args = ["--headless", "--no-sandbox", "--disable-gpu", "--disable-quic", "--no-first-run",
            "--disable-background-networking", "--disable-component-update", "--disable-sync"]
    with sync_api.sync_playwright() as pw:
        browser = pw.chromium.launch(executable_path=chromium, headless=True, args=args)
        page = browser.new_page(viewport={"width": 1400, "height": 1000})
        page.goto((out / "report.html").as_uri())
        assert "sacmap report" in page.title()
        assert page.evaluate("document.documentElement.scrollWidth") <= 1400
        n_img = page.locator("img").count()
        decoded = page.evaluate("Array.from(document.images).filter(i => i.complete && i.naturalWidth > 0).length")
        assert n_img >= 9 and decoded == n_img  # Fig. 4a, 2 overlays, the simulated control, Fig. 3a-d, envelopes
        # every figure fits its card at this width
        too_wide = page.evaluate("Array.from(document.images).filter(i => i.getBoundingClientRect().right > "
                                 "i.closest('section').getBoundingClientRect().right + 1).length")
        assert too_wide == 0
        assert page.locator("table").count() >= 8
        assert page.locator("section.findings tbody tr").count() == 6
        shot = tmp_path / "report.png"
        page.screenshot(path=str(shot), full_page=True)
        browser.close()
    assert shot.stat().st_size > 10_000
