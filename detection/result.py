"""The detection record and the two ends of the pipeline shared by every model: :class:`Settings` (decoder
settings), :func:`prepare` (image → model frame, by the detector's transform), :func:`finish` (map → atoms in image
px → Gaussian refinement → support area → elements → :class:`DetectionResult`, which writes the record of
:mod:`sacmap.core.records`).

:mod:`sacmap.detection.detector` (``AtomDetector``) calls these; :mod:`sacmap.detection.pipeline` runs images and
files through an ``AtomDetector`` and re-exports the names of this module.
"""

from __future__ import annotations

import dataclasses
import os
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
import pandas as pd

from sacmap.core.atomic import atomic_write, atomic_write_with, save_figure, write_json
from sacmap.core.records import DETECTION_COLUMNS, detection_paths
from sacmap.detection.errors import DetectionInputError
from sacmap.detection.preprocess import (
    TRAIN_PIXEL_NM,
    coords_back,
)


@dataclass
class Settings:
    """Decoder settings; lengths in nm are converted to model-frame px (0.0293 nm/px).

    ``threshold`` None = the operating threshold stored with the weights (see
    :class:`sacmap.detection.detector.AtomDetector`). The fields from ``min_size_px`` to ``large_dip`` are the
    paper CNN's localisation (:func:`sacmap.detection.localise.localise`); ``peak_sep_nm`` (None = the weights'
    decoder setting, 0.15 nm) is the heat-map decoder's minimum peak spacing; ``combine_score`` and
    ``combine_sep_nm`` (nm) are the combination's (:func:`sacmap.detection.combine.union_atoms`: the heat-map peaks
    of at least that height, and the CNN atoms farther than that from every one of them), ``combine_partner_nm`` (nm)
    keeps the heat-map peaks between its own threshold and ``combine_score`` that lie that close to a kept one
    (:func:`sacmap.detection.combine.with_partners`: the weaker peak of a close pair; 0 = off); ``refine`` fits
    2-D Gaussians (:mod:`sacmap.detection.refine`) to every atom (intensity, width, error; positions moved towards
    the fits by the weight the image gives them, see :func:`sacmap.detection.refine.combine_with_start`);
    ``split_pairs`` (off by default) adds the model-order selection of :mod:`sacmap.detection.split` to the
    refinement: a fitted atom that two atoms ≥ 0.15 nm apart explain better (Δχ², corrected for the residuals'
    spatial correlation, above ``split_penalty`` × BIC) becomes two. The added atom's row is appended after the
    detected ones and carries its parent's ``score`` and ``component_size`` (as the atoms of a GMM split share
    their component's), so the record's columns are unchanged. Measured (docs/detection.md): clean dense
    multimer images recall 0.81 → 0.93 (precision 1.00 → 0.98); the real and randomised calibrated-noise images
    unchanged (no split accepted); a step edge in the image (the seams of a tiled image) is split. ``wide_ratio``
    (1.8 by default, 0 = off) drops refined atoms with no other detection within 2 × that many σ₀ whose
    free-width fit is at least that many σ₀ wide and no brighter than 1.2 × the median peak, or at least
    :data:`WIDE_FAINT_SIGMA` σ₀ wide and fainter than :data:`WIDE_FAINT_PEAK` × it (:func:`wide_atoms`: texture
    bumps, not atoms; measured in session 10: the second renderer's faint small atoms at fine pixels F1
    +0.02–0.07, none of the real images changed, the randomised median 0.478 → 0.477; the fainter tier in session
    13: that renderer's 56-row F1 sum +0.14, the real images unchanged).
    ``faint_ratio`` (0.35 by default, 0 = off; the combination only) drops, after the refinement, the atoms the
    paper CNN or the verifier added, with no other atom within :data:`FAINT_ISOLATION_NM`, whose integrated
    intensity is below that × the median of the heat-map atoms'
    (:func:`sacmap.detection.combine.faint_additions`: support-texture bumps the CNN takes for small or faint atoms;
    measured in session 12: the second renderer's F1 summed over its 56 rows +0.20, 13 rows better, none worse;
    the validation images 0.659 → 0.661; the calibrated fidelity rows within 0.006 of F1, the clean ones 0.002).
    ``small_atom_sigma`` (2 model px by default, 0 = off): an image finer than the model frame whose atoms, found
    in that frame, have a σ₀ that the shrink would take below this and that stand out from the pixel noise
    (:data:`sacmap.detection.detector.SMALL_ATOM_MIN_CONTRAST`) is read again on its own pixel grid
    (:meth:`sacmap.detection.detector.AtomDetector.network_atoms`; measured in session 14: the second renderer's
    56-row F1 sum +0.34 (seed 7) and +0.27 (seed 11), no row lower by more than 0.001 F1, the faint 0.08-nm
    random field 1.62 → 1.13 × the true density; real images at 0.0293 nm/px are never affected). Where the
    first reading is mostly texture, σ₀ of its significant detections below the networks' training width
    (:data:`sacmap.detection.detector.SECOND_READING_SIGMA`) makes a second, native reading, and the image's
    compact peaks decide which is kept (:mod:`sacmap.detection.readings`; session 15:
    ``benchmarks/pixel_sizes.py`` at 0.016 nm/px F1 0.336 → 0.457).
    ``crowded_density`` (1.4 atoms/nm² by default, 0 = off; the combination only): where the networks' atoms
    (before the verifier) are at least that dense over the image, its pixel is at least 0.9 × the model pixel
    (0.0264 nm/px) and its significant detections are as broad as the crowded map's training atoms (≥
    :data:`sacmap.detection.detector.CROWDED_MIN_FWHM_NM`, 0.22 nm FWHM), the heat map trained with crowded broad-atom fields
    (:data:`sacmap.detection.detector.CROWDED_HEATMAP`) reads the image instead of the bundled one; the record's
    ``crowded_reading`` says what was decided (measured in session 17: the calibrated fidelity rows ≥ 4 atoms/nm²
    and the second renderer's crowded broad-atom rows gain up to 0.15 F1; the real images, sparse, are never
    switched; docs/detection.md, *Crowded fields*).
    ``verify`` (on by default; the combination only) adds the band-pass candidates that the verifier accepts at
    ``verify_threshold`` (None: the verifier file's, 0.8), each farther than ``verify_sep_nm`` from every detected
    atom and from each other (:meth:`sacmap.detection.detector.AtomDetector.verified`; ``component_size`` −1).
    """

    threshold: float | None = None
    min_size_px: int = 1  # smallest component kept (model px)
    split_area_px: float = 200.0  # components larger than this (model px²) go to the GMM split
    min_sep_nm: float = 0.18  # closest physically possible atom spacing (BIC penalty)
    max_sd_nm: float = 0.09  # widest single-atom blob (σ, BIC penalty)
    merge_nm: float = 0.15  # detections closer than this are one atom (non-maximum suppression)
    k_max: int = 3
    peak_split: bool = True  # split components holding >= 2 resolved intensity maxima (any area)
    peak_dip: float = 0.85  # resolution criterion: profile between two maxima must dip below this × lower peak
    large_dip: float = 1.0  # inside components larger than split_area_px: every maximum >= min_sep apart (no dip)
    peak_sep_nm: float | None = None  # heat-map decoder: minimum spacing of two atoms (None: from the weights)
    combine_score: float = 0.35  # combination: heat-map peaks kept above this height (its own threshold: 0.30)
    combine_sep_nm: float = 0.15  # combination: CNN atoms added only this far from every heat-map peak
    combine_partner_nm: float = 0.30  # combination: lower heat-map peaks (to its own threshold) kept this near a kept one
    verify: bool = True  # combination: add the band-pass candidates the verifier accepts (detection.candidates)
    verify_threshold: float | None = None  # ... at this probability (None: the verifier file's)
    verify_sep_nm: float = 0.15  # ... farther than this from every detected atom
    refine: bool = True  # 2-D Gaussian refinement: sub-pixel positions, intensity, width, uncertainty
    faint_ratio: float = 0.35  # combination: drop CNN / verifier atoms fainter than this x the heat-map atoms' median
    wide_ratio: float = 1.8  # > 0: drop isolated atoms whose free-width fit is >= this x sigma0, peak < 1.2 x median
    small_atom_sigma: float = 2.0  # > 0: an image finer than the model frame whose atoms would be narrower than
    # this (sigma, model px) there and stand out from the pixel noise is read again on its own pixel grid
    crowded_density: float = 1.4  # combination, > 0: where the networks find at least this many atoms per nm²,
    # the heat map trained with crowded fields (detector.CROWDED_HEATMAP) replaces the bundled one (0 = off)
    enlarged_cnn_factor: float = 1.0  # combination, > 0: where the paper CNN reads the image enlarged by more than
    # this factor (1: every image coarser than the model frame by more than its 2 % tolerance) and the crowded reading
    # is not used, its atoms are left out and the heat map's peaks kept down to its own threshold (0 = off;
    # docs/detection.md, Pixel sizes, session 23)
    split_pairs: bool = False  # refinement: test each fitted atom for a merged close pair (detection.split)
    split_penalty: float = 2.0  # ... accepted when Δχ² (correlation-corrected) > this × BIC (4 ln n)
    on_support_only: bool = False  # drop detections over vacuum
    seed: int = 0

    def as_dict(self) -> dict:
        return dataclasses.asdict(self)

    def px(self, nm: float) -> float:
        return nm / TRAIN_PIXEL_NM


@dataclass
class DetectionResult:
    """Atoms of one image and everything needed to write / inspect them."""

    atoms: pd.DataFrame  # sacmap.core.records.DETECTION_COLUMNS
    image: np.ndarray  # raw image (original frame)
    pixel_size_nm: float
    pixel_size_y_nm: float
    probability: np.ndarray  # model frame
    support: np.ndarray  # bool, original frame
    support_area_nm2: float
    settings: dict
    name: str = "image"
    meta: dict = field(default_factory=dict)

    @property
    def n_atoms(self) -> int:
        return len(self.atoms)

    def summary(self) -> dict:
        """The JSON record (see module docstring)."""
        n_on = int(self.meta.get("n_atoms_on_support", self.n_atoms))
        el = self.atoms["element"].astype(str)
        counts = {k: int(v) for k, v in el[el != ""].value_counts().sort_index().items()}
        return {
            "image": self.name,
            "pixel_size_nm": self.pixel_size_nm,
            "pixel_size_y_nm": self.pixel_size_y_nm,
            "shape": list(self.image.shape),
            "support_area_nm2": self.support_area_nm2,
            "field_area_nm2": float(self.image.size * self.pixel_size_nm * self.pixel_size_y_nm),
            "threshold": self.settings["threshold"],
            "n_atoms": self.n_atoms,
            "n_atoms_on_support": n_on,
            "density_nm2": (n_on / self.support_area_nm2) if self.support_area_nm2 > 0 else None,
            "element_counts": counts,
            "settings": self.settings,
            **{k: v for k, v in self.meta.items() if k != "n_atoms_on_support"},
        }

    def write(self, outdir, stem: str | None = None, overlay: bool = True) -> dict:
        """Write the record of :mod:`sacmap.core.records` into ``outdir``, each file atomically: ``<stem>.csv``
        (4 decimals), ``<stem>.json`` (:meth:`summary` + ``files``), ``<stem>_support.png`` and (``overlay``)
        ``<stem>.png``. Returns the paths written (keys ``csv``, ``json``, ``support``[, ``overlay``])."""
        stem = stem or Path(self.name).stem
        paths = detection_paths(outdir, stem)
        if not overlay:
            del paths["overlay"]
        atomic_write(paths["csv"], self.atoms[list(DETECTION_COLUMNS)].to_csv(index=False, float_format="%.4f"))
        summ = self.summary()
        summ["files"] = {k: v.name for k, v in paths.items()}
        if overlay:
            write_overlay(self, paths["overlay"])
        atomic_write_with(paths["support"], lambda tmp: _write_mask(self.support, tmp))
        write_json(paths["json"], summ, indent=1)
        return paths


def _write_mask(mask: np.ndarray, path) -> None:
    from PIL import Image

    Image.fromarray(np.asarray(mask, np.uint8) * 255).save(path, format="PNG")


def write_overlay(result: DetectionResult, path) -> None:
    """PNG of the clipped image with detections (circles, coloured by element) and the support outline, written
    atomically to ``path`` (one image pixel per PNG pixel)."""
    import matplotlib

    matplotlib.use("Agg")
    from matplotlib.figure import Figure

    img = result.image
    lo, hi = np.percentile(img, [0.1, 99.9])
    h, w = img.shape
    fig = Figure(figsize=(w / 100, h / 100), dpi=100)
    ax = fig.add_axes([0, 0, 1, 1])
    ax.imshow(np.clip(img, lo, hi), cmap="gray", interpolation="nearest")
    if not result.support.all():
        ax.contour(result.support.astype(float), [0.5], colors="cyan", linewidths=0.8)
    a = result.atoms
    r = 0.15 / result.pixel_size_nm
    colours = ["red", "yellow", "lime", "magenta", "orange"]
    els = [e for e in pd.unique(a["element"].astype(str))]
    for i, e in enumerate(els):
        sel = a["element"].astype(str) == e
        ax.scatter(a.loc[sel, "x_px"], a.loc[sel, "y_px"], s=(2 * r) ** 2 * 0.5, facecolors="none",
                   edgecolors=colours[i % len(colours)], linewidths=0.8, label=e or None)
    if any(els):
        ax.legend(loc="upper right", fontsize=8)
    ax.set_xlim(-0.5, w - 0.5)
    ax.set_ylim(h - 0.5, -0.5)
    ax.axis("off")
    save_figure(fig, path, close=False, dpi=100, format="png")


@dataclass
class Prepared:
    """An image read and brought to the model frame (see :func:`prepare`)."""

    raw: np.ndarray
    px: float
    py: float
    frame: np.ndarray
    name: str
    meta: dict


def prepare(image_or_path, pixel_size_nm, detector, pixel_size_y_nm=None) -> Prepared:
    """Read an image (path or array), check it, and bring it to the model frame with ``detector``'s transform
    (:meth:`sacmap.detection.detector.AtomDetector.to_frame`, the one training used). ``pixel_size_y_nm``: the
    rows' pixel size (nm/px) where it differs from ``pixel_size_nm`` (None: square, or a file's calibration)."""
    from sacmap.detection.io import check_pixel_size, read_image

    if isinstance(image_or_path, (str, os.PathLike)):
        raw, px, meta = read_image(image_or_path, pixel_size_nm)
        py = meta["pixel_size_y_nm"]
        if pixel_size_y_nm is not None:
            py = float(pixel_size_y_nm)
            check_pixel_size(str(image_or_path), px, py, raw.shape, "user")
            meta = {**meta, "pixel_size_y_nm": py}
        name = Path(image_or_path).name
    else:
        raw = np.asarray(image_or_path, dtype=np.float64)
        if raw.ndim != 2:
            raise DetectionInputError(f"image array: expected 2-D, got shape {raw.shape}")
        if not np.all(np.isfinite(raw)):
            raise DetectionInputError("image array: contains NaN/inf")
        if raw.max() == raw.min():
            raise DetectionInputError("image array: constant image")
        if pixel_size_nm is None:
            raise DetectionInputError("image array: pixel_size_nm is required for an array input")
        px = float(pixel_size_nm)
        py = px if pixel_size_y_nm is None else float(pixel_size_y_nm)
        # the same bounds as a file's (the detector's range, the resampled pixel cap), before resampling
        check_pixel_size("image array", px, None if py == px else py, raw.shape, "user")
        meta = {"pixel_size_source": "user"}
        name = "image"
    frame, (fy, fx) = detector.to_frame(raw, px, py)
    return Prepared(raw, px, py, frame, name, {**meta, "rescale_factor": [fy, fx], "warning": None})


def reframe(p: Prepared, detector, factors) -> Prepared:
    """``p`` brought to the model frame again with zoom ``factors`` (rows, columns) instead of its pixel size's
    (:meth:`sacmap.detection.detector.AtomDetector.to_frame`); the record's ``rescale_factor`` says which."""
    frame, (fy, fx) = detector.to_frame(p.raw, p.px, p.py, factors=factors)
    return Prepared(p.raw, p.px, p.py, frame, p.name, {**p.meta, "rescale_factor": [fy, fx]})


def _refine(raw: np.ndarray, x: np.ndarray, y: np.ndarray, px: float, s: Settings | None = None,
            component_size: np.ndarray | None = None, band_px: tuple[float, float] | None = None,
            py: float | None = None):
    """Refined (x, y), the per-atom columns of :func:`sacmap.detection.refine.refine` (image px) and, per output
    atom, the detected atom it came from (``parent``). Each position moves from the detector's towards the fit by
    the weight the image gives the fit (:func:`sacmap.detection.refine.combine_with_start`: the whole way on clean
    images, not at all where the support texture makes the fits no better than the detector); atoms whose fit hit a
    bound (or left the image) keep the detector's position, and close-pair atoms with a fit error ≤ 20 pm take the
    fit (its pair separation is unbiased, the detector's is not); with ``s.wide_ratio`` > 0 atoms far wider than the
    image's and no brighter, or moderately wider and faint, are dropped (:func:`wide_atoms`), and then with ``s.faint_ratio`` > 0 the isolated
    additions of a combination fainter than that × its heat-map atoms' median
    (:func:`sacmap.detection.combine.faint_additions`). With ``s.split_pairs`` merged close pairs found by
    :mod:`sacmap.detection.split` become two atoms at their fitted positions (the detector has no position for
    them), appended after the detected ones. ``pos_err_px`` is the fit's 1-σ error.

    ``component_size``: the decoder's per detected atom (0 heat-map peak, > 0 CNN atom, −1 an atom placed at a
    band-pass maximum by the verifier, band σ ``band_px`` image px; None: no combination). Before anything is
    fitted, those of close pairs are put back where two atoms of the image's σ₀ would put
    such maxima (:func:`sacmap.detection.candidates.debias_pairs`), so the fits start there and, where the image
    gives the fits no weight, these are the positions reported."""
    from sacmap.detection.refine import (
        PAIR_FIT_NM,
        PRECISE_FIT_NM,
        RefineOptions,
        combine_with_start,
        estimate_sigma,
        refine,
    )
    from sacmap.detection.split import SplitOptions

    s = s or Settings()
    opt = RefineOptions(split=SplitOptions(penalty=s.split_penalty) if s.split_pairs else None)
    sigma0 = None
    band_pass_maxima = None if component_size is None else np.asarray(component_size) < 0
    if band_pass_maxima is not None and np.any(band_pass_maxima) and len(x) > 1:
        from sacmap.detection.candidates import debias_pairs

        sigma0 = estimate_sigma(raw, np.c_[x, y], pixel_size_nm=px, options=opt)
        x, y = debias_pairs(np.c_[x, y], band_pass_maxima, sigma0, band_px).T
    ref = refine(raw, np.c_[x, y], sigma_px=sigma0, pixel_size_nm=px, options=opt)
    n = len(x)
    parent = ref["parent"].to_numpy(int)
    h, w = raw.shape
    xf, yf = ref["x_px"].to_numpy(float), ref["y_px"].to_numpy(float)
    ok = ref["fit_ok"].to_numpy(bool) & (xf >= -0.5) & (xf <= w - 0.5) & (yf >= -0.5) & (yf <= h - 0.5)
    split = np.bincount(parent, minlength=n)[parent] > 1
    xy = combine_with_start(np.c_[x, y][parent], np.c_[xf, yf], ref["pos_err_px"].to_numpy(float),
                            ref["group"].to_numpy(int), ok & ~split, pair_px=PAIR_FIT_NM / px,
                            precise_px=PRECISE_FIT_NM / px)
    xy[split & ok] = np.c_[xf, yf][split & ok]
    keep = np.ones(len(xy), bool)
    if s.wide_ratio > 0:
        keep = ~wide_atoms(raw, xy, ref.attrs["sigma0_px"], px, s.wide_ratio)
    if s.faint_ratio > 0 and component_size is not None and keep.any():
        from sacmap.detection.combine import faint_additions

        k = np.flatnonzero(keep)
        keep[k[faint_additions(ref["intensity"].to_numpy(float)[k], np.asarray(component_size)[parent[k]],
                               s.faint_ratio, xy=xy[k] * [px, py or px], isolation=FAINT_ISOLATION_NM)]] = False
    cols = {k: ref[k].to_numpy(float)[keep] for k in ("intensity", "sigma_px", "pos_err_px")}
    return xy[keep, 0], xy[keep, 1], cols, parent[keep]


#: Only additions with no other atom within this distance (nm) are judged by their light (``Settings.faint_ratio``,
#: :func:`sacmap.detection.combine.faint_additions`): a close pair's joint fit shares out its light.
FAINT_ISOLATION_NM = 0.30


#: A detection is kept unless its free-width fit is ``Settings.wide_ratio`` × σ₀ or wider *and* its peak is below
#: this × the image's median peak: a merged pair is wider but brighter, a texture bump wider and fainter.
WIDE_PEAK_RATIO = 1.2
#: ... and unless another detection lies within this × ``wide_ratio``·σ₀ (the wide Gaussian's own 2σ): in a crowd
#: the free width takes up the neighbours' light.
WIDE_ISOLATION = 2.0
#: A fainter tier of the same rule: also dropped when ≥ this × σ₀ wide and fainter than :data:`WIDE_FAINT_PEAK` ×
#: the median peak (texture bumps of small-atom images fit 1.3–1.7 σ₀ wide at 0.15–0.5 of the atoms' peak; the
#: atoms 0.9–1.2 σ₀ at 0.9–1.4; a lighter metal's atom is faint but has the probe's width).
WIDE_FAINT_SIGMA = 1.4
WIDE_FAINT_PEAK = 0.5


def wide_atoms(raw: np.ndarray, xy_px: np.ndarray, sigma0_px: float, px: float, ratio: float) -> np.ndarray:
    """Mask of atoms too wide to be one atom of this image: refitted at ``xy_px`` (image px) with the width free
    (log-normal prior sd 1 instead of 5 %, σ₀ given), those whose σ ≥ ``ratio``·σ₀ and whose peak is below
    :data:`WIDE_PEAK_RATIO` × the median peak. Every single atom of an image has the probe's width (σ₀, measured on
    its isolated atoms); a detection twice as wide and no brighter is support texture that, brought to the model
    frame, looked like the broad atoms the networks learnt (second renderer: faint 0.08-nm atoms at 0.016 nm/px,
    random 1/nm², 31 of 112 false detections dropped, no true atom; the 16 real Pt₁/NC images: none dropped at 1.8).
    Also dropped (since session 13): those ≥ :data:`WIDE_FAINT_SIGMA`·σ₀ wide with a peak below
    :data:`WIDE_FAINT_PEAK` × the median (second renderer, 56 rows: F1 sum 52.915 → 53.053, 17 rows better, 3 lower
    by ≤ 0.003; real images, calibrated and clean fidelity sets unchanged or within 0.001).
    Only detections with no other within :data:`WIDE_ISOLATION` × ``ratio``·σ₀ are tested, each fitted alone (one
    sweep): in a crowd the free width takes up the neighbours' light, and refitting every atom of the domain-
    randomised set's dense images dropped true ones (median F1 0.478 → 0.470; with the isolation rule 0.477, the
    calibrated dense sets within 0.003), and refitting all cost 1.2–1.4 s per 2048² image (these: 0.25–0.4 s). The default since
    session 10, ``Settings.wide_ratio`` 1.8; 0 turns it off."""
    from scipy.spatial import cKDTree

    from sacmap.detection.refine import RefineOptions, refine

    xy = np.asarray(xy_px, float)
    wide = np.zeros(len(xy), bool)
    if len(xy) < 5 or not np.isfinite(sigma0_px):
        return wide
    # only isolated detections can be dropped (in a crowd the free width takes up the neighbours' light), and
    # those are fitted alone: one sweep, groups of one
    d, _ = cKDTree(xy).query(xy, k=2)
    lone = np.flatnonzero(d[:, 1] >= WIDE_ISOLATION * ratio * sigma0_px)
    if len(lone) < 5:
        return wide
    free = refine(raw, xy[lone], sigma_px=sigma0_px, pixel_size_nm=px,
                  options=RefineOptions(sigma_prior=1.0, sweeps=1, max_group=1))
    sig = free["sigma_px"].to_numpy(float)
    peak = free["intensity"].to_numpy(float) / (2 * np.pi * sig**2)
    med = np.median(peak)
    wide[lone] = (((sig >= ratio * sigma0_px) & (peak < WIDE_PEAK_RATIO * med))
                  | ((sig >= WIDE_FAINT_SIGMA * sigma0_px) & (peak < WIDE_FAINT_PEAK * med)))
    return wide


#: the record's warning for an image coarser than the model frame that the paper CNN read enlarged, its atoms kept
COARSE_WARNING = ("pixel {px:.4g} nm/px is coarser than the model's {model_px:.4g}: the paper CNN (model {model}) "
                  "over-counts real images read enlarged (the shared images given a pixel 3% too large: 2.4x their "
                  "atoms; binned 2x2: 3x); --model heatmap reads them better (docs/detection.md, Pixel sizes)")
#: the record's warning for an image finer than the model frame that the paper CNN read shrunk (not on its own
#: grid): measured on the validation images read as 0.02-nm/px ones (benchmarks/pixel_sizes.py --sections real)
FINE_SHRUNK_WARNING = ("pixel {px:.4g} nm/px is finer than the model's 0.0293 and the image was read shrunk: on "
                       "real images the paper CNN (model {model}) reacts to the resampled noise (the validation "
                       "images read as 0.02 nm/px: 521 atoms for 277, F1 0.581; the heat map alone 0.677); compare "
                       "with --model heatmap (docs/detection.md, Pixel sizes)")


def frame_warning(rescale_factor, px: float, py: float, detector, cnn_left_out: bool = False) -> str | None:
    """The record's warning for the frame an image was read in (``rescale_factor``: the zoom factors finally
    used): where the paper CNN's atoms are in the result and it read the image resampled, enlarged
    (:data:`COARSE_WARNING`) or shrunk (:data:`FINE_SHRUNK_WARNING`); None otherwise, and where the combination left
    the CNN's atoms out (``cnn_left_out``: the record's ``enlarged_frame``, ``Settings.enlarged_cnn_factor``).
    read_image and check_pixel_size already refuse pixel sizes outside SUPPORTED_PIXEL_NM."""
    if not detector.reads_with_cnn or cnn_left_out:
        return None
    if max(rescale_factor) > 1.0:
        return COARSE_WARNING.format(px=max(px, py), model_px=TRAIN_PIXEL_NM, model=detector.kind)
    if max(rescale_factor) < 1.0:
        return FINE_SHRUNK_WARNING.format(px=max(px, py), model=detector.kind)
    return None


#: the record's warning where the verifier's additions rest on its networks' random starts
#: (:func:`sacmap.detection.detector.verifier_spread`)
VERIFIER_WARNING = ("the candidate verifier added {added} atoms, {lo}-{hi} with one of its networks left out: this "
                    "count rests on the networks' random starts (docs/detection.md, The verifier's retrain spread); "
                    "compare with --no-verify")


def verifier_warning(info: dict | None) -> str | None:
    """:data:`VERIFIER_WARNING` for a record's ``verifier`` entry marked uncertain; None otherwise."""
    if not info or not info.get("uncertain"):
        return None
    lo, hi = info["added_leave_one_out"]
    return VERIFIER_WARNING.format(added=info["added"], lo=lo, hi=hi)


def finish(p: Prepared, amap: np.ndarray, s: Settings, detector, elements=None, atoms=None) -> DetectionResult:
    """Decode the map (``detector.decode``; ``atoms``: already decoded, model px), map positions back to the image,
    refine, support area, elements."""
    from sacmap.detection.support import support_area_nm2, support_mask

    raw, px, py = p.raw, p.px, p.py
    at = detector.decode(amap, p.frame, s) if atoms is None else atoms
    x, y = coords_back(at["x"], at["y"], raw.shape, amap.shape)
    extra = {}
    parent = np.arange(len(x))
    if s.refine and len(x):
        from sacmap.detection.candidates import BAND

        scale = 0.5 * (raw.shape[0] / amap.shape[0] + raw.shape[1] / amap.shape[1])  # image px per model px
        x, y, extra, parent = _refine(raw, x, y, px, s, np.asarray(at["component_size"]),
                                      (BAND[0] * scale, BAND[1] * scale), py)
    mask, sdiag = support_mask(raw, px, pixel_size_y_nm=py)
    area = support_area_nm2(mask, px, py)
    r = np.clip(np.rint(y).astype(int), 0, raw.shape[0] - 1)
    c = np.clip(np.rint(x).astype(int), 0, raw.shape[1] - 1)
    on = mask[r, c] if len(x) else np.zeros(0, bool)
    cols = {"x_px": x, "y_px": y, "x_nm": x * px, "y_nm": y * py, "score": np.asarray(at["score"])[parent],
            "component_size": np.asarray(at["component_size"])[parent], "element": [""] * len(x)}
    for k in DETECTION_COLUMNS:
        if k not in cols:
            cols[k] = extra.get(k, np.full(len(x), np.nan))
    df = pd.DataFrame(cols)
    if s.on_support_only:
        df = df[on].reset_index(drop=True)
        on = on[on]
    meta = dict(p.meta)
    meta["warning"] = "; ".join(w for w in (frame_warning(meta["rescale_factor"], px, py, detector,
                                                           bool(meta.get("enlarged_frame"))),
                                             verifier_warning(meta.get("verifier"))) if w) or None
    meta["n_atoms_on_support"] = int(on.sum())
    meta["support"] = sdiag
    meta["weights"] = detector.meta.get("digest", "")
    meta["model"] = {"kind": detector.kind, "file": "+".join(f.name for f in detector.files)}
    if detector.kind == "combined" and s.verify:
        meta["model"]["verifier"] = detector.verifier_path.name
    if meta.get("crowded_reading", {}).get("used"):  # the file and digest the detector put there
        meta["model"]["crowded_heatmap"] = meta["crowded_reading"]["file"]
        meta["weights"] += "+" + meta["crowded_reading"]["digest"]
    if elements:
        df, el_meta = _label_elements(raw, df, list(elements), s.seed)
        meta["elements"] = el_meta
    return DetectionResult(df, raw, px, py, amap, mask, area, s.as_dict(), p.name, meta)


def _label_elements(raw, df, elements: list[str], seed: int):
    if len(elements) == 1 or len(df) == 0:
        df["element"] = elements[0] if len(df) else []
        return df, {"method": "single element" if len(elements) == 1 else "none (no atoms)",
                    "elements": elements}
    try:
        from sacmap.detection.elements import label_elements
    except ImportError as exc:  # the element labeller is optional at import time
        raise DetectionInputError(f"--elements {','.join(elements)}: element labelling unavailable ({exc})") from exc
    if len(df) < len(elements):
        raise DetectionInputError(f"--elements: {len(df)} atoms cannot be split into {len(elements)} species")
    res = label_elements(raw, df[["x_px", "y_px"]].to_numpy(), elements, seed=seed)
    df["element"] = [str(e) for e in np.asarray(res["labels"])]
    base = [str(e) for e in np.asarray(res.get("labels_intensity", []))]
    meta = {"method": "VAE + GMM", "elements": elements,
            "counts_intensity_baseline": {e: base.count(e) for e in elements} if base else None,
            "agreement_with_intensity_baseline": (float(np.mean(np.asarray(base) == df["element"].to_numpy()))
                                                  if len(base) == len(df) else None)}
    for k, v in res.items():
        if k not in ("labels", "labels_intensity") and isinstance(v, (int, float, str, bool, list, dict)):
            meta[k] = v
    return df, meta
