"""Scoring predicted atom positions against expert labels: one-to-one (Hungarian) matching within a radius.

A prediction and a label can match when their distance is ≤ ``radius_px``; among such pairs the assignment that
maximises the number of matches (and, among those, minimises the total distance) is taken. Precision = TP / #pred,
recall = TP / #truth, F1 = 2PR / (P + R). Pooled scores sum TP/FP/FN over images.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np
from scipy.optimize import linear_sum_assignment
from scipy.spatial.distance import cdist

from sacmap.detection.errors import DetectionInputError
from sacmap.detection.labels import read_labels


def match(pred_xy, truth_xy, radius_px: float = 5.0) -> tuple[np.ndarray, np.ndarray]:
    """Indices (pred_idx, truth_idx) of matched pairs (one-to-one, distance ≤ ``radius_px``)."""
    p = np.asarray(pred_xy, float).reshape(-1, 2)
    t = np.asarray(truth_xy, float).reshape(-1, 2)
    if len(p) == 0 or len(t) == 0:
        return np.empty(0, int), np.empty(0, int)
    d = cdist(p, t)
    ok = d <= radius_px
    # maximise matches first (big reward), then minimise distance
    cost = np.where(ok, d / (radius_px + 1e-12) - 2.0 * (len(p) + len(t)), 0.0)
    r, c = linear_sum_assignment(cost)
    keep = ok[r, c]
    return r[keep], c[keep]


def scores(tp: int, n_pred: int, n_truth: int) -> dict:
    """precision, recall, f1 (1.0 for an empty-vs-empty image) and the counts."""
    fp, fn = n_pred - tp, n_truth - tp
    prec = tp / n_pred if n_pred else (1.0 if n_truth == 0 else 0.0)
    rec = tp / n_truth if n_truth else (1.0 if n_pred == 0 else 0.0)
    f1 = 2 * prec * rec / (prec + rec) if (prec + rec) else 0.0
    return {"tp": int(tp), "fp": int(fp), "fn": int(fn), "n_pred": int(n_pred), "n_truth": int(n_truth),
            "precision": prec, "recall": rec, "f1": f1}


def evaluate_xy(pred_xy, truth_xy, radius_px: float = 5.0) -> dict:
    """P/R/F1 of one image (see :func:`scores`), plus ``mean_dist_px`` of matched pairs."""
    p = np.asarray(pred_xy, float).reshape(-1, 2)
    t = np.asarray(truth_xy, float).reshape(-1, 2)
    r, c = match(p, t, radius_px)
    out = scores(len(r), len(p), len(t))
    out["mean_dist_px"] = float(np.linalg.norm(p[r] - t[c], axis=1).mean()) if len(r) else float("nan")
    return out


def pooled(results: list[dict]) -> dict:
    """Pooled P/R/F1 over per-image results (sums of TP, #pred, #truth)."""
    return scores(sum(r["tp"] for r in results), sum(r["n_pred"] for r in results),
                  sum(r["n_truth"] for r in results))


def _key(path: Path) -> str:
    stem = path.stem
    for suffix in ("_Results", "_results", "_labels", "_truth"):
        if stem.endswith(suffix):
            return stem[: -len(suffix)]
    return stem


def pair_files(pred_dir, truth_dir) -> list[tuple[Path, Path]]:
    """Pair ``pred_dir/*.csv`` with ``truth_dir/*.csv``: same stem, or prediction stem starting with the label's
    key followed by ``_`` (``021_HAADF...csv`` ↔ ``021_Results.csv``)."""
    preds = sorted(Path(pred_dir).glob("*.csv"))
    truths = sorted(Path(truth_dir).glob("*.csv"))
    pairs = []
    for t in truths:
        key = _key(t)
        cands = [p for p in preds if p.stem == key or p.stem == t.stem or p.stem.startswith(key + "_")]
        if len(cands) == 1:
            pairs.append((cands[0], t))
    if not pairs:
        raise DetectionInputError(f"{pred_dir}: no prediction CSV matches a label file in {truth_dir}")
    return pairs


def evaluate_files(pred, truth, radius_px: float = 5.0, report=None) -> dict:
    """Evaluate a prediction CSV against a label CSV, or two folders of them (paired by :func:`pair_files`).

    Returns ``{"per_image": [{"pred", "truth", precision, recall, f1, ...}], "pooled": {...},
    "mean_over_images": {...}, "radius_px", "failed": [{"pred", "reason"}]}``.

    ``report`` (a :class:`sacmap.core.batch.BatchReport`): a pair whose CSV cannot be read is recorded there with
    its reason (and in ``"failed"``) and the others are still scored (the pooled scores are over those); without
    it the first bad file raises.
    """
    import contextlib

    pred, truth = Path(pred), Path(truth)
    if pred.is_dir() != truth.is_dir():
        raise DetectionInputError(f"{pred} and {truth}: give two CSV files or two folders")
    pairs = pair_files(pred, truth) if pred.is_dir() else [(pred, truth)]
    per = []
    for p, t in pairs:
        with report.item(p) if report is not None else contextlib.nullcontext():
            r = evaluate_xy(read_labels(p), read_labels(t), radius_px)
            r.update(pred=str(p), truth=str(t))
            per.append(r)
    failed = [{"pred": it.file, "reason": it.reason} for it in (report.failures if report is not None else [])]
    if not per:
        raise DetectionInputError(f"{pred}: no prediction could be scored ("
                                  + "; ".join(f"{f['pred']}: {f['reason']}" for f in failed) + ")")
    mean = {k: float(np.mean([r[k] for r in per])) for k in ("precision", "recall", "f1")}
    return {"per_image": per, "pooled": pooled(per), "mean_over_images": mean, "radius_px": radius_px,
            "failed": failed}


def _score_text(r: dict) -> str:
    return (f"P {r['precision']:.3f}  R {r['recall']:.3f}  F1 {r['f1']:.3f}  "
            f"(TP {r['tp']}, pred {r['n_pred']}, truth {r['n_truth']})")


def report_text(report: dict) -> str:
    """The report of :func:`evaluate_files` as text: one line per image, then the pooled scores."""
    lines = [f"{r['pred']}: {_score_text(r)}" for r in report["per_image"]]
    lines.append(f"pooled (radius {report['radius_px']:g} px): {_score_text(report['pooled'])}")
    return "\n".join(lines)
