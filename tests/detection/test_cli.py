"""CLI round trip on a bundled image: detect → CSV/JSON/PNGs → evaluate against the expert labels."""

from __future__ import annotations

import json

import numpy as np
import pandas as pd
import pytest

from sacmap.core.records import DETECTION_COLUMNS, DETECTION_JSON_KEYS, detection_paths
from sacmap.workflows.cli import main

IMAGE = "053_HAADF_15nm_Sample_PtNC_21Oct20"


@pytest.fixture(scope="module")
def detected(repo_dir, tmp_path_factory):
    """The CLI round trip with the default model, which the bundled inputs/stem/detected records were made with
    (``combined``: the heat-map peaks + the paper CNN's atoms the heat map has no peak near)."""
    out = tmp_path_factory.mktemp("det")
    rc = main(["detect", str(repo_dir / "inputs/stem" / f"{IMAGE}.tif"), "-o", str(out), "--threads", "1"])
    assert rc == 0
    return out


def test_detect_writes_contract_files(detected):
    df = pd.read_csv(detected / f"{IMAGE}.csv", keep_default_na=False)
    assert list(df.columns) == ["x_px", "y_px", "x_nm", "y_nm", "score", "component_size", "element", "intensity",
                                "sigma_px", "pos_err_px"]
    assert tuple(df.columns) == DETECTION_COLUMNS
    # the 2-D Gaussian refinement's columns are filled: widths near the atoms' σ (~0.11 nm = 3.8 px), positive
    # integrated intensities, sub-pixel to pixel position errors
    assert (df["intensity"] > 0).all() and 2.0 < df["sigma_px"].median() < 6.0
    assert 0.05 < df["pos_err_px"].median() < 5.0
    assert 20 < len(df) < 150
    np.testing.assert_allclose(df["x_nm"], df["x_px"] * 15 / 512, rtol=1e-3, atol=1e-3)
    # heat-map peaks (component_size 0) above the combination's height; CNN atoms above the CNN's threshold
    cnn = df["component_size"] > 0
    assert 0 < cnn.sum() < len(df) and (df.loc[cnn, "score"] > 0.8).all()
    assert (df.loc[~cnn, "score"] >= 0.35).all()
    js = json.loads((detected / f"{IMAGE}.json").read_text())
    for key in ("image", "pixel_size_nm", "shape", "support_area_nm2", "threshold", "n_atoms", "settings"):
        assert key in js
    assert js["n_atoms"] == len(df) and js["pixel_size_nm"] == pytest.approx(15 / 512)
    assert 0.2 * 225 < js["support_area_nm2"] < 0.9 * 225  # 053 has a vacuum region
    assert (detected / f"{IMAGE}_overlay.png").stat().st_size > 1000
    assert (detected / f"{IMAGE}_support.png").exists()


def test_detect_record_is_the_core_schema(detected):
    """The files and JSON keys are those of sacmap.core.records, written atomically (no temporary files left)."""
    paths = detection_paths(detected, IMAGE)
    assert sorted(p.name for p in detected.iterdir()) == sorted([p.name for p in paths.values()]
                                                                + ["batch_summary.csv"])
    js = json.loads(paths["json"].read_text())
    assert set(DETECTION_JSON_KEYS) <= set(js)
    assert js["files"] == {k: p.name for k, p in paths.items()}


def test_bundled_detections_are_reproduced(detected, repo_dir):
    """Numbers unchanged: the bundled inputs/stem/detected record of the image is found again (CSV at 4 decimals)."""
    new = pd.read_csv(detected / f"{IMAGE}.csv", keep_default_na=False)
    old = pd.read_csv(repo_dir / "inputs/stem/detected" / f"{IMAGE}.csv", keep_default_na=False)
    assert len(new) == len(old)
    for col in ("x_px", "y_px", "score"):
        np.testing.assert_allclose(new[col], old[col], atol=2e-4)


@pytest.mark.parametrize(
    "args, option",
    [
        (["IMG", "-o", "OUT", "--threshold", "1"], "--threshold"),
        (["IMG", "-o", "OUT", "--threshold", "0"], "--threshold"),
        (["IMG", "-o", "OUT", "--pixel-size", "-0.1"], "--pixel-size"),
        (["IMG", "-o", "OUT", "--batch", "0"], "--batch"),
        (["IMG", "-o", "OUT", "--split-area", "-5"], "--split-area"),
        (["IMG", "-o", "OUT", "--wide-ratio", "-1"], "--wide-ratio"),
        (["IMG", "-o", "OUT", "--threads", "two"], "--threads"),
        (["evaluate", "--pred", "P", "--truth", "T", "--radius-px", "0"], "--radius-px"),
        (["train", "--data", "D", "--split", "S", "-o", "W", "--epochs", "0"], "--epochs"),
        (["train", "--data", "D", "--split", "S", "-o", "W", "--channels", "4,8"], "--channels"),
        (["simulate", "-o", "OUT", "--size", "10"], "--size"),
        (["simulate", "-o", "OUT", "--dimer-fraction", "1.5"], "--dimer-fraction"),
        (["simulate", "-o", "OUT", "--vacuum-fraction", "1"], "--vacuum-fraction"),
        (["simulate", "-o", "OUT", "--dimer-fraction", "0.7", "--trimer-fraction", "0.5"], "--trimer-fraction"),
    ],
)
def test_bad_option_values_are_refused_at_parse_time(tmp_path, capsys, args, option):
    """A bad number is one line naming the option, exit status 2, before any file is read or written."""
    args = [str(tmp_path / a) if a in ("IMG", "OUT", "P", "T", "D", "S", "W") else a for a in args]
    assert main(["detect", *args]) == 2
    err = capsys.readouterr().err.strip()
    assert len(err.splitlines()) == 1 and option in err, err
    assert not any(tmp_path.iterdir())


def test_options_may_come_before_the_images(repo_dir, tmp_path):
    out = tmp_path / "o"
    assert main(["detect", "--no-overlay", "-o", str(out), "--threads", "1",
                 str(repo_dir / "inputs/stem" / f"{IMAGE}.tif")]) == 0
    assert (out / f"{IMAGE}.csv").exists() and not (out / f"{IMAGE}_overlay.png").exists()


def test_evaluate_against_labels(detected, repo_dir, tmp_path, capsys):
    rep = tmp_path / "rep.json"
    rc = main(
        [
            "detect",
            "evaluate",
            "--pred",
            str(detected / f"{IMAGE}.csv"),
            "--truth",
            str(repo_dir / "inputs/stem/labels/053_Results.csv"),
            "-o",
            str(rep),
        ]
    )
    assert rc == 0
    r = json.loads(rep.read_text())["pooled"]
    assert r["n_truth"] == 68
    assert r["f1"] > 0.6  # the published model scores ~0.6 pooled over the validation images
    assert "pooled" in capsys.readouterr().out


def test_bad_input_exits_2(tmp_path, capsys):
    from PIL import Image

    p = tmp_path / "noscale.png"
    Image.fromarray((np.random.default_rng(0).random((64, 64)) * 255).astype(np.uint8)).save(p)
    assert main(["detect", str(p), "-o", str(tmp_path / "o")]) == 2
    assert "noscale.png" in capsys.readouterr().err
    assert main(["detect", "evaluate", "--pred", str(p), "--truth", str(tmp_path)]) == 2


def test_train_and_simulate_cli(repo_dir, tmp_path):
    import shutil

    data = tmp_path / "data"
    (data / "images").mkdir(parents=True)
    (data / "labels").mkdir()
    rows = ["image,labels,split"]
    for stem, lab in [(IMAGE, "053_Results.csv"), ("072_HAADF_15nm_Sample_PtNC_21Oct20", "072_Results.csv")]:
        shutil.copy(repo_dir / "inputs/stem" / f"{stem}.tif", data / "images")
        shutil.copy(repo_dir / "inputs/stem/labels" / lab, data / "labels")
        rows.append(f"{stem}.tif,{lab},train")
    (data / "split.csv").write_text("\n".join(rows) + "\n")
    w = tmp_path / "w.pt"
    args = ["detect", "train", "--data", str(data), "--split", str(data / "split.csv"), "-o", str(w), "--epochs", "1",
            "--channels", "4,8,8", "--hidden", "8", "--mining-rounds", "1", "--holdout", "1", "--threads", "1"]
    assert main(args) == 0
    from sacmap.detection.model import load_weights

    cnn, meta = load_weights(w)
    assert meta["config"]["channels"] == [4, 8, 8] and len(meta["holdout_images"]) == 1
    assert 0 < meta["tuned_threshold"] < 1 and meta["digest"]
    assert meta["command"] == " ".join(["sacmap", *args])  # the command as given, also when called from Python
    sim = tmp_path / "sim"
    assert main(["detect", "simulate", "-o", str(sim), "--n-images", "1", "--size", "128", "--density", "2",
                 "--trimer-fraction", "0.3", "--min-dist", "0.2", "--atom-fwhm", "0.15", "--atom-peak", "0.6"]) == 0
    truth = pd.read_csv(sim / "sim_000.csv")
    d = np.hypot(*(truth[["x_nm", "y_nm"]].to_numpy()[:, None] - truth[["x_nm", "y_nm"]].to_numpy()[None]).T)
    assert np.isclose(d[d > 0].min(), 0.22, atol=0.01)  # trimers of side 0.22 nm
    out = tmp_path / "simdet"
    assert main(["detect", str(sim), "-o", str(out), "--weights", str(w), "--no-overlay", "--threads", "1"]) == 0
    assert (out / "sim_000.csv").exists() and not (out / "sim_000_overlay.png").exists()
    # simulated images as extra (exact) training data, weighted against the expert-labelled ones
    w2 = tmp_path / "w2.pt"
    assert main([*args[:7], str(w2), *args[8:], "--extra", str(sim), "--real-weight", "2", "--select-on-real"]) == 0
    _, meta2 = load_weights(w2)
    assert meta2["config"]["real_weight"] == 2 and meta2["config"]["select_on_real"] is True
    assert "sim_000" in meta2["trained_on"]
    assert main([*args[:7], str(tmp_path / "w3.pt"), *args[8:], "--real-weight", "0"]) == 2


def test_split_pairs_flag_reaches_the_refinement(tmp_path):
    # a clean dense image of broad (0.28-nm) atoms in hard-core units with 0.20-0.26-nm dimers and trimers: the
    # heat map gives one peak for many pairs, --split-pairs finds more of them, and the record says it ran
    from sacmap.detection import simulate

    img, truth, _ = simulate.simulate_sample(6.0, seed=0, shape=(256, 256), min_dist_nm=0.25, dimer_fraction=0.3,
                                             trimer_fraction=0.3, noise=False, texture_sd=0.0, vacuum_texture_sd=0.0)
    path = simulate.save_tiff(tmp_path / "dense.tif", img, simulate.REFERENCE_PIXEL_NM)
    counts = {}
    for flag in ([], ["--split-pairs"]):
        out = tmp_path / ("on" if flag else "off")
        assert main(["detect", str(path), "-o", str(out), "--no-overlay", "--threads", "1", *flag]) == 0
        js = json.loads((out / "dense.json").read_text())
        assert js["settings"]["split_pairs"] is bool(flag)
        counts[bool(flag)] = js["n_atoms"]
    assert counts[False] < counts[True] <= len(truth) * 1.03, (counts, len(truth))
    # --wide-ratio reaches the settings too (1.8 by default; on this clean image no atom is wider than its
    # neighbours, so turning it off changes nothing)
    assert js["settings"]["wide_ratio"] == 1.8
    assert main(["detect", str(path), "-o", str(tmp_path / "wide"), "--no-overlay", "--wide-ratio", "0"]) == 0
    js = json.loads((tmp_path / "wide" / "dense.json").read_text())
    assert js["settings"]["wide_ratio"] == 0 and js["n_atoms"] == counts[False]
    # --faint-ratio too (0.35 by default, 0 = off; nothing here is fainter than a third of the atoms)
    assert js["settings"]["faint_ratio"] == 0.35
    assert main(["detect", str(path), "-o", str(tmp_path / "faint"), "--no-overlay", "--faint-ratio", "0"]) == 0
    js = json.loads((tmp_path / "faint" / "dense.json").read_text())
    assert js["settings"]["faint_ratio"] == 0 and js["n_atoms"] == counts[False]


def test_no_verify_flag_leaves_out_the_verifiers_atoms(tmp_path):
    # a dense image at the calibrated dose: the verifier adds the atoms both networks miss (component_size -1);
    # --no-verify leaves them out and says so in the record
    from sacmap.detection import simulate

    img, truth, _ = simulate.simulate_sample(6.0, arrangement="hardcore", shape=(256, 256), seed=[60, 5, 1])
    path = simulate.save_tiff(tmp_path / "dense.tif", img, simulate.REFERENCE_PIXEL_NM)
    rows = {}
    for flag in ([], ["--no-verify"]):
        out = tmp_path / ("off" if flag else "on")
        assert main(["detect", str(path), "-o", str(out), "--no-overlay", "--threads", "1", *flag]) == 0
        js = json.loads((out / "dense.json").read_text())
        assert js["settings"]["verify"] is not bool(flag)
        assert ("verifier" in js["model"]) is not bool(flag)
        rows[bool(flag)] = pd.read_csv(out / "dense.csv")
    added = rows[False].component_size == -1
    assert added.sum() > 0 and (rows[True].component_size >= 0).all()
    assert len(rows[False]) > len(rows[True]) and len(rows[False]) <= len(truth)
