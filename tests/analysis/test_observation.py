"""One observation path: the same detection record gives the same descriptors through ``sacmap stats``, the main
job's statistics step, ``sacmap sample fit`` and the web app; and the window rule (support mask, else image
rectangle, else bounding box; explicit mask/region; atoms outside the window excluded and counted)."""

from __future__ import annotations

import json
import shutil
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
from PIL import Image

from sacmap.analysis.errors import AnalysisInputError
from sacmap.analysis.spatial.describe import describe
from sacmap.analysis.spatial.observation import Observation
from sacmap.analysis.spatial.window import Region
from sacmap.core.records import SUPPORT_SUFFIX, detection_paths
from sacmap.workflows import cli

DETECTED = Path(__file__).resolve().parents[2] / "inputs" / "stem" / "detected"
RECORDS = sorted(DETECTED.glob("*.csv"))
KEYS = ("n_atoms", "support_area_nm2", "density_nm2", "nnd_mean_nm", "nnd_sd_nm", "nnd_mean_hanisch_nm",
        "clark_evans", "z", "multimer_share", "nnd_mean_random_same_window_nm", "multimer_share_random_same_window")

pytestmark = pytest.mark.skipif(not RECORDS, reason="bundled detections (inputs/stem/detected) not available")


class _Detection:
    """An in-memory detection as the app holds it (``atoms``, ``support``, ``pixel_size_nm``, ``summary()``)."""

    def __init__(self, csv: Path):
        self.atoms = pd.read_csv(csv)
        self._summary = json.loads(csv.with_suffix(".json").read_text())
        self.pixel_size_nm = self._summary["pixel_size_nm"]
        self.support = np.asarray(Image.open(csv.with_name(csv.stem + SUPPORT_SUFFIX))) > 0

    def summary(self) -> dict:
        return dict(self._summary)


def _via_stats(csv: Path, tmp: Path) -> dict:
    assert cli.main(["stats", str(csv), "-o", str(tmp / "stats"), "--no-plots"]) == 0
    return json.loads((tmp / "stats" / "descriptors.json").read_text())


def _via_job(csv: Path, tmp: Path) -> dict:
    from sacmap.workflows.job import steps_images

    settings = {"detection": {"weights": None, "pixel_size_nm": None, "threshold": 0.8, "elements": None,
                              "device": "cpu"},
                "statistics": {"multimer_nm": 0.22}, "images": [csv]}
    det = steps_images.detect(settings, tmp / "job", progress=False)
    res = steps_images.statistics(det, settings, tmp / "job")
    return json.loads(Path(res["descriptors_json"]).read_text())[csv.stem]


def _via_app(csv: Path) -> dict:
    from sacmap.workflows.app import pipeline

    desc, _ = pipeline.statistics(pipeline.observation(_Detection(csv)), pipeline.AppSettings())
    return desc


@pytest.mark.parametrize("csv", RECORDS, ids=lambda p: p.stem[:3])
def test_same_descriptors_through_stats_job_fit_and_app(csv, tmp_path):
    stats = _via_stats(csv, tmp_path)
    job = _via_job(csv, tmp_path)
    app = _via_app(csv)
    record = json.loads(csv.with_suffix(".json").read_text())
    for key in KEYS:
        assert job[key] == stats[key], key
        assert app[key] == pytest.approx(stats[key], rel=1e-12, abs=1e-15), key
    # over the detector's support: the record's own support area and density
    assert stats["region"]["kind"] == "mask" and stats["region"]["source"] == "support mask"
    assert stats["support_area_nm2"] == pytest.approx(record["support_area_nm2"])
    assert stats["density_nm2"] == pytest.approx(record["density_nm2"])
    assert stats["n_atoms"] + stats["n_off_window"] == stats["n_detected"] == record["n_atoms"]

    # sacmap sample fit reads the same observation (a one-point grid keeps the fit cheap)
    out = tmp_path / "fit"
    assert cli.main(["sample", "fit", "--observed", str(csv), "--sigma-factors", "1", "--runs-per-point", "1",
                     "--n-boot", "0", "-o", str(out)]) == 0
    fit = json.loads((out / "fit.json").read_text())
    assert fit["n_observed"] == stats["n_atoms"] and fit["density_nm2"] == stats["density_nm2"]
    assert fit["nnd_mean_observed_nm"] == pytest.approx(stats["nnd_mean_nm"], rel=1e-12)
    assert fit["observation"]["window"] == {**stats["region"]}
    fit_obs = Observation.from_detection(csv)
    again, _ = describe(fit_obs, gr_rmax_nm=None)
    for key in KEYS:
        assert again[key] == stats[key], key


def test_window_is_the_support_mask_then_the_image_then_the_points(tmp_path):
    csv = next(p for p in RECORDS if p.stem.startswith("053"))
    record = json.loads(csv.with_suffix(".json").read_text())
    px = record["pixel_size_nm"]
    obs = Observation.from_detection(csv)
    assert obs.window_source == "support mask" and obs.window.is_mask
    assert obs.window.mask.shape == tuple(record["shape"])
    assert obs.window.area_nm2 == pytest.approx(record["support_area_nm2"]) and not obs.warnings

    # the record without its mask: the image rectangle (pixel centres at j·p), and a note that it is not the support
    src, dst = detection_paths(csv.parent, csv.stem), detection_paths(tmp_path, csv.stem)
    shutil.copy(src["csv"], dst["csv"])
    shutil.copy(src["json"], dst["json"])
    rect = Observation.from_detection(dst["csv"])
    assert rect.window_source == "image rectangle" and not rect.window.is_mask
    assert (rect.window.x0, rect.window.y0) == (-0.5 * px, -0.5 * px)
    assert rect.window.area_nm2 == pytest.approx(512 * 512 * px**2)
    assert "no support mask" in rect.warnings[0] and rect.n_atoms == obs.n_atoms

    # bare coordinates, no metadata: the points' bounding box (as Region.coerce does)
    bare = tmp_path / "bare.csv"
    pd.read_csv(csv)[["x_nm", "y_nm"]].to_csv(bare, index=False)
    box = Observation.from_detection(bare)
    xy = pd.read_csv(bare).to_numpy(float)
    assert box.window_source == "bounding box" and box.pixel_size_nm is None
    assert box.window == Region.coerce(None, xy) and box.n_off_window == 0 and box.n_atoms == len(xy)

    # explicit overrides: a rectangle, or a mask file with the pixel size
    sub = Observation.from_detection(csv, region="0,0,5,5")
    assert sub.window_source == "region" and sub.window.area_nm2 == pytest.approx(25.0)
    assert sub.n_atoms + sub.n_off_window == sub.n_detected and sub.n_off_window > 0
    npy = tmp_path / "left.npy"
    left = np.zeros(tuple(record["shape"]), bool)
    left[:, :256] = True
    np.save(npy, left)
    half = Observation.from_detection(csv, mask=npy)
    assert half.window_source == "mask" and half.window.area_nm2 == pytest.approx(512 * 256 * px**2)


def test_atoms_outside_the_window_are_excluded_and_counted():
    mask = np.zeros((100, 100), bool)
    mask[:, 50:] = True  # right half of 10 × 10 nm at 0.1 nm/px
    table = pd.DataFrame({"x_nm": [1.0, 2.0, 6.0, 7.0, 8.0], "y_nm": [5.0, 5.0, 5.0, 6.0, 2.0], "element": ""})
    summary = {"image": "synthetic.tif", "pixel_size_nm": 0.1, "shape": [100, 100]}
    obs = Observation.from_detection((table, summary, mask))
    assert obs.window_source == "support mask" and obs.source == "synthetic.tif"
    assert (obs.n_atoms, obs.n_detected, obs.n_off_window) == (3, 5, 2)
    assert obs.rows.tolist() == [2, 3, 4] and obs.elements is None
    assert "2 of 5 atom(s) lie outside the window" in obs.warnings[0]
    desc, arrays = describe(obs, random_runs=3, gr_rmax_nm=1.0, gr_dr_nm=0.1)
    assert desc["n_atoms"] == 3 and desc["n_off_window"] == 2 and desc["density_nm2"] == pytest.approx(3 / 50.0)
    assert desc["random_reference"] == {"sampler": "random", "runs": 3, "seed": 0, "window": "support mask"}
    assert len(arrays["random_nnd_nm"]) == 9 and obs.window.contains(np.array([[6.0, 5.0]])).all()
    assert len(arrays["gr"]) == 10
    # pixel columns only: converted with the record's pixel size
    px_table = pd.DataFrame({"x_px": table["x_nm"] / 0.1, "y_px": table["y_nm"] / 0.1})
    assert np.allclose(Observation.from_detection((px_table, summary, mask)).xy_nm, obs.xy_nm)
    # too few atoms left in the window: one line that says why
    with pytest.raises(AnalysisInputError, match=r"only 1 atom\(s\) in the window \(4 outside the region\)"):
        describe(Observation.from_detection((table.iloc[[0, 1, 2, 0, 1]], summary, mask)))
    with pytest.raises(AnalysisInputError, match="does not match"):
        Observation.from_detection((table, {**summary, "shape": [50, 100]}, mask))


def test_dft_fit_takes_an_observation():
    from sacmap.analysis.spatial.samplers.dft import DFTBiasedSampler

    obs = Observation.from_detection(RECORDS[0])
    est = DFTBiasedSampler(grid_nm=0.05, runs_per_point=1, n_boot=0, sigma_factors=(1.0,)).fit(obs)
    assert est.fit_result_["n_observed"] == obs.n_atoms
    assert est.fit_result_["density_nm2"] == pytest.approx(obs.density_nm2)
    with pytest.raises(AnalysisInputError, match="fitting needs at least 3"):
        DFTBiasedSampler().fit(Observation.from_points([[1.0, 1.0], [2.0, 2.0]], (5, 5)))
