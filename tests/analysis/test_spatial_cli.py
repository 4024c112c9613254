"""``sacmap stats`` and ``sacmap sample``: outputs on disk, input validation with one-line errors (exit 2)."""

from __future__ import annotations

import json

import numpy as np
import pandas as pd
import pytest

from sacmap.analysis.spatial.samplers.point import RandomSampler
from sacmap.workflows import cli

POT = pd.DataFrame({"site_kinds": ["4N-4N"] * 6, "separation_A": [2.5, 3.5, 5.0, 6.5, 8.0, 12.0],
                    "energy_eV": [0.5, 0.2, -0.2, -0.1, 0.05, 0.0]})


def _detection(tmp_path, n=150, pixel=0.02, support=80.0):
    """A detection-style CSV (pixel and nm columns, elements) with its JSON (image 500 x 500 px = 10 x 10 nm)."""
    xy = RandomSampler().sample(n, (9.98, 9.98), seed=1)[0]
    el = np.where(np.arange(n) % 3 == 0, "Pd", "Ni")
    df = pd.DataFrame({"x_px": xy[:, 0] / pixel, "y_px": xy[:, 1] / pixel, "x_nm": xy[:, 0], "y_nm": xy[:, 1],
                       "score": 0.9, "component_size": 40, "element": el})
    path = tmp_path / "img.csv"
    df.to_csv(path, index=False)
    (tmp_path / "img.json").write_text(json.dumps({"image": "img.tif", "pixel_size_nm": pixel, "shape": [500, 500],
                                                   "support_area_nm2": support, "n_atoms": n}))
    return path, df


def test_stats_writes_descriptors_and_plots(tmp_path, capsys):
    path, df = _detection(tmp_path)
    out = tmp_path / "out"
    assert cli.main(["stats", str(path), "-o", str(out), "--random-runs", "5"]) == 0
    for name in ("descriptors.json", "descriptors.csv", "nnd.csv", "gr.csv", "nnd_histogram.png",
                 "nuclearity.png", "gr.png"):
        assert (out / name).stat().st_size > 0
    d = json.loads((out / "descriptors.json").read_text())
    # no support mask beside the record: the window is the image rectangle, and the output says so
    assert d["support_area_nm2"] == pytest.approx(100.0) and d["density_nm2"] == pytest.approx(1.5)
    assert d["region"]["source"] == "image rectangle" and "no support mask" in d["warnings"][0]
    assert set(d["nnd_by_pair"]) == {"Ni->Ni", "Ni->Pd", "Pd->Ni", "Pd->Pd"}
    assert sum(int(k) * v for k, v in d["nuclearity"].items()) == 150
    row = pd.read_csv(out / "descriptors.csv")
    assert row.loc[0, "n_atoms"] == 150 and "nnd_Ni_Pd_mean_nm" in row
    printed = capsys.readouterr().out
    assert "Clark-Evans" in printed and "no support mask" in printed
    # with the detector's support mask (left 400 of 500 px columns = 80 nm²): density over the support, atoms
    # over vacuum excluded and counted
    from PIL import Image

    mask = np.zeros((500, 500), np.uint8)
    mask[:, :400] = 255
    Image.fromarray(mask).save(tmp_path / "img_support.png")
    assert cli.main(["stats", str(path), "-o", str(tmp_path / "o1"), "--random-runs", "5", "--no-plots"]) == 0
    d1 = json.loads((tmp_path / "o1" / "descriptors.json").read_text())
    n_in = int(np.sum(np.rint(df["x_nm"].to_numpy() / 0.02) < 400))
    assert d1["region"] == {**d1["region"], "kind": "mask", "source": "support mask"}
    assert d1["support_area_nm2"] == pytest.approx(80.0) and d1["density_nm2"] == pytest.approx(n_in / 80.0)
    assert d1["n_atoms"] == n_in and d1["n_off_window"] == 150 - n_in > 0 and d1["n_detected"] == 150
    assert "outside the window" in capsys.readouterr().out
    (tmp_path / "img_support.png").unlink()
    # pixel columns only: the pixel size comes from the JSON, or --pixel-size
    df[["x_px", "y_px"]].to_csv(tmp_path / "img.csv", index=False)
    assert cli.main(["stats", str(path), "-o", str(tmp_path / "o2"), "--random-runs", "0", "--no-plots"]) == 0
    d2 = json.loads((tmp_path / "o2" / "descriptors.json").read_text())
    assert d2["nnd_mean_nm"] == pytest.approx(d["nnd_mean_nm"])


@pytest.mark.parametrize(("content", "extra", "match"), [
    ("", [], "empty file"),
    ("a,b\n1,2\n", [], "missing coordinate columns"),
    ("x_nm,y_nm\n1,2\n3,\n", [], "row 2 is empty, NaN"),
    ("x_nm,y_nm\n1,2\n", [], "only 1 atom"),
    ("x_px,y_px\n1,2\n3,4\n", [], "give the pixel size"),
    ("x_px,y_px\n1,2\n3,4\n", ["--pixel-size", "-0.1"], "must be positive"),
    ("x_nm,y_nm\n1,2\n30,4\n", ["--region", "10,10"], "outside the region"),
    ("x_nm,y_nm\n1,2\n3,4\n", ["--region", "10,abc"], "--region"),
])
def test_stats_bad_inputs_exit_2_with_one_line(tmp_path, capsys, content, extra, match):
    path = tmp_path / "coords.csv"
    path.write_text(content)
    assert cli.main(["stats", str(path), "-o", str(tmp_path / "o"), *extra]) == 2
    err = capsys.readouterr().err.strip()
    assert match in err and "\n" not in err
    if match not in ("must be positive", "--region"):  # option errors name the option instead
        assert "coords.csv" in err  # the message names the file


def test_sample_commands_write_coordinates_and_statistics(tmp_path, capsys):
    out = tmp_path / "rep"
    assert cli.main(["sample", "repulsive", "--density", "4", "--runs", "3", "-o", str(out)]) == 0
    coords = pd.read_csv(out / "coords.csv")
    assert len(coords) == 1200 and set(coords["run"]) == {0, 1, 2}
    summary = json.loads((out / "summary.json").read_text())
    assert summary["mean"]["clark_evans"] > 1.1 and summary["n_points"] == 400
    assert len(pd.read_csv(out / "stats.csv")) == 3
    assert cli.main(["sample", "random", "--species", "Ni:1,Pd:0.5", "--runs", "2", "-o", str(tmp_path / "ms")]) == 0
    ms = pd.read_csv(tmp_path / "ms" / "coords.csv")
    assert (ms["element"] == "Pd").sum() == 100
    assert cli.main(["sample", "attractive", "--n-points", "200", "--runs", "2", "-o", str(tmp_path / "a")]) == 0
    pot = tmp_path / "pot.csv"
    POT.to_csv(pot, index=False)
    assert cli.main(["sample", "dft", "--density", "1", "--region", "6,6", "--runs", "2", "--potential", str(pot),
                     "--kT-eV", "0.1", "--grid-nm", "0.05", "-o", str(tmp_path / "d")]) == 0
    assert len(pd.read_csv(tmp_path / "d" / "coords.csv")) == 72
    # bad inputs
    assert cli.main(["sample", "random", "--density", "-1"]) == 2
    assert cli.main(["sample", "repulsive", "--n-points", "5", "--runs", "0"]) == 2
    assert cli.main(["sample", "random", "--species", "Ni:x"]) == 2
    assert cli.main(["sample", "dft", "--density", "1", "--kT-eV", "0.1"]) == 2  # kT without a potential
    assert "potential" in capsys.readouterr().err


def test_sample_fit_writes_parameters(tmp_path):
    from sacmap.analysis.spatial.samplers.dft import DFTBiasedSampler

    xy = DFTBiasedSampler(POT, sigma_nm=0.35, kT_eV=0.1, grid_nm=0.05).sample(72, (6, 6), seed=2)[0]
    obs = tmp_path / "obs.csv"
    pd.DataFrame({"x_nm": xy[:, 0], "y_nm": xy[:, 1]}).to_csv(obs, index=False)
    pot = tmp_path / "pot.csv"
    POT.to_csv(pot, index=False)
    out = tmp_path / "fit"
    assert cli.main(["sample", "fit", "--observed", str(obs), "--potential", str(pot), "--region", "6,6",
                     "--grid-nm", "0.05", "--runs-per-point", "2", "--n-boot", "20", "--sigma-factors", "1,1.3",
                     "--beta-grid", "0,10", "-o", str(out)]) == 0
    fit = json.loads((out / "fit.json").read_text())
    for key in ("sigma_nm", "sigma_nm_ci95", "kT_eV", "ks_pvalue", "wasserstein_nm", "grid"):
        assert key in fit
    # the fitted parameters feed the dft sampler
    assert cli.main(["sample", "dft", "--n-points", "50", "--region", "6,6", "--runs", "1", "--potential", str(pot),
                     "--params", str(out / "fit.json"), "--grid-nm", "0.05", "-o", str(tmp_path / "d2")]) == 0
    bad = tmp_path / "bad.csv"
    bad.write_text("site_kinds,separation_A\n4N-4N,3\n")
    assert cli.main(["sample", "fit", "--observed", str(obs), "--potential", str(bad), "--region", "6,6"]) == 2


def test_stats_with_support_mask(tmp_path):
    mask = np.zeros((200, 200), bool)
    mask[:, 100:] = True  # right half is support: 2 x 4 nm at 0.02 nm/px
    np.save(tmp_path / "mask.npy", mask)
    xy = RandomSampler().sample(40, (2.0, 4.0), seed=3)[0] + [2.0, 0.0]
    pd.DataFrame({"x_nm": xy[:, 0], "y_nm": xy[:, 1]}).to_csv(tmp_path / "c.csv", index=False)
    out = tmp_path / "o"
    assert cli.main(["stats", str(tmp_path / "c.csv"), "--mask", str(tmp_path / "mask.npy"), "--pixel-size", "0.02",
                     "-o", str(out), "--no-plots", "--random-runs", "3"]) == 0
    d = json.loads((out / "descriptors.json").read_text())
    assert d["support_area_nm2"] == pytest.approx(8.0) and d["region"]["kind"] == "mask"
    assert d["density_nm2"] == pytest.approx(5.0)
    # without a pixel size the mask cannot be placed
    assert cli.main(["stats", str(tmp_path / "c.csv"), "--mask", str(tmp_path / "mask.npy"), "-o", str(out)]) == 2


def test_stats_on_expert_labels_from_the_paper_dataset(shared_dir, tmp_path):
    """Real ImageJ Results table (CRLF, unnamed index column, X/Y in pixels) of a Pt1/NC image, 512 px at
    0.029296875 nm/px (15 nm field of view)."""
    labels = shared_dir / "data" / "ptnc-stem" / "labels" / "021_Results.csv"
    if not labels.is_file():
        pytest.skip("ptnc-stem labels not available")
    raw = pd.read_csv(labels)
    p = 0.029296875
    out = tmp_path / "o"
    assert cli.main(["stats", str(labels), "--pixel-size", str(p), f"--region={-p / 2},{-p / 2},{511.5 * p},{511.5 * p}", "-o", str(out), "--no-plots", "--random-runs", "5"]) == 0
    d = json.loads((out / "descriptors.json").read_text())
    assert d["n_atoms"] == len(raw) == 33
    assert d["support_area_nm2"] == pytest.approx(15.0**2)
    assert d["density_nm2"] == pytest.approx(33 / 225.0)
    per_atom = pd.read_csv(out / "nnd.csv")
    assert per_atom["x_nm"].to_numpy() == pytest.approx(raw["X"].to_numpy() * p)
    # low density (0.15 atoms/nm²): NND ≈ 1 nm, no multimers at 0.22 nm
    assert 0.7 < d["nnd_mean_nm"] < 1.3 and d["multimer_share"] == 0.0


def test_stats_envelope_tests_are_written_with_what_was_tested(tmp_path, capsys):
    path, _ = _detection(tmp_path, n=80)
    out = tmp_path / "env"
    assert cli.main(["stats", str(path), "-o", str(out), "--random-runs", "0", "--nsim", "39",
                     "--null", "csr,hardcore", "--function", "G"]) == 0
    rec = json.loads((out / "envelopes.json").read_text())
    tests = {t["null_model"]: t for t in rec["tests"]}
    # two species (Ni, Pd) in the record: random labelling is added
    assert set(tests) == {"csr", "hardcore", "random labelling"}
    assert tests["csr"]["nsim"] == 39 and tests["csr"]["correction"] == "km" and tests["csr"]["function"] == "G"
    assert tests["random labelling"]["function"] == "Lcross" and tests["csr"]["window"]["kind"] == "rectangle"
    assert 0 < tests["csr"]["p_rank_erl"] <= 1 and (out / "envelopes.png").stat().st_size > 0
    table = pd.read_csv(out / "envelope_csr.csv")
    assert list(table.columns[:5]) == ["r_nm", "observed", "central", "lo", "hi"]
    assert "global rank envelope p" in capsys.readouterr().out
    assert cli.main(["stats", str(path), "-o", str(out), "--nsim", "5"]) == 2
    assert cli.main(["stats", str(path), "-o", str(out), "--null", "clustered"]) == 2
    assert cli.main(["stats", str(path), "-o", str(out), "--null", "dft"]) == 2


def test_stats_detector_aware_needs_the_image(tmp_path, capsys):
    path, _ = _detection(tmp_path, n=40)  # the JSON names img.tif, which does not exist
    assert cli.main(["stats", str(path), "-o", str(tmp_path / "o"), "--nsim", "19", "--null", "csr",
                     "--random-runs", "0", "--detector-aware"]) == 2
    assert "--image" in capsys.readouterr().err


def test_detector_aware_null_detects_with_the_records_model():
    # the null must run the detector that made the record: its JSON "model" block names it
    from sacmap.workflows.cli.stats import _record_model

    assert _record_model({"kind": "combined", "file": "detector.pt+heatmap.pt"}) == "combined"
    assert _record_model({"kind": "cnn", "file": "detector.pt"}) == "paper"
    assert _record_model({"kind": "heatmap", "file": "heatmap.pt"}) == "heatmap"
    assert _record_model({"kind": "heatmap", "file": "mine.pt"}) is None and _record_model(None) is None
