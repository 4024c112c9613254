"""Unsupervised element labelling of detected atoms: rotation-invariant VAE + Gaussian mixture, by Z order.

Steps (``label_elements``):

1. Robust normalisation of the image (raw counts or already pre-processed): clip at the 0.1/99.9th
   percentiles, subtract a smooth background (median filter of ``background_px`` on a 4× downsampled image, so
   the support thickness does not masquerade as brightness), divide by the spread between the background-
   subtracted median and 99.9th percentile.
2. 21×21 crops at each atom (rounded position; the image is reflect-padded at the borders) of the image
   smoothed by a Gaussian of ``smooth_px`` (shot noise), each minus the median of its outer ring (r ≥ 9 px,
   the local support level).
3. A rotation-invariant VAE (``sacmap.detection.vae``) trained on these crops only (seconds on one CPU thread), each
   crop weighted by a Gaussian window of σ = ``window_px`` (4 px ≈ the atom's own σ at 0.029 nm/px) so that
   support texture far from the atom does not steer the code (Pt/Ni 0.90 → 0.94, Pt/Pd 0.83 → 0.85 correct).
4. A Gaussian mixture with one component per expected element on the *content* latents that are in use
   (collapsed latents dropped), standardised; diagonal covariance unless there are ≥ 100 crops per component.
5. Per crop, the mean of its top-5-percentile pixels; per cluster the median of that over its crops. Clusters
   are ranked by it and matched to the elements sorted by atomic number (heavier = brighter in HAADF,
   ∝ Z^1.7).
6. Baseline: a one-dimensional Gaussian mixture on the per-crop brightness alone, ranked the same way.
7. From refined per-atom integrated intensities (``sacmap.detection.refine``), when given: a 1-D Gaussian
   mixture on the intensities, ranked by Z (:func:`label_by_intensity`). Integrated intensities use the whole
   atom image, not its top pixels, and do not depend on how well the atom is centred in a crop.
"""

from __future__ import annotations

import time

import numpy as np
from scipy import ndimage as ndi

from sacmap.detection.errors import DetectionInputError


def _z(symbol: str) -> int:
    from ase.data import atomic_numbers

    s = str(symbol).strip()
    z = atomic_numbers.get(s[:1].upper() + s[1:].lower()) if s else None
    if not z:
        raise DetectionInputError(f"elements: unknown element symbol {symbol!r}")
    return int(z)


def _element_list(elements) -> tuple[list[str], list[int]]:
    """Element symbols (a list or 'A,B') and their atomic numbers; none, unknown or repeated ones are refused."""
    if isinstance(elements, str):
        elements = [e for e in elements.split(",") if e.strip()]
    els = [str(e).strip() for e in elements]
    if not els:
        raise DetectionInputError("elements: at least one element symbol is needed")
    zs = [_z(e) for e in els]
    if len(set(zs)) != len(zs):
        raise DetectionInputError(f"elements: repeated element in {els}")
    return els, zs


def normalise_image(image, background_px: int = 41) -> np.ndarray:
    """Background-subtracted, robustly scaled float32 copy of ``image`` (background ≈ 0, atoms ≈ 1)."""
    a = np.asarray(image, dtype=float)
    lo, hi = np.percentile(a, [0.1, 99.9])
    a = np.clip(a, lo, hi)
    f = 4 if min(a.shape) >= 64 else 1
    small = a[: a.shape[0] // f * f, : a.shape[1] // f * f].reshape(a.shape[0] // f, f, a.shape[1] // f, f)
    small = small.mean((1, 3))
    bg = ndi.median_filter(small, size=max(3, int(round(background_px / f))), mode="reflect")
    bg = ndi.gaussian_filter(bg, 1.0)
    bg = ndi.zoom(bg, (a.shape[0] / bg.shape[0], a.shape[1] / bg.shape[1]), order=1)
    d = a - bg
    med, top = np.median(d), np.percentile(d, 99.9)
    scale = top - med if top > med else (d.std() or 1.0)
    return ((d - med) / scale).astype(np.float32)


def extract_crops(image, xy_px, size: int = 21) -> np.ndarray:
    """Crops (N, size, size) centred on the rounded (x = column, y = row) positions; reflect-padded
    borders."""
    a = np.asarray(image)
    h = size // 2
    pad = np.pad(a, h, mode="reflect")
    xy = np.rint(np.asarray(xy_px, float)).astype(int)
    rows = np.clip(xy[:, 1], 0, a.shape[0] - 1)
    cols = np.clip(xy[:, 0], 0, a.shape[1] - 1)
    iy, ix = np.mgrid[0:size, 0:size]
    return pad[rows[:, None, None] + iy[None], cols[:, None, None] + ix[None]]


def subtract_ring_background(crops, size: int, ring_px: float | None = None) -> np.ndarray:
    """Subtract from each crop the median of its pixels at ≥ ``ring_px`` (default 0.43·size) from the centre
    of its central ``size``×``size`` square: the local support level, so only the atom's excess remains."""
    c = np.asarray(crops, float)
    m = (c.shape[1] - size) // 2
    h = size // 2
    iy, ix = np.mgrid[-h : h + 1, -h : h + 1]
    ring = np.hypot(iy, ix) >= (ring_px if ring_px is not None else 0.43 * size)
    inner = c[:, m : m + size, m : m + size]
    bg = np.median(inner[:, ring], axis=1)
    return (c - bg[:, None, None]).astype(np.float32)


def crop_brightness(crops, percentile: float = 95.0) -> np.ndarray:
    """Per crop, the mean of its pixels at or above the ``percentile`` (top 5 % by default)."""
    c = np.asarray(crops, float).reshape(len(crops), -1)
    thr = np.percentile(c, percentile, axis=1, keepdims=True)
    return np.array([row[row >= t].mean() for row, t in zip(c, thr[:, 0])])


def label_by_intensity(intensity, elements, *, seed: int = 0, n_init: int = 5) -> dict:
    """Element per atom from integrated intensities (any units, e.g. the ``intensity`` column of
    :func:`sacmap.detection.refine.refine`): a 1-D Gaussian mixture with one component per element (free means
    and spreads), components ranked by mean and matched to the elements by Z (HAADF contrast ∝ Z^~1.7).

    Linear, not log, intensities: faint atoms (Ni at 0.18× Pt) have relative errors near 1, and their logs
    are dominated by the noise. A mixture whose means are tied to Z^γ was tried and is worse on the
    calibrated simulated images (Ni/Pt 0.53–0.89 vs 0.88–0.89, Pd/Pt 0.59–0.71 vs 0.72–0.80): the integrated
    intensities of faint atoms are biased up by the support texture they sit on, so their ratios do not follow
    Z^1.7. Non-finite intensities (failed fits) get the dimmest element. Returns ``labels`` (N,),
    ``elements`` (increasing Z), ``means`` {element: mean intensity}, ``exponent`` (slope of ln mean vs ln Z,
    a check against ~1.7; NaN for one element), ``counts`` {element: n}. Deterministic for a seed.
    """
    from sklearn.mixture import GaussianMixture

    i = np.asarray(intensity, dtype=float).ravel()
    if i.size == 0:
        raise DetectionInputError("intensity: no atoms")
    els, zs = _element_list(elements)
    by_z = [e for _, e in sorted(zip(zs, els))]
    z_sorted = np.array(sorted(zs), dtype=float)
    good = np.isfinite(i)
    k = len(by_z)
    labels = np.array([by_z[0]] * len(i), dtype=object)
    out = {"labels": labels, "elements": by_z, "means": {}, "exponent": float("nan")}
    if k > 1 and good.sum() > k:
        x = i[good][:, None]
        scale = float(np.std(x)) or 1.0
        g = GaussianMixture(n_components=k, covariance_type="full", n_init=n_init, random_state=seed,
                            reg_covar=1e-6).fit(x / scale)
        rank = np.argsort(np.argsort(g.means_[:, 0]))  # component -> rank (0 = dimmest)
        labels[good] = np.array(by_z, dtype=object)[rank[g.predict(x / scale)]]
        means = np.sort(g.means_[:, 0]) * scale
        out["means"] = {e: float(m) for e, m in zip(by_z, means)}
        if np.all(means > 0):
            out["exponent"] = float(np.polyfit(np.log(z_sorted), np.log(means), 1)[0])
    elif good.any():
        out["means"] = {by_z[0]: float(np.mean(i[good]))}
    out["counts"] = {e: int(np.sum(labels == e)) for e in by_z}
    return out


def _rank_labels(cluster: np.ndarray, brightness: np.ndarray, elements_by_z: list[str]):
    k = len(elements_by_z)
    med = np.array(
        [np.median(brightness[cluster == c]) if np.any(cluster == c) else -np.inf for c in range(k)]
    )
    order = np.argsort(med, kind="stable")  # dimmest cluster first
    cluster_to_el = {int(c): elements_by_z[r] for r, c in enumerate(order)}
    labels = np.array([cluster_to_el[int(c)] for c in cluster], dtype=object)
    # an empty cluster has no brightness: None (JSON-safe) instead of -inf
    return labels, {
        elements_by_z[r]: (float(med[c]) if np.isfinite(med[c]) else None) for r, c in enumerate(order)
    }


def _check_inputs(image, xy_px, elements):
    a = np.asarray(image)
    if a.ndim != 2:
        raise DetectionInputError(f"image: must be 2-D, got shape {a.shape}")
    if not np.issubdtype(a.dtype, np.number) or not np.all(np.isfinite(a)):
        raise DetectionInputError("image: values must be finite numbers")
    if np.ptp(a) == 0:
        raise DetectionInputError("image: constant image")
    xy = np.asarray(xy_px, dtype=float)
    if xy.size == 0:
        raise DetectionInputError("xy_px: no atom coordinates")
    if xy.ndim != 2 or xy.shape[1] != 2:
        raise DetectionInputError(f"xy_px: must be an (N, 2) array of (x, y) px, got shape {xy.shape}")
    if not np.all(np.isfinite(xy)):
        raise DetectionInputError("xy_px: coordinates must be finite")
    h, w = a.shape
    if (
        np.any(xy[:, 0] < -0.5)
        or np.any(xy[:, 0] > w - 0.5)
        or np.any(xy[:, 1] < -0.5)
        or np.any(xy[:, 1] > h - 0.5)
    ):
        raise DetectionInputError(f"xy_px: coordinates outside the {w}×{h} px image")
    els, zs = _element_list(elements)
    if len(xy) < 2:
        raise DetectionInputError(f"xy_px: {len(xy)} atom; element labelling needs at least 2")
    if len(els) > len(xy):
        raise DetectionInputError(f"elements: {len(els)} elements for only {len(xy)} atoms")
    return a.astype(float), xy, els, zs


def label_elements(
    image,
    xy_px,
    elements,
    *,
    seed: int = 0,
    crop_px: int = 21,
    latent_dim: int = 4,
    steps: int = 400,
    beta: float = 1.0,
    shift_px: int = 1,
    background_px: int = 41,
    smooth_px: float = 1.0,
    covariance_type: str = "auto",
    n_init: int = 5,
    n_threads: int = 1,
    window_px: float = 4.0,
    intensities=None,
) -> dict:
    """Label each atom with one of ``elements`` (e.g. ``["Ni", "Pt"]`` or ``"Ni,Pt"``), unsupervised.

    ``image``: 2-D array (raw or pre-processed to [0, 1]; normalised robustly here). ``xy_px``: (N, 2)
    array of (x = column, y = row) px. Returns a dict:

    * ``labels``: (N,) element symbols from the VAE latent + Gaussian mixture;
    * ``labels_intensity``: (N,) symbols from the intensity-only mixture (baseline);
    * ``latent``: (N, latent_dim) VAE latent means; ``active_latents``: boolean mask of the latents used;
    * ``cluster``, ``cluster_intensity_only``: raw mixture indices;
    * ``brightness``: (N,) per-crop mean of the top-5-percentile pixels (normalised image units);
    * ``cluster_intensity``: {element: median brightness of its VAE cluster}; ``cluster_intensity_baseline``
      the same for the baseline;
    * ``agreement``: fraction of atoms with the same label from both methods;
    * ``counts`` / ``counts_intensity``: {element: number of atoms}; ``covariance_type``; ``train_seconds``;
      ``loss_history``;
    * with ``intensities`` ((N,) refined integrated intensities, e.g. the ``intensity`` column of
      :func:`sacmap.detection.refine.refine`): ``labels_refined`` (N,) from :func:`label_by_intensity`,
      ``counts_refined``, ``refined`` (that function's whole result: means per element, exponent).

    The mixture always returns k clusters, also for a sample with one element: the caller must know which
    elements are present (on the real Pt-only validation images, asking for Ni,Pt splits the atoms anyway).

    With one element every atom gets it (no model is trained). Deterministic for a seed.
    Bad input (empty or non-(N, 2) coordinates, < 2 atoms, more elements than atoms, unknown or repeated
    symbols, non-finite or constant image, coordinates outside the image) → DetectionInputError.
    """
    from sklearn.mixture import GaussianMixture

    from sacmap.detection.vae import RotationInvariantVAE

    a, xy, els, zs = _check_inputs(image, xy_px, elements)
    if int(crop_px) != crop_px or crop_px < 5 or crop_px % 2 == 0 or shift_px < 0:
        raise DetectionInputError(
            f"crop_px must be an odd integer >= 5 and shift_px >= 0, got {crop_px}, {shift_px}"
        )
    n, k = len(xy), len(els)
    by_z = [e for _, e in sorted(zip(zs, els))]
    extra = {}
    if intensities is not None:
        inten = np.asarray(intensities, dtype=float).ravel()
        if inten.shape != (n,):
            raise DetectionInputError(f"intensities: {inten.size} values for {n} atoms")
        ref = label_by_intensity(inten, by_z, seed=seed)
        extra = {"labels_refined": ref["labels"], "counts_refined": ref["counts"], "refined": ref}
    norm = normalise_image(a, background_px=background_px)
    if smooth_px > 0:
        norm = ndi.gaussian_filter(norm, smooth_px)
    big = subtract_ring_background(extract_crops(norm, xy, crop_px + 2 * shift_px), crop_px)
    crops = big[:, shift_px : shift_px + crop_px, shift_px : shift_px + crop_px]
    bright = crop_brightness(crops)
    if k == 1:
        lab = np.array([els[0]] * n, dtype=object)
        return {
            "labels": lab,
            "labels_intensity": lab.copy(),
            "latent": np.zeros((n, 0)),
            "active_latents": np.zeros(0, bool),
            "cluster": np.zeros(n, int),
            "cluster_intensity_only": np.zeros(n, int),
            "brightness": bright,
            "cluster_intensity": {els[0]: float(np.median(bright))},
            "cluster_intensity_baseline": {els[0]: float(np.median(bright))},
            "agreement": 1.0,
            "counts": {els[0]: n},
            "counts_intensity": {els[0]: n},
            "covariance_type": None,
            "train_seconds": 0.0,
            "loss_history": np.zeros(0),
            **extra,
        }

    t0 = time.perf_counter()
    if window_px:
        h = big.shape[1] // 2
        iy, ix = np.mgrid[-h : h + 1, -h : h + 1]
        big = big * np.exp(-(iy**2 + ix**2) / (2.0 * window_px**2)).astype(np.float32)
    vae = RotationInvariantVAE(
        latent_dim=latent_dim, steps=steps, beta=beta, shift_px=shift_px, seed=seed, n_threads=n_threads
    ).fit(big)
    z = vae.transform(big)
    train_s = time.perf_counter() - t0
    zc = z[:, vae.active_]
    zs_std = (zc - zc.mean(0)) / np.where(zc.std(0) > 0, zc.std(0), 1.0)
    cov = covariance_type
    if cov == "auto":
        cov = "full" if n >= 100 * k else "diag"
    gmm = GaussianMixture(
        n_components=k, covariance_type=cov, n_init=n_init, random_state=seed, reg_covar=1e-4
    ).fit(zs_std)
    cl = gmm.predict(zs_std)
    labels, cl_int = _rank_labels(cl, bright, by_z)

    b = ((bright - bright.mean()) / (bright.std() or 1.0))[:, None]
    gmm_i = GaussianMixture(
        n_components=k, covariance_type="full", n_init=n_init, random_state=seed, reg_covar=1e-4
    ).fit(b)
    cl_i = gmm_i.predict(b)
    labels_i, cl_int_i = _rank_labels(cl_i, bright, by_z)

    return {
        "labels": labels,
        "labels_intensity": labels_i,
        "latent": z,
        "active_latents": vae.active_.copy(),
        "cluster": cl,
        "cluster_intensity_only": cl_i,
        "brightness": bright,
        "cluster_intensity": cl_int,
        "cluster_intensity_baseline": cl_int_i,
        "agreement": float(np.mean(labels == labels_i)),
        "counts": {e: int(np.sum(labels == e)) for e in by_z},
        "counts_intensity": {e: int(np.sum(labels_i == e)) for e in by_z},
        "covariance_type": cov,
        "train_seconds": train_s,
        "loss_history": vae.loss_history_,
        **extra,
    }
