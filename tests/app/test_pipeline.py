"""The app's adapter to the science (workflows.app.pipeline) on real images: same numbers as calling detection and
analysis directly, the pixel-size rules, bad images, and the figures."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest
import tifffile

from sacmap.analysis.spatial.describe import RANDOM_RUNS
from sacmap.analysis.spatial.observation import Observation
from sacmap.analysis.spatial.window import Region
from sacmap.core.records import DETECTION_COLUMNS
from sacmap.detection.errors import DetectionInputError
from sacmap.workflows.app import figures, pipeline

REPO = Path(__file__).resolve().parents[2]


@pytest.fixture(scope="module")
def stem_image(request) -> Path:
    """A real, calibrated 512×512 Pt1/NC image: bundled in inputs/stem/, else from the shared data."""
    images = sorted((REPO / "inputs" / "stem").glob("*.tif"))
    if images:
        return images[0]
    shared = request.getfixturevalue("shared_dir") / "data" / "ptnc-stem" / "images"
    return sorted(shared.glob("*.tif"))[0]


@pytest.fixture(scope="module")
def processed(stem_image, tmp_path_factory):
    out = tmp_path_factory.mktemp("out")
    stages = []
    res = pipeline.process_image(stem_image, "img", out, pipeline.AppSettings(),
                                 progress=lambda s, f: stages.append((s, f)))
    return res, out, stages


def test_same_numbers_as_detection_and_analysis(stem_image, processed):
    import pandas as pd

    from sacmap.analysis.spatial.descriptors import descriptors
    from sacmap.detection.pipeline import detect_image

    res, out, stages = processed
    direct = detect_image(stem_image)
    atoms = direct.atoms
    table = pd.read_csv(out / "img.csv")
    assert list(table.columns) == list(DETECTION_COLUMNS)
    assert len(table) == len(atoms) == res["n_atoms"] > 10
    np.testing.assert_allclose(table[["x_px", "y_px"]].to_numpy(), atoms[["x_px", "y_px"]].to_numpy(), atol=1e-4)
    np.testing.assert_allclose(table["x_nm"], table["x_px"] * res["pixel_size_nm"], atol=2e-4)  # CSV: 4 decimals

    px = res["pixel_size_nm"]
    assert px == pytest.approx(0.029296875) and res["pixel_size_source"] == "file"
    region = Region.from_mask(direct.support, px)
    xy = atoms[["x_nm", "y_nm"]].to_numpy(float)
    on_support = region.contains(xy)
    ref = descriptors(xy[on_support], region, multimer_nm=0.22)
    d = res["descriptors"]
    for key in ("density_nm2", "nnd_mean_nm", "nnd_sd_nm", "multimer_share", "support_area_nm2", "clark_evans"):
        assert d[key] == pytest.approx(ref[key], rel=1e-9), key
    assert {int(k): v for k, v in d["nuclearity"].items()} == ref["nuclearity"]
    assert res["support_area_nm2"] == pytest.approx(direct.support_area_nm2)
    assert sum(int(k) * v for k, v in d["nuclearity"].items()) == d["n_atoms"] == int(on_support.sum())
    assert d["n_detected"] == res["n_atoms"] and d["n_off_window"] == res["n_atoms"] - d["n_atoms"]
    record = json.loads((out / "img.json").read_text())  # written by detection's own writer
    assert record["n_atoms_on_support"] == d["n_atoms"]
    assert record["density_nm2"] == pytest.approx(d["density_nm2"], rel=1e-9)

    saved = json.loads((out / "img_descriptors.json").read_text())
    assert saved["density_nm2"] == pytest.approx(d["density_nm2"])
    assert record["n_atoms"] == res["n_atoms"] and record["pixel_size_nm"] == pytest.approx(px)
    assert record["shape"] == [512, 512] and record["threshold"] == 0.8
    for name in ("img_overlay.png", "img_nnd.png"):
        assert (out / name).read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
    fractions = [f for _, f in stages]
    assert fractions == sorted(fractions) and fractions[-1] == 1.0


def test_global_envelope_tests_are_in_the_result(processed):
    """G and L against CSR, 199 simulations, seed 0: well-formed p-values and envelopes, the same numbers as
    calling the analysis directly on the written detection, drawn as a figure and stated in a caption."""
    from sacmap.analysis.spatial.envelopes import envelope_test

    res, out, stages = processed
    envs = res["envelopes"]
    assert [e["function"] for e in envs] == ["G", "L"] and res["envelope_note"] == ""
    obs = Observation.from_detection(out / "img.csv")
    for e in envs:
        assert e["nsim"] == 199 and e["null_model"] == "csr" and e["seed"] == 0
        assert e["n_points"] == res["descriptors"]["n_atoms"] == obs.n_atoms
        for key in ("p_rank_erl", "p_mad", "p_dclf"):
            assert 0 < e[key] <= 1, key
            assert round(e[key] * 200, 6) == int(round(e[key] * 200))  # (1 + #{T_sim ≥ T_obs}) / 200
        assert e["window"]["kind"] == "mask"
        assert e["window"]["area_nm2"] == pytest.approx(res["support_area_nm2"], rel=1e-6)
        assert "199 simulations" in e["caption"] and f"rank p = {e['p_rank_erl']:.3g}" in e["caption"]
        direct = envelope_test(obs.xy_nm, obs.window, null="csr", function=e["function"], nsim=199, seed=0)
        # the CSV holds nm to 4 decimals: recomputed from it, a tie between the observed and a simulated statistic
        # may fall the other way, so at most one rank step (1/200) apart; the same simulations otherwise
        got = np.array([e["p_rank_erl"], e["p_mad"], e["p_dclf"]])
        again = np.array([direct.p_rank, direct.p_mad, direct.p_dclf])
        assert np.all(np.abs(got - again) <= 1 / 200 + 1e-12), (got, again)
        assert e["correction"] == direct.correction
    curves = json.loads((out / res["files"]["envelopes"]).read_text())
    for e, c in zip(envs, curves):
        lo, hi, obs_curve = (np.asarray(c[k], float) for k in ("lo", "hi", "observed"))
        assert len(c["r_nm"]) == len(lo) == len(obs_curve) > 10
        assert np.all(lo <= hi)
        inside = bool(np.all((obs_curve >= lo) & (obs_curve <= hi)))
        assert inside == (e["leaves_envelope"] == "inside")
    assert (out / res["files"]["envelopes_png"]).read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
    assert any(s.startswith("global envelope tests") for s, _ in stages)


def test_no_envelope_test_below_three_atoms():
    mask = np.ones((20, 20), bool)
    obs = Observation.from_points(np.array([[0.5, 0.5], [1.5, 1.5]]), Region.from_mask(mask, 0.1))
    assert pipeline.envelope_tests(obs) == []


def test_multimer_distance_is_passed_through(processed):
    import pandas as pd
    from PIL import Image

    res, out, _ = processed
    table = pd.read_csv(out / "img.csv")
    support = np.asarray(Image.open(out / "img_support.png")) > 0  # written by detection, white = support
    xy = table[["x_nm", "y_nm"]].to_numpy(float)
    px = res["pixel_size_nm"]
    obs = Observation.from_points(xy, Region.from_mask(support, px))
    narrow, _ = pipeline.statistics(obs, pipeline.AppSettings())
    wide, _ = pipeline.statistics(obs, pipeline.AppSettings(multimer_nm=0.6))
    assert narrow["multimer_share"] == pytest.approx(res["descriptors"]["multimer_share"], abs=1e-4)
    assert wide["multimer_nm"] == 0.6 and wide["multimer_share"] >= narrow["multimer_share"]
    assert wide["nnd_mean_nm"] == pytest.approx(narrow["nnd_mean_nm"])
    assert support.shape == tuple(res["shape"])


def _png_copy(src: Path, dst: Path) -> Path:
    from PIL import Image

    arr = tifffile.imread(src).astype(float)
    arr = (255 * (arr - arr.min()) / (arr.max() - arr.min())).astype(np.uint8)
    Image.fromarray(arr).save(dst)
    return dst


def test_pixel_size_rules(stem_image, tmp_path):
    png = _png_copy(stem_image, tmp_path / "plain.png")
    with pytest.raises(pipeline.PixelSizeMissing, match="no pixel size"):
        pipeline.read_image(png, pipeline.AppSettings())
    _, px, _, src = pipeline.read_image(png, pipeline.AppSettings(pixel_size_nm=0.05))
    assert (px, src) == (0.05, "user")
    _, px, _, src = pipeline.read_image(png, pipeline.AppSettings(pixel_size_nm=0.05), pixel_size_nm=0.04)
    assert (px, src) == (0.04, "user")
    # a calibrated file keeps its own pixel size unless the override is ticked
    _, px, _, src = pipeline.read_image(stem_image, pipeline.AppSettings(pixel_size_nm=0.05))
    assert px == pytest.approx(0.029296875) and src == "file"
    _, px, _, src = pipeline.read_image(stem_image, pipeline.AppSettings(pixel_size_nm=0.05,
                                                                         override_pixel_size=True))
    assert (px, src) == (0.05, "user")


def test_bad_images_raise_input_errors(tmp_path):
    text = tmp_path / "notes.tif"
    text.write_text("not an image")
    nan = tmp_path / "nan.tif"
    arr = np.random.default_rng(1).random((64, 64)).astype(np.float32)
    arr[3, 3] = np.nan
    tifffile.imwrite(nan, arr)
    flat = tmp_path / "flat.png"
    from PIL import Image

    Image.fromarray(np.zeros((64, 64), np.uint8)).save(flat)
    for path, needle in ((text, "TIFF"), (nan, "NaN"), (flat, "constant")):
        with pytest.raises(DetectionInputError, match=needle) as info:
            pipeline.read_image(path, pipeline.AppSettings(pixel_size_nm=0.03))
        assert not isinstance(info.value, pipeline.PixelSizeMissing)
        assert str(path) in str(info.value)


def test_multimer_bonds_and_figures():
    xy = np.array([[0.0, 0.0], [0.2, 0.0], [0.1, 0.17], [2.0, 2.0]])  # a trimer of ~0.2 nm sides + one atom
    bonds = pipeline.multimer_bonds(xy, 0.22)
    assert sorted(map(tuple, bonds.tolist())) == [(0, 1), (0, 2), (1, 2)]
    assert len(pipeline.multimer_bonds(xy, 0.1)) == 0
    img = np.random.default_rng(0).random((100, 120))
    png = figures.overlay_png(img, xy / 0.03, 0.03, elements=["Ni", "Pd", "Ni", "Pd"], element_order=["Ni", "Pd"],
                              bonds=bonds, support_mask=img > 0.1)
    import io

    from PIL import Image

    im = Image.open(io.BytesIO(png))
    assert im.size[0] / im.size[1] == pytest.approx(120 / 100, rel=0.02)
    hist = figures.nnd_histogram_png(np.array([0.3, 0.5, 0.7]), {"density_nm2": 1.0, "multimer_nm": 0.22})
    assert hist[:4] == b"\x89PNG"
    empty = figures.nnd_histogram_png(None, {"n_atoms": 1, "note": "need 2 atoms"})
    assert empty[:4] == b"\x89PNG"


def test_statistics_use_atoms_on_the_support_only():
    mask = np.ones((10, 10), bool)
    mask[:, :5] = False  # left half (x < 0.45 nm) is vacuum; support area 50 px x 0.01 nm^2 = 0.5 nm^2
    xy = np.array([[0.2, 0.2], [0.8, 0.5]])  # nm: the first atom lies over vacuum
    desc, arrays = pipeline.statistics(Observation.from_points(xy, Region.from_mask(mask, 0.1)), pipeline.AppSettings())
    assert desc["n_atoms"] == 1 and desc["n_detected"] == 2 and desc["n_off_window"] == 1
    assert desc["density_nm2"] == pytest.approx(2.0) and "2 atoms" in desc["note"] and arrays == {}
    xy3 = np.array([[0.2, 0.2], [0.6, 0.5], [0.8, 0.5]])
    desc, arrays = pipeline.statistics(Observation.from_points(xy3, Region.from_mask(mask, 0.1)), pipeline.AppSettings())
    assert desc["n_atoms"] == 2 and desc["nnd_mean_nm"] == pytest.approx(0.2)
    assert desc["multimer_share"] == 1.0 and desc["nuclearity"] == {2: 1}
    assert len(arrays["random_nnd_nm"]) == 2 * RANDOM_RUNS


def test_expected_elements_are_passed_to_detection(stem_image, tmp_path):
    crop = tmp_path / "crop.tif"
    raw = tifffile.imread(stem_image)[:256, :256].astype(np.float32)
    tifffile.imwrite(crop, raw, resolution=(1 / 0.0293, 1 / 0.0293), imagej=True, metadata={"unit": "nm"})
    res = pipeline.process_image(crop, "crop", tmp_path, pipeline.AppSettings(elements=("Pt",)))
    assert res["pixel_size_nm"] == pytest.approx(0.0293, rel=1e-4)
    assert res["element_counts"] == {"Pt": res["n_atoms"]}
    table = np.genfromtxt(tmp_path / "crop.csv", delimiter=",", names=True, dtype=None, encoding="utf-8")
    assert set(np.atleast_1d(table["element"]).tolist()) == {"Pt"}
    if res["descriptors"]["n_atoms"] >= 2:
        assert res["descriptors"]["species"] == {"Pt": res["descriptors"]["n_atoms"]}
