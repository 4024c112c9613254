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
"""

from __future__ import annotations

import numpy as np
from scipy import ndimage

from sacmap.detection import filters

#: pixel size (nm/px) of the training images (512 px over 15 nm)
TRAIN_PIXEL_NM = 15.0 / 512
#: supported pixel-size range (nm/px) after which atoms are under-sampled or crops miss their context
SUPPORTED_PIXEL_NM = (0.010, 0.080)


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


def rescale_factor(pixel_size_nm: float, target_nm: float = TRAIN_PIXEL_NM, tol: float = 0.02) -> float:
    """Zoom factor (output px per input px) taking ``pixel_size_nm`` to ``target_nm``; 1 when within ``tol``."""
    s = float(pixel_size_nm) / float(target_nm)
    return 1.0 if abs(s - 1.0) <= tol else s


def rescale_to(image: np.ndarray, factor: float, factor_y: float | None = None) -> np.ndarray:
    """Resample ``image`` by ``factor`` (output px per input px; ``factor_y`` for rows when pixels are not
    square), anti-aliased when shrinking.

    Pixel centres map as ``x_in = (x_out + 0.5) * W_in / W_out - 0.5`` (see :func:`coords_back`).
    """
    fy = factor if factor_y is None else factor_y
    if factor == 1.0 and fy == 1.0:
        return np.asarray(image, dtype=np.float32)
    from skimage.transform import resize

    h, w = image.shape
    out = (max(1, int(round(h * fy))), max(1, int(round(w * factor))))
    return resize(np.asarray(image, dtype=np.float32), out, order=1, mode="reflect",
                  anti_aliasing=min(factor, fy) < 1, preserve_range=True).astype(np.float32)


def coords_back(x: np.ndarray, y: np.ndarray, shape_in: tuple[int, int], shape_out: tuple[int, int]):
    """Map (x=column, y=row) px in a resampled image of ``shape_out`` back to the original ``shape_in``."""
    x = (np.asarray(x, float) + 0.5) * shape_in[1] / shape_out[1] - 0.5
    y = (np.asarray(y, float) + 0.5) * shape_in[0] / shape_out[0] - 0.5
    return x, y


def frame_factors(pixel_size_nm: float, pixel_size_y_nm: float | None = None, target_nm: float = TRAIN_PIXEL_NM,
                  tol: float = 0.02) -> tuple[float, float]:
    """Zoom factors (rows, columns; model px per image px) taking an image with pixels of ``pixel_size_nm``
    (× ``pixel_size_y_nm``) to the model frame of ``target_nm`` nm/px; both 1 when both are within ``tol``."""
    py = float(pixel_size_y_nm or pixel_size_nm)
    fx, fy = float(pixel_size_nm) / target_nm, py / target_nm
    if abs(fx - 1) <= tol and abs(fy - 1) <= tol:
        return 1.0, 1.0
    return fy, fx


def to_model_frame(raw: np.ndarray, pixel_size_nm: float, pixel_size_y_nm: float | None = None, *,
                   target_nm: float = TRAIN_PIXEL_NM, **preprocess_kw) -> tuple[np.ndarray, tuple[float, float]]:
    """The one image → model-frame transform, shared by training and inference: resample to ``target_nm``
    nm/px (:func:`rescale_to`), then :func:`preprocess` (``preprocess_kw``, read from the weights' metadata).

    Returns ``(image, (fy, fx))``: the float32 model-frame image and the zoom factors (rows, columns).
    """
    fy, fx = frame_factors(pixel_size_nm, pixel_size_y_nm, target_nm)
    return preprocess(rescale_to(raw, fx, fy), **preprocess_kw), (fy, fx)


def coords_to_frame(x: np.ndarray, y: np.ndarray, shape_in: tuple[int, int], shape_out: tuple[int, int]):
    """Inverse of :func:`coords_back`: (x=column, y=row) px of the original image → px of the resampled one."""
    x = (np.asarray(x, float) + 0.5) * shape_out[1] / shape_in[1] - 0.5
    y = (np.asarray(y, float) + 0.5) * shape_out[0] / shape_in[0] - 0.5
    return x, y
