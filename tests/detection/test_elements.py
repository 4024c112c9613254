"""Element labelling: accuracy on synthetic two-element images (VAE vs intensity baseline), invariances,
determinism, bad inputs."""

from __future__ import annotations

import numpy as np
import pytest

from sacmap.detection.elements import extract_crops, label_elements
from sacmap.detection.errors import DetectionInputError
from sacmap.detection.simulate import simulate_sample
from sacmap.detection.vae import RotationInvariantVAE


def _accuracy(result, truth):
    y = truth.element.to_numpy()
    return float(np.mean(result["labels"] == y)), float(np.mean(result["labels_intensity"] == y))


@pytest.fixture(scope="module")
def pt_pd_clean():
    """Pt and Pd (Z^1.7 contrast 2.46×) at 1 atom/nm², low support texture and no atom-to-atom spread."""
    img, truth, _ = simulate_sample(
        1.0, seed=11, elements={"Pt": 0.5, "Pd": 0.5}, texture_sd=0.02, vacuum_texture_sd=0.0, peak_sd=0.0
    )
    return img, truth, label_elements(img, truth[["x_px", "y_px"]].to_numpy(), ["Pd", "Pt"], seed=0)


def test_pt_ni_realistic_noise():
    """Pt vs Ni (contrast 5.7×) with every calibrated default (noise, texture, 18 % atom-to-atom spread):
    the best threshold chosen with the true labels reaches ≈ 0.95 here, the VAE 0.92–0.96 over seeds."""
    img, truth, _ = simulate_sample(1.0, seed=1, elements={"Pt": 0.5, "Ni": 0.5})
    res = label_elements(img, truth[["x_px", "y_px"]].to_numpy(), ["Pt", "Ni"], seed=0)
    acc_vae, acc_int = _accuracy(res, truth)
    print(f"Pt/Ni realistic: VAE {acc_vae:.3f}, intensity-only {acc_int:.3f}, n={len(truth)}")
    assert acc_vae >= 0.90
    assert acc_int >= 0.75
    assert set(res["labels"]) == {"Pt", "Ni"}
    assert res["cluster_intensity"]["Pt"] > res["cluster_intensity"]["Ni"]


def test_pt_pd_clean(pt_pd_clean):
    """The issue's criterion: two elements whose contrast differs ≥ 2× (Pt/Pd 2.46×) → ≥ 90 % right, both ways."""
    _, truth, res = pt_pd_clean
    acc_vae, acc_int = _accuracy(res, truth)
    print(f"Pt/Pd clean: VAE {acc_vae:.3f}, intensity-only {acc_int:.3f}, n={len(truth)}")
    assert acc_vae >= 0.90 and acc_int >= 0.90
    assert res["latent"].shape == (len(truth), 4) and res["active_latents"].any()
    assert res["train_seconds"] < 60
    assert sum(res["counts"].values()) == len(truth)
    assert 0.0 <= res["agreement"] <= 1.0


def test_deterministic_and_order_free(pt_pd_clean):
    img, truth, res = pt_pd_clean
    again = label_elements(img, truth[["x_px", "y_px"]].to_numpy(), ["Pt", "Pd"], seed=0)
    assert np.array_equal(res["labels"], again["labels"])  # element order given does not matter
    np.testing.assert_array_equal(res["latent"], again["latent"])  # same seed, same model


def test_scale_free_input(pt_pd_clean):
    """Raw counts or an image pre-processed to [0, 1]: same normalised crops, same labels."""
    img, truth, res = pt_pd_clean
    pre = (img - img.min()) / (img.max() - img.min())
    other = label_elements(pre, truth[["x_px", "y_px"]].to_numpy(), ["Pd", "Pt"], seed=0)
    assert np.mean(other["labels"] == res["labels"]) >= 0.98


def test_vae_encoder_is_d4_invariant():
    rng = np.random.default_rng(0)
    crops = rng.normal(size=(40, 23, 23)).astype(np.float32)
    vae = RotationInvariantVAE(steps=10, seed=0).fit(crops)
    z = vae.transform(crops)
    for k in (1, 2, 3):
        np.testing.assert_allclose(vae.transform(np.rot90(crops, k, axes=(1, 2))), z, atol=1e-5)
    np.testing.assert_allclose(vae.transform(crops[:, :, ::-1]), z, atol=1e-5)
    assert not np.allclose(vae.transform(crops[::-1]), z)  # but it does see the content
    assert vae.reconstruct(crops).shape == (40, 21, 21)


def test_crops_centred_and_padded():
    img = np.zeros((50, 60))
    img[10, 40] = 1.0
    c = extract_crops(img, np.array([[40, 10], [0, 0]]), 21)
    assert c.shape == (2, 21, 21) and c[0, 10, 10] == 1.0 and c[0].sum() == 1.0


def test_single_element_labels_all():
    img, truth, _ = simulate_sample(1.0, shape=(128, 128), seed=2)
    res = label_elements(img, truth[["x_px", "y_px"]].to_numpy(), ["Pt"])
    assert set(res["labels"]) == {"Pt"} and len(res["labels"]) == len(truth)


@pytest.mark.parametrize(
    "xy, elements, match",
    [
        (np.empty((0, 2)), ["Pt", "Ni"], "no atom"),
        (np.array([[5.0, 5.0]]), ["Pt"], "at least 2"),
        (np.array([[5.0, 5.0], [9.0, 9.0]]), ["Pt", "Pd", "Ni"], "only 2 atoms"),
        (np.array([[5.0, 5.0], [9.0, 9.0]]), ["Pt", "Qq"], "unknown element"),
        (np.array([[5.0, 5.0], [9.0, 9.0]]), ["Pt", "pt"], "repeated"),
        (np.array([[5.0, 5.0], [9.0, 9.0]]), [], "at least one element"),
        (np.array([5.0, 5.0, 9.0]), ["Pt"], r"\(N, 2\)"),
        (np.array([[5.0, 5.0], [90.0, 9.0]]), ["Pt"], "outside"),
        (np.array([[5.0, np.nan], [9.0, 9.0]]), ["Pt"], "finite"),
    ],
)
def test_bad_coordinates_and_elements(xy, elements, match):
    img = np.random.default_rng(0).random((40, 40))
    with pytest.raises(DetectionInputError, match=match):
        label_elements(img, xy, elements)


def test_bad_crop_size():
    img = np.random.default_rng(0).random((40, 40))
    with pytest.raises(DetectionInputError, match="odd"):
        label_elements(img, np.array([[5.0, 5.0], [9.0, 9.0]]), ["Pt"], crop_px=20)


def test_bad_images():
    xy = np.array([[5.0, 5.0], [9.0, 9.0]])
    with pytest.raises(DetectionInputError, match="constant"):
        label_elements(np.ones((40, 40)), xy, ["Pt"])
    bad = np.random.default_rng(0).random((40, 40))
    bad[3, 3] = np.inf
    with pytest.raises(DetectionInputError, match="finite"):
        label_elements(bad, xy, ["Pt"])
    with pytest.raises(DetectionInputError, match="2-D"):
        label_elements(np.zeros((4, 40, 40)), xy, ["Pt"])


def test_labels_from_refined_intensities_ni_pd_pt():
    """Refined integrated intensities (detection.refine) label Ni/Pd/Pt by Z: near-perfect with weak texture
    and no atom-to-atom spread, and next to the VAE on calibrated Ni/Pt images (0.85 vs 0.90 here)."""
    from sacmap.detection.elements import label_by_intensity
    from sacmap.detection.refine import refine

    img, truth, _ = simulate_sample(1.0, seed=3, elements={"Ni": 1, "Pd": 1, "Pt": 1}, texture_sd=0.01,
                                    vacuum_texture_sd=0.0, thickness_sd=0.05, peak_sd=0.0, dose_per_nm2=1e6)
    xy = truth[["x_px", "y_px"]].to_numpy()
    r = refine(img, xy, pixel_size_nm=0.0293)
    lab = label_by_intensity(r.intensity, ["Pt", "Ni", "Pd"])
    assert lab["elements"] == ["Ni", "Pd", "Pt"]
    assert np.mean(lab["labels"] == truth.element.to_numpy()) > 0.97
    assert lab["exponent"] == pytest.approx(1.7, abs=0.15)  # the HAADF Z law comes back from the means
    img, truth, _ = simulate_sample(1.0, seed=1, elements={"Pt": 0.5, "Ni": 0.5})
    xy = truth[["x_px", "y_px"]].to_numpy()
    r = refine(img, xy, pixel_size_nm=0.0293)
    res = label_elements(img, xy, ["Ni", "Pt"], seed=0, intensities=r.intensity.to_numpy())
    y = truth.element.to_numpy()
    assert np.mean(res["labels_refined"] == y) >= 0.8 and np.mean(res["labels"] == y) >= 0.85
    assert res["counts_refined"]["Ni"] + res["counts_refined"]["Pt"] == len(y)
    with pytest.raises(DetectionInputError, match="intensities"):
        label_elements(img, xy, ["Ni", "Pt"], intensities=[1.0, 2.0])
    with pytest.raises(DetectionInputError, match="repeated"):
        label_by_intensity([1.0, 2.0], ["Pt", "Pt"])
    single = label_by_intensity([1.0, np.nan, 3.0], ["Pt"])
    assert list(single["labels"]) == ["Pt"] * 3
