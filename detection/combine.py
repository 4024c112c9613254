"""Combining two detectors' atoms: the heat-map peaks plus the paper CNN's atoms the heat map has no peak near.

The paper's crop CNN (``data/detector.pt``) is the better detector on faint and low-dose images, the heat-map
network (``data/heatmap.pt``) the one that keeps close pairs and dense regions apart: the CNN's thresholded map
merges them into components it splits into at most ``k_max`` atoms, and puts one atom between the two of a
0.20–0.26-nm pair. :func:`union_atoms` keeps every atom of the first detector given and adds each atom of the second
farther than a minimum spacing from all of them; the detector ``"combined"`` of :mod:`sacmap.detection.detector`
keeps the heat-map peaks of height ≥ :attr:`~sacmap.detection.result.Settings.combine_score` (0.35), with
:func:`with_partners` the lower ones (down to the heat map's own threshold, 0.30) within
:attr:`~sacmap.detection.result.Settings.combine_partner_nm` (0.30 nm) of one of those, and adds the CNN atoms
farther than :attr:`~sacmap.detection.result.Settings.combine_sep_nm` (0.15 nm) from every one of them.
Measured (``data/MODEL_CARD.md``, *Combination*): the partners add 0.03 of the atoms of dense images and cost no
validation F1, where all peaks down to 0.30 lower it by 0.014; with the CNN's atoms kept first (the combination until
2026-12-01, session 6) a CNN atom between the two atoms of a close pair hid both heat-map peaks, and the bright
dense images kept 0.64 of their atoms against 0.72 with the heat map first (0.75 with the partners); a height of 0.30 (the heat map's own threshold) lowers the
validation F1 below the paper CNN's; a spacing of 0.12 nm puts spurious pairs into clean images (multimer share
+0.04 at 2 atoms/nm²), 0.18 nm drops real 0.20-nm neighbours; other rules (heat-map peaks only inside the CNN's
large components, a CNN atom replaced by the ≥ 2 heat-map peaks around it) gained less.
"""

from __future__ import annotations

import numpy as np


def union_atoms(primary: dict, secondary: dict, min_sep_px: float) -> dict:
    """Atoms of ``primary`` and those of ``secondary`` farther than ``min_sep_px`` from every primary atom.

    (``"combined"`` passes the heat-map peaks as ``primary`` and the CNN's atoms as ``secondary``.)

    Both are decoder outputs in the same frame (dicts of arrays ``x``, ``y``, ``score``, ``component_size``,
    ``n_split``; px, x = column). The result lists the primary atoms first, in their order, then the secondary
    atoms added, in theirs; each keeps its own ``score`` (the scales differ: CNN probability, heat-map height) and
    ``component_size`` (0 for heat-map peaks)."""
    from scipy.spatial import cKDTree

    keys = ("x", "y", "score", "component_size", "n_split")
    px, py = np.asarray(primary["x"], float), np.asarray(primary["y"], float)
    sx, sy = np.asarray(secondary["x"], float), np.asarray(secondary["y"], float)
    if len(px) and len(sx):
        d, _ = cKDTree(np.c_[px, py]).query(np.c_[sx, sy])
        add = d > min_sep_px
    else:
        add = np.ones(len(sx), bool)
    return {k: np.concatenate([np.asarray(primary[k]), np.asarray(secondary[k])[add]]) for k in keys}


def with_partners(atoms: dict, min_score: float, partner_px: float) -> dict:
    """The atoms of height ``score`` ≥ ``min_score`` and the lower ones within ``partner_px`` of one of those.

    ``atoms``: a heat-map decoder's output (dict of arrays ``x``, ``y``, ``score``, ...; model px) decoded at the
    lower height. The two peaks of a close pair overlap and the weaker one comes out lower than an isolated atom
    of the same brightness; next to a confident peak it is far more likely that partner than a texture bump (one
    pass: a low peak is kept only next to a peak of ≥ ``min_score``, never next to another low one). Order kept."""
    from scipy.spatial import cKDTree

    keep = np.asarray(atoms["score"], float) >= min_score
    low = np.flatnonzero(~keep)
    if partner_px > 0 and keep.any() and len(low):
        xy = np.c_[np.asarray(atoms["x"], float), np.asarray(atoms["y"], float)]
        d, _ = cKDTree(xy[keep]).query(xy[low])
        keep[low[d <= partner_px]] = True
    return {k: np.asarray(v)[keep] for k, v in atoms.items()}


def faint_additions(intensity, component_size, ratio: float, min_reference: int = 5, xy=None,
                    isolation: float = 0.0) -> np.ndarray:
    """Mask of the atoms the paper CNN or the verifier added (``component_size`` ≠ 0) whose refined integrated
    intensity is below ``ratio`` × the median of the heat-map atoms' (``component_size`` == 0) in the same image.

    ``intensity``: the refinement's integrated intensities (image units · px², :mod:`sacmap.detection.refine`;
    NaN = no fit, never flagged); nothing is flagged with fewer than ``min_reference`` heat-map atoms, so a single
    model (all atoms of one kind) is never touched. Why (docs/detection.md, *Faint additions*): the CNN was trained
    on 0.28-nm Pt atoms at 0.0293 nm/px, and on images of small or faint atoms it fires on support-texture bumps
    that the heat map, which finds those atoms, leaves out; such bumps carry a fraction of an atom's light (second
    renderer, 0.016 nm/px, 0.08-nm atoms: median 0.2–0.3 of the heat-map atoms', the CNN's true additions there
    0.5–0.8), while on the real and the calibrated images the CNN's and the verifier's additions are nearly
    never that faint. With ``xy`` ((n, 2), any length unit) only additions farther than ``isolation`` (same
    unit) from every other atom are flagged: next to another atom the joint fit shares out the light of a close
    pair, so a low intensity there says nothing (clean random patterns: without it the multimer share of random
    2/nm² fell from 0.103 to 0.082, truth 0.227)."""
    inten = np.asarray(intensity, float)
    comp = np.asarray(component_size)
    ref = inten[(comp == 0) & np.isfinite(inten)]
    if len(ref) < min_reference or not ratio > 0:
        return np.zeros(len(inten), bool)
    with np.errstate(invalid="ignore"):
        flag = (comp != 0) & (inten < ratio * float(np.median(ref)))
    if xy is not None and isolation > 0 and flag.any() and len(inten) > 1:
        from scipy.spatial import cKDTree

        pts = np.asarray(xy, float)
        flag &= cKDTree(pts).query(pts, k=2)[0][:, 1] > isolation
    return flag
