"""Two readings of one fine-pixel image, judged by the compact peaks the image itself shows
(``sacmap.detection.readings``; issue 14, small atoms at 0.016 nm/px)."""

import numpy as np
import pytest

from sacmap.detection import readings as RD


def _field(seed=0, n=256, noise=0.03):
    """Support 1.0 with a smooth random texture (white noise blurred by σ 8 px, sd 0.05), small atoms (σ 2 px,
    +0.3) and white pixel noise; ``bumps`` are the texture's 12 highest local maxima away from the atoms."""
    from scipy import ndimage as ndi

    rng = np.random.default_rng(seed)
    tex = ndi.gaussian_filter(rng.normal(0, 1, (n, n)), 8.0)
    tex *= 0.05 / tex.std()
    yy, xx = np.mgrid[:n, :n].astype(float)
    img = 1.0 + tex
    atoms = rng.uniform(10, n - 10, (40, 2))
    for x, y in atoms:
        img += 0.3 * np.exp(-((xx - x) ** 2 + (yy - y) ** 2) / (2 * 2.0**2))
    peaks = np.argwhere((tex == ndi.maximum_filter(tex, 15)) & (tex > 0))[:, ::-1].astype(float)
    peaks = peaks[[np.hypot(*(atoms - p).T).min() > 12 and 10 < min(p) < n - 10 for p in peaks]]
    bumps = peaks[np.argsort(-tex[peaks[:, 1].astype(int), peaks[:, 0].astype(int)])[:12]]
    return img + rng.normal(0, noise, img.shape), atoms, bumps


def test_atoms_are_significant_and_texture_bumps_and_noise_are_not():
    img, atoms, bumps = _field()
    far = np.array([p for p in np.random.default_rng(1).uniform(10, 246, (200, 2))
                    if np.hypot(*(atoms - p).T).min() > 10 and np.hypot(*(bumps - p).T).min() > 12])
    assert RD.significant(img, atoms, 3.0).mean() >= 0.95
    assert RD.significant(img, bumps, 3.0).mean() <= 0.1  # they pass the pixel-noise test, not the band's spread
    assert RD.significant(img, far, 3.0).mean() <= 0.02
    assert RD.significant(img, np.empty((0, 2)), 3.0).shape == (0,)


def test_the_reading_without_texture_detections_is_kept_and_one_that_drops_atoms_is_not():
    img, atoms, bumps = _field()
    junk = np.r_[atoms, bumps, bumps + 8.0]  # a reading that also fires on the texture
    c = RD.compare(img, junk, atoms, 0.016, 3.0)
    assert c["keep_second"] and c["significant_second"] == len(atoms), c
    c = RD.compare(img, atoms, atoms[:25], 0.016, 3.0)  # fewer significant atoms: the first stays
    assert not c["keep_second"], c
    c = RD.compare(img, atoms, atoms, 0.016, 3.0)  # equal readings: the first stays (no margin)
    assert not c["keep_second"] and c["f1_first"] == c["f1_second"] == 1.0


def test_bright_small_atoms_whose_first_reading_is_mostly_texture_are_read_on_their_own_grid(load_benchmark):
    """Re, 0.08 nm FWHM, 6.3·10⁵ e/nm² at 0.016 nm/px (benchmarks/pixel_sizes.py, seed 1): shrunk, the networks
    put 140 detections on 74 atoms (σ₀ of all of them 7.0 px, the atoms' 2.1, so the small-atom rule did not see
    them); the significant detections' σ₀ is 2.2 px and the native reading, kept, finds 83 (F1 0.58 → 0.90)."""
    from sacmap.detection.evaluate import match
    from sacmap.detection.pipeline import Settings, detect_image

    ps = load_benchmark("pixel_sizes")
    img, truth = ps.small_atom_scene(1, 0.08, "Re", 6.3e5, 0.016)
    t = truth[["x_px", "y_px"]].to_numpy()
    f1 = {}
    for k in (0.0, 2.0):
        res = detect_image(img, pixel_size_nm=0.016, settings=Settings(small_atom_sigma=k))
        xy = res.atoms[["x_px", "y_px"]].to_numpy()
        f1[k] = 2 * len(match(xy, t, 0.10 / 0.016)[0]) / (len(xy) + len(t))
    assert f1[0.0] <= 0.7 and f1[2.0] >= 0.85, f1
    info = res.meta["small_atoms"]
    assert info["second_reading"]["keep_second"] and info["native_frame"] and res.meta["rescale_factor"] == [1.0, 1.0]
    assert info["sigma0_significant_px"] < 3.0
    assert res.summary()["warning"] is None  # read on its own grid: nothing was resampled


def test_weak_small_atoms_at_moderate_dose_keep_the_shrunk_reading(load_benchmark):
    """Re, 0.11 nm, 6.3·10⁴ e/nm² (pixel_sizes seed 1): the native reading keeps only 9 of the 35 detections
    (7 of the 13 significant ones; F1 0.554 on the shrunk frame, 0.211 native): the shrunk reading stays."""
    from sacmap.detection.pipeline import detect_image

    ps = load_benchmark("pixel_sizes")
    img, _ = ps.small_atom_scene(1, 0.11, "Re", 6.3e4, 0.016)
    res = detect_image(img, pixel_size_nm=0.016)
    c = res.meta["small_atoms"]["second_reading"]
    assert not c["keep_second"] and c["significant_second"] < c["significant_first"], c
    assert res.meta["rescale_factor"][0] < 0.6


def test_sparse_matching_counts_as_the_hungarian_match():
    from sacmap.detection.evaluate import match

    rng = np.random.default_rng(3)
    for n in (1, 40, 400):
        a = rng.uniform(0, 30 * np.sqrt(n), (n, 2))
        b = np.r_[a[: n // 2] + rng.normal(0, 2.5, (n // 2, 2)), rng.uniform(0, 30 * np.sqrt(n), (n // 3, 2))]
        assert RD.matched(a, b, 5.0).sum() == len(match(a, b, 5.0)[0])
    assert RD.matched(np.empty((0, 2)), b, 5.0).shape == (0,) and not RD.matched(a, np.empty((0, 2)), 5.0).any()


def test_real_sized_atoms_read_as_if_on_fine_pixels_keep_the_native_reading(monkeypatch):
    """A calibrated Pt₁/NC image (0.28-nm atoms, the simulator's real-like noise and texture) given as 0.016 nm/px:
    its atoms are then 0.15 nm wide, σ ≈ 4 px, the networks' own width on the native grid. Shrunk, the CNN fires
    on the resampled noise (109 detections for 68 atoms, F1 0.59); the native reading is the one the image had at
    its true pixel size (92, F1 0.66), and the image's compact peaks keep it."""
    import sacmap.detection.detector as D
    from sacmap.detection.evaluate import match
    from sacmap.detection.preprocess import TRAIN_PIXEL_NM
    from sacmap.detection.simulate import simulate_sample

    img, truth, _ = simulate_sample(0.3, arrangement="random", seed=5)
    t = truth[["x_px", "y_px"]].to_numpy()

    def f1(res):
        xy = res.atoms[["x_px", "y_px"]].to_numpy()
        return 2 * len(match(xy, t, 5)[0]) / (len(xy) + len(t))

    native = D.AtomDetector().detect_result(img, TRAIN_PIXEL_NM)
    fine = D.AtomDetector().detect_result(img, 0.016)
    assert fine.meta["small_atoms"]["second_reading"]["keep_second"] and fine.meta["rescale_factor"] == [1.0, 1.0]
    # the same network reading; only the refinement's nm-based rules see the other pixel size
    assert abs(fine.n_atoms - native.n_atoms) <= 3 and f1(fine) == pytest.approx(f1(native), abs=0.02)
    monkeypatch.setattr(D, "SECOND_READING_SIGMA", 1e-9)  # no second reading: the shrunk frame over-counts
    shrunk = D.AtomDetector().detect_result(img, 0.016)
    assert shrunk.n_atoms >= native.n_atoms + 10 and f1(shrunk) <= f1(native) - 0.05
