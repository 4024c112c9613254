"""Localisation: sub-pixel centres, fragment removal, non-maximum suppression, GMM split of a dimer."""

from __future__ import annotations

import numpy as np
import pytest
from scipy import ndimage

from sacmap.detection.localise import intensity_peaks, localise, merge_close, split_component


def _blob_map(centres, shape=(80, 100), sigma=2.5):
    rr, cc = np.mgrid[: shape[0], : shape[1]]
    p = np.zeros(shape)
    for x, y in centres:
        p = np.maximum(p, np.exp(-((cc - x) ** 2 + (rr - y) ** 2) / (2 * sigma**2)))
    return p


def test_subpixel_centres():
    truth = np.array([[20.3, 30.6], [60.7, 50.2]])
    a = localise(_blob_map(truth), threshold=0.5)
    got = np.c_[a["x"], a["y"]]
    order = np.argsort(got[:, 0])
    np.testing.assert_allclose(got[order], truth, atol=0.15)
    assert (a["score"] > 0.9).all()
    assert (a["component_size"] > 5).all()


def test_dimer_is_split_by_gmm():
    # 0.22 nm dimer at 0.0293 nm/px = 7.5 px; one merged component above the split area
    truth = np.array([[46.25, 40.0], [53.75, 40.0]])
    p = _blob_map(truth, sigma=4.0)
    a1 = localise(p, threshold=0.5, split_area_px=1e9)
    assert len(a1["x"]) == 1  # without splitting: one atom
    a = localise(p, threshold=0.5, split_area_px=60, min_sep_px=6.0, max_sd_px=3.0)
    assert len(a["x"]) == 2
    got = np.sort(a["x"])
    np.testing.assert_allclose(got, truth[:, 0], atol=1.0)
    np.testing.assert_allclose(a["y"], 40.0, atol=1.0)
    assert (a["component_size"] == a["component_size"][0]).all()


def test_single_large_atom_is_not_split():
    p = _blob_map([[50, 40]], sigma=4.0)  # as wide as the dimer's components, but round
    a = localise(p, threshold=0.5, split_area_px=60, min_sep_px=6.0, max_sd_px=3.0)
    assert len(a["x"]) == 1


def test_split_component_is_seeded():
    p = _blob_map([[46.25, 40.0], [53.75, 40.0]], sigma=4.0)
    rr, cc = np.nonzero(p > 0.5)
    a = split_component(p, rr, cc, threshold=0.5, seed=3)
    b = split_component(p, rr, cc, threshold=0.5, seed=3)
    np.testing.assert_array_equal(a[0], b[0])


def test_min_size_and_merge():
    p = _blob_map([[20, 20], [60, 60]])
    p[5, 90] = 0.95  # one-pixel fragment
    assert len(localise(p, threshold=0.5)["x"]) == 3
    assert len(localise(p, threshold=0.5, min_size_px=3)["x"]) == 2
    atoms = {"x": np.array([10.0, 12.0, 30.0]), "y": np.array([10.0, 10.0, 10.0]),
             "score": np.array([0.9, 0.95, 0.99]), "component_size": np.array([5, 5, 5])}
    m = merge_close(atoms, 3.0)
    assert sorted(m["x"].tolist()) == [12.0, 30.0]  # the higher-scoring duplicate survives


def test_gmm2d_matches_sklearn():
    from sklearn.mixture import GaussianMixture

    from sacmap.detection.localise import fit_gmm2d

    rng = np.random.default_rng(0)
    pts = np.r_[rng.normal([0, 0], [1.0, 2.0], (300, 2)), rng.normal([8, 3], [1.5, 0.7], (200, 2))]
    mu, cov, w, ll = fit_gmm2d(pts, 2, np.random.default_rng(1))
    ref = GaussianMixture(2, covariance_type="full", random_state=0, reg_covar=1e-3).fit(pts)
    o, r = np.argsort(mu[:, 0]), np.argsort(ref.means_[:, 0])
    np.testing.assert_allclose(mu[o], ref.means_[r], atol=1e-3)
    np.testing.assert_allclose(cov[o], ref.covariances_[r], atol=1e-3)
    assert ll == pytest.approx(ref.score(pts) * len(pts), rel=1e-4)


def _intensity(centres, shape=(60, 60), sigma=2.0):
    rr, cc = np.mgrid[: shape[0], : shape[1]]
    return sum(np.exp(-((cc - x) ** 2 + (rr - y) ** 2) / (2 * sigma**2)) for x, y in centres)


def test_resolved_intensity_peaks_split_a_small_component():
    # two atoms 9 px apart (4.5 sigma: a clear dip) merged into one probability blob far below the split area
    truth = np.array([[25.5, 30.0], [34.5, 30.0]])
    img = _intensity(truth)
    prob = np.clip(_intensity(truth, sigma=3.0), 0, 1)
    assert localise(prob, threshold=0.5, min_sep_px=6)["x"].size == 1  # one component, no split without image
    at = localise(prob, threshold=0.5, min_sep_px=6, image=img)
    assert at["x"].size == 2 and set(at["n_split"]) == {2}
    np.testing.assert_allclose(np.sort(at["x"]), truth[:, 0], atol=1.0)
    np.testing.assert_allclose(at["y"], 30.0, atol=0.5)


def test_unresolved_pair_is_not_split_by_peaks():
    # 3.6 px apart with sigma 2 px (1.8 sigma < 2 sigma): a single maximum, no dip -> one atom
    truth = np.array([[28.2, 30.0], [31.8, 30.0]])
    img = _intensity(truth)
    assert intensity_peaks(img, (img > 0.5).astype(int), min_sep_px=3) == {}
    at = localise(np.clip(img / img.max(), 0, 1), threshold=0.5, min_sep_px=3, image=img)
    assert at["x"].size == 1


def test_gmm_split_follows_the_intensity_under_a_saturated_plateau():
    # the CNN map saturates (p = 1) over a merged 0.22-nm dimer: its plateau says nothing about where the two
    # atoms are; sampling the mixture also by the pre-processed intensity puts the centres on the atoms
    truth = np.array([[46.25, 40.0], [53.75, 40.0]])
    yy, xx = np.mgrid[:80, :100]
    plateau = np.clip(2.0 * _blob_map(truth, sigma=5.0), 0, 1)  # flat top over both atoms
    img = sum(np.exp(-((xx - x) ** 2 + (yy - y) ** 2) / (2 * 4.1**2)) for x, y in truth)
    rr, cc = np.nonzero(plateau > 0.8)
    err = {}
    for name, im in (("plateau", None), ("intensity", img)):
        mu, k = split_component(plateau, rr, cc, threshold=0.8, k_max=3, min_sep_px=6.0, max_sd_px=3.0, seed=0,
                                n_samples=600, image=im)
        assert k == 2
        np.testing.assert_allclose(mu[:, 1], 40.0, atol=0.5)
        err[name] = np.abs(np.sort(mu[:, 0]) - truth[:, 0]).max()
    assert err["intensity"] < 0.3 and err["intensity"] < err["plateau"], err
    # nearly seed-free: the mixture is fitted to the weighted pixels, not to random draws (only the seeding differs)
    a = split_component(plateau, rr, cc, threshold=0.8, seed=1, image=img)
    b = split_component(plateau, rr, cc, threshold=0.8, seed=2, image=img)
    np.testing.assert_allclose(np.sort(a[0], 0), np.sort(b[0], 0), atol=0.2)


def test_large_component_keeps_every_separated_maximum():
    # four atoms 8 px apart in a row (2 sigma: barely any dip) under one large probability component: the GMM
    # stops at k_max = 3, the intensity maxima of a large component (large_dip = 1) give all four
    truth = np.array([[18.0, 30.0], [26.0, 30.0], [34.0, 30.0], [42.0, 30.0]])
    img = _intensity(truth, sigma=3.0)  # smoothed by 1.5 px in intensity_peaks: dips to 0.92, above 0.85
    prob = np.clip(img / img.max() * 1.2, 0, 1)
    strict = localise(prob, threshold=0.5, min_sep_px=6, split_area_px=200, image=img, peak_dip=0.85)
    loose = localise(prob, threshold=0.5, min_sep_px=6, split_area_px=200, image=img, peak_dip=0.85,
                     large_dip=1.0)
    assert strict["x"].size < 4 and loose["x"].size == 4
    np.testing.assert_allclose(np.sort(loose["x"]), truth[:, 0], atol=1.0)


def _peaks_reference(sm, lab, min_sep_px, dip):
    """intensity_peaks written pair by pair, one profile at a time (the form it had before batching)."""
    rr, cc = np.nonzero(sm == ndimage.maximum_filter(sm, size=max(3, int(round(min_sep_px)) | 1), mode="nearest"))
    inside = lab[rr, cc] > 0
    rr, cc = rr[inside], cc[inside]
    out = {}
    for comp in np.unique(lab[rr, cc]):
        sel = lab[rr, cc] == comp
        r, c = rr[sel], cc[sel]
        h = sm[r, c]
        kept = []
        for i in np.argsort(-h, kind="stable"):
            ok = True
            for j in kept:
                d = np.hypot(c[i] - c[j], r[i] - r[j])
                t = np.linspace(0.0, 1.0, max(3, int(np.ceil(d)) + 1))
                prof = ndimage.map_coordinates(sm, [r[j] + t * (r[i] - r[j]), c[j] + t * (c[i] - c[j])], order=1)
                if d < min_sep_px or prof.min() > dip * min(h[i], h[j]):
                    ok = False
                    break
            if ok:
                kept.append(i)
        if len(kept) >= 2:
            out[int(comp)] = np.c_[c[kept], r[kept]].astype(float)
    return out


def test_batched_peak_profiles_agree_with_the_pairwise_reference():
    from sacmap.detection.localise import _nearest_peak, intensity_peaks

    rng = np.random.default_rng(3)
    for _ in range(12):
        sm = ndimage.gaussian_filter(rng.random((120, 130)), rng.uniform(1.5, 4)).astype(np.float32)
        lab, _ = ndimage.label(sm > np.quantile(sm, rng.uniform(0.2, 0.9)))
        sep, dip = rng.uniform(3, 8), rng.uniform(0.8, 1.0)
        win = max(3, int(round(sep)) | 1)
        rr, cc = np.nonzero(sm == ndimage.maximum_filter(sm, size=win, mode="nearest"))
        got = intensity_peaks(sm, lab, min_sep_px=sep, dip=dip, maxima=(sm, rr, cc))
        ref = _peaks_reference(sm, lab, sep, dip)
        assert got.keys() == ref.keys() and all(np.array_equal(got[k], ref[k]) for k in ref)
        pk = rng.integers(0, 40, (5, 2)).astype(float)  # integer peaks: ties go to the lower index, as argmin
        pts = rng.integers(0, 40, (300, 2))
        d2 = ((pts[:, None, :] - pk[None]) ** 2).sum(-1)
        assert np.array_equal(_nearest_peak(pts, pk), np.argmin(d2, axis=1))
