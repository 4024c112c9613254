"""Simulator-based recovery with the bundled detector (realistic noise), and dimers split by the GMM."""

from __future__ import annotations

import numpy as np
import pytest

simulate = pytest.importorskip("sacmap.detection.simulate")

from sacmap.detection.evaluate import evaluate_xy  # noqa: E402
from sacmap.detection.pipeline import Settings, detect_image  # noqa: E402

PX = 0.029296875


def _score(res, truth, radius):
    return evaluate_xy(res.atoms[["x_px", "y_px"]].to_numpy(), truth[["x_px", "y_px"]].to_numpy(), radius)


def test_noisy_images_at_one_atom_per_nm2():
    img, truth, _ = simulate.simulate_sample(1.0, seed=0)
    r = _score(detect_image(img, pixel_size_nm=PX), truth, 5)
    assert r["n_truth"] > 150
    assert r["f1"] >= 0.7, r  # measured 0.79-0.82 (seeds 0, 1); the real validation images give 0.645


def test_preprocessing_scale_does_not_depend_on_pixel_noise():
    # the same sample with and without shot/scan noise: the atoms must come out at about the same normalised
    # level; plain min-max (norm_factor=0) puts them 1.6-2.2x brighter in the noise-free image, because there the
    # maximum is no longer a shot-noise spike, and that saturated the CNN (measured 1.0-1.3x with the new scale)
    from sacmap.detection.preprocess import preprocess

    ratio = {}
    for nf in (1.6, 0.0):
        level = []
        for noise in (True, False):
            img, truth, _ = simulate.simulate_sample(1.0, seed=0, noise=noise, shape=(256, 256))
            pre = preprocess(img, norm_factor=nf)
            assert pre.min() >= 0 and pre.max() <= 1
            level.append(np.median(pre[np.rint(truth["y_px"]).astype(int), np.rint(truth["x_px"]).astype(int)]))
        ratio[nf] = level[1] / level[0]
    assert 0.8 < ratio[1.6] < 1.3 and ratio[0.0] > 1.5, ratio


def test_clean_images_at_one_atom_per_nm2():
    # the target: F1 >= 0.95 on clean synthetic images. "Clean" here = no shot/scan noise AND a smooth
    # support (no carbon texture): measured F1 0.95-0.97 (seeds 0-2; 0.80-0.88 before the signal-based scale
    # and the intensity-peak split)
    img, truth, _ = simulate.simulate_sample(1.0, seed=0, noise=False, texture_sd=0.0, vacuum_texture_sd=0.0)
    r = _score(detect_image(img, pixel_size_nm=PX), truth, 5)
    assert r["f1"] >= 0.95, r


def test_noise_free_images_with_calibrated_texture():
    # noise-free but with the calibrated carbon texture: F1 0.57-0.67 with min-max normalisation, 0.73-0.81
    # (seeds 0-2) now. The CNN still fires on texture bumps; a DoG detector whose threshold is tuned on the
    # truth itself reaches only 0.83-0.88 on these images, so the texture, calibrated on the real images,
    # limits any detector (docs/detection.md)
    img, truth, _ = simulate.simulate_sample(1.0, seed=0, noise=False)
    r = _score(detect_image(img, pixel_size_nm=PX), truth, 5)
    assert r["f1"] >= 0.75, r


def test_pixel_size_rescaling_keeps_positions():
    # the same sample imaged with 1.5x larger pixels: detections are mapped back to the image's own pixels
    img, truth, _ = simulate.simulate_sample(1.0, seed=0, pixel_size_nm=1.5 * PX, shape=(342, 342))
    r = _score(detect_image(img, pixel_size_nm=1.5 * PX), truth, 5 / 1.5)
    assert r["f1"] >= 0.6, r


def _pairs(sep_nm: float, **kw):
    rng = np.random.default_rng(0)
    xy = []
    for cx in np.arange(1.5, 14, 2.5):
        for cy in np.arange(1.5, 14, 2.5):
            t = rng.uniform(0, np.pi)
            d = sep_nm / 2 * np.array([np.cos(t), np.sin(t)])
            xy += [np.array([cx, cy]) + d, np.array([cx, cy]) - d]
    return simulate.simulate_image(np.asarray(xy), seed=0, **kw)


def test_resolvable_pairs_are_split_at_default_settings():
    # pairs 0.32 nm apart (2.7 sigma of the calibrated 0.28-nm-FWHM atom image: a dip between them) merge into
    # one probability component far below the GMM split area; the intensity-peak split separates them.
    # Measured recall at 3 px 0.48 without, 0.66 with (noise as calibrated)
    img, truth = _pairs(0.32)
    off = _score(detect_image(img, pixel_size_nm=PX, settings=Settings(peak_split=False)), truth, 3)
    on = _score(detect_image(img, pixel_size_nm=PX), truth, 3)
    assert on["recall"] >= off["recall"] + 0.1, (off, on)
    assert on["recall"] >= 0.6, on


def test_dimers_are_split_by_the_gmm_at_default_settings():
    # isolated 0.22-nm dimers on clean images (no shot/scan noise, smooth support): each pair is one saturated
    # probability component of ~220 px2, above the 200 px2 split area; the GMM (fitted to the component's pixels
    # weighted by (p - threshold) x intensity, modified BIC) splits it. Measured recall at 3 px 0.06 without the
    # split (k_max = 1), 0.78 with it (precision 0.91)
    img, truth = _pairs(0.22, noise=False, texture_sd=0.0, vacuum_texture_sd=0.0)
    off = _score(detect_image(img, pixel_size_nm=PX, settings=Settings(k_max=1)), truth, 3)
    on = _score(detect_image(img, pixel_size_nm=PX), truth, 3)
    assert on["recall"] >= off["recall"] + 0.4, (off, on)
    assert on["recall"] >= 0.6 and on["precision"] >= 0.7, on


def test_noisy_dimers_need_a_smaller_split_area():
    # with the calibrated noise a 0.22-nm pair (1.85 sigma of the 0.28-nm-FWHM atom image, no dip) gives a
    # component of 80-210 px2, mostly below the default split area: split_area_px=100 sends them to the GMM
    # (docs/detection.md: the default stays 200 because real single atoms are as elongated). Measured recall at
    # 3 px 0.26 (k_max = 1) -> 0.54
    img, truth = _pairs(0.22)
    off = _score(detect_image(img, pixel_size_nm=PX, settings=Settings(k_max=1)), truth, 3)
    on = _score(detect_image(img, pixel_size_nm=PX, settings=Settings(split_area_px=100)), truth, 3)
    assert on["recall"] >= off["recall"] + 0.2, (off, on)


def test_elements_column_filled():
    pytest.importorskip("sacmap.detection.elements")
    img, truth, _ = simulate.simulate_sample(1.0, seed=2, elements={"Ni": 0.5, "Pt": 0.5})
    res = detect_image(img, pixel_size_nm=PX, elements=["Ni", "Pt"])
    assert set(res.atoms["element"]) <= {"Ni", "Pt"} and len(set(res.atoms["element"])) == 2
    summ = res.summary()
    assert sum(summ["element_counts"].values()) == res.n_atoms
    assert summ["elements"]["counts_intensity_baseline"] is not None
    one = detect_image(img, pixel_size_nm=PX, elements=["Pt"])
    assert set(one.atoms["element"]) == {"Pt"}


def test_non_square_pixels_from_tiff(tmp_path):
    import tifffile

    from sacmap.detection.pipeline import detect_files

    img, truth, _ = simulate.simulate_sample(1.0, seed=4, shape=(256, 256))
    # squash rows by 2/3: y pixel 1.5x larger than x
    from skimage.transform import resize

    sq = resize(img, (171, 256), order=1, anti_aliasing=True, preserve_range=True).astype(np.float32)
    p = tmp_path / "aniso.tif"
    tifffile.imwrite(p, sq, extratags=[(65003, "s", 0, "nm", False), (65004, "s", 0, "nm", False),
                                       (65009, "d", 1, PX, False), (65010, "d", 1, 1.5 * PX, False)])
    summ = detect_files([p], tmp_path / "out", overlay=False)[0]
    assert summ["pixel_size_y_nm"] == pytest.approx(1.5 * PX)
    import pandas as pd

    df = pd.read_csv(tmp_path / "out/aniso.csv")
    np.testing.assert_allclose(df["y_nm"], df["y_px"] * 1.5 * PX, rtol=1e-3, atol=1e-3)
    tr = truth[["x_nm", "y_nm"]].to_numpy()
    r = evaluate_xy(df[["x_nm", "y_nm"]].to_numpy() / PX, tr / PX, 5)
    assert r["f1"] >= 0.6, r
