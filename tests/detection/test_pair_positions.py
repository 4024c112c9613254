"""Close-pair positions: the pipeline's pair separations are those of the joint fit where the fit is precise,
not the detector's (whose pairs are systematically too wide); checked on images from a small renderer written
here, independent of sacmap.detection.simulate (core + tail probe, amorphous texture, Poisson and read noise)."""

from __future__ import annotations

import numpy as np
from scipy import ndimage
from scipy.spatial import cKDTree

from sacmap.detection.refine import combine_with_start


def test_precise_close_pair_fits_are_taken_whatever_the_weight():
    rng = np.random.default_rng(0)
    iso = rng.uniform(20, 480, (60, 2))
    pair = np.array([[250.0, 250.0], [257.0, 250.0]])
    start = np.r_[iso, pair]
    # isolated fits move less than their own error (weight ~0: the start is kept), the pair's fits are 0.3 px
    # closer together with a 0.05-px error
    fit = start + np.r_[rng.normal(0, 0.05, (60, 2)), [[0.3, 0.0], [-0.3, 0.0]]]
    pe = np.r_[np.full(60, 0.5), [0.05, 0.05]]
    group, ok = np.arange(62), np.ones(62, bool)
    kept = combine_with_start(start, fit, pe, group, ok)
    assert np.allclose(kept[60:], pair, atol=0.05)
    took = combine_with_start(start, fit, pe, group, ok, pair_px=10.0, precise_px=0.1)
    assert np.allclose(took[60:], fit[60:]) and np.allclose(took[:60], kept[:60])
    # an imprecise pair fit, a failed fit and a pair farther apart than pair_px keep the weighted position
    assert np.allclose(combine_with_start(start, fit, np.r_[pe[:60], 0.2, 0.2], group, ok, pair_px=10.0,
                                          precise_px=0.1)[60:], kept[60:])
    bad = ok.copy()
    bad[60] = False
    assert np.allclose(combine_with_start(start, fit, pe, group, bad, pair_px=10.0, precise_px=0.1)[60],
                       start[60])
    assert np.allclose(combine_with_start(start, fit, pe, group, ok, pair_px=5.0, precise_px=0.1)[60:], kept[60:])


def _render(px=0.03, fwhm=0.10, dose=2e5, density=4.0, seed=7):
    """Hard-core 0.20 nm with 40 % dimers at 0.20-0.26 nm; the atom: 85 % Gaussian core + 15 % 3x wider tail."""
    rng = np.random.default_rng(seed)
    n = int(round(15 / px))
    side = n * px
    pts = []
    for _ in range(60000):
        if len(pts) >= density * side * side:
            break
        p = rng.uniform(0, side, 2)
        new = [p]
        if rng.random() < 0.4:
            a, d = rng.uniform(0, np.pi), rng.uniform(0.20, 0.26)
            new.append(p + d * np.array([np.cos(a), np.sin(a)]))
        if any((q < 0).any() or (q > side).any() for q in new):
            continue
        if pts and min(cKDTree(np.array(pts)).query(q)[0] for q in new) < 0.20:
            continue
        pts += new
    xy = np.array(pts)
    support = 1.0 + 0.15 * ndimage.gaussian_filter(rng.normal(size=(n, n)), 2.0 / px) * (2.0 / px)
    tex = ndimage.gaussian_filter(rng.normal(size=(n, n)), 0.08 / px)
    support *= 1 + 0.04 * tex / tex.std()
    s1 = fwhm / 2.355 / px
    yy, xx = np.mgrid[0:n, 0:n]
    atoms = np.zeros((n, n))
    for (x, y), a in zip(xy / px, 0.8 * rng.lognormal(0, 0.1, len(xy))):
        sl = (slice(max(0, int(y - 20 * s1)), int(y + 20 * s1) + 1), slice(max(0, int(x - 20 * s1)), int(x + 20 * s1) + 1))
        d2 = (yy[sl] - y) ** 2 + (xx[sl] - x) ** 2
        atoms[sl] += a * (0.85 * np.exp(-d2 / (2 * s1**2)) + 0.15 * np.exp(-d2 / (18 * s1**2)))
    img = rng.poisson((support + atoms) * dose * px * px) + rng.normal(0, 2, (n, n))
    return img.astype(np.float32), xy


def _multimer_share(xy):
    d, _ = cKDTree(xy).query(xy, k=2)
    return float(np.mean(d[:, 1] <= 0.22))


def test_pair_separations_keep_the_multimer_share_on_an_independent_renderer():
    # measured: truth 0.249, pipeline 0.251 (the detector's own positions: 0.141, its pairs too wide; F1 1.00)
    from sacmap.detection.pipeline import detect_image

    img, xy = _render()
    res = detect_image(img, pixel_size_nm=0.03)
    det = res.atoms[["x_nm", "y_nm"]].to_numpy()
    assert abs(len(det) / len(xy) - 1) < 0.03
    assert abs(_multimer_share(det) - _multimer_share(xy)) <= 0.03, (_multimer_share(det), _multimer_share(xy))
