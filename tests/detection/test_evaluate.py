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
