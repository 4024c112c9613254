"""Which of two readings of one image the image itself supports: its compact peaks as a pseudo-truth.

Arrays in, arrays out, no I/O (as ``skimage.feature``). Positions in px of the native image (x = column,
y = row); widths in native px.

Why (docs/detection.md, *Small atoms on fine pixels*): on an image finer than the model frame the networks can
read either the shrunk frame or the image's own grid. Small atoms (0.08–0.15 nm FWHM at 0.016 nm/px) are read
better on the native grid when they stand out, the shrink is better when the pixel noise is high, and the
width of the atoms that would decide it cannot be measured from the first reading when most of its detections
are support texture (at a bright dose the shrunk frame puts two to four texture bumps on every true atom, and
their width, 7–10 px, hides the atoms' 2–3 px). So the detector measures the width of the first reading's
*significant* detections only, and where that says the atoms are small, both readings are made and each is
scored against the peaks the image itself shows as compact atoms. A detection is *significant* when its
band-pass contrast G(s) − G(4s) (at one of a ladder of small widths s) stands out both from the pixel noise (as
a matched filter's amplitude-to-noise ratio, :data:`MIN_Z_NOISE`) and from the spread of the same band-pass
over the whole image, which holds the texture (:data:`MIN_Z_BAND`). Texture bumps pass the first test at a
bright dose and fail the second; weak atoms at a moderate dose pass both. The pseudo-truth is the union of both
readings' significant detections; the second reading is kept when its F1 against that is clearly higher
(:data:`F1_MARGIN`) and it keeps at least :data:`MIN_SIGNIFICANT_RATIO` of the first's significant detections
(a reading that only drops weak atoms also raises its F1 against a pseudo-truth that lacks them).
"""

from __future__ import annotations

import numpy as np
from scipy import ndimage as ndi

from sacmap.detection.gaussfit import pixel_noise, robust_sd

#: ladder of band-pass widths (native px); only those up to the caller's ``max_sigma_px`` are used
SCALES_PX = (1.0, 2**0.5, 2.0, 2 * 2**0.5, 4.0, 4 * 2**0.5, 8.0)
#: least matched-filter amplitude / pixel noise of a significant detection
MIN_Z_NOISE = 5.0
#: least band-pass height / robust sd of the whole band-passed image (noise and texture) of a significant detection
MIN_Z_BAND = 3.0
#: detections of the two readings within this distance (nm) are the same atom
MATCH_NM = 0.10
#: the second reading is kept when its F1 against the pseudo-truth exceeds the first's by this factor ...
F1_MARGIN = 1.1
#: ... and it has at least this share of the first reading's significant detections
MIN_SIGNIFICANT_RATIO = 0.9


def band_images(image: np.ndarray, max_sigma_px: float) -> list[tuple[float, np.ndarray, float]]:
    """(s, band-passed image G(s) − G(4s), its robust sd) for each s of :data:`SCALES_PX` up to ``max_sigma_px``
    (at least the first): computed once per image and passed to :func:`significant` and :func:`compare` (on a
    2048² image the eight Gaussian filters of four widths take 1.5–2 s)."""
    img = np.asarray(image, dtype=np.float32)  # float32: four bands of a 4096² image take 256 MB, not 512
    scales = [s for s in SCALES_PX if s <= max_sigma_px * (1 + 1e-9)] or [SCALES_PX[0]]
    out = []
    for s in scales:
        band = ndi.gaussian_filter(img, s) - ndi.gaussian_filter(img, 4 * s)
        out.append((s, band, max(float(robust_sd(band[:: max(1, img.shape[0] // 512)])), 1e-12)))
    return out


def significant(image: np.ndarray, xy_px: np.ndarray, max_sigma_px: float, bands=None) -> np.ndarray:
    """Bool per detection (``xy_px``: (N, 2), x = column): a compact peak that stands out from the pixel noise and
    from the image's band-pass spread at some width s ≤ ``max_sigma_px`` of :data:`SCALES_PX` (module docstring).
    ``bands``: :func:`band_images` of the same image and ``max_sigma_px``, when already computed."""
    img = np.asarray(image, dtype=float)
    xy = np.asarray(xy_px, dtype=float).reshape(-1, 2)
    if not len(xy):
        return np.zeros(0, bool)
    noise = max(pixel_noise(img), 1e-12)
    rr = np.clip(np.rint(xy[:, 1]).astype(int), 0, img.shape[0] - 1)
    cc = np.clip(np.rint(xy[:, 0]).astype(int), 0, img.shape[1] - 1)
    ok = np.zeros(len(xy), bool)
    for s, band, sd in band_images(img, max_sigma_px) if bands is None else bands:
        at = band[rr, cc]
        # a unit-peak Gaussian of width s has Σw² = πs²: the matched amplitude's noise is noise / (√π s), and
        # G(s) − G(4s) at the centre of an atom of width s is ≈ half its peak
        ok |= (2 * np.sqrt(np.pi) * s * at / noise >= MIN_Z_NOISE) & (at / sd >= MIN_Z_BAND)
    return ok


def matched(a_xy: np.ndarray, b_xy: np.ndarray, radius: float) -> np.ndarray:
    """Per point of ``a_xy``: whether it has a partner in ``b_xy`` within ``radius`` (same units) in a maximum
    one-to-one matching (as :func:`sacmap.detection.evaluate.match` counts, on the sparse graph of close pairs
    so that images with thousands of detections need no dense cost matrix)."""
    from scipy.sparse import csr_matrix
    from scipy.sparse.csgraph import maximum_bipartite_matching
    from scipy.spatial import cKDTree

    a = np.asarray(a_xy, float).reshape(-1, 2)
    b = np.asarray(b_xy, float).reshape(-1, 2)
    if not len(a) or not len(b):
        return np.zeros(len(a), bool)
    pairs = cKDTree(a).query_ball_tree(cKDTree(b), radius)
    rows = np.repeat(np.arange(len(a)), [len(p) for p in pairs])
    cols = np.fromiter((j for p in pairs for j in p), int, len(rows))
    graph = csr_matrix((np.ones(len(rows)), (rows, cols)), shape=(len(a), len(b)))
    return maximum_bipartite_matching(graph, perm_type="column") >= 0


def compare(image: np.ndarray, first_xy: np.ndarray, second_xy: np.ndarray, pixel_nm: float,
            max_sigma_px: float, bands=None) -> dict:
    """Scores of two readings of ``image`` (positions px of the native image) against the union of their
    significant detections (:func:`significant`): counts, significant counts, the pseudo-truth's size, each
    reading's F1 against it (matched one-to-one within :data:`MATCH_NM`) and ``keep_second``. ``bands``: as for
    :func:`significant`."""
    a = np.asarray(first_xy, float).reshape(-1, 2)
    b = np.asarray(second_xy, float).reshape(-1, 2)
    bands = band_images(image, max_sigma_px) if bands is None else bands
    sa = a[significant(image, a, max_sigma_px, bands)]
    sb = b[significant(image, b, max_sigma_px, bands)]
    r = MATCH_NM / pixel_nm
    pseudo = np.r_[sa, sb[~matched(sb, sa, r)]]

    def f1(xy):
        return 2 * int(matched(xy, pseudo, r).sum()) / max(len(xy) + len(pseudo), 1)

    fa, fb = f1(a), f1(b)
    keep = bool(fb > F1_MARGIN * fa and len(sb) >= MIN_SIGNIFICANT_RATIO * len(sa) and len(sb) > 0)
    return {"n_first": len(a), "n_second": len(b), "significant_first": len(sa), "significant_second": len(sb),
            "pseudo_truth": len(pseudo), "f1_first": round(fa, 3), "f1_second": round(fb, 3), "keep_second": keep}
