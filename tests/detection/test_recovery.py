"""Simulator-based recovery: the bundled heat-map detector (descriptors of random, dense and multimer-rich
patterns; close pairs) and the paper CNN reference (``model="paper"``: GMM and intensity-peak splits)."""

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
    r = _score(detect_image(img, pixel_size_nm=PX, model="paper"), truth, 5)
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
    r = _score(detect_image(img, pixel_size_nm=PX, model="paper"), truth, 5)
    assert r["f1"] >= 0.95, r


def test_noise_free_images_with_calibrated_texture():
    # noise-free but with the calibrated carbon texture: F1 0.57-0.67 with min-max normalisation, 0.73-0.81
    # (seeds 0-2) now. The CNN still fires on texture bumps; a DoG detector whose threshold is tuned on the
    # truth itself reaches only 0.83-0.88 on these images, so the texture, calibrated on the real images,
    # limits any detector (docs/detection.md)
    img, truth, _ = simulate.simulate_sample(1.0, seed=0, noise=False)
    r = _score(detect_image(img, pixel_size_nm=PX, model="paper"), truth, 5)
    assert r["f1"] >= 0.75, r


def test_pixel_size_rescaling_keeps_positions():
    # the same sample imaged with 1.5x larger pixels: detections are mapped back to the image's own pixels
    img, truth, _ = simulate.simulate_sample(1.0, seed=0, pixel_size_nm=1.5 * PX, shape=(342, 342))
    r = _score(detect_image(img, pixel_size_nm=1.5 * PX, model="paper"), truth, 5 / 1.5)
    assert r["f1"] >= 0.6, r


def _pairs(sep_nm: float, **kw):
    xy = simulate.pair_grid(sep_nm, spacing_nm=2.5, start_nm=1.5, stop_nm=14, seed=0)
    return simulate.simulate_image(xy, seed=0, **kw)


def test_resolvable_pairs_are_split_at_default_settings():
    # pairs 0.32 nm apart (2.7 sigma of the calibrated 0.28-nm-FWHM atom image: a dip between them) merge into
    # one probability component far below the GMM split area; the intensity-peak split separates them.
    # Measured recall at 3 px 0.48 without, 0.66 with (noise as calibrated)
    img, truth = _pairs(0.32)
    off = _score(detect_image(img, pixel_size_nm=PX, model="paper", settings=Settings(peak_split=False)), truth, 3)
    on = _score(detect_image(img, pixel_size_nm=PX, model="paper"), truth, 3)
    assert on["recall"] >= off["recall"] + 0.1, (off, on)
    assert on["recall"] >= 0.6, on


def test_dimers_are_split_by_the_gmm_at_default_settings():
    # isolated 0.22-nm dimers on clean images (no shot/scan noise, smooth support): each pair is one saturated
    # probability component of ~220 px2, above the 200 px2 split area; the GMM (fitted to the component's pixels
    # weighted by (p - threshold) x intensity, modified BIC) splits it. Measured recall at 3 px 0.06 without the
    # split (k_max = 1), 0.78 with it (precision 0.91)
    img, truth = _pairs(0.22, noise=False, texture_sd=0.0, vacuum_texture_sd=0.0)
    off = _score(detect_image(img, pixel_size_nm=PX, model="paper", settings=Settings(k_max=1)), truth, 3)
    on = _score(detect_image(img, pixel_size_nm=PX, model="paper"), truth, 3)
    assert on["recall"] >= off["recall"] + 0.4, (off, on)
    assert on["recall"] >= 0.6 and on["precision"] >= 0.7, on


def test_noisy_dimers_need_a_smaller_split_area():
    # with the calibrated noise a 0.22-nm pair (1.85 sigma of the 0.28-nm-FWHM atom image, no dip) gives a
    # component of 80-210 px2, mostly below the default split area: split_area_px=100 sends them to the GMM
    # (docs/detection.md: the default stays 200 because real single atoms are as elongated). Measured recall at
    # 3 px 0.26 (k_max = 1) -> 0.54
    img, truth = _pairs(0.22)
    off = _score(detect_image(img, pixel_size_nm=PX, model="paper", settings=Settings(k_max=1)), truth, 3)
    on = _score(detect_image(img, pixel_size_nm=PX, model="paper", settings=Settings(split_area_px=100)), truth, 3)
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


# --- the heat-map detector: descriptors of the detected pattern against the truth ------------------------------
# Clean images (no shot/scan noise, smooth support): what the issue calls "wherever atoms are at least 0.18 nm
# apart" is tested on random patterns with a 0.18-nm floor (closer pairs are one blob for any detector at the
# calibrated 0.28-nm atom FWHM, docs/detection.md); the calibrated-noise numbers are in the model card.

CLEAN = dict(noise=False, texture_sd=0.0, vacuum_texture_sd=0.0)


def _descriptors(xy_nm, field_nm):
    from sacmap.analysis.spatial.descriptors import clark_evans, nearest_neighbour_distances, nuclearity

    area, per = field_nm[0] * field_nm[1], 2 * (field_nm[0] + field_nm[1])
    nnd, _ = nearest_neighbour_distances(np.asarray(xy_nm, float))
    return {"density": len(xy_nm) / area, "ce": clark_evans(float(nnd.mean()), len(xy_nm), area, per)["clark_evans"],
            "multimer": nuclearity(np.asarray(xy_nm, float), 0.22, nnd)["multimer_share"]}


def _true_and_detected(density, seeds, settings=None, model="heatmap", **kw):
    true, det = [], []
    for seed in seeds:
        img, truth, _ = simulate.simulate_sample(density, seed=seed, **kw)
        field = (img.shape[1] * PX, img.shape[0] * PX)
        res = detect_image(img, pixel_size_nm=PX, model=model, settings=settings)
        true.append(_descriptors(truth[["x_nm", "y_nm"]].to_numpy(), field))
        det.append(_descriptors(res.atoms[["x_nm", "y_nm"]].to_numpy(), field))
    return ({k: float(np.mean([r[k] for r in true])) for k in true[0]},
            {k: float(np.mean([r[k] for r in det])) for k in det[0]})


@pytest.mark.parametrize("model", ["heatmap", "bundled"])
@pytest.mark.parametrize("split", [False, True], ids=["", "split-pairs"])
@pytest.mark.parametrize("density", [1.0, 2.0])
def test_random_patterns_keep_their_descriptors(density, split, model):
    # the failure (crop CNN, calibrated noise, no floor): Clark-Evans 0.98 -> 1.16 and multimer share
    # 13.9 % -> 2.2 % at 1 atom/nm2. Heat map, seeds 0-1, measured: CE within 0.01, multimer share within 0.01
    # (1/nm2) and 0.026 (2/nm2), density within 2 %; with Settings(split_pairs=True) (detection.split: no spurious
    # pairs) CE within 0.004, multimer share within 0.009, density within 0.4 %. The default model (combined),
    # measured: CE within 0.013, multimer share within 0.020 (1/nm2; 0.026 with the split) and 0.005 (2/nm2),
    # density within 1.1 %
    t, d = _true_and_detected(density, [0, 1], settings=Settings(split_pairs=split), model=model, min_dist_nm=0.18,
                              **CLEAN)
    assert abs(d["ce"] - t["ce"]) <= 0.05, (t, d)
    assert abs(d["multimer"] - t["multimer"]) <= 0.03, (t, d)
    assert abs(d["density"] / t["density"] - 1) <= 0.05, (t, d)


def test_dense_hard_core_multimer_image_density():
    # 6 atoms/nm2, 0.25-nm hard core between units, 30 % dimers + 30 % trimers (0.20-0.26-nm bonds), clean. The heat
    # map alone finds 0.81 of the atoms (one peak per unresolved pair); with the model-order selection of the
    # refinement (Settings(split_pairs=True), detection.split) measured 0.936 (default model 0.927)
    t, d = _true_and_detected(6.0, [0], settings=Settings(split_pairs=True), min_dist_nm=0.25, dimer_fraction=0.3,
                              trimer_fraction=0.3, **CLEAN)
    assert abs(d["density"] / t["density"] - 1) <= 0.10, (t, d)


def test_heatmap_splits_022nm_dimers():
    # isolated 0.22-nm pairs (1.85 sigma of the calibrated 0.28-nm-FWHM atom image: no intensity dip), clean
    # image: the heat map gives two peaks (their spacing biased outward by ~0.035 nm) and the joint Gaussian fit
    # of the refinement puts them back at 0.22 nm (median); the paper CNN's GMM recovers 0.78 at 3 px
    from scipy.spatial import cKDTree

    img, truth = _pairs(0.22, **CLEAN)
    res = detect_image(img, pixel_size_nm=PX, model="heatmap")
    r = _score(res, truth, 3)
    assert r["recall"] >= 0.9 and r["precision"] >= 0.9, r
    xy = res.atoms[["x_nm", "y_nm"]].to_numpy()
    d, _ = cKDTree(xy).query(xy, k=2)
    assert abs(np.median(d[:, 1]) - 0.22) < 0.01, np.median(d[:, 1])


def test_refinement_keeps_the_detected_close_pairs_in_calibrated_noise():
    # multimer-rich image at 1 atom/nm2 with the calibrated noise and texture: the Gaussian fits localise no better
    # than the detector there (docs/detection.md, Close pairs), so the pipeline keeps the detector's positions and
    # the detected multimer share is not lowered (the refinement of 559689b took the paper CNN's 0.126 to 0.044);
    # the refinement's own columns are still filled
    from scipy.spatial import cKDTree

    img, truth, _ = simulate.simulate_sample(1.0, arrangement="multimer", seed=[10, 0, 2])

    def share(a):
        xy = a[["x_nm", "y_nm"]].to_numpy()
        return np.mean(cKDTree(xy).query(xy, k=2)[0][:, 1] <= 0.22 + 1e-9)

    raw = detect_image(img, pixel_size_nm=PX, model="paper", settings=Settings(refine=False)).atoms
    ref = detect_image(img, pixel_size_nm=PX, model="paper").atoms
    assert share(raw) > 0.05
    assert share(ref) >= share(raw)
    assert ref["intensity"].notna().all() and ref["pos_err_px"].median() > 0.5


def test_non_square_pixels_of_an_array_are_honoured():
    """``AtomDetector.detect(array, pixel_nm, pixel_y_nm)``: the rows' pixel size was dropped for arrays (the image
    was read as square-pixelled, its rows left unshrunk and ``y_nm`` scaled by the x pixel)."""
    from skimage.transform import resize

    from sacmap.detection.detector import AtomDetector
    from sacmap.detection.errors import DetectionInputError

    img, truth, _ = simulate.simulate_sample(1.0, seed=4, shape=(256, 256))
    sq = resize(img, (171, 256), order=1, anti_aliasing=True, preserve_range=True)  # y pixel 1.5 × x
    res = AtomDetector().detect_result(sq, PX, 1.5 * PX)
    assert res.pixel_size_y_nm == pytest.approx(1.5 * PX) and res.meta["rescale_factor"][0] == pytest.approx(1.5)
    df = res.atoms
    np.testing.assert_allclose(df["y_nm"], df["y_px"] * 1.5 * PX, rtol=1e-6)
    r = evaluate_xy(df[["x_nm", "y_nm"]].to_numpy() / PX, truth[["x_nm", "y_nm"]].to_numpy() / PX, 5)
    assert r["f1"] >= 0.6, r
    via = detect_image(sq, pixel_size_nm=PX, pixel_size_y_nm=1.5 * PX)  # the pipeline function passes it on
    np.testing.assert_allclose(via.atoms[["x_nm", "y_nm"]].to_numpy(), df[["x_nm", "y_nm"]].to_numpy())
    with pytest.raises(DetectionInputError, match="image array"):
        AtomDetector().detect(sq, PX, 5.0)  # y pixel outside the supported range: one clear line
