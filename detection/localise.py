"""From a probability map to atom positions: threshold → components → sub-pixel centres → multimer split → spacing.

Centres are probability-weighted centroids of each component (weights ``p − threshold``), not the published
integer bounding-box midpoints: for a symmetric blob both estimate the same point, but the weighted centroid is
sub-pixel and robust to a ragged, one-sided outline (see docs/detection.md for the measured effect).

A component larger than ``split_area_px`` (200 px² at the training pixel size) is tested for several atoms with a
Gaussian mixture fitted to points sampled from its probability map; ``k`` = 1..``k_max`` is chosen by a modified
BIC (:func:`modified_bic`).
"""

from __future__ import annotations

import numpy as np
from scipy import ndimage


def modified_bic(gmm, points: np.ndarray, *, min_sep_px: float, max_sd_px: float, weight: float = 1.0) -> float:
    """BIC of a fitted ``GaussianMixture`` plus two physical penalties (lower is better).

    ``BIC = −2 log L + p ln N`` plus, scaled by ``weight · N`` so that they compete with the likelihood,

    * ``Σ_pairs max(0, 1 − d/min_sep)²`` for centre pairs closer than the smallest physical spacing
      ``min_sep_px`` (two atoms cannot be closer than a bond; the image cannot resolve closer ones);
    * ``Σ_components max(0, σ_max/max_sd − 1)²`` for components wider than a single atom's blob (``σ_max`` the
      largest standard deviation of the component), which penalises one Gaussian covering two atoms.
    """
    n = len(points)
    bic = gmm.bic(points)
    means = gmm.means_
    pen = 0.0
    for i in range(len(means)):
        for j in range(i + 1, len(means)):
            d = float(np.linalg.norm(means[i] - means[j]))
            pen += max(0.0, 1.0 - d / min_sep_px) ** 2
    for cov in gmm.covariances_:
        sd = float(np.sqrt(np.linalg.eigvalsh(cov).max()))
        pen += max(0.0, sd / max_sd_px - 1.0) ** 2
    return bic + weight * n * pen


def split_component(prob: np.ndarray, rows: np.ndarray, cols: np.ndarray, *, threshold: float, k_max: int = 3,
                    n_samples: int = 400, min_sep_px: float = 6.0, max_sd_px: float = 3.0, seed: int = 0,
                    penalty_weight: float = 1.0):
    """Split one component (pixel ``rows``, ``cols``) into ``k`` atoms; returns (k, 2) centres (x, y) and k.

    Points are drawn from the component's pixels with probability ∝ ``p − threshold`` and jittered uniformly
    inside their pixel; mixtures with k = 1..``k_max`` (k-means++ seeding, ≤ 100 EM steps) are compared by :func:`modified_bic`.
    """
    from sklearn.mixture import GaussianMixture

    rng = np.random.default_rng(seed)
    w = np.clip(prob[rows, cols] - threshold, 1e-6, None)
    idx = rng.choice(len(rows), size=n_samples, p=w / w.sum())
    pts = np.c_[cols[idx], rows[idx]] + rng.uniform(-0.5, 0.5, size=(n_samples, 2))
    best = None
    for k in range(1, k_max + 1):
        gmm = GaussianMixture(k, covariance_type="full", n_init=1, max_iter=100, tol=1e-3, random_state=seed,
                              init_params="k-means++",
                              reg_covar=1e-3).fit(pts)
        score = modified_bic(gmm, pts, min_sep_px=min_sep_px, max_sd_px=max_sd_px, weight=penalty_weight)
        if best is None or score < best[0]:
            best = (score, gmm)
    return best[1].means_.copy(), len(best[1].means_)


def localise(prob: np.ndarray, *, threshold: float = 0.8, min_size_px: int = 1, split_area_px: float = 200.0,
             min_sep_px: float = 6.0, max_sd_px: float = 3.0, merge_px: float = 0.0, k_max: int = 3,
             seed: int = 0) -> dict:
    """Atom positions from a probability map.

    Parameters
    ----------
    prob : 2-D probability map (model frame).
    threshold : probability above which a pixel belongs to an atom (4-connected components).
    min_size_px : components with fewer pixels are dropped (fragments).
    split_area_px : components with more pixels are tested for several atoms (GMM, modified BIC).
    min_sep_px, max_sd_px : physical limits used by the BIC penalty (see :func:`modified_bic`).
    merge_px : atoms closer than this (px) are merged into the higher-scoring one (0 disables).

    Returns
    -------
    dict of arrays: ``x``, ``y`` (px, sub-pixel; x = column), ``score`` (max probability of the component),
    ``component_size`` (px of the component; shared by atoms split from it), ``n_split`` (atoms from the component).
    """
    mask = prob > threshold
    lab, n = ndimage.label(mask)  # 4-connectivity
    xs, ys, scores, sizes, nsplit = [], [], [], [], []
    if n:
        objs = ndimage.find_objects(lab)
        for i, sl in enumerate(objs, start=1):
            sub = lab[sl] == i
            size = int(sub.sum())
            if size < min_size_px:
                continue
            rr, cc = np.nonzero(sub)
            rr = rr + sl[0].start
            cc = cc + sl[1].start
            p = prob[rr, cc]
            score = float(p.max())
            if size > split_area_px and k_max > 1:
                centres, k = split_component(prob, rr, cc, threshold=threshold, k_max=k_max, min_sep_px=min_sep_px,
                                             max_sd_px=max_sd_px, seed=seed)
            else:
                w = p - threshold + 1e-6
                centres, k = np.array([[np.dot(w, cc) / w.sum(), np.dot(w, rr) / w.sum()]]), 1
            for cx, cy in centres:
                xs.append(cx)
                ys.append(cy)
                scores.append(score)
                sizes.append(size)
                nsplit.append(k)
    out = {"x": np.asarray(xs, float), "y": np.asarray(ys, float), "score": np.asarray(scores, float),
           "component_size": np.asarray(sizes, int), "n_split": np.asarray(nsplit, int)}
    if merge_px > 0 and len(out["x"]) > 1:
        out = merge_close(out, merge_px)
    return out


def merge_close(atoms: dict, merge_px: float) -> dict:
    """Greedy non-maximum suppression: keep atoms in decreasing score, drop any within ``merge_px`` of a kept one."""
    from scipy.spatial import cKDTree

    xy = np.c_[atoms["x"], atoms["y"]]
    order = np.argsort(-atoms["score"] - 1e-9 * atoms["component_size"], kind="stable")
    tree = cKDTree(xy)
    keep = np.zeros(len(xy), bool)
    removed = np.zeros(len(xy), bool)
    for i in order:
        if removed[i]:
            continue
        keep[i] = True
        for j in tree.query_ball_point(xy[i], merge_px):
            if j != i:
                removed[j] = True
    return {k: v[keep] for k, v in atoms.items()}
