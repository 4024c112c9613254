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

from sacmap.detection import filters


def _seed(pts, k, rng, sw, tot):
    """k-means++ centres (k, 2) drawn with ``rng`` (weights ``sw``)."""
    n = len(pts)
    centres = [pts[rng.choice(n, p=sw / tot)]]
    for _ in range(1, k):
        d2 = np.min(((pts[:, None, :] - np.asarray(centres)[None]) ** 2).sum(-1), axis=1) * sw
        centres.append(pts[rng.choice(n, p=d2 / d2.sum())] if d2.sum() > 0 else pts[rng.integers(n)])
    return np.asarray(centres, float)


def fit_gmm2d(pts: np.ndarray, k: int, rng: np.random.Generator, *, max_iter: int = 100, tol: float = 1e-5,
              reg: float = 1e-3, weights: np.ndarray | None = None, n_init: int | None = None):
    """Full-covariance Gaussian mixture on 2-D points by EM with k-means++ seeding.

    A small closed-form implementation: scikit-learn's ``GaussianMixture`` spends ~10 ms per 2×2 triangular
    solve through scipy/BLAS dispatch, which made the split the slowest stage of the pipeline.
    ``weights`` (optional, one per point): a weighted mixture, as if point i had been drawn ``weights[i]`` times
    (the log-likelihood is the weighted sum).
    Returns ``(means (k, 2), covariances (k, 2, 2), weights (k,), total log-likelihood)``; with ``n_init``, a list
    of ``n_init`` such fits from successive seedings, run side by side (one EM loop for all of them, each stopped
    at its own convergence: the same fits as ``n_init`` calls, for a third of the Python overhead).
    """
    n = len(pts)
    sw = np.ones(n) if weights is None else np.asarray(weights, float)
    tot = float(sw.sum())
    n_fit = 1 if n_init is None else int(n_init)
    mu = np.stack([_seed(pts, k, rng, sw, tot) for _ in range(n_fit)])  # (I, k, 2)
    m0 = (sw @ pts) / tot
    c0 = ((pts - m0) * sw[:, None]).T @ (pts - m0) / tot
    cov = np.repeat((c0 / k + reg * np.eye(2))[None, None], k, axis=1).repeat(n_fit, axis=0)  # (I, k, 2, 2)
    w = np.full((n_fit, k), 1.0 / k)
    prev = np.full(n_fit, -np.inf)
    ll = np.full(n_fit, -np.inf)
    live = np.ones(n_fit, bool)
    px, py = pts[:, 0], pts[:, 1]
    # arrays are (fits, k, n): the reductions over the n points run along contiguous memory (numpy's reductions
    # over a trailing axis of length k were most of the time)
    for _ in range(max_iter):
        idx = np.flatnonzero(live)
        a, b, d = cov[idx, :, 0, 0, None], cov[idx, :, 0, 1, None], cov[idx, :, 1, 1, None]  # (L, k, 1)
        det = a * d - b * b
        dx = px - mu[idx, :, 0, None]  # (L, k, n)
        dy = py - mu[idx, :, 1, None]
        maha = (d * dx * dx - 2 * b * dx * dy + a * dy * dy) / det
        logp = -0.5 * maha - np.log(2 * np.pi) - 0.5 * np.log(det) + np.log(w[idx])[:, :, None]
        m = logp.max(axis=1)  # (L, n)
        e = np.exp(logp - m[:, None])
        se = e.sum(axis=1)
        lse = m + np.log(se)
        ll[idx] = lse @ sw
        conv = np.abs(ll[idx] - prev[idx]) < tol * tot
        live[idx[conv]] = False
        keep = ~conv
        idx, e, se = idx[keep], e[keep], se[keep]
        if not len(idx):
            break
        prev[idx] = ll[idx]
        r = e * (sw / se)[:, None, :]  # responsibilities × weights (L, k, n), exp(logp − lse) · sw
        nk = r.sum(axis=2) + 1e-10
        w[idx] = nk / tot
        mu[idx] = np.matmul(r, pts) / nk[:, :, None]
        ex = px - mu[idx, :, 0, None]
        ey = py - mu[idx, :, 1, None]
        rx = r * ex
        sxx = (rx * ex).sum(2) / nk + reg
        sxy = (rx * ey).sum(2) / nk
        syy = (r * ey * ey).sum(2) / nk + reg
        cov[idx] = np.stack([np.stack([sxx, sxy], -1), np.stack([sxy, syy], -1)], -2)
    fits = [(mu[i], cov[i], w[i], float(ll[i])) for i in range(n_fit)]
    return fits[0] if n_init is None else fits


def modified_bic(means: np.ndarray, covs: np.ndarray, loglik: float, n: int, *, min_sep_px: float,
                 max_sd_px: float, weight: float = 1.0) -> float:
    """BIC of a fitted 2-D Gaussian mixture plus two physical penalties (lower is better).

    ``BIC = −2 log L + p ln N`` (p = 6k − 1 free parameters) plus, scaled by ``weight · N`` so that they compete
    with the likelihood,

    * ``Σ_pairs max(0, 1 − d/min_sep)²`` for centre pairs closer than the smallest physical spacing
      ``min_sep_px`` (two atoms cannot be closer than a bond; the image cannot resolve closer ones);
    * ``Σ_components max(0, σ_max/max_sd − 1)²`` for components wider than a single atom's blob (``σ_max`` the
      largest standard deviation of the component), which penalises one Gaussian covering two atoms.
    """
    k = len(means)
    bic = -2.0 * loglik + (6 * k - 1) * np.log(n)
    pen = 0.0
    for i in range(k):
        for j in range(i + 1, k):
            d = float(np.linalg.norm(means[i] - means[j]))
            pen += max(0.0, 1.0 - d / min_sep_px) ** 2
    for cov in covs:
        sd = float(np.sqrt(np.linalg.eigvalsh(cov).max()))
        pen += max(0.0, sd / max_sd_px - 1.0) ** 2
    return bic + weight * n * pen


def split_component(prob: np.ndarray, rows: np.ndarray, cols: np.ndarray, *, threshold: float, k_max: int = 3,
                    n_samples: int = 400, min_sep_px: float = 6.0, max_sd_px: float = 3.0, seed: int = 0,
                    penalty_weight: float = 1.0, image: np.ndarray | None = None, n_init: int = 3):
    """Split one component (pixel ``rows``, ``cols``) into ``k`` atoms; returns (k, 2) centres (x, y) and k.

    The mixtures are fitted to the component's pixels weighted ∝ ``p − threshold`` (× the pre-processed
    ``image`` when given: where the probability map saturates over a merged pair, its plateau carries no
    information on where the two atoms are, the intensity does), the weights scaled to ``n_samples``: the
    expectation of the paper's ``n_samples`` points drawn from the map, without the sampling noise. Mixtures with
    k = 1..``k_max`` (:func:`fit_gmm2d`, best of ``n_init`` seedings: two overlapping atoms make a weakly
    identified mixture with local optima) are compared by :func:`modified_bic`.
    """
    rng = np.random.default_rng(seed)
    w = np.clip(prob[rows, cols] - threshold, 1e-6, None)
    if image is not None:
        w = w * np.clip(image[rows, cols], 1e-6, None)
    # the mixture is fitted to the pixels weighted by w, scaled to n_samples draws: the exact expectation of
    # drawing n_samples points ∝ w (the paper's sampling) without its sampling noise; + 1/12 px² per axis for the
    # pixel's own width (the uniform in-pixel jitter of drawn points)
    pts = np.c_[cols, rows].astype(float)
    ws = w * (n_samples / w.sum())
    best = None
    for k in range(1, k_max + 1):
        mu, cov, _, ll = max(fit_gmm2d(pts, k, rng, weights=ws, reg=1.0 / 12.0, tol=1e-7, max_iter=300,
                                       n_init=n_init if k > 1 else 1), key=lambda f: f[3])
        score = modified_bic(mu, cov, ll, n_samples, min_sep_px=min_sep_px, max_sd_px=max_sd_px,
                             weight=penalty_weight)
        if best is None or score < best[0]:
            best = (score, mu)
    return best[1].copy(), len(best[1])


#: Gaussian smoothing (px) of the intensity maxima (against pixel noise; well below the atom width), also the
#: default smoothing of the GMM's intensity weights, which then reuse the maxima's smoothed image.
PEAK_SMOOTH_PX = 1.5


def smoothed_maxima(image: np.ndarray, *, min_sep_px: float, smooth_px: float = PEAK_SMOOTH_PX):
    """The image smoothed by a Gaussian of ``smooth_px`` and its local maxima (window ``min_sep_px``):
    ``(smoothed, rows, cols)``, what :func:`intensity_peaks` starts from (computed once for both of its calls in
    :func:`localise`: two full-image filters each, ~0.2 s on 2048²)."""
    sm = filters.gaussian_filter(np.asarray(image, np.float32), smooth_px, mode="reflect")
    win = max(3, int(round(min_sep_px)) | 1)
    rr, cc = np.nonzero(sm == filters.maximum_filter(sm, size=win, mode="nearest"))
    return sm, rr, cc


def intensity_peaks(image: np.ndarray, lab: np.ndarray, *, min_sep_px: float, smooth_px: float = PEAK_SMOOTH_PX,
                    dip: float = 0.9, maxima=None) -> dict[int, np.ndarray]:
    """Resolved intensity maxima inside each labelled component: ``{label: (m, 2) peaks (x, y)}`` for m ≥ 2.

    The image is smoothed by a Gaussian of ``smooth_px`` (against pixel noise; well below the atom width) and its
    local maxima (window ``min_sep_px``) inside the components are taken in decreasing height; a maximum is kept
    if it lies at least ``min_sep_px`` from every kept one *and* the profile along the straight line to each kept
    one dips below ``dip`` × the lower of the two peaks (a Rayleigh-like resolution criterion: two atoms closer
    than ~2σ of the probe show no dip and are not resolved this way). ``maxima``: :func:`smoothed_maxima` of the
    same image and settings, when already computed.
    """
    sm, rr, cc = maxima if maxima is not None else smoothed_maxima(image, min_sep_px=min_sep_px, smooth_px=smooth_px)
    inside = lab[rr, cc] > 0
    rr, cc = rr[inside], cc[inside]
    labels = lab[rr, cc]
    out = {}
    for comp in np.unique(labels):
        sel = labels == comp
        if sel.sum() < 2:
            continue
        r, c = rr[sel], cc[sel]
        h = sm[r, c]
        order = np.argsort(-h, kind="stable")
        kept: list[int] = []
        for i in order:
            if not kept or _resolved(sm, r, c, h, i, np.asarray(kept), min_sep_px, dip):
                kept.append(i)
        if len(kept) >= 2:
            out[int(comp)] = np.c_[c[kept], r[kept]].astype(float)
    return out


def _profile_minima(sm, r, c, i, js, n, step):
    """Minimum of ``sm`` (bilinear) over the samples ``0, step, 2·step, …`` and the last of ``n[k]`` evenly spaced
    points from maximum ``js[k]`` to maximum ``i`` (the full profile when ``step`` is 1), for every ``k``; the
    sample positions are those of ``np.linspace(0, 1, n[k])``, built for all profiles at once."""
    n = np.asarray(n, int)
    counts = (n - 2) // step + 2  # len(range(0, n - 1, step)) + 1
    starts = np.r_[0, np.cumsum(counts)[:-1]]
    last = starts + counts - 1
    q = (np.arange(counts.sum()) - np.repeat(starts, counts)) * step
    q[last] = n - 1
    t = q * np.repeat(1.0 / (n - 1), counts)  # as linspace: index × (1 / (n − 1)), the end exactly 1
    t[last] = 1.0
    jj = np.repeat(js, counts)
    prof = ndimage.map_coordinates(sm, [r[jj] + t * (r[i] - r[jj]), c[jj] + t * (c[i] - c[jj])], order=1)
    return np.minimum.reduceat(prof, starts)


def _resolved(sm, r, c, h, i, kept: np.ndarray, min_sep_px: float, dip: float) -> bool:
    """Whether maximum ``i`` is at least ``min_sep_px`` from every ``kept`` one and the straight profile to each
    dips below ``dip`` × the lower of the two heights (:func:`intensity_peaks`). All profiles are sampled in one
    interpolation: first every 4th sample (a dip there is a dip of the whole profile), then the full profile of
    the pairs that showed none, so the outcome is that of sampling every profile in full."""
    d = np.hypot(c[i] - c[kept], r[i] - r[kept])
    if (d < min_sep_px).any():
        return False
    n = np.maximum(3, np.ceil(d).astype(int) + 1)
    thr = dip * np.minimum(h[i], h[kept])
    undecided = _profile_minima(sm, r, c, i, kept, n, 4) > thr
    if not undecided.any():
        return True
    full = _profile_minima(sm, r, c, i, kept[undecided], n[undecided], 1)
    return not (full > thr[undecided]).any()


def localise(prob: np.ndarray, *, threshold: float, min_size_px: int = 1, split_area_px: float = 200.0,
             min_sep_px: float = 6.0, max_sd_px: float = 3.0, merge_px: float = 0.0, k_max: int = 3,
             seed: int = 0, image: np.ndarray | None = None, peak_dip: float = 0.85,
             large_dip: float | None = None, gmm_smooth_px: float = PEAK_SMOOTH_PX) -> dict:
    """Atom positions from a probability map.

    Parameters
    ----------
    prob : 2-D probability map (model frame).
    threshold : probability above which a pixel belongs to an atom (4-connected components).
    min_size_px : components with fewer pixels are dropped (fragments).
    split_area_px : components with more pixels are tested for several atoms (GMM, modified BIC).
    min_sep_px, max_sd_px : physical limits used by the BIC penalty (see :func:`modified_bic`).
    merge_px : atoms closer than this (px) are merged into the higher-scoring one (0 disables).
    image : the pre-processed image in the frame of ``prob``; when given, a component holding two or more
        resolved intensity maxima (:func:`intensity_peaks`, dip criterion ``peak_dip``) is split between them
        (pixels go to the nearest maximum), whatever its area; the GMM split also weights the component's pixels
        by this image (smoothed by ``gmm_smooth_px``), see :func:`split_component`.
    large_dip : dip criterion for components larger than ``split_area_px`` (1 = every intensity maximum at least
        ``min_sep_px`` from a higher one is an atom: crowded atoms whose images overlap without a dip); None =
        ``peak_dip`` everywhere.

    Returns
    -------
    dict of arrays: ``x``, ``y`` (px, sub-pixel; x = column), ``score`` (max probability of the component),
    ``component_size`` (px of the component; shared by atoms split from it), ``n_split`` (atoms from the component).
    """
    mask = prob > threshold
    lab, n = ndimage.label(mask)  # 4-connectivity
    xs, ys, scores, sizes, nsplit = [], [], [], [], []
    maxima = smoothed_maxima(image, min_sep_px=min_sep_px) if (image is not None and n) else None
    peaks = {} if maxima is None else intensity_peaks(image, lab, min_sep_px=min_sep_px, dip=peak_dip, maxima=maxima)
    big = np.bincount(lab.ravel(), minlength=n + 1) > split_area_px  # components that may go to the GMM
    big[0] = False
    smooth_img = None  # the GMM's intensity weights, smoothed against pixel noise (only needed for big components)
    if image is not None and big.any():
        if not gmm_smooth_px:
            smooth_img = image
        elif maxima is not None and gmm_smooth_px == PEAK_SMOOTH_PX:  # the maxima's smoothed image
            smooth_img = maxima[0]
        else:
            smooth_img = filters.gaussian_filter(np.asarray(image, np.float32), gmm_smooth_px)
        if large_dip is not None and large_dip > peak_dip:
            lab_big = np.where(big[lab], lab, 0)
            for comp, pk in intensity_peaks(image, lab_big, min_sep_px=min_sep_px, dip=large_dip,
                                            maxima=maxima).items():
                if len(pk) > len(peaks.get(comp, ())):
                    peaks[comp] = pk
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
            if i in peaks and k_max > 1:
                pk = peaks[i]
                near = _nearest_peak(np.c_[cc, rr], pk)
                w = p - threshold + 1e-6
                centres = np.array([[np.dot(w[near == j], cc[near == j]) / w[near == j].sum(),
                                     np.dot(w[near == j], rr[near == j]) / w[near == j].sum()]
                                    for j in range(len(pk))])
                k = len(pk)
            elif size > split_area_px and k_max > 1:
                centres, k = split_component(prob, rr, cc, threshold=threshold, k_max=k_max, min_sep_px=min_sep_px,
                                             max_sd_px=max_sd_px, seed=seed, image=smooth_img)
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


def _nearest_peak(pts: np.ndarray, pk: np.ndarray) -> np.ndarray:
    """Index of the nearest of the peaks ``pk`` (k, 2) for each point (n, 2), the lower index on a tie (as
    ``argmin`` over the n × k distances, without that array: a component of a degenerate map covers the whole
    image and holds hundreds of peaks)."""
    from scipy.spatial import cKDTree

    pk = np.asarray(pk, float)
    if len(pk) == 1:
        return np.zeros(len(pts), int)
    d, j = cKDTree(pk).query(np.asarray(pts, float), k=2)
    tie = d[:, 0] == d[:, 1]
    return np.where(tie, np.minimum(j[:, 0], j[:, 1]), j[:, 0])


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
