"""Pre-processing of HAADF-STEM images, as the paper, made fast.

``preprocess``: clip at the 99.9th percentile → subtract a 40×40-px median background → negatives to 0 → scale to
[0, 1]. The scale is set by the signal, not by single-pixel noise: the image is divided by ``norm_factor`` (1.6)
times the maximum of a copy smoothed by σ = 1 px (0.03 nm, far below the 0.28-nm atom width), then clipped at 1.
On noisy images (all the real ones) this equals the published min–max within the per-image spread (raw max /
smoothed max = 1.2–2.2 on the 16 shared images, median 1.7), but it does not blow noise-free images up by ~1.6×
as min–max does (there the raw maximum is no longer set by shot-noise spikes, ratio 1.07), which had saturated
the CNN on noise-free simulated images (14 % of all pixels above p = 0.8, components of 200–450 px²). The median is evaluated on a 4× block-averaged image (a 10×10 median there, bilinearly upsampled), which
is ~100× cheaper than the full-resolution 40×40 median and differs from it only by the (smooth) background's
interpolation error.

``rescale_to``: resample an image to the model's training pixel size (0.0293 nm/px) and map coordinates back.
Two ways (``resample``): ``"linear"`` (bilinear, Gaussian anti-aliasing when shrinking; the heat map's frame, the
one it was trained on) and ``"area"`` (an axis that shrinks: each output pixel the area-weighted mean of the input
pixels it covers, as a detector with the larger pixels would have integrated the dose; bilinear when enlarging;
the paper CNN's frame — it was trained at its native pixel size only, and its map depends on the pixel noise).
White noise of sd 1 at 0.016 nm/px comes out of the shrink to 0.0293 nm/px with sd 0.57 (bilinear) or 0.45
(area; a pixel 3.35× larger would have 0.55, the fractional pixels at the edges smooth a little more). The choice
is measured, not derived: with the bilinear frame the CNN lost the faint atoms of fine-pixel fields, and with the
area mean domain-randomised 384² images scored a median F1 of 0.523 instead of 0.477 (12 images, 0.018–0.047
nm/px) and 0.455 instead of 0.416 (24 images at 0.015–0.027 nm/px); one 0.018-nm/px field went from 0.08 to 1.0
of its true density; small sharp atoms at 0.016 nm/px lost a little (docs/detection.md, *Pixel sizes*).
A pixel within :data:`FRAME_TOL` (2 %) of the model's is not resampled. Widening that to 5 % (so that 0.03-nm/px
images are read as they are) raised the second renderer's F1 at 0.03 nm/px but made its descriptors worse: the
unsmoothed faint fields lost atoms the image resolves (recall of isolated atoms 0.78–0.93 → 0.67–0.79) and close
partners (multimer share 0.087 → 0.036 for a true 0.087), so it was not adopted.
"""

from __future__ import annotations

import numpy as np
from scipy import ndimage

from sacmap.detection import filters

#: pixel size (nm/px) of the training images (512 px over 15 nm)
TRAIN_PIXEL_NM = 15.0 / 512
#: supported pixel-size range (nm/px) after which atoms are under-sampled or crops miss their context
SUPPORTED_PIXEL_NM = (0.010, 0.080)
#: relative pixel-size difference up to which an image is taken as it is, not resampled (:func:`frame_factors`)
FRAME_TOL = 0.02
#: ways of :func:`rescale_to`
RESAMPLE = ("linear", "area")


def background(image: np.ndarray, size_px: int = 40, factor: int = 4) -> np.ndarray:
    """Approximate ``size_px``×``size_px`` median background (same shape as ``image``).

    The image is block-averaged by ``factor``, median-filtered with window ``size_px/factor`` and bilinearly
    upsampled back. ``factor=1`` gives the exact scipy median filter.
    """
    img = np.asarray(image, dtype=np.float32)
    if factor <= 1:
        return filters.median_filter(img, size_px, mode="reflect")
    h, w = img.shape
    hp, wp = -(-h // factor) * factor, -(-w // factor) * factor
    padded = np.pad(img, ((0, hp - h), (0, wp - w)), mode="edge")
    small = padded.reshape(hp // factor, factor, wp // factor, factor).mean(axis=(1, 3))
    win = max(1, int(round(size_px / factor)))
    med = filters.median_filter(small, win, mode="reflect")
    # block centres sit at factor*i + (factor-1)/2 in full-resolution pixel coordinates
    rows = (np.arange(h) - (factor - 1) / 2) / factor
    cols = (np.arange(w) - (factor - 1) / 2) / factor
    rr = np.clip(rows, 0, med.shape[0] - 1)
    cc = np.clip(cols, 0, med.shape[1] - 1)
    return ndimage.map_coordinates(med, np.meshgrid(rr, cc, indexing="ij"), order=1, mode="nearest")


def preprocess(image: np.ndarray, *, clip_percentile: float = 99.9, background_px: int = 40,
               background_factor: int = 4, smooth_px: float = 0.0, norm_factor: float = 1.6,
               norm_smooth_px: float = 1.0) -> np.ndarray:
    """Clip, subtract the background and normalise to [0, 1]; returns float32 of the same shape.

    Parameters
    ----------
    image : 2-D array of raw intensities (any dtype).
    clip_percentile : upper clip (percentile of the image); the lower clip is the image minimum.
    background_px : median-filter window (px) of the background estimate; 0 disables subtraction.
    background_factor : block-average factor used to compute the median fast (1 = exact median).
    smooth_px : Gaussian σ (px) applied first (0 = none), against pixel noise.
    norm_factor, norm_smooth_px : the image is divided by ``norm_factor`` × the maximum of the image smoothed by
        ``norm_smooth_px`` (Gaussian σ, px) and clipped to [0, 1]; ``norm_factor=0`` gives plain min–max.
    """
    img = np.asarray(image, dtype=np.float32)
    if smooth_px:
        img = filters.gaussian_filter(img, smooth_px, mode="reflect")
    hi = np.percentile(img, clip_percentile)
    img = np.minimum(img, hi)
    if background_px:
        img = img - background(img, background_px, background_factor)
        img = np.maximum(img, 0.0)
    lo, hi = float(img.min()), float(img.max())
    if hi <= lo:
        return np.zeros_like(img, dtype=np.float32)
    img = img - lo
    if norm_factor > 0:
        scale = norm_factor * float(filters.gaussian_filter(img, norm_smooth_px, mode="reflect").max())
        if scale > 0:
            return np.clip(img / scale, 0.0, 1.0).astype(np.float32)
    return (img / (hi - lo)).astype(np.float32)


def rescale_to(image: np.ndarray, factor: float, factor_y: float | None = None, *,
               resample: str = "linear") -> np.ndarray:
    """Resample ``image`` by ``factor`` (output px per input px; ``factor_y`` for rows when pixels are not
    square). ``resample="linear"``: bilinear, anti-aliased when shrinking; ``"area"``: an axis that shrinks takes
    the area-weighted mean of the input pixels each output pixel covers (:func:`area_weights`), an axis that grows
    is interpolated linearly.

    Pixel centres map as ``x_in = (x_out + 0.5) * W_in / W_out - 0.5`` (see :func:`coords_back`).
    """
    if resample not in RESAMPLE:
        raise ValueError(f"resample {resample!r}: expected one of {RESAMPLE}")
    fy = factor if factor_y is None else factor_y
    if factor == 1.0 and fy == 1.0:
        return np.asarray(image, dtype=np.float32)
    h, w = image.shape
    out = (max(1, int(round(h * fy))), max(1, int(round(w * factor))))
    img = np.asarray(image, dtype=np.float32)
    if resample == "area" and (out[0] < h or out[1] < w):
        if out[0] < h:
            img = np.asarray(area_weights(h, out[0]) @ img, dtype=np.float32)
        if out[1] < w:
            img = np.asarray((area_weights(w, out[1]) @ img.T).T, dtype=np.float32)
        if img.shape == out:
            return np.ascontiguousarray(img)
    from skimage.transform import resize

    return resize(img, out, order=1, mode="reflect", anti_aliasing=resample == "linear" and min(factor, fy) < 1,
                  preserve_range=True).astype(np.float32)


def area_weights(n_in: int, n_out: int):
    """(n_out, n_in) sparse (CSR) weights of a 1-D area-weighted shrink: output pixel i covers input pixels
    [i·n_in/n_out, (i+1)·n_in/n_out), each weighted by the length it overlaps (partial at the two ends); rows sum
    to 1. For ``n_out`` ≤ ``n_in``; at most ⌈n_in/n_out⌉ + 1 weights per row, so a 64-Mpx image shrinks in
    O(pixels)."""
    from scipy import sparse

    if not 0 < n_out <= n_in:
        raise ValueError(f"area_weights: n_out {n_out} must lie in 1..n_in ({n_in})")
    step = n_in / n_out
    lo = np.arange(n_out) * step
    j = np.floor(lo).astype(int)[:, None] + np.arange(int(np.ceil(step)) + 1)[None, :]
    wgt = np.clip(np.minimum(lo[:, None] + step, j + 1) - np.maximum(lo[:, None], j), 0, None)
    ok = (j < n_in) & (wgt > 0)
    rows = np.broadcast_to(np.arange(n_out)[:, None], j.shape)[ok]
    w = sparse.csr_matrix((wgt[ok], (rows, j[ok])), shape=(n_out, n_in))
    return sparse.diags(1.0 / np.asarray(w.sum(axis=1)).ravel()) @ w.astype(np.float64)


def coords_back(x: np.ndarray, y: np.ndarray, shape_in: tuple[int, int], shape_out: tuple[int, int]):
    """Map (x=column, y=row) px in a resampled image of ``shape_out`` back to the original ``shape_in``."""
    x = (np.asarray(x, float) + 0.5) * shape_in[1] / shape_out[1] - 0.5
    y = (np.asarray(y, float) + 0.5) * shape_in[0] / shape_out[0] - 0.5
    return x, y


def frame_factors(pixel_size_nm: float, pixel_size_y_nm: float | None = None, target_nm: float = TRAIN_PIXEL_NM,
                  tol: float = FRAME_TOL) -> tuple[float, float]:
    """Zoom factors (rows, columns; model px per image px) taking an image with pixels of ``pixel_size_nm``
    (× ``pixel_size_y_nm``) to the model frame of ``target_nm`` nm/px; both 1 when both are within ``tol``."""
    py = float(pixel_size_y_nm or pixel_size_nm)
    fx, fy = float(pixel_size_nm) / target_nm, py / target_nm
    if abs(fx - 1) <= tol and abs(fy - 1) <= tol:
        return 1.0, 1.0
    return fy, fx


def to_model_frame(raw: np.ndarray, pixel_size_nm: float, pixel_size_y_nm: float | None = None, *,
                   target_nm: float = TRAIN_PIXEL_NM, resample: str = "linear", factors=None,
                   **preprocess_kw) -> tuple[np.ndarray, tuple[float, float]]:
    """The one image → model-frame transform, shared by training and inference: resample to ``target_nm``
    nm/px (:func:`rescale_to` with ``resample``), then :func:`preprocess` (``preprocess_kw``); both read from the
    weights' metadata (``meta["preprocess"]``, the kind's resampling where it is not recorded). ``factors``
    (rows, columns; model px per image px) replaces :func:`frame_factors` (the detector's frame for small atoms
    on fine pixels, :func:`small_atom_factors`).

    Returns ``(image, (fy, fx))``: the float32 model-frame image and the zoom factors (rows, columns).
    """
    fy, fx = frame_factors(pixel_size_nm, pixel_size_y_nm, target_nm) if factors is None else map(float, factors)
    return preprocess(rescale_to(raw, fx, fy, resample=resample), **preprocess_kw), (fy, fx)


def small_atom_factors(factors, sigma_px: float, min_sigma: float) -> tuple[float, float] | None:
    """Zoom factors (rows, columns) of the image's own pixel grid (the larger factor 1, the aspect of ``factors``
    kept) when ``factors`` (:func:`frame_factors`) shrink the image so far that atoms of σ ``sigma_px`` (image
    px) come out narrower than ``min_sigma`` model px; None when they do not, or when ``factors`` do not shrink.

    Why (docs/detection.md, *Small atoms on fine pixels*): shrinking a 0.016-nm/px image to the model's 0.0293
    nm/px makes a 0.08-nm atom ~1.2 model px wide (σ), narrower than the networks' training atoms, and the faint
    ones are no longer told from support texture; broad atoms on fine pixels still need the shrink. The image's
    own grid, not a milder shrink: a shrink by 0.8-0.9 mixes fractions of neighbouring pixels, which the paper CNN
    takes for atoms (a milder shrink to σ = 2 model px, measured: the faint rows' multimer share 0.113 → 0.208
    for a true 0.098)."""
    fy, fx = (float(f) for f in factors)
    top = max(fy, fx)
    if top >= 1.0 or not (sigma_px > 0 and min_sigma > 0) or sigma_px * top >= min_sigma:
        return None
    return fy / top, fx / top


def coords_to_frame(x: np.ndarray, y: np.ndarray, shape_in: tuple[int, int], shape_out: tuple[int, int]):
    """Inverse of :func:`coords_back`: (x=column, y=row) px of the original image → px of the resampled one."""
    x = (np.asarray(x, float) + 0.5) * shape_out[1] / shape_in[1] - 0.5
    y = (np.asarray(y, float) + 0.5) * shape_out[0] / shape_in[0] - 0.5
    return x, y
