"""Summary functions (physics invariants) and the global envelope tests (ERL ranks, p-values, envelopes)."""

from __future__ import annotations

import numpy as np
import pytest

from sacmap.analysis.errors import AnalysisInputError
from sacmap.analysis.spatial import summary as S
from sacmap.analysis.spatial.envelopes import envelope_test, envelope_test_from_curves, erl_ranks
from sacmap.analysis.spatial.samplers.point import HardCoreSampler, RandomSampler
from sacmap.analysis.spatial.window import Region


def test_circle_fraction_rectangle_exact_and_mask_agrees():
    reg = Region.rectangle(10.0, 8.0)
    c = np.array([[0.0, 0.0], [5.0, 0.0], [5.0, 4.0], [1.0, 1.0]])
    f = reg.circle_inside_fraction(c, np.array([1.0, 1.0, 1.0, 2.0]))
    # corner: a quarter; edge: a half; inside: all; 2 nm from (1, 1): 1 - (2 arcs of 2·acos(1/2) - overlap)/2π
    a = np.arccos(0.5)
    assert f[:3] == pytest.approx([0.25, 0.5, 1.0])
    assert f[3] == pytest.approx(1 - (4 * a - (2 * a - np.pi / 2)) / (2 * np.pi))
    m = Region.from_mask(np.ones((160, 200), bool), 0.05)  # the same 10 × 8 nm, as pixels
    inner = np.array([[3.0, 2.0], [0.5, 0.5], [9.0, 4.0]])
    r = np.array([1.2, 0.9, 1.5])
    assert m.circle_inside_fraction(inner, r) == pytest.approx(
        Region.rectangle(10.0, 8.0, -0.025, -0.025).circle_inside_fraction(inner, r), abs=0.02)


def test_summary_functions_of_poisson_points_follow_theory():
    reg = Region.rectangle(30.0)
    xy = RandomSampler().sample(3600, reg, seed=3)[0]  # 4 atoms/nm²
    r = np.linspace(0, 1.0, 41)
    for c in S.CORRECTIONS["K"]:
        k = S.k_function(xy, reg, r, c)
        assert k.correction == c
        assert np.allclose(k.value[10:], k.theo[10:], rtol=0.08)
    g = S.pcf(xy, reg, r)
    assert np.nanmax(np.abs(g.value[10:] - 1)) < 0.15 and g.details["bandwidth_nm"] == pytest.approx(
        0.15 / np.sqrt(4.0) / np.sqrt(5))
    for fn in (S.g_function, S.f_function):
        for c in ("km", "border"):
            est = fn(xy, reg, r, c)
            assert np.max(np.abs(est.value - est.theo)) < 0.03, (est.name, c)
    j = S.j_function(xy, reg, np.linspace(0, 0.4, 21))
    assert np.max(np.abs(j.value - 1)) < 0.1
    lab = np.where(np.random.default_rng(1).random(len(xy)) < 0.5, "Ni", "Pd")
    kx = S.cross_k_function(xy, lab, "Ni", "Pd", reg, r)
    assert np.allclose(kx.value[10:], kx.theo[10:], rtol=0.1)


def test_hard_core_shows_in_every_function():
    reg = Region.rectangle(12.0)
    h = 0.4
    xy = HardCoreSampler(h).sample(300, reg, seed=2)[0]
    r = np.linspace(0, 1.0, 51)
    below = r < h
    assert np.all(S.k_function(xy, reg, r).value[below] == 0)
    assert np.all(S.g_function(xy, reg, r).value[below] == 0)
    assert np.all(S.pcf(xy, reg, r, bandwidth_nm=0.01).value[1:][r[1:] < h - 0.03] < 1e-12)
    assert np.all(S.j_function(xy, reg, r).value[1:8] > 1)  # J > 1: regular


def test_bad_inputs_are_refused():
    reg = Region.rectangle(5.0)
    xy = RandomSampler().sample(20, reg, seed=1)[0]
    with pytest.raises(AnalysisInputError, match="correction"):
        S.k_function(xy, reg, correction="km")
    with pytest.raises(AnalysisInputError, match="two types"):
        S.cross_k_function(xy, ["A"] * 20, "A", "A", reg)
    with pytest.raises(AnalysisInputError, match="≥ 19"):
        envelope_test(xy, reg, nsim=5)
    with pytest.raises(AnalysisInputError, match="cross-type"):
        envelope_test(xy, reg, null="labels", function="L")
    with pytest.raises(AnalysisInputError, match="null model"):
        envelope_test(xy, reg, null="clustered", nsim=19)


def _erl_brute(curves):
    """Extreme rank length positions by sorting tuples (independent of the vectorised lexsort)."""
    from scipy.stats import rankdata

    s1 = len(curves)
    lo = rankdata(curves, axis=0)
    pw = np.sort(np.minimum(lo, s1 + 1 - lo), axis=1)
    keys = [tuple(row) for row in pw]
    return np.array([sum(k2 < k for k2 in keys) for k in keys])


def test_erl_ranks_and_p_values():
    rng = np.random.default_rng(0)
    sims = rng.normal(size=(99, 30))
    assert np.array_equal(erl_ranks(np.vstack([sims[0], sims])), _erl_brute(np.vstack([sims[0], sims])))
    r = np.linspace(0, 1, 30)
    extreme = sims.max(axis=0) + 1.0
    t = envelope_test_from_curves(r, extreme, sims)
    assert t.p_rank == pytest.approx(1 / 100) and t.p_mad == pytest.approx(1 / 100)
    assert t.p_dclf == pytest.approx(1 / 100) and t.direction() == "above"
    typical = np.median(sims, axis=0)
    t = envelope_test_from_curves(r, typical, sims)
    assert t.p_rank > 0.5 and t.direction() == "inside"
    # the global envelope is the test: outside somewhere exactly when p <= alpha (continuous curves, no ties)
    for k in range(40):
        obs = rng.normal(size=30) * (1 + k / 15)
        t = envelope_test_from_curves(r, obs, sims)
        assert (t.direction() != "inside") == (t.p_rank <= 0.05)


def test_envelope_test_level_power_and_record():
    reg = Region.rectangle(8.0)
    ps = [envelope_test(RandomSampler().sample(50, reg, seed=100 + s)[0], reg, "csr", "L", nsim=39, seed=s).p_rank
          for s in range(40)]
    assert np.mean(np.asarray(ps) <= 0.05) <= 0.15 and 0.3 < np.mean(ps) < 0.7
    hc = HardCoreSampler(0.55).sample(80, reg, seed=4)[0]
    t = envelope_test(hc, reg, "csr", "G", nsim=99, seed=1)
    assert t.p_rank <= 0.02 and t.p_dclf <= 0.02 and t.direction() == "below"
    assert envelope_test(hc, reg, "hardcore", "G", nsim=99, seed=1).p_rank > 0.05  # its own model fits
    d = t.as_dict(curves=False)
    assert d["nsim"] == 99 and d["correction"] == "km" and d["window"]["kind"] == "rectangle"
    assert d["null_model"] == "csr" and "r_nm" not in d and len(t.table()) == len(t.r_nm)


def test_random_labelling_detects_segregation_only():
    reg = Region.rectangle(10.0)
    xy = RandomSampler().sample(160, reg, seed=9)[0]
    mixed = np.where(np.random.default_rng(2).random(160) < 0.5, "Ni", "Pd")
    assert envelope_test(xy, reg, "labels", "Lcross", nsim=99, labels=mixed, seed=1).p_rank > 0.05
    segregated = np.where(xy[:, 0] < 5.0, "Ni", "Pd")
    t = envelope_test(xy, reg, "labels", "Lcross", nsim=99, labels=segregated, seed=1)
    assert t.p_rank <= 0.02 and t.null_model == "random labelling" and t.direction() == "below"


def test_large_patterns_in_strips_give_the_same_functions(monkeypatch):
    """K and g(r) of large patterns are computed strip by strip (memory, speed at 10⁶ points): same numbers."""
    reg = Region.rectangle(40.0, 25.0)
    xy = RandomSampler().sample(4000, reg, seed=6)[0]
    r = np.linspace(0, 1.5, 31)
    whole = [S.k_function(xy, reg, r, c).value for c in S.CORRECTIONS["K"]] + [S.pcf(xy, reg, r).value]
    monkeypatch.setattr(S, "STRIP_POINTS", 300)
    parts = [S.k_function(xy, reg, r, c).value for c in S.CORRECTIONS["K"]] + [S.pcf(xy, reg, r).value]
    for a, b in zip(whole, parts):
        assert np.allclose(a, b, rtol=1e-12, equal_nan=True)


def test_fitted_dft_sampler_as_null_model():
    from sacmap.analysis.spatial.samplers.dft import DFTBiasedSampler

    reg = Region.rectangle(6.0)
    xy = RandomSampler().sample(50, reg, seed=3)[0]
    sampler = DFTBiasedSampler(sigma_factor=1.0, grid_nm=0.05)
    t = envelope_test(xy, reg, "dft", "G", nsim=19, seed=2, sampler=sampler)
    s0 = 1 / np.sqrt(2 * np.pi * 50 / reg.area_nm2)
    assert t.null_model == "dft" and t.null_params["sigma_nm"] == pytest.approx(s0) and t.nsim == 19
    assert 0 < t.p_rank <= 1
    with pytest.raises(AnalysisInputError, match="fitted sampler"):
        envelope_test(xy, reg, "dft", "G", nsim=19)
