"""Sub-pixel refinement (detection.refine): localisation on clean images, joint fitting of close pairs (and the
peak prior of unresolved pairs in calibrated noise), intensities ∝ Z^1.7, uncertainties against the scatter, an
independent scipy fit, the combination with the detector's positions, bad input."""

from __future__ import annotations

import numpy as np
import pytest

from sacmap.detection.errors import DetectionInputError
from sacmap.detection.refine import REFINE_COLUMNS, RefineOptions, combine_with_start, group_atoms, refine
from sacmap.detection.simulate import REFERENCE_PIXEL_NM, pair_grid, simulate_image, simulate_sample

CLEAN = dict(noise=False, texture_sd=0.0, vacuum_texture_sd=0.0, thickness_sd=0.0)


def _err(res, truth):
    return np.hypot(*(res[["x_px", "y_px"]].to_numpy() - truth[["x_px", "y_px"]].to_numpy()).T)


@pytest.mark.parametrize("arrangement, density", [("hardcore", 1.0), ("multimer", 3.0)])
def test_localisation_bound_on_clean_images(arrangement, density):
    """Starting 1 px (rms per coordinate) off, the refined positions are within 0.2 px (median; goal of issue 14)
    on clean images, multimers included; widths and integrated intensities come back."""
    img, truth, _ = simulate_sample(density, arrangement=arrangement, seed=4, shape=(256, 256), **CLEAN)
    xy = truth[["x_px", "y_px"]].to_numpy()
    start = xy + np.random.default_rng(0).normal(0.0, 1.0, xy.shape)
    res = refine(img, start, pixel_size_nm=REFERENCE_PIXEL_NM)
    assert list(res.columns) == list(REFINE_COLUMNS) and len(res) == len(truth)
    err = _err(res, truth)
    assert np.median(err) < 0.2 and np.quantile(err, 0.9) < 0.5
    assert np.median(np.hypot(*(start - xy).T)) > 1.0  # the start was worse
    assert res.attrs["sigma0_px"] == pytest.approx(truth.attrs["sigma_px"], rel=0.05)
    assert np.median(res.intensity / truth.intensity) == pytest.approx(1.0, abs=0.03)
    assert res.fit_ok.mean() > 0.95


def test_joint_fit_recovers_a_022_nm_pair():
    """Two Pt atoms 0.22 nm apart (1.85 σ: one blob, no dip) on a clean image, started from a poor split (both
    starts 1.5 px inwards and off-axis): the joint fit recovers both positions to < 0.1 px; fitting them one at a
    time with the neighbour's light ignored cannot (each one is pulled towards the other)."""
    c = np.array([2.0, 2.0])
    d = 0.11 * np.array([np.cos(0.4), np.sin(0.4)])
    xy_nm = np.stack([c - d, c + d])
    img, truth = simulate_image(xy_nm, shape=(136, 136), seed=0, peak_sd=0.0, **CLEAN)
    xy = truth[["x_px", "y_px"]].to_numpy()
    centre = xy.mean(0)
    start = centre + 0.6 * (xy - centre) + np.array([[0.8, -0.5], [-0.4, 0.9]])
    joint = refine(img, start, sigma_px=truth.attrs["sigma_px"])
    assert joint.group.nunique() == 1
    assert _err(joint, truth).max() < 0.1
    assert np.median(joint.intensity / truth.intensity) == pytest.approx(1.0, abs=0.02)
    alone = refine(img, start, sigma_px=truth.attrs["sigma_px"], options=RefineOptions(max_group=1, sweeps=1))
    assert _err(alone, truth).min() > 0.5
    # σ unknown: measured from the pair itself (no isolated atoms), still recovered
    free = refine(img, start, pixel_size_nm=REFERENCE_PIXEL_NM)
    assert _err(free, truth).max() < 0.2


def _pair_image(sep_nm, seed=0):
    """81 Pt pairs ``sep_nm`` apart (random orientations, 1.6 nm apart), calibrated noise and support texture."""
    return simulate_image(pair_grid(sep_nm, seed=seed), seed=seed)


def test_peak_prior_keeps_unresolved_pairs_balanced_in_calibrated_noise():
    """0.22-nm pairs (no dip) in the calibrated noise and support texture, fitted from the true positions: without
    the peak prior the fit gives one atom most of the light (log intensity ratio sd measured 0.76 against the true
    0.24) and pushes the pair apart along its axis; with it the ratio scatter is the true one and the projected
    separation is unbiased (measured +0.008 → −0.002 nm; docs/detection.md)."""
    img, truth = _pair_image(0.22)
    xy = truth[["x_px", "y_px"]].to_numpy()
    axis = xy[0::2] - xy[1::2]
    axis /= np.hypot(*axis.T)[:, None]
    true_lr = np.std(np.log(truth.intensity.to_numpy()[0::2] / truth.intensity.to_numpy()[1::2]))
    out = {}
    for name, opt in (("free", RefineOptions(amp_prior=0.0)), ("prior", RefineOptions())):
        res = refine(img, xy, pixel_size_nm=REFERENCE_PIXEL_NM, options=opt)
        a = np.maximum(res.intensity.to_numpy(), 1e-3)
        r = res[["x_px", "y_px"]].to_numpy()
        out[name] = (np.std(np.log(a[0::2] / a[1::2])), ((r[0::2] - r[1::2]) * axis).sum(1).mean() * REFERENCE_PIXEL_NM)
    assert out["free"][0] > 1.5 * true_lr, out
    assert out["prior"][0] < 1.3 * true_lr, out
    assert abs(out["prior"][1] - 0.22) < 0.006, out


def test_combination_with_the_start_follows_the_evidence():
    """Starts 1 px (rms per coordinate) off: precise fits (pos_err 0.05 px) are taken; fits that barely move the
    start (moves far below their pos_err, as with the support texture) leave it; failed fits keep the start."""
    rng = np.random.default_rng(0)
    truth = rng.uniform(0, 500, (200, 2))
    start = truth + rng.normal(0, 1.0, truth.shape)
    group = np.arange(200)
    group[100:] = 100 + np.arange(100) // 2  # 50 joint pairs
    fit = truth + rng.normal(0, 0.05, truth.shape)
    ok = np.ones(200, bool)
    ok[:5] = False
    xy = combine_with_start(start, fit, np.full(200, 0.05), group, ok)
    assert np.abs(xy[5:] - fit[5:]).max() < 0.02 and np.array_equal(xy[:5], start[:5])
    timid = start + rng.normal(0, 0.3, truth.shape)
    xy = combine_with_start(start, timid, np.full(200, 1.5), group, np.ones(200, bool))
    assert np.array_equal(xy, start)
    few = combine_with_start(start[:10], fit[:10], np.full(10, 0.05), np.arange(10), np.ones(10, bool))
    assert np.array_equal(few, fit[:10])  # too few atoms to weigh: the fits as they are


def test_intensity_ranks_elements_by_z():
    """Integrated intensities of Ni, Pd and Pt atoms (clean, no per-atom spread) follow (Z/78)^1.7."""
    rng = np.random.default_rng(1)
    grid = np.stack(np.meshgrid(np.arange(0.6, 7.0, 0.8), np.arange(0.6, 7.0, 0.8)), -1).reshape(-1, 2)
    els = rng.choice(["Ni", "Pd", "Pt"], len(grid))
    img, truth = simulate_image(grid, shape=(240, 240), elements=list(els), seed=0, peak_sd=0.0, **CLEAN)
    res = refine(img, truth[["x_px", "y_px"]].to_numpy())
    med = {e: float(np.median(res.intensity[truth.element == e])) for e in ("Ni", "Pd", "Pt")}
    assert med["Pd"] / med["Pt"] == pytest.approx((46 / 78) ** 1.7, rel=0.02)
    assert med["Ni"] / med["Pt"] == pytest.approx((28 / 78) ** 1.7, rel=0.03)


def test_uncertainty_matches_the_scatter_in_shot_noise():
    """With white (shot) noise only, the reported 1-σ error per coordinate agrees with the scatter of the fitted
    positions about the truth (the fit is unbiased and its covariance is right)."""
    grid = np.stack(np.meshgrid(np.arange(0.7, 11.5, 0.7), np.arange(0.7, 11.5, 0.7)), -1).reshape(-1, 2)
    img, truth = simulate_image(grid, shape=(400, 400), seed=3, texture_sd=0.0, vacuum_texture_sd=0.0,
                                thickness_sd=0.0, line_noise=0.0, peak_sd=0.0)
    res = refine(img, truth[["x_px", "y_px"]].to_numpy(), pixel_size_nm=REFERENCE_PIXEL_NM)
    d = res[["x_px", "y_px"]].to_numpy() - truth[["x_px", "y_px"]].to_numpy()
    scatter = np.sqrt(np.mean(d**2))
    assert abs(d.mean()) < 0.1 and 0.2 < scatter < 1.0
    assert res.pos_err_px.median() == pytest.approx(scatter, rel=0.25)


def test_uncertainty_counts_correlated_texture():
    """With the calibrated support texture (correlated on the atom's own scale) the position scatter is twice
    the white-noise one; the reported error follows it through the correlation factor instead of claiming the
    white-noise precision."""
    img, truth, _ = simulate_sample(1.0, arrangement="hardcore", seed=1, shape=(384, 384))
    xy = truth[["x_px", "y_px"]].to_numpy()
    res = refine(img, xy + np.random.default_rng(0).normal(0.0, 1.0, xy.shape), pixel_size_nm=REFERENCE_PIXEL_NM)
    ok = res.fit_ok.to_numpy()
    d = (res[["x_px", "y_px"]].to_numpy() - xy)[ok]
    scatter = np.sqrt(np.mean(d**2))
    assert res.attrs["variance_inflation"] > 2.5
    assert res.pos_err_px[ok].median() == pytest.approx(scatter, rel=0.35)


def test_single_atom_agrees_with_scipy_curve_fit():
    """An isolated atom on a sloped background: same position, width and integral as scipy's curve_fit of the
    same model (Gaussian + plane) on the same window."""
    from scipy.optimize import curve_fit

    rng = np.random.default_rng(5)
    yy, xx = np.mgrid[0:41, 0:41].astype(float)
    x0, y0, a0, s0 = 20.3, 19.6, 2.0, 3.5
    img = 1.0 + 0.01 * xx - 0.005 * yy + a0 * np.exp(-((xx - x0) ** 2 + (yy - y0) ** 2) / (2 * s0**2))
    img += rng.normal(0, 0.05, img.shape)
    res = refine(img, [[21.0, 19.0]], sigma_px=3.5, options=RefineOptions(sigma_prior=100.0, iterations=20))
    half = int(np.ceil(RefineOptions().window_sigma * 3.5))
    win = (slice(19 - half, 19 + half + 1), slice(21 - half, 21 + half + 1))

    def model(uv, x, y, a, s, b0, bx, by):
        u, v = uv
        return b0 + bx * u + by * v + a * np.exp(-((u - x) ** 2 + (v - y) ** 2) / (2 * s**2))

    p, _ = curve_fit(model, (xx[win].ravel(), yy[win].ravel()), img[win].ravel(), p0=[21, 19, 1.5, 3.5, 1, 0, 0])
    assert res.x_px[0] == pytest.approx(p[0], abs=1e-3) and res.y_px[0] == pytest.approx(p[1], abs=1e-3)
    assert res.sigma_px[0] == pytest.approx(abs(p[3]), rel=1e-3)
    assert res.intensity[0] == pytest.approx(p[2] * 2 * np.pi * p[3] ** 2, rel=2e-3)


def test_groups_are_capped_and_closest_first():
    xy = np.array([[0.0, 0], [1, 0], [2, 0], [3, 0], [20, 0], [20.5, 0]])
    gid = group_atoms(xy, 1.5, 2)
    assert gid[4] == gid[5] and len(np.unique(gid)) == 3 and np.bincount(gid).max() == 2
    assert len(np.unique(group_atoms(xy, 1.5, 1))) == 6


def test_bad_input_and_empty():
    img = np.ones((32, 32))
    out = refine(img, np.empty((0, 2)))
    assert list(out.columns) == list(REFINE_COLUMNS) and len(out) == 0
    with pytest.raises(DetectionInputError, match="xy_px"):
        refine(img, np.ones((3, 3)))
    with pytest.raises(DetectionInputError, match="non-finite"):
        refine(img, [[np.nan, 1.0]])
    with pytest.raises(DetectionInputError, match="2-D"):
        refine(np.ones(10), [[1.0, 1.0]])
    with pytest.raises(DetectionInputError, match="sigma_px"):
        refine(img, [[5.0, 5.0]], sigma_px=-1)


def test_wide_faint_bumps_are_dropped_only_when_isolated():
    # atoms of sigma0 = 2 px on white noise; faint bumps 2.5x as wide, alone or 5 px (< 2 x 1.8 sigma0) from an atom
    from sacmap.detection.result import wide_atoms

    rng = np.random.default_rng(7)
    rr, cc = np.mgrid[:200, :200]
    atoms = [(x, y) for x in range(20, 190, 30) for y in range(20, 190, 45)]
    lone_bumps = [(35.0, 40.0), (95.0, 130.0), (155.0, 85.0)]
    near_bump = (atoms[5][0] + 5.0, atoms[5][1])
    img = rng.normal(0, 0.02, (200, 200))
    for x, y in atoms:
        img += np.exp(-((cc - x) ** 2 + (rr - y) ** 2) / (2 * 2.0**2))
    for x, y in lone_bumps + [near_bump]:
        img += 0.3 * np.exp(-((cc - x) ** 2 + (rr - y) ** 2) / (2 * 5.0**2))
    xy = np.array(atoms + lone_bumps + [near_bump], float)
    wide = wide_atoms(img, xy, 2.0, 0.03, 1.8)
    n = len(atoms)
    assert not wide[:n].any()  # no atom of the image's width is dropped
    assert wide[n:n + 3].all()  # the isolated wide faint bumps are
    assert not wide[-1]  # the one beside an atom is not tested: its free width would take up the atom's light
    assert wide_atoms(img, xy[[0, 1, 2, n]], 2.0, 0.03, 1.8).sum() == 0  # under 5 detections: no median to judge by


def test_faint_tier_drops_moderately_wide_faint_bumps_but_keeps_faint_round_atoms():
    # atoms of sigma0 = 2 px; isolated: bumps 1.6 x as wide at 0.3 of the atoms' peak (below the 1.8 x of the main
    # rule: dropped by the faint tier, WIDE_FAINT_SIGMA 1.4 / WIDE_FAINT_PEAK 0.5), the same bumps at 0.7 (kept: not
    # faint), and round atoms of the image's width at 0.3 (kept: a lighter metal is faint but as narrow as the probe)
    from sacmap.detection.result import WIDE_FAINT_PEAK, WIDE_FAINT_SIGMA, wide_atoms

    assert 1.0 < WIDE_FAINT_SIGMA < 1.6 < 1.8 and 0.3 < WIDE_FAINT_PEAK < 0.7
    rng = np.random.default_rng(3)
    rr, cc = np.mgrid[:240, :240]
    atoms = [(x, y) for x in range(20, 230, 40) for y in range(20, 230, 70)]
    spots = {"faint wide": [(40.0, 55.0), (120.0, 125.0), (200.0, 195.0)],
             "bright wide": [(80.0, 55.0), (160.0, 125.0)],
             "faint round": [(40.0, 195.0), (200.0, 55.0)]}
    shape = {"faint wide": (0.3, 3.2), "bright wide": (0.7, 3.2), "faint round": (0.3, 2.0)}
    img = rng.normal(0, 0.01, (240, 240))
    for x, y in atoms:
        img += np.exp(-((cc - x) ** 2 + (rr - y) ** 2) / (2 * 2.0**2))
    for kind, pts in spots.items():
        a, s = shape[kind]
        for x, y in pts:
            img += a * np.exp(-((cc - x) ** 2 + (rr - y) ** 2) / (2 * s**2))
    xy = np.array(atoms + sum(spots.values(), []), float)
    wide = wide_atoms(img, xy, 2.0, 0.03, 1.8)
    n, k = len(atoms), np.cumsum([len(v) for v in spots.values()])
    assert not wide[:n].any()
    assert wide[n:n + k[0]].all()
    assert not wide[n + k[0]:].any()
