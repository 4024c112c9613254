"""The fidelity metrics of benchmarks/detection_accuracy.py (issue 14 item 8) on constructed predictions: perfect,
missing the unresolvable partners, duplicated, shifted."""

from __future__ import annotations

import numpy as np
import pytest

from sacmap.detection.simulate import REFERENCE_PIXEL_NM, random_positions

PX = REFERENCE_PIXEL_NM
FIELD = (512 * PX, 512 * PX)


@pytest.fixture(scope="module")
def bench(load_benchmark):
    return load_benchmark("detection_accuracy")


@pytest.fixture(scope="module")
def truth_px():
    return random_positions(4.0, (FIELD[0] - PX, FIELD[1] - PX), seed=0, min_dist_nm=0.0) / PX


def test_perfect_detection(bench, truth_px):
    r = bench.fidelity_row([(truth_px.copy(), truth_px)], PX, FIELD)
    assert r["f1"] == 1.0 and r["f1_resolvable"] == 1.0 and r["err_pm"] == 0.0
    assert r["density_det"] == r["density_true"] == pytest.approx(4.0, rel=0.01)
    assert r["ce_det"] == r["ce_true"] and r["mult_det"] == r["mult_true"]
    # Poisson at 4/nm²: CE ≈ 1, share of atoms with NND ≤ 0.22 nm = 1 − exp(−π·4·0.22²) ≈ 0.46
    assert r["ce_true"] == pytest.approx(1.0, abs=0.05)
    assert r["mult_true"] == pytest.approx(1 - np.exp(-np.pi * 4 * 0.22**2), abs=0.04)
    assert r["resolvable_share"] == pytest.approx(np.exp(-np.pi * 4 * 0.18**2), abs=0.04)


def test_missing_unresolvable_partners_only_costs_the_full_f1(bench, truth_px):
    """A detector that reports one atom for every pair closer than 0.18 nm: full F1 drops, F1 over the
    resolvable atoms stays 1 (the merged atom sits on an unresolvable truth and is not a false positive)."""
    from scipy.spatial import cKDTree

    d, j = cKDTree(truth_px).query(truth_px, k=2)
    close = d[:, 1] * PX < bench.RESOLVABLE_NM
    drop = np.zeros(len(truth_px), bool)
    for i in np.flatnonzero(close):
        if not drop[i]:
            drop[j[i, 1]] = True
    pred = truth_px[~drop]
    r = bench.fidelity_row([(pred, truth_px)], PX, FIELD)
    assert r["f1"] < 0.95 and r["f1_resolvable"] == 1.0
    assert r["density_det"] < r["density_true"] and r["ce_det"] > r["ce_true"] and r["mult_det"] < r["mult_true"]


def test_duplicates_and_shift(bench, truth_px):
    rng = np.random.default_rng(1)
    shifted = truth_px + rng.normal(0, 1.0, truth_px.shape)  # 1 px rms per coordinate
    r = bench.fidelity_row([(shifted, truth_px)], PX, FIELD)
    assert r["err_pm"] == pytest.approx(np.sqrt(2 * np.log(2)) * PX * 1000, rel=0.1)  # Rayleigh median
    extra = truth_px[:100] + np.array([20.0, 0.0])  # 100 false positives 0.59 nm off
    r = bench.fidelity_row([(np.vstack([truth_px, extra]), truth_px)], PX, FIELD)
    n = len(truth_px)
    assert r["f1"] == pytest.approx(2 * n / (2 * n + 100), rel=1e-9)
