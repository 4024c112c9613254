"""Model-order selection after the Gaussian refinement: one fitted atom or two (merged close pairs).

At the calibrated atom-image width (FWHM ≈ 0.28 nm, σ₀ ≈ 0.12 nm) two atoms 0.20–0.26 nm apart show no intensity
dip, a detector gives one peak for them, and the refinement fits one Gaussian that is too bright and elongated.
As in StatSTEM / Atomap model fitting, each *candidate* atom of the refined model is tested for one more atom:

* **one**: the atom refitted alone (x, y, peak, log σ with the width prior of :mod:`sacmap.detection.refine`,
  local plane) on a square window of ``window_sigma``·σ₀ around it, every other atom's fitted light subtracted;
* **two**: on exactly the same pixels, two atoms started ±h along the major axis of the window's light above the
  plane (h² = λ₁ − λ₂ of its second moments, clipped to [0.6, 1.5] σ₀), each σ with the same prior around σ₀,
  their peaks tied by the refinement's pair prior (one element), each free to move ``max_shift_sigma``·σ₀;
* **accepted** when Δχ² / ``inflation`` > ``penalty``·4·ln n (BIC with 4 parameters more and n pixels, × 2 by
  default), where χ² is in units of the noise of the residual image (image − fitted atoms; the image's own
  neighbour differences in a dense clean image are the atoms' slopes) and ``inflation`` the residuals' spatial-
  correlation factor (:func:`sacmap.detection.refine.correlation_inflation` with the second derivative of the
  atom, ``order=2``), so that support texture on the scale of an atom, which any extra Gaussian fits, does not
  count as white-noise evidence; and the two atoms remove at least ``rel_gain`` of the one-atom χ² (clean images,
  where the noise floor is tiny and a slightly non-Gaussian atom would otherwise pass); and they are
  ``min_sep_nm`` (0.15 nm: the detectors' merge distance, 1.25 σ₀ — closer than that a pair is not told from one
  wider atom) to ``max_sep_sigma``·σ₀ (2.5 σ₀ ≈ 0.3 nm: farther pairs show a dip and the detector resolves them;
  a farther "partner" is a neighbour's light) apart; and each partner's peak is ≥ ``min_peak`` × the median peak
  of the non-candidate atoms (a faint partner is a texture bump or a tail).

Candidates (to keep it fast): atoms with an integrated intensity ≥ ``cand_intensity`` × the median, a width
≥ ``cand_sigma``·σ₀ or a one-atom χ² per pixel ≥ ``cand_chi2`` × inflation. After each round with accepted splits
the atoms within reach of them are refitted jointly (the refinement on the image minus every other atom's light),
a split whose atoms that refit brings closer than ``min_sep_nm`` to any atom is undone, and the candidates whose
test window can see a refitted atom are tested again (``rounds``: trimers, and pairs whose neighbours' light was
wrong before; the others would be rejected again, so they are not refitted); at the end the whole image
is refitted once from the current atoms (an added atom then closer than ``min_sep_nm`` to another is dropped). The fits reuse the refinement's batched
Levenberg–Marquardt (``_Batch``, ``_fit_batch``, ``_cost`` of :mod:`sacmap.detection.refine`).

Tuned on clean simulations (dense hard-core multimer images at 0.018, 0.029 and 0.040 nm/px, atom FWHM 0.20 and
0.28 nm, random patterns) and checked on calibrated-noise and domain-randomised ones (docs/detection.md): with
the calibrated support texture no split is accepted, so the method helps clean / low-texture images only. σ₀ must
come from isolated atoms: where every blob is a merged pair, σ₀ measured on them is wide enough for one Gaussian.
Lengths in px of the image unless named ``_nm``; deterministic.
"""

from __future__ import annotations

import dataclasses
from dataclasses import dataclass

import numpy as np
from scipy.spatial import cKDTree

from sacmap.detection.errors import DetectionInputError


@dataclass(frozen=True)
class SplitOptions:
    """Settings of :func:`split_merged` (lengths in σ₀ unless named ``_nm``)."""

    penalty: float = 2.0  # Δχ²/inflation must exceed penalty · 4 · ln(window pixels) (1 = BIC)
    rel_gain: float = 0.1  # ... and be at least this fraction of the one-atom χ²
    min_sep_nm: float = 0.15  # closest accepted spacing of the two (nm; min_sep_sigma σ₀ without a pixel size)
    min_sep_sigma: float = 1.25
    max_sep_sigma: float = 2.5  # farthest accepted spacing, σ₀ (farther pairs show a dip: the detector resolves them)
    min_peak: float = 0.2  # each partner's peak ≥ this × the median peak of the non-candidate atoms
    cand_intensity: float = 1.4  # candidates: integrated intensity ≥ this × median ...
    cand_sigma: float = 1.08  # ... or fitted σ ≥ this × σ₀ ...
    cand_chi2: float = 2.0  # ... or one-atom χ² per px ≥ this × inflation (white-noise units)
    rounds: int = 3  # test rounds (a merged trimer can become three; rejected candidates are retested)
    iterations: int = 10  # Levenberg–Marquardt iterations of each test fit
    max_shift_sigma: float = 2.0  # largest move of a partner from its start (σ₀; the axis guess can be off)
    window_sigma: float = 3.0  # half-width of the test window, σ₀ (≤ 3: the refinement draws atoms within 3 σ₀)
    retest_all: bool = False  # later rounds retest every candidate, not only those near a refit (measured: the same)

    def __post_init__(self):
        for name in ("penalty", "rel_gain", "min_sep_nm", "min_sep_sigma", "min_peak", "cand_intensity",
                     "cand_sigma", "cand_chi2", "max_shift_sigma"):
            v = getattr(self, name)
            if not (np.isfinite(v) and v >= 0):
                raise DetectionInputError(f"SplitOptions: {name} must be a finite number >= 0, got {v}")
        if not (self.max_sep_sigma > self.min_sep_sigma):
            raise DetectionInputError(f"SplitOptions: max_sep_sigma ({self.max_sep_sigma}) must exceed "
                                      f"min_sep_sigma ({self.min_sep_sigma})")
        if not (0 < self.window_sigma <= 3.0):
            raise DetectionInputError(f"SplitOptions: window_sigma must be in (0, 3], got {self.window_sigma}")
        if int(self.rounds) != self.rounds or self.rounds < 0 or int(self.iterations) != self.iterations \
                or self.iterations < 1:
            raise DetectionInputError(f"SplitOptions: rounds (>= 0) and iterations (>= 1) must be integers, got "
                                      f"{self.rounds}, {self.iterations}")


def split_merged(img, xy, state, s0: float, noise2_fit: float, inflation: float, opt, sopt: SplitOptions,
                 min_sep_px: float, run):
    """Test the refined atoms of ``img`` for merged pairs (module docstring) and refit after each round of splits.

    ``xy`` (N, 2) px: the starting positions of the refinement ``state`` = ``run(img, xy, s0, opt, noise2_fit)``
    (:func:`sacmap.detection.refine._run`: parameters, groups, batches, fits, model image); each round that accepts
    splits replaces each split atom by its two and refits the atoms near them (:func:`_refit_near`), so the
    neighbours of a split are fitted with its new light; after the last round the whole image is refitted with
    ``run`` from the current atoms. Returns ``(xy, parent, state, n_cand)``: the starts of the last refit (N + M,
    the M added atoms after the inputs), the input atom each row came from, the last state and the number of
    first-round candidates."""
    from sacmap.detection.gaussfit import _splat, pixel_noise, splat_half

    n = len(xy)
    parent = np.arange(n)
    n_cand = 0
    changed = False
    active = None  # atoms whose test can have changed since the last round (None: all, the first round)
    _STATS.clear()
    for _round in range(sopt.rounds):
        P, total = state[0], state[4]
        if not len(P):
            break
        # the noise of the residual image (image − fitted atoms): in a dense clean image the neighbour differences
        # of the image itself are the atoms' slopes, not noise
        noise2 = max(pixel_noise(img - total.reshape(img.shape)), 1e-6 * (np.ptp(img) or 1.0)) ** 2
        sig = np.exp(P[:, 3])
        inten = P[:, 2] * sig**2
        test = np.arange(len(P)) if active is None else np.flatnonzero(active)
        chi1 = np.zeros(len(P))
        chi1[test] = _one_atom_chi2(img, P, total, test, s0, noise2, sopt)
        is_cand = ((inten >= sopt.cand_intensity * np.median(inten)) | (sig >= sopt.cand_sigma * s0)
                   | (chi1 >= sopt.cand_chi2 * max(inflation, 1.0)))
        # a candidate rejected last round, far from every atom refitted since, would be rejected again
        cand = np.flatnonzero(is_cand if active is None else is_cand & active)
        n_cand = n_cand or len(cand)
        if not len(cand):
            break
        ref_peak = float(np.median(P[~is_cand, 2] if (~is_cand).sum() >= 5 else P[:, 2]))
        acc, P2 = _test(img, P, total, cand, s0, noise2, inflation, opt, sopt, min_sep_px, ref_peak)
        if not acc.any():
            break
        ci = cand[acc]
        new = np.arange(len(P), len(P) + len(ci))
        P_next = np.concatenate([P, P2[acc, 1]])
        P_next[ci] = P2[acc, 0]
        parent = np.concatenate([parent, parent[ci]])
        # refit the splits' neighbourhoods (the rest of the image held fixed); the whole image once at the end
        P_next, total, near = _refit_near(img, P_next, np.r_[ci, new], s0, noise2_fit, opt, run)
        # a split whose atoms the joint refit brought closer than min_sep to any atom is undone (the added one
        # dropped, its parent back at its one-atom fit): the data did not hold two atoms there after all
        close = cKDTree(P_next[:, :2]).query(P_next[np.r_[ci, new], :2], k=2)[0][:, 1] < min_sep_px
        bad = close[: len(ci)] | close[len(ci):]
        if bad.any():
            keep = np.ones(len(P_next), bool)
            keep[new[bad]] = False
            P_next[ci[bad]] = P[ci[bad]]
            P_next, parent, near = P_next[keep], parent[keep], near[keep]
            total = _splat(img.shape, P_next, splat_half(s0))
            _STATS["undone"] = _STATS.get("undone", 0) + int(bad.sum())
        if not (~bad).any():
            break
        state = (P_next, None, None, None, total)
        changed = True
        if not sopt.retest_all:  # next round: only atoms whose test window can hold light that the refit changed
            active = np.zeros(len(P_next), bool)
            for lst in cKDTree(P_next[:, :2]).query_ball_point(P_next[near, :2], (2 * sopt.window_sigma + 3.0) * s0):
                active[lst] = True
    if changed:  # the whole image refitted jointly from the current atoms: groups, fits and errors for refine
        xy = state[0][:, :2].copy()
        state = run(img, xy, s0, opt, noise2_fit)
        d, _ = cKDTree(state[0][:, :2]).query(state[0][n:, :2], k=2)
        bad = d[:, 1] < min_sep_px  # an added atom the joint refit put onto another: dropped, refitted once more
        if bad.any():
            keep = np.ones(len(xy), bool)
            keep[n + np.flatnonzero(bad)] = False
            xy, parent = state[0][keep, :2].copy(), parent[keep]
            state = run(img, xy, s0, opt, noise2_fit)
            _STATS["undone"] = _STATS.get("undone", 0) + int(bad.sum())
    return xy, parent, state, n_cand


def _refit_near(img, P, idx, s0, noise2, opt, run):
    """Refit the atoms within reach of atoms ``idx`` (``run``, the refinement, on the image minus the light of all
    others, which stay as they are): (P (N, 4), model image (h·w), the refitted atoms' mask) afterwards."""
    from sacmap.detection.gaussfit import _splat, splat_half

    reach = (opt.link_sigma + 2 * opt.window_sigma + 3.0) * s0
    near = np.zeros(len(P), bool)
    for lst in cKDTree(P[:, :2]).query_ball_point(P[idx, :2], reach):
        near[lst] = True
    fixed = _splat(img.shape, P[~near], splat_half(s0))
    sub = run(img - fixed.reshape(img.shape), P[near, :2].copy(), s0, opt, noise2)
    P = P.copy()
    P[near] = sub[0]
    return P, fixed + sub[4], near


def _window(img, P, total, idx, s0, sopt):
    """One-atom batch of the atoms ``idx`` (windows at their positions) and the light of all other atoms in it."""
    from sacmap.detection.gaussfit import _Batch, _own_light

    half = max(int(np.ceil(min(sopt.window_sigma, 3.0) * s0)), 2)
    b = _Batch(np.arange(len(idx))[:, None], img, half, P[idx, :2])
    P1 = P[idx][:, None, :].copy()
    others = total[b.flat] - _own_light(b, P1)
    lo = np.quantile(b.data - others, 0.2, axis=1)
    B = np.stack([lo, np.zeros_like(lo), np.zeros_like(lo)], 1)
    return b, P1, B, others, half


def _one_atom_chi2(img, P, total, idx, s0, noise2, sopt):
    """χ² per window pixel (white-noise units) of each atom ``idx`` as fitted, on its test window (plane refitted
    by linear least squares: no new fit)."""
    b, P1, B, others, _ = _window(img, P, total, idx, s0, sopt)
    m, parts = b.model(P1, np.zeros_like(B))
    d = b.data - others - m
    pu, pv = parts[5], parts[6]
    A = np.stack([np.ones_like(pu), pu, pv], 2) * np.sqrt(b.wgt)[:, :, None]
    y = d * np.sqrt(b.wgt)
    coef = np.linalg.solve(np.einsum("gnp,gnq->gpq", A, A) + 1e-9 * np.eye(3), np.einsum("gnp,gn->gp", A, y)[:, :, None])[:, :, 0]
    r = y - np.einsum("gnp,gp->gn", A, coef)
    return (r * r).sum(1) / noise2 / np.maximum(b.wgt.sum(1), 1.0)


def _test(img, P, total, cand, s0, noise2, inflation, opt, sopt, min_sep_px, ref_peak):
    """Fit one and two atoms at each candidate: (accepted (G,), two-atom parameters (G, 2, 4))."""
    from sacmap.detection.gaussfit import _amp_args, _Batch, _cost, _fit_batch, within_bounds

    G = len(cand)
    opt = dataclasses.replace(opt, max_shift_sigma=sopt.max_shift_sigma)
    b1, P1, B1, others1, half = _window(img, P, total, cand, s0, sopt)
    _fit_batch(b1, P1, B1, others1, P1[:, :, :2].copy(), s0, opt, noise2, sopt.iterations)
    t0, inv_prior = np.log(s0), 1.0 / opt.sigma_prior
    cost1, r1, _ = _cost(b1, P1, B1, b1.data - others1, t0, inv_prior, noise2)
    chi1 = (b1.wgt * r1 * r1).sum(1) / noise2
    # the light above the plane: its second moments give the pair's axis and half-separation
    pu = (b1.u - b1.centre[:, 0, None]) / b1.R
    pv = (b1.v - b1.centre[:, 1, None]) / b1.R
    light = b1.data - others1 - (B1[:, 0, None] + B1[:, 1, None] * pu + B1[:, 2, None] * pv)
    du, dv = b1.u - P1[:, 0, 0, None], b1.v - P1[:, 0, 1, None]
    w = np.clip(light, 0.0, None) * b1.wgt * (du * du + dv * dv <= (2.5 * s0) ** 2)
    sw = np.maximum(w.sum(1), 1e-30)
    mu, mv = (w * du).sum(1) / sw, (w * dv).sum(1) / sw
    cuu = (w * (du - mu[:, None]) ** 2).sum(1) / sw
    cvv = (w * (dv - mv[:, None]) ** 2).sum(1) / sw
    cuv = (w * (du - mu[:, None]) * (dv - mv[:, None])).sum(1) / sw
    tr, det = cuu + cvv, cuu * cvv - cuv**2
    disc = np.sqrt(np.maximum(tr**2 / 4 - det, 0.0))
    l1, l2 = tr / 2 + disc, tr / 2 - disc
    ang = 0.5 * np.arctan2(2 * cuv, cuu - cvv)
    axis = np.stack([np.cos(ang), np.sin(ang)], 1)
    h = np.clip(np.sqrt(np.maximum(l1 - l2, 0.0)), 0.6 * s0, 1.5 * s0)
    c = P1[:, 0, :2]
    P2 = np.empty((G, 2, 4))
    P2[:, 0, :2] = c + h[:, None] * axis
    P2[:, 1, :2] = c - h[:, None] * axis
    P2[:, :, 2] = 0.65 * P1[:, :, 2]
    P2[:, :, 3] = t0
    B2 = B1.copy()
    start2 = P2[:, :, :2].copy()
    b2 = _Batch(np.arange(2 * G).reshape(G, 2), img, half, np.repeat(c, 2, axis=0))  # the same pixels twice
    others2 = np.concatenate([others1, others1], 1)
    r2, parts2, target2 = _fit_batch(b2, P2, B2, others2, start2, s0, opt, noise2, sopt.iterations)
    amp = _amp_args(start2, s0, opt)
    cost2, r2, parts2 = _cost(b2, P2, B2, target2, t0, inv_prior, noise2, amp)
    chi2 = (b2.wgt * r2 * r2).sum(1) / noise2
    n_px = b1.wgt.sum(1)
    gain = (cost1 - cost2) / max(inflation, 1e-3)
    sep = np.hypot(*(P2[:, 0, :2] - P2[:, 1, :2]).T)
    sg = np.exp(P2[:, :, 3])
    shift = np.hypot(*(P2[:, :, :2] - start2).transpose(2, 0, 1))
    h_img, w_img = img.shape
    inside = ((P2[:, :, 0] >= -0.5) & (P2[:, :, 0] <= w_img - 0.5) & (P2[:, :, 1] >= -0.5)
              & (P2[:, :, 1] <= h_img - 0.5))
    ok2 = within_bounds(P2[:, :, 2], sg, shift, s0, opt.max_shift_sigma) & inside
    acc = ((gain > sopt.penalty * 4.0 * np.log(np.maximum(n_px, 2.0)))
           & (chi1 - chi2 >= sopt.rel_gain * chi1)
           & (sep >= min_sep_px) & (sep <= sopt.max_sep_sigma * s0)
           & (P2[:, :, 2].min(1) >= sopt.min_peak * ref_peak)
           & ok2.all(1))
    _STATS.setdefault("tested", []).append(G)
    _STATS.setdefault("accepted", []).append(int(acc.sum()))
    return acc, P2


_STATS: dict = {}  # last split_merged call: candidates tested and splits accepted per round, undone (diagnostics)
