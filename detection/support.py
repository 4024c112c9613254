"""Support (sample) versus vacuum segmentation of a HAADF-STEM image, for the support area (nm²).

The clipped image is block-averaged and Gaussian-smoothed (σ = 0.15 nm, so single atoms and pixel noise vanish). HAADF
intensity grows with projected mass, so vacuum sits at the dark end: with ``v`` the 1st and ``s`` the 95th
percentile of the smoothed image, pixels below ``v + frac·(s − v)`` (``frac`` = 0.1) are vacuum — but only when
the image has a vacuum level at all, ``v/s < vacuum_ratio`` (0.5); otherwise the whole image is support.
Otsu's threshold was tried first and rejected: on the shared images it cuts through the thin carbon where many
labelled atoms sit (thin/thick-carbon contrast is larger than carbon/vacuum in the histogram). Vacuum regions
smaller than ``min_vacuum_nm2`` are returned to the support, and the support mask is hole-filled.
"""

from __future__ import annotations

import numpy as np
from scipy import ndimage


def support_mask(image: np.ndarray, pixel_size_nm: float, *, smooth_nm: float = 0.15, vacuum_ratio: float = 0.5,
                 frac: float = 0.1, min_vacuum_nm2: float = 1.0, pixel_size_y_nm: float | None = None) -> tuple[np.ndarray, dict]:
    """Boolean mask (True = support) of the image's shape, and a dict of diagnostics.

    Parameters
    ----------
    image : raw 2-D intensities (not background-subtracted: that would remove the vacuum contrast).
    pixel_size_nm : nm/px (x); ``pixel_size_y_nm`` defaults to it.
    smooth_nm : Gaussian smoothing σ (nm) before thresholding.
    vacuum_ratio : the image has vacuum only if (1st percentile) < vacuum_ratio · (95th percentile).
    frac : vacuum threshold as a fraction of the way from the vacuum level to the support level.
    min_vacuum_nm2 : vacuum regions smaller than this (nm²) are counted as support.
    """
    py = pixel_size_y_nm or pixel_size_nm
    img = np.asarray(image, np.float32)
    img = np.minimum(img, np.percentile(img, 99.9))
    h, w = img.shape
    f = max(1, int(min(h, w) // 256))  # work on ≤ ~256 px per side
    hp, wp = -(-h // f) * f, -(-w // f) * f
    small = np.pad(img, ((0, hp - h), (0, wp - w)), mode="edge").reshape(hp // f, f, wp // f, f).mean(axis=(1, 3))
    sigma = smooth_nm / (pixel_size_nm * f)
    sm = ndimage.gaussian_filter(small, sigma=max(sigma, 0.5), mode="reflect")
    diag = {"threshold": None, "vacuum_support_ratio": None, "vacuum": False}
    full = np.ones((h, w), bool)
    v, s = (float(q) for q in np.percentile(sm, [1, 95]))
    if s <= v or s <= 0:
        return full, diag
    ratio = v / s
    t = v + frac * (s - v)
    diag.update(threshold=t, vacuum_support_ratio=ratio)
    if ratio >= vacuum_ratio:
        return full, diag
    vac = sm <= t
    lab, n = ndimage.label(vac)
    if n:
        sizes = ndimage.sum(vac, lab, index=np.arange(1, n + 1)) * (pixel_size_nm * f) * (py * f)
        small_ids = np.flatnonzero(sizes < min_vacuum_nm2) + 1
        vac[np.isin(lab, small_ids)] = False
    sup_small = ndimage.binary_fill_holes(~vac)
    mask = np.repeat(np.repeat(sup_small, f, axis=0), f, axis=1)[:h, :w]
    diag["vacuum"] = bool((~mask).any())
    return mask, diag


def support_area_nm2(mask: np.ndarray, pixel_size_nm: float, pixel_size_y_nm: float | None = None) -> float:
    """Area (nm²) of the True pixels of ``mask``."""
    return float(mask.sum()) * pixel_size_nm * (pixel_size_y_nm or pixel_size_nm)
