"""Hungarian matching within a radius: known numbers, one-to-one, folders of pairs."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest

from sacmap.detection.evaluate import evaluate_files, evaluate_xy, match


def test_known_numbers():
    truth = np.array([[10, 10], [50, 50], [90, 90], [130, 130]])
    pred = np.array([[12, 11], [50, 56], [91, 90], [200, 200], [300, 10]])
    r = evaluate_xy(pred, truth, radius_px=5)
    # matches: (12,11)-(10,10) d=2.24, (91,90)-(90,90) d=1; (50,56) is 6 px away -> no match
    assert (r["tp"], r["fp"], r["fn"]) == (2, 3, 2)
    assert r["precision"] == pytest.approx(2 / 5) and r["recall"] == pytest.approx(2 / 4)
    assert r["f1"] == pytest.approx(2 * 0.4 * 0.5 / 0.9)
    assert evaluate_xy(pred, truth, radius_px=6)["tp"] == 3


def test_one_to_one_and_maximal():
    truth = np.array([[0.0, 0.0], [6.0, 0.0]])
    pred = np.array([[3.5, 0.0], [-1.0, 0.0]])
    # greedy nearest would pair (-1,0)-(0,0) and (3.5,0)-(0,0)?? one-to-one must give 2 matches
    pi, ti = match(pred, truth, 5)
    assert len(pi) == 2 and set(ti) == {0, 1}
    dup = np.array([[0.5, 0.0], [-0.5, 0.0]])
    assert evaluate_xy(dup, truth[:1], 5)["tp"] == 1


def test_empty_cases():
    assert evaluate_xy(np.empty((0, 2)), np.empty((0, 2)))["f1"] == 1.0
    r = evaluate_xy(np.empty((0, 2)), np.array([[1, 1]]))
    assert r["recall"] == 0 and r["f1"] == 0


def test_folder_pairs(tmp_path):
    (tmp_path / "pred").mkdir()
    (tmp_path / "truth").mkdir()
    pd.DataFrame({"x_px": [10.0, 40.0], "y_px": [20.0, 40.0]}).to_csv(tmp_path / "pred/021_HAADF_x.csv",
                                                                      index=False)
    pd.DataFrame({" ": [1, 2], "X": [11, 80], "Y": [20, 80]}).to_csv(tmp_path / "truth/021_Results.csv",
                                                                    index=False)
    rep = evaluate_files(tmp_path / "pred", tmp_path / "truth")
    assert len(rep["per_image"]) == 1
    assert rep["pooled"]["tp"] == 1 and rep["pooled"]["n_pred"] == 2 and rep["pooled"]["n_truth"] == 2


def test_read_labels_formats(tmp_path):
    """Label reading (sacmap.detection.labels) takes detection CSVs, ImageJ Results (spaces in names) and x/y."""
    from sacmap.detection.errors import DetectionInputError
    from sacmap.detection.labels import read_labels

    pd.DataFrame({"x_px": [1.5, 2.0], "y_px": [3.0, 4.0], "score": [0.9, 0.8]}).to_csv(tmp_path / "d.csv", index=False)
    (tmp_path / "r.csv").write_text(" ,X ,Y \n1,5,6\n")
    np.testing.assert_array_equal(read_labels(tmp_path / "d.csv"), [[1.5, 3.0], [2.0, 4.0]])
    np.testing.assert_array_equal(read_labels(tmp_path / "r.csv"), [[5, 6]])
    (tmp_path / "bad.csv").write_text("a,b\n1,2\n")
    with pytest.raises(DetectionInputError, match="bad.csv: needs columns"):
        read_labels(tmp_path / "bad.csv")


def test_report_text_and_json_without_nan(tmp_path, capsys):
    """An image without matches has mean_dist_px NaN: the JSON report holds null (valid JSON), the text one line
    per image plus the pooled line."""
    import json

    from sacmap.detection.evaluate import report_text
    from sacmap.workflows.cli import main

    pd.DataFrame({"x_px": [10.0], "y_px": [10.0]}).to_csv(tmp_path / "p.csv", index=False)
    pd.DataFrame({"X": [90.0], "Y": [90.0]}).to_csv(tmp_path / "t.csv", index=False)
    rep = evaluate_files(tmp_path / "p.csv", tmp_path / "t.csv")
    lines = report_text(rep).splitlines()
    assert len(lines) == 2 and lines[1].startswith("pooled (radius 5 px): P 0.000")
    assert main(["detect", "evaluate", "--pred", str(tmp_path / "p.csv"), "--truth", str(tmp_path / "t.csv"),
                 "-o", str(tmp_path / "out" / "rep.json")]) == 0
    assert capsys.readouterr().out.strip().splitlines() == lines
    assert json.loads((tmp_path / "out" / "rep.json").read_text())["per_image"][0]["mean_dist_px"] is None
