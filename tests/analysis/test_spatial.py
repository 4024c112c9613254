"""Spatial descriptors against known numbers: Poisson limits, exact geometries, edge corrections, bad input."""

from __future__ import annotations

import numpy as np
import pytest

from sacmap.analysis.errors import AnalysisInputError
from sacmap.analysis.spatial.descriptors import descriptors, flatten_descriptors, pair_correlation
from sacmap.analysis.spatial.samplers.point import RandomSampler, RepulsiveSampler
from sacmap.analysis.spatial.window import Region

CONTRACT_KEYS = {"density_nm2", "n_atoms", "support_area_nm2", "nnd_mean_nm", "nnd_sd_nm", "multimer_share",
                 "nuclearity", "clark_evans", "z"}


def _mean(descs, key):
    return float(np.mean([d[key] for d in descs]))


@pytest.mark.parametrize(("rho", "nnd", "share"), [(1.0, 0.50, 0.14), (4.0, 0.25, 0.46)])
def test_poisson_limits_match_the_paper_numbers(rho, nnd, share):
    # the closed forms: <NND> = 1/(2 sqrt(rho)), share = 1 - exp(-pi rho r^2) at r = 0.22 nm
    L = 30.0
    runs = RandomSampler().sample(int(rho * L * L), Region.rectangle(L), runs=3, seed=11)
    descs = [descriptors(xy, Region.rectangle(L)) for xy in runs]
    d0 = descs[0]
    assert d0["nnd_poisson_nm"] == pytest.approx(nnd, abs=1e-12)
    assert d0["multimer_share_poisson"] == pytest.approx(share, abs=0.005)
    # edge-corrected mean within 2 %, raw mean slightly above (border atoms miss outside neighbours)
    assert _mean(descs, "nnd_mean_hanisch_nm") == pytest.approx(nnd, rel=0.02)
    assert nnd * 0.99 < _mean(descs, "nnd_mean_nm") < nnd * 1.04
    assert _mean(descs, "multimer_share") == pytest.approx(share, abs=0.02)
    assert _mean(descs, "clark_evans") == pytest.approx(1.0, abs=0.03)
    assert abs(_mean(descs, "z")) < 2.5
    assert CONTRACT_KEYS <= set(d0)


def test_hanisch_removes_small_window_edge_bias():
    runs = RandomSampler().sample(25, (5, 5), runs=200, seed=3)  # 1 atom/nm² in 5 x 5 nm: strong edge effects
    descs = [descriptors(xy, (5, 5)) for xy in runs]
    assert _mean(descs, "nnd_mean_nm") > 0.53  # raw: biased up by ~10 %
    assert _mean(descs, "nnd_mean_hanisch_nm") == pytest.approx(0.5, rel=0.04)
    assert _mean(descs, "clark_evans_raw") > 1.06
    assert _mean(descs, "clark_evans") == pytest.approx(1.0, abs=0.03)  # Donnelly's expectation
    assert np.std([d["z"] for d in descs]) == pytest.approx(1.0, abs=0.25)


def _square(n: int, a: float) -> np.ndarray:
    i, j = np.meshgrid(np.arange(n), np.arange(n))
    return np.column_stack([i.ravel(), j.ravel()]) * a + 0.5


def test_square_lattice_exact():
    xy = _square(10, 0.5)
    d = descriptors(xy, Region.rectangle(5.5))
    assert d["nnd_mean_nm"] == pytest.approx(0.5) and d["nnd_sd_nm"] == pytest.approx(0.0, abs=1e-12)
    assert d["multimer_share"] == 0.0 and d["nuclearity"] == {1: 100}
    # Donnelly: E[NND] = 0.5 sqrt(A/n) + (0.0514 + 0.041/sqrt(n)) P/n for A = 5.5², P = 22, n = 100
    expected = 0.5 * np.sqrt(5.5**2 / 100) + (0.0514 + 0.041 / 10) * 22 / 100
    assert d["clark_evans"] == pytest.approx(0.5 / expected) and d["z"] > 10  # regular: far above 1
    # spacing below the multimer threshold: one 100-mer; bonds 2 (corners), 3 (edges), 4 (inside)
    d = descriptors(_square(10, 0.2), Region.rectangle(2.5))
    assert d["multimer_share"] == 1.0 and d["nuclearity"] == {100: 1}
    assert d["bonds_per_atom"] == {2: 4, 3: 32, 4: 64}
    assert d["mean_bonds_per_multimer_atom"] == pytest.approx(3.6)


def test_equilateral_trimer_and_chain():
    tri = np.array([[1.0, 1.0], [1.2, 1.0], [1.1, 1.0 + 0.2 * np.sqrt(3) / 2]])
    d = descriptors(tri, (3, 3))
    assert d["nnd_mean_nm"] == pytest.approx(0.2) and d["nnd_sd_nm"] == pytest.approx(0, abs=1e-12)
    assert d["multimer_share"] == 1.0 and d["nuclearity"] == {3: 1}
    assert d["bonds_per_atom"] == {2: 3} and d["mean_bonds_per_multimer_atom"] == pytest.approx(2.0)
    chain = np.column_stack([1.0 + 0.21 * np.arange(5), np.full(5, 1.0)])
    iso = np.array([[2.5, 2.5]])
    d = descriptors(np.vstack([chain, iso]), (3, 3), return_arrays=True)
    assert d["nuclearity"] == {1: 1, 5: 1}
    assert d["multimer_share"] == pytest.approx(5 / 6)
    assert d["bonds_per_atom"] == {1: 2, 2: 3}  # chain: ends 1 bond, inside 2
    assert d["mean_bonds_per_multimer_atom"] == pytest.approx(8 / 5)
    assert d["arrays"]["nnd_nm"][:5] == pytest.approx([0.21] * 5)
    # the threshold is a parameter: at 0.2 nm the chain falls apart
    assert descriptors(chain, (3, 3), multimer_nm=0.2)["nuclearity"] == {1: 5}


def test_per_species_nnd_for_every_ordered_pair():
    a = _square(6, 1.0)
    b = a + [0.3, 0.0]
    xy = np.vstack([a, b])
    el = ["Ni"] * len(a) + ["Pd"] * len(b)
    d = descriptors(xy, Region.rectangle(7.0), elements=el)
    pairs = d["nnd_by_pair"]
    assert set(pairs) == {"Ni->Ni", "Ni->Pd", "Pd->Ni", "Pd->Pd"}
    assert pairs["Ni->Pd"]["mean_nm"] == pytest.approx(0.3) and pairs["Pd->Ni"]["mean_nm"] == pytest.approx(0.3)
    assert pairs["Ni->Ni"]["mean_nm"] == pytest.approx(1.0) and pairs["Pd->Pd"]["mean_nm"] == pytest.approx(1.0)
    assert d["species"] == {"Ni": 36, "Pd": 36}
    row = flatten_descriptors(d)
    assert row["nnd_Ni_Pd_mean_nm"] == pytest.approx(0.3) and row["nuclearity_1"] == 72


def test_pair_correlation_poisson_flat_and_hard_core_empty():
    L = 30.0
    xy = RandomSampler().sample(3600, Region.rectangle(L), seed=5)[0]
    r, g = pair_correlation(xy, Region.rectangle(L), r_max_nm=1.5, dr_nm=0.1)
    # each bin holds ~ n rho 2 pi r dr / 2 pairs: relative noise 1/sqrt(count)
    counts = 3600 * 4.0 * 2 * np.pi * r * 0.1 / 2
    assert np.all(np.abs(g - 1) < 4.5 / np.sqrt(counts))
    assert np.mean(g[r > 0.3]) == pytest.approx(1.0, abs=0.02)
    rep = RepulsiveSampler().sample(400, seed=2)[0]
    r, g = pair_correlation(rep, (10, 10), r_max_nm=1.0, dr_nm=0.05)
    assert np.all(g[r < 0.2] == 0)  # R + C < NN(d) with C = 0.2 nm: no pair closer than C


def test_mask_region_uses_support_area_and_corrects_edges():
    # left half of a 20 x 20 nm image is vacuum
    p = 0.05
    mask = np.zeros((400, 400), bool)
    mask[:, 200:] = True
    reg = Region.from_mask(mask, p)
    assert reg.area_nm2 == pytest.approx(200.0)
    xy = RandomSampler().sample(800, reg, seed=9)[0]
    assert reg.contains(xy).all()
    d = descriptors(xy, reg)
    assert d["density_nm2"] == pytest.approx(4.0)
    assert d["nnd_mean_hanisch_nm"] == pytest.approx(0.25, rel=0.05)
    r, g = pair_correlation(xy, reg, r_max_nm=1.0, dr_nm=0.1)
    assert np.mean(g[r > 0.3]) == pytest.approx(1.0, abs=0.06)
    # a full mask behaves like its rectangle
    full = Region.from_mask(np.ones((100, 80), bool), 0.1)
    rect = Region.rectangle(8.0, 10.0, -0.05, -0.05)
    v = np.array([[0.3, 0.0], [1.0, -2.0], [7.9, 0.1]])
    assert full.set_covariance_nm2(v) == pytest.approx(rect.set_covariance_nm2(v), rel=0.02, abs=0.05)
    pts = np.array([[1.0, 2.0], [4.0, 4.95]])
    assert full.distance_to_boundary(pts) == pytest.approx(rect.distance_to_boundary(pts), abs=0.051)


def test_rectangle_region_geometry():
    reg = Region.rectangle(4.0, 2.0, 1.0, 1.0)
    assert reg.area_nm2 == 8.0 and reg.perimeter_nm == 12.0
    assert reg.distance_to_boundary(np.array([[2.0, 2.0], [4.5, 1.2]])) == pytest.approx([1.0, 0.2])
    assert reg.set_covariance_nm2(np.array([[1.0, 0.5]]))[0] == pytest.approx(3.0 * 1.5)
    assert reg.eroded_area_nm2(np.array([0.5])) == pytest.approx([3.0 * 1.0])
    assert Region.coerce((1, 1, 3, 4)).area_nm2 == pytest.approx(6.0)


@pytest.mark.parametrize(("xy", "match"), [
    (np.array([[1.0, 1.0]]), "at least 2"),
    (np.array([[1.0, np.nan], [2.0, 2.0]]), "NaN"),
    (np.zeros((3, 3)), "shape"),
])
def test_bad_coordinates(xy, match):
    with pytest.raises(AnalysisInputError, match=match):
        descriptors(xy, (5, 5))


def test_bad_parameters():
    xy = np.array([[1.0, 1.0], [2.0, 2.0]])
    with pytest.raises(AnalysisInputError, match="multimer"):
        descriptors(xy, (5, 5), multimer_nm=-1)
    with pytest.raises(AnalysisInputError, match="labels"):
        descriptors(xy, (5, 5), elements=["Ni"])
    with pytest.raises(AnalysisInputError, match="positive"):
        Region.rectangle(-1.0)
    with pytest.raises(AnalysisInputError, match="no support"):
        Region.from_mask(np.zeros((4, 4), bool), 0.1)


def test_nnd_matches_brute_force_for_clustered_points_with_far_outliers():
    from scipy.spatial.distance import cdist

    from sacmap.analysis.spatial.descriptors import nearest_neighbour_distances

    rng = np.random.default_rng(0)
    xy = np.vstack([rng.random((300, 2)) * 0.5, [[100.0, 100.0], [100.5, 100.0]], rng.random((10, 2)) * 3 + 50])
    d, i = nearest_neighbour_distances(xy)
    full = cdist(xy, xy)
    np.fill_diagonal(full, np.inf)
    assert d == pytest.approx(full.min(axis=1)) and np.array_equal(i, full.argmin(axis=1))


def test_border_corrected_multimers_and_per_species_hanisch():
    reg = Region.rectangle(10.0)
    xy = np.array([[5.0, 5.0], [5.15, 5.0],      # a dimer well inside
                   [0.05, 3.0], [0.2, 3.0],      # a dimer touching the left edge (partner could hide outside)
                   [2.0, 8.0], [8.0, 2.0], [7.0, 7.0], [3.0, 3.5]])
    d = descriptors(xy, reg, elements=["Pt", "Pt", "Pt", "Pt", "Ni", "Ni", "Ni", "Ni"])
    assert d["multimer_share"] == pytest.approx(4 / 8)
    # border: only atoms ≥ 0.22 nm from the edge count (atom 3 at 0.05 nm and atom 4 at 0.2 nm drop out)
    assert d["n_border_multimer"] == 6 and d["multimer_share_border"] == pytest.approx(2 / 6)
    assert d["nuclearity"] == {1: 4, 2: 2} and d["nuclearity_border"] == {1: 4, 2: 1}
    st = d["nnd_by_pair"]["Ni->Pt"]
    assert np.isfinite(st["mean_hanisch_nm"]) and st["mean_hanisch_nm"] > 0
    assert d["clark_evans_correction"] == "Donnelly"


def test_clark_evans_on_a_mask_with_holes_is_not_donnelly():
    m = np.ones((200, 200), bool)
    m[80:120, 80:120] = False  # a hole
    reg = Region.from_mask(m, 0.05)
    rs = [descriptors(x, reg) for x in RandomSampler().sample(150, reg, runs=30, seed=3)]
    assert all(r["clark_evans_correction"].startswith("cdf") for r in rs)
    # the Kaplan–Meier ratio is unbiased for CSR in a window with a hole; the raw ratio is biased upwards
    assert np.mean([r["clark_evans"] for r in rs]) == pytest.approx(1.0, abs=0.03)
    assert np.mean([r["clark_evans_raw"] for r in rs]) > np.mean([r["clark_evans"] for r in rs])
    full = Region.from_mask(np.ones((200, 200), bool), 0.05)
    assert not full.has_holes
    assert descriptors(RandomSampler().sample(50, full, seed=1)[0], full)["clark_evans_correction"] == "Donnelly"


def test_eroded_window():
    reg = Region.rectangle(10.0, 6.0, 1.0, 2.0).eroded(0.5)
    assert (reg.x0, reg.y0, reg.width_nm, reg.height_nm) == pytest.approx((1.5, 2.5, 9.0, 5.0))
    m = np.ones((100, 100), bool)
    m[40:60, 40:60] = False
    inner = Region.from_mask(m, 0.1).eroded(0.5)
    # 0.5 nm (5 px) off the frame and off the hole
    assert inner.contains(np.array([[0.7, 5.0], [3.4, 5.0]])).tolist() == [True, True]
    assert inner.contains(np.array([[0.3, 5.0], [3.7, 5.0]])).tolist() == [False, False]
    with pytest.raises(AnalysisInputError, match="leaves nothing"):
        Region.rectangle(1.0).eroded(0.6)
