"""The report's envelope section from a small fabricated run: the curves the job step saves round-trip, every real
image gets its G/L figure and the detector-aware image its naive/aware pair, the HTML embeds and names them and
the captions state what was tested (function, correction, null, simulations, window, p-values)."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pandas as pd
import pytest

from sacmap.analysis.spatial.envelopes import envelope_test, envelope_test_from_curves
from sacmap.analysis.spatial.samplers.point import RandomSampler
from sacmap.analysis.spatial.window import Region
from sacmap.core.atomic import write_csv
from sacmap.workflows.job import report
from sacmap.workflows.job.html import render
from sacmap.workflows.job.steps_images import (
    AWARE,
    AWARE_NAIVE,
    NAIVE,
    envelope_curves,
    read_envelope_curves,
)

NSIM = 19  # the smallest the tests allow: this checks the drawing, not the statistics


def _tests(seed: int):
    region = Region.from_mask(np.ones((200, 200), bool), 0.05)  # a 10 × 10 nm support mask
    xy = RandomSampler().sample(40, region, seed=seed)[0]
    return region, xy, [envelope_test(xy, region, "csr", fn, nsim=NSIM, seed=seed) for fn in ("G", "L")]


@pytest.fixture(scope="module")
def run(tmp_path_factory):
    """An OUTDIR with two real images' naive tests and, for the first, a naive/detector-aware pair; the aware
    test of the second image is marked not valid."""
    out = tmp_path_factory.mktemp("run")
    curves, rows = [], []
    for k, image in enumerate(("img_a", "img_b")):
        region, xy, tests = _tests(k)
        for t in tests:
            curves.append(envelope_curves(t, image, NAIVE))
            rows.append({"image": image, "function": t.function, "null_model": t.null_model, "nsim": t.nsim,
                         "n_points": t.n_points, "p_rank": t.p_rank, "p_mad": t.p_mad, "p_dclf": t.p_dclf,
                         "leaves_envelope": t.direction()})
        naive = tests[0]
        sims = np.random.default_rng(k).normal(naive.central, 0.02, (NSIM, len(naive.r_nm)))
        aware = envelope_test_from_curves(naive.r_nm, naive.observed, sims, function="G",
                                          correction=naive.correction, null_model="csr", n_points=naive.n_points,
                                          window=naive.window, theo=naive.theo)
        note = "" if k == 0 else "not valid: the simulated images give 30 detections where the image gave 40"
        curves += [envelope_curves(naive, image, AWARE_NAIVE), envelope_curves(aware, image, AWARE, note)]
    sdir = out / "statistics"
    state = {"statistics": {"images": []},
             "envelopes": {"csv": str(write_csv(sdir / "envelope_tests.csv", pd.DataFrame(rows))),
                           "curves_csv": str(write_csv(sdir / "envelope_curves.csv", pd.concat(curves)))}}
    sec = report._envelope_section(state, out)
    return out, state, sec, render("t", "s", [], [sec], out)


def test_saved_curves_round_trip(tmp_path):
    _, _, tests = _tests(3)
    assert read_envelope_curves(None) == [] and read_envelope_curves(tmp_path / "missing.csv") == []
    path = write_csv(tmp_path / "c.csv", pd.concat([envelope_curves(t, "053_x", NAIVE) for t in tests]))
    back = read_envelope_curves(path)
    assert [(m["image"], m["test"], m["valid"], t.function) for m, t in back] == [("053_x", NAIVE, True, "G"),
                                                                                    ("053_x", NAIVE, True, "L")]
    for (_, t), orig in zip(back, tests):
        for key in ("r_nm", "observed", "central", "lo", "hi", "theo"):
            np.testing.assert_allclose(getattr(t, key), getattr(orig, key), rtol=1e-12, atol=1e-15)
        assert (t.p_rank, t.p_mad, t.p_dclf, t.nsim, t.n_points, t.correction) == (
            orig.p_rank, orig.p_mad, orig.p_dclf, orig.nsim, orig.n_points, orig.correction)
        assert t.window["area_nm2"] == pytest.approx(100.0) and t.window["shape"] == [200, 200]
        assert t.direction() == orig.direction()


def test_every_test_is_drawn_and_referenced(run):
    out, state, sec, page = run
    names = sorted(Path(f.path).name for f in sec.figures)
    assert names == ["envelopes_detector_aware_img_a.png", "envelopes_detector_aware_img_b.png",
                     "envelopes_img_a.png", "envelopes_img_b.png"]
    for f in sec.figures:
        assert Path(f.path).read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
        assert Path(f.path).with_suffix(".svg").is_file()
        assert f"figures/{Path(f.path).name}" in page  # named under the figure
    assert page.count("data:image/png;base64,") == 4
    assert 'data-csv="statistics/envelope_tests.csv"' in page  # the p-value table is still there


def test_captions_state_what_was_tested(run):
    _, state, sec, _ = run
    rows = pd.read_csv(state["envelopes"]["csv"])
    by_name = {Path(f.path).name: f.caption for f in sec.figures}
    cap = by_name["envelopes_img_a.png"]
    for fn in ("G (NND distribution) with the Kaplan–Meier edge correction, 40 atoms",
               "Besag's L with the translation edge correction, 40 atoms"):
        assert fn in cap
    assert "complete spatial randomness" in cap and f"{NSIM} simulations" in cap
    assert "support mask, 100.0 nm² (200×200 px at 0.05 nm/px)" in cap
    for _, r in rows[rows["image"] == "img_a"].iterrows():
        assert f"rank p = {r['p_rank']:.3g}, MAD p = {r['p_mad']:.3g}, DCLF p = {r['p_dclf']:.3g}" in cap
    pair = by_name["envelopes_detector_aware_img_a.png"]
    assert "(a) Naive:" in pair and "(b) Detector-aware:" in pair and "not valid" not in pair
    assert f"{NSIM} simulated images of random patterns, rendered and detected" in pair
    bad = by_name["envelopes_detector_aware_img_b.png"]
    assert "not valid" in bad and "30 detections" in bad and "(b) Detector-aware: not valid" in bad


def test_missing_curves_and_no_tests_say_so(tmp_path):
    rows = pd.DataFrame([{"image": "x", "function": "G", "null_model": "csr", "p_rank": 0.5}])
    state = {"statistics": {"images": []},
             "envelopes": {"csv": str(write_csv(tmp_path / "statistics" / "envelope_tests.csv", rows))}}
    sec = report._envelope_section(state, tmp_path)  # a run from before the curves were saved
    assert not sec.figures and any("envelope_curves.csv is missing" in t for t in sec.text)
    assert report._envelope_section({"statistics": {"images": []}}, tmp_path).skipped
