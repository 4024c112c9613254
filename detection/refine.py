"""Sub-pixel refinement of atom positions: 2-D Gaussians on a local background, close neighbours fitted jointly.

``refine(image, xy_px)`` takes detected positions (px, x = column, y = row) and returns, per atom, the fitted
position, integrated intensity, width and position uncertainty (:data:`REFINE_COLUMNS`).

Model (one *group* of close atoms at a time, as Atomap and StatSTEM fit neighbouring columns together)::

    m(u, v) = b0 + bx·(u − cx)/R + by·(v − cy)/R + Σ_k a_k · exp(−((u − x_k)² + (v − y_k)²) / (2 σ_k²))

over the pixels within ``R`` = ``window_sigma``·σ₀ of any atom of the group (a square window per atom; a pixel
covered by several windows of the group counts once). The light of atoms of *other* groups is subtracted with
their current parameters, and the groups are refitted a few times (block coordinate descent, Gauss–Seidel:
groups that see each other's light are in different colour classes, fitted one class after the other with the
model image updated in between; plain Jacobi sweeps diverged in dense images), so every atom ends up fitted on
the image minus its neighbours, and jointly with its closest ones.

* **Groups**: atoms closer than ``link_sigma``·σ₀ (default 3σ₀) are linked, closest pairs first (Kruskal),
  into groups of at most ``max_group`` atoms: in a dense image a whole cluster cannot be one fit, but the
  closest pairs always are.
* **Fit**: batched Levenberg–Marquardt on all groups of one size at once (numpy; one normal-equation solve per
  group and iteration), parameters x, y, peak a (≥ 0), log σ per atom and a plane per group. Each σ has a
  log-normal prior around σ₀ (sd ``sigma_prior``, default 5 %): without it a 0.22-nm pair (≈ 1.9 σ apart,
  no intensity dip) is equally well fitted by one wide and one faint atom, and a free width doubles the
  scatter of the integrated intensities; where the data are strong (clean images) σ is still measured.
  Two atoms of a group that start closer than ``amp_pair_sigma``·σ₀ (2.5 σ₀: no intensity dip) have a prior on
  the log ratio of their peaks (sd ``amp_prior`` 0.25, the calibrated spread of one element): without it, in
  textured noise, one Gaussian takes most of the light and its faint partner drifts outward (0.22-nm pairs: log
  ratio sd 0.69 against the true 0.25, separation +0.013 nm along the axis; with it 0.24 and +0.003 nm). It
  assumes one element: pass ``amp_prior=0`` for heteronuclear pairs.
  Positions may move at most ``max_shift_sigma``·σ₀ from the start; σ is kept within [σ₀/2, 2σ₀].
* **σ₀** (px): given, or measured first: the median fitted σ (loose prior) of the brighter half of the
  isolated atoms (nearest neighbour ≥ 4 σ of the starting guess ``0.11 nm / pixel_size_nm``, or 4 px without
  a pixel size); with fewer than 20 of them (dense images), of a central patch of ~300 atoms fitted jointly.
  On images finer than the model frame (< 0.0287 nm/px) the guess is replaced by a scale-space width
  (:func:`scale_sigma`) where that is ≤ 0.42 × the guess: small atoms (FWHM ≲ 0.11 nm, e.g. a sharp probe at
  0.016 nm/px), whose σ₀ came out up to 5× too wide from the 0.11-nm guess (docs/detection.md, Pixel sizes).
* **Uncertainty**: covariance = s²·(JᵀJ + prior)⁻¹ with s² the group's residual variance per pixel (pixel
  noise plus whatever the model does not describe: support texture, neighbours' tails), times one factor per
  image for the spatial correlation of the residuals (:func:`correlation_inflation`: texture on the scale of
  an atom moves a fit far more than white noise of the same variance); ``pos_err_px`` = √((var x + var y)/2),
  the 1-σ error of one coordinate.

:func:`combine_with_start` (used by the pipeline) weighs each fit against the detector position it started from.
With ``RefineOptions.split`` (a :class:`sacmap.detection.split.SplitOptions`) each fitted atom is also tested for a
merged close pair (one atom or two, BIC on the correlation-corrected χ²) and the image refitted after each round of
accepted splits (:mod:`sacmap.detection.split`).

Intensities are in the units of the image given × px² (the integral a·2πσ² of the Gaussian above the local
background); widths and positions in px of the image. Deterministic (no randomness).
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import TYPE_CHECKING

import numpy as np
import pandas as pd
from scipy.spatial import cKDTree

from sacmap.detection.errors import DetectionInputError
from sacmap.detection.gaussfit import (
    _amp_args,
    _amp_prior,
    _Batch,
    _colour_groups,
    _members_of,
    _own_light,
    _splat,
    fit_batch_threaded,
    group_atoms,
    pixel_noise,
    splat_half,
    within_bounds,
)
from sacmap.detection.preprocess import TRAIN_PIXEL_NM

if TYPE_CHECKING:
    from sacmap.detection.split import SplitOptions

#: Columns of :func:`refine`'s table, in order (the first five also go into the detection CSV).
REFINE_COLUMNS: tuple[str, ...] = ("x_px", "y_px", "intensity", "sigma_px", "pos_err_px", "fit_ok", "group",
                                   "parent")

#: Effective atom σ (nm) used as the first guess of σ₀ when a pixel size is given (the calibrated Pt₁/NC atom
#: image has FWHM 0.28 nm, σ 0.12 nm).
SIGMA_GUESS_NM = 0.11


@dataclass(frozen=True)
class RefineOptions:
    """Settings of :func:`refine` (lengths in units of σ₀ unless named ``_px``)."""

    window_sigma: float = 2.5  # half-width of each atom's fit window, σ₀
    link_sigma: float = 3.0  # atoms closer than this (σ₀) are fitted jointly ...
    max_group: int = 5  # ... in groups of at most this many atoms
    sweeps: int = 5  # most block-coordinate sweeps over all groups (neighbours' light re-subtracted) ...
    tol_px: float = 0.02  # ... fewer when 95 % of the atoms moved less than this (px) in the last one
    iterations: int = 5  # Levenberg–Marquardt iterations per group in the first sweep (half in later ones)
    sigma_prior: float = 0.05  # sd of log σ around log σ₀ (tight: per-atom widths are only measured where the data are strong)
    max_shift_sigma: float = 1.0  # largest move from the starting position, σ₀
    amp_prior: float = 0.25  # sd of the log peak ratio of two atoms closer than amp_pair_sigma (0 = no prior) ...
    amp_pair_sigma: float = 2.5  # ... σ₀ apart at the start (unresolved pairs: no dip below ~2σ₀)
    split: SplitOptions | None = None  # test each fitted atom for a merged pair (sacmap.detection.split); None: off


def _check(image, xy_px):
    img = np.asarray(image, dtype=float)
    if img.ndim != 2 or min(img.shape) < 3:
        raise DetectionInputError(f"refine: image must be a 2-D array of at least 3×3 px, got shape {img.shape}")
    if not np.all(np.isfinite(img)):
        raise DetectionInputError("refine: image has non-finite pixels")
    xy = np.asarray(xy_px, dtype=float)
    if xy.size == 0:
        xy = np.empty((0, 2))
    if xy.ndim != 2 or xy.shape[1] != 2:
        raise DetectionInputError(f"refine: xy_px must be an (N, 2) array of (x, y) px, got shape {xy.shape}")
    if not np.all(np.isfinite(xy)):
        raise DetectionInputError("refine: xy_px has non-finite coordinates")
    return img, xy


_STATS: dict = {}  # last run's number of colours, batches and sweeps (diagnostics)


def _run(img, xy, s0, opt: RefineOptions, noise2, gid=None):
    n = len(xy)
    half = max(int(np.ceil(opt.window_sigma * s0)), 2)
    half_splat = splat_half(s0)
    if gid is None:
        gid = group_atoms(xy, opt.link_sigma * s0, opt.max_group)
    # groups closer than this see ≥ 13 % of each other's peaks in their windows: Gauss–Seidel between them;
    # weaker couplings are carried from one sweep to the next
    colour, nbr_pairs = _colour_groups(xy, gid, half + 2.0 * s0)
    # initial parameters: peak above the window's 20th percentile, σ0
    P_all = np.zeros((n, 4))
    P_all[:, :2] = xy
    P_all[:, 3] = np.log(s0)
    r0 = np.clip(np.rint(xy[:, 1]).astype(int), 0, img.shape[0] - 1)
    c0 = np.clip(np.rint(xy[:, 0]).astype(int), 0, img.shape[1] - 1)
    # one batch per (colour, group size): groups of one colour do not see each other's light, so they are
    # fitted at once; the colours go one after the other (Gauss–Seidel), the model image updated in between
    batches = []
    sizes = np.bincount(gid)
    for c in np.unique(colour):
        g_c = np.flatnonzero(colour == c)
        for k in np.unique(sizes[g_c]):
            gs = g_c[sizes[g_c] == k]
            members = _members_of(gid, gs, k)
            b = _Batch(members, img, half, xy)
            lo = np.quantile(b.data[:, ::3], 0.2, axis=1)  # (pixels outside the image repeat the edge)
            P_all[members, 2] = np.maximum(img[r0[members], c0[members]] - lo[:, None], 1e-6) / np.sqrt(k)
            batches.append((b, members, np.stack([lo, np.zeros_like(lo), np.zeros_like(lo)], 1)))
    total = _splat(img.shape, P_all, half_splat)
    n_g = int(gid.max()) + 1
    # after the first sweep only the groups that moved, or whose neighbouring groups moved, are refitted: in a
    # sparse image most atoms are isolated and settled after one sweep (2048² real image: half the fit time)
    active = np.ones(n_g, bool)
    results = {bi: None for bi in range(len(batches))}
    for _sweep in range(opt.sweeps):
        moved_g = np.zeros(n_g)
        for bi, (b, members, B) in enumerate(batches):
            rows = np.flatnonzero(active[gid[members[:, 0]]])
            if not len(rows):
                continue
            whole = len(rows) == len(members)
            sb, mem = (b, members) if whole else (b.subset(rows), members[rows])
            Bs = B if whole else B[rows]
            P = P_all[mem].copy()
            others = total[sb.flat] - _own_light(sb, P)
            its = opt.iterations if _sweep == 0 else max(2, opt.iterations // 2)
            r, parts, target = fit_batch_threaded(sb, P, Bs, others, xy[mem], s0, opt, noise2, its)
            _splat(img.shape, P_all[mem.ravel()], half_splat, out=total, sign=-1.0)
            _splat(img.shape, P.reshape(-1, 4), half_splat, out=total)
            moved_g[gid[mem[:, 0]]] = np.abs(P[..., :2] - P_all[mem][..., :2]).max(-1).max(-1)
            P_all[mem] = P
            if whole:
                results[bi] = (r, parts, P, B)
            else:
                B[rows] = Bs
                rf, pf, Pf, _ = results[bi]
                rf[rows] = r
                for a_full, a_new in zip(pf, parts):
                    a_full[rows] = a_new
                Pf[rows] = P
        _STATS.update(colours=int(colour.max()) + 1 if len(colour) else 0, batches=len(batches), sweeps=_sweep + 1)
        moved_atoms = moved_g[gid]
        if np.quantile(moved_atoms, 0.95) < opt.tol_px:
            break
        active = moved_g >= opt.tol_px
        if len(nbr_pairs):
            act = active.copy()
            act[nbr_pairs[active[nbr_pairs[:, 1]], 0]] = True
            act[nbr_pairs[active[nbr_pairs[:, 0]], 1]] = True
            active = act
        if not active.any():
            break
    return P_all, gid, batches, results, total


def _uncertainty(batch, P, B, r, parts, s0, opt, x_start):
    """Per atom (G, K): 1-σ position error (px) from s²·(JᵀJ + prior)⁻¹, s² the residual variance per pixel."""
    G, K, _ = P.shape
    J = batch.jacobian(P, parts)
    Jw = J * batch.wgt[:, :, None]
    H = np.matmul(Jw.transpose(0, 2, 1), J)
    n_eff = batch.wgt.sum(1)
    npar = 4 * K + 3
    s2 = (batch.wgt * r * r).sum(1) / np.maximum(n_eff - npar, 1.0)
    tidx = np.arange(3, 4 * K, 4)
    H[:, tidx, tidx] += s2[:, None] / opt.sigma_prior**2
    amp = _amp_args(x_start, s0, opt)
    if amp is not None:
        aidx = np.arange(2, 4 * K, 4)
        _, L = _amp_prior(P, *amp)
        H[:, aidx[:, None], aidx[None, :]] += s2[:, None, None] * np.matmul(L.transpose(0, 2, 1), L)
    H += 1e-12 * np.eye(npar)[None] * np.maximum(np.einsum("gpp->g", H)[:, None, None], 1e-30)
    try:
        C = np.linalg.inv(H)
    except np.linalg.LinAlgError:
        C = np.linalg.pinv(H)
    C = C * s2[:, None, None]
    vx = np.einsum("gpp->gp", C)[:, 0:4 * K:4]
    vy = np.einsum("gpp->gp", C)[:, 1:4 * K:4]
    return np.sqrt(np.maximum((vx + vy) / 2.0, 0.0))


def correlation_inflation(residual: np.ndarray, s0: float, mask: np.ndarray | None = None,
                          max_side: int = 768, order: int = 1) -> float:
    """Factor by which spatially correlated noise (support texture) inflates the variance of a fitted position
    over the white-noise value s²·(JᵀJ)⁻¹.

    For stationary noise with autocorrelation ρ(δ) the variance of a least-squares position is ∝
    Σ_δ ρ(δ)·A_J(δ) instead of A_J(0) (A_J the autocorrelation of the Jacobian column, here ∂/∂x of a Gaussian
    of σ₀), so the factor is Σ_δ ρ(δ)·A_J(δ) / A_J(0) (lags up to 2.5 σ₀; ≥ 0.5; 1 for white noise). ρ is
    measured on ``residual`` = image − fitted atoms, high-passed by subtracting its Gaussian smoothing at
    2.5 σ₀ (what each fit's local plane absorbs; the same sum for high-passed white noise is divided out), over
    ``mask`` (default: every pixel; restricting it to the fitted windows biased the factor low by 10–30 %) in a
    central crop of at most ``max_side``² px (stationarity assumed). Not on the fit residuals themselves: a least-squares residual is
    orthogonal to J and would hide exactly the correlation that matters. ``order`` 2 takes ∂²/∂x² of the Gaussian
    instead (the leading difference between one atom and two close ones, :mod:`sacmap.detection.split`): finer than
    ∂/∂x, so smooth texture inflates it less.
    """
    from scipy import ndimage as ndi

    d = np.asarray(residual, float)
    m = np.ones(d.shape) if mask is None else np.asarray(mask, float)
    h0, w0 = d.shape
    r0, c0 = max((h0 - max_side) // 2, 0), max((w0 - max_side) // 2, 0)
    d = d[r0 : r0 + max_side, c0 : c0 + max_side]
    m = m[r0 : r0 + max_side, c0 : c0 + max_side]
    d = (d - ndi.gaussian_filter(d, 2.5 * s0, mode="reflect")) * m
    h, w = d.shape
    k = max(int(np.ceil(2.5 * s0)), 2)
    if min(h, w) < 4 * k or m.sum() < 100:
        return 1.0
    fh, fw = h + k + 1, w + k + 1
    lag = np.r_[0 : k + 1, -k:0]

    def acorr(a):
        f = np.fft.rfft2(a, (fh, fw))
        return np.fft.irfft2(f * np.conj(f), (fh, fw))[np.ix_(lag % fh, lag % fw)]

    cnt = acorr(m)  # number of mask pixel pairs at each lag (the image is not periodic)
    rho = np.where(cnt > 10, acorr(d) / np.maximum(cnt, 1.0), 0.0)
    if rho[0, 0] <= 0:
        return 1.0
    rho = rho / rho[0, 0]
    g = np.arange(-3 * k, 3 * k + 1, dtype=float)
    gy, gx = np.meshgrid(g, g, indexing="ij")
    jx = (gx if order == 1 else gx**2 - s0**2) * np.exp(-(gx**2 + gy**2) / (2 * s0**2))
    n = len(g) + k + 1
    fj = np.fft.rfft2(jx, (n, n))
    a = np.fft.irfft2(fj * np.conj(fj), (n, n))
    a = a[np.ix_(lag % n, lag % n)]
    # the high-pass alone makes white noise slightly anticorrelated: divide its own factor out
    m = 6 * k + 1
    delta = np.zeros((m, m))
    delta[3 * k, 3 * k] = 1.0
    hp = delta - ndi.gaussian_filter(delta, 2.5 * s0, mode="constant")
    fh_ = np.fft.rfft2(hp, (m + k + 1,) * 2)
    rw = np.fft.irfft2(fh_ * np.conj(fh_), (m + k + 1,) * 2)
    rw = rw[np.ix_(lag % (m + k + 1), lag % (m + k + 1))]
    rw = rw / rw[0, 0]
    f = ((rho * a).sum() + (rho * a.T).sum()) / ((rw * a).sum() + (rw * a.T).sum())
    return max(float(f), 0.5)


def gaussian_at(img: np.ndarray, rows: np.ndarray, cols: np.ndarray, sigma: float) -> np.ndarray:
    """``scipy.ndimage.gaussian_filter(img, sigma)[rows, cols]`` (mode ``reflect``, truncated at 4σ, px) computed at
    those pixels only: on a 2048² image the two full filters of the σ₀ estimate cost more than the fits."""
    h, w = img.shape
    rad = int(4.0 * sigma + 0.5)
    off = np.arange(-rad, rad + 1)
    k = np.exp(-0.5 * (off / sigma) ** 2)
    k /= k.sum()

    def reflect(i, n):
        i = np.mod(i, 2 * n)
        return np.where(i < n, i, 2 * n - 1 - i)

    ri = reflect(np.asarray(rows)[:, None] + off[None], h)  # (N, 2r+1)
    ci = reflect(np.asarray(cols)[:, None] + off[None], w)
    out = np.empty(len(ri))
    for s0 in range(0, len(ri), 64):  # (64, 2r+1, 2r+1) patches at a time
        patch = img[ri[s0:s0 + 64, :, None], ci[s0:s0 + 64, None, :]]
        out[s0:s0 + 64] = np.einsum("i,nij,j->n", k, patch, k)
    return out


#: Scale ladder of :func:`scale_sigma`, σ / guess = 2^(k/4) (from guess/5.7 to 1.4 × guess) ...
SCALE_LADDER = 2.0 ** (np.arange(-10, 3) / 4.0)
#: ... and the ratio at or below which :func:`estimate_sigma` starts from the ladder's σ, not the guess: atoms
#: this much narrower than 0.11 nm (FWHM ≲ 0.11 nm) are out of reach of the bounded first fit ([s/2, 2s]). On
#: the 16 real Pt₁/NC images (0.0293 nm/px) the ladder gives 0.71–1.19 × the guess at the paper CNN's detections,
#: 0.30–1.19 at the heat map's (one image at or below this ratio, see the next line).
SCALE_START_RATIO = 2.0 ** -1.25
#: ... on images finer than this (nm/px: finer than the detectors' model frame, 0.0293 nm/px, by > 2 %) only. At
#: 0.0293 nm/px the ladder's lowest rungs are < 1.6 px and on one real image (047, the heat map's detections) a
#: sharp structure won: σ₀ 3.87 → 1.55 px for 0.28-nm atoms. Images at or above the model frame's pixel size
#: are therefore refined exactly as before.
SCALE_START_BELOW_NM = TRAIN_PIXEL_NM / 1.02


def scale_sigma(image, xy_px, guess_px: float) -> float:
    """σ (px) of the ladder ``guess_px`` × :data:`SCALE_LADDER` at which the median difference of Gaussians
    G(σ) − G(1.6σ) at the brighter half of the atoms (x = column, y = row, px; brightness G(guess) − G(4 guess))
    is largest: a scale-space width of the atoms that needs no fit (a Gaussian atom of width σₐ peaks near
    0.8–1.0 σₐ; the response falls when the positions are off by ≳ σₐ)."""
    img, xy = _check(image, xy_px)
    if len(xy) == 0:
        return float(guess_px)
    rr = np.clip(np.rint(xy[:, 1]).astype(int), 0, img.shape[0] - 1)
    cc = np.clip(np.rint(xy[:, 0]).astype(int), 0, img.shape[1] - 1)
    ladder = guess_px * SCALE_LADDER
    if len(xy) >= 6:  # the brighter half (as estimate_sigma): faint detections (texture bumps) are narrower
        bright = gaussian_at(img, rr, cc, guess_px) - gaussian_at(img, rr, cc, 4 * guess_px)
        keep = bright >= np.median(bright)
        rr, cc = rr[keep], cc[keep]
    resp = [np.median(gaussian_at(img, rr, cc, s) - gaussian_at(img, rr, cc, 1.6 * s)) for s in ladder]
    return float(ladder[int(np.argmax(resp))])


def estimate_sigma(image, xy_px, *, pixel_size_nm: float | None = None, options: RefineOptions | None = None) -> float:
    """σ₀ (px) of the atoms of ``image``: median fitted σ of isolated atoms (see module docstring). The fits start
    from the guess (0.11 nm, or 4 px), or from :func:`scale_sigma` when that is at most :data:`SCALE_START_RATIO` ×
    the guess on an image finer than :data:`SCALE_START_BELOW_NM` (small atoms on fine pixels, e.g. 0.08–0.11-nm
    FWHM at 0.016 nm/px: from the guess the σ of weak small atoms came out up to 5× too wide)."""
    img, xy = _check(image, xy_px)
    opt = options or RefineOptions()
    guess = SIGMA_GUESS_NM / pixel_size_nm if pixel_size_nm else 4.0
    if len(xy) == 0:
        return float(guess)
    if pixel_size_nm and pixel_size_nm < SCALE_START_BELOW_NM:
        small = scale_sigma(img, xy, guess)
        if small <= SCALE_START_RATIO * guess * (1 + 1e-9):
            guess = small
    noise2 = max(pixel_noise(img), 1e-6 * (np.ptp(img) or 1.0)) ** 2
    nnd = cKDTree(xy).query(xy, k=2)[0][:, 1] if len(xy) > 1 else np.array([np.inf])
    iso = np.flatnonzero(nnd >= 4 * guess)
    s = guess
    if len(iso) >= 20:  # isolated atoms, one at a time
        sel, gid = iso[:200], np.arange(min(len(iso), 200))
        opt1 = dict(max_group=1, sweeps=1)
    else:  # crowded: a central patch of ~300 atoms fitted jointly, σ read on its interior atoms
        c = np.median(xy, 0)
        sel = np.argsort(np.abs(xy - c).max(1), kind="stable")[:300]
        gid = None
        opt1 = dict(max_group=opt.max_group, sweeps=4)
    loose = RefineOptions(window_sigma=opt.window_sigma, iterations=8, sigma_prior=1.0,
                          max_shift_sigma=opt.max_shift_sigma, link_sigma=opt.link_sigma, **opt1)
    sub = xy[sel]
    edge = np.abs(sub - np.median(sub, 0)).max(1)
    interior = edge <= np.quantile(edge, 0.6) if gid is None else np.ones(len(sel), bool)
    rr = np.clip(np.rint(sub[:, 1]).astype(int), 0, img.shape[0] - 1)
    cc = np.clip(np.rint(sub[:, 0]).astype(int), 0, img.shape[1] - 1)
    bright = gaussian_at(img, rr, cc, guess) - gaussian_at(img, rr, cc, 4 * guess)
    for _ in range(3):  # σ is bounded to [s/2, 2s] in one pass: further passes follow a bad guess
        P, *_ = _run(img, sub, s, loose, noise2, gid=gid)
        fitted = np.exp(P[:, 3])
        good = interior & (P[:, 2] > 0) & (fitted > 0.51 * s) & (fitted < 1.99 * s)
        # the brighter half only (by a difference of Gaussians at the start, independent of the fit: selecting
        # on the fitted peak or integral would bias σ): faint detections (texture bumps) are narrower and noisier
        if good.sum() >= 6:
            good &= bright >= np.median(bright[good])
        s_new = float(np.median(fitted[good])) if good.sum() >= 3 else float(np.median(fitted))
        if abs(np.log(s_new / s)) < 0.03:
            return s_new
        s = s_new
    return s


def refine(
    image,
    xy_px,
    *,
    sigma_px: float | None = None,
    pixel_size_nm: float | None = None,
    options: RefineOptions | None = None,
) -> pd.DataFrame:
    """Refine atom positions by fitting 2-D Gaussians (close neighbours jointly); see the module docstring.

    Parameters
    ----------
    image : 2-D array
        The image (raw or pre-processed; intensities come out in its units × px²).
    xy_px : (N, 2) array
        Starting positions, x = column, y = row, px.
    sigma_px : float, optional
        The atoms' Gaussian σ₀ (px); measured on the isolated atoms when omitted (:func:`estimate_sigma`).
    pixel_size_nm : float, optional
        Only used for the first guess of σ₀ (0.11 nm).
    options : RefineOptions, optional

    Returns
    -------
    DataFrame with one row per input atom, in input order (with ``options.split``: then one row per atom added by
    :mod:`sacmap.detection.split`), columns :data:`REFINE_COLUMNS`: ``x_px, y_px``
    (refined), ``intensity`` (a·2πσ², image units · px²), ``sigma_px``, ``pos_err_px`` (1-σ error of one
    coordinate, px), ``fit_ok`` (False where a bound was hit: position moved the largest allowed distance,
    σ at σ₀/2 or 2σ₀, or peak 0), ``group`` (id of the jointly fitted group), ``parent`` (the input atom the row
    came from: its own index, or for an added atom the one it was split from). ``attrs['sigma0_px']`` holds σ₀.

    BLAS runs on one thread here: the fits are many tiny solves, and a multi-threaded BLAS on a loaded 2-core
    machine spins 10–30× slower on them.
    """
    from threadpoolctl import threadpool_limits

    with threadpool_limits(1, user_api="blas"):
        return _refine(image, xy_px, sigma_px=sigma_px, pixel_size_nm=pixel_size_nm, options=options)


def _refine(image, xy_px, *, sigma_px, pixel_size_nm, options) -> pd.DataFrame:
    img, xy = _check(image, xy_px)
    opt = options or RefineOptions()
    if sigma_px is not None and not (np.isfinite(sigma_px) and sigma_px > 0):
        raise DetectionInputError(f"refine: sigma_px must be > 0, got {sigma_px}")
    if pixel_size_nm is not None and not (np.isfinite(pixel_size_nm) and pixel_size_nm > 0):
        raise DetectionInputError(f"refine: pixel_size_nm must be > 0, got {pixel_size_nm}")
    n = len(xy)
    if n == 0:
        out = pd.DataFrame({c: np.empty(0, bool if c == "fit_ok" else int if c in ("group", "parent") else float)
                            for c in REFINE_COLUMNS})
        out.attrs["sigma0_px"] = float(sigma_px) if sigma_px else float("nan")
        return out
    s0 = float(sigma_px) if sigma_px is not None else estimate_sigma(img, xy, pixel_size_nm=pixel_size_nm,
                                                                      options=opt)
    noise2 = max(pixel_noise(img), 1e-6 * (np.ptp(img) or 1.0)) ** 2
    state = _run(img, xy, s0, opt, noise2)
    parent, n_cand = np.arange(n), 0
    if opt.split is not None:  # model-order selection: merged pairs become two atoms, everything refitted
        from sacmap.detection.split import split_merged

        inflation = correlation_inflation(img - state[4].reshape(img.shape), s0, order=2)
        min_sep = opt.split.min_sep_nm / pixel_size_nm if pixel_size_nm else opt.split.min_sep_sigma * s0
        xy, parent, state, n_cand = split_merged(img, xy, state, s0, noise2, inflation, opt, opt.split, min_sep,
                                                  _run)
    P_all, gid, batches, results, total = state
    err = np.full(len(xy), np.nan)
    for bi, (b, members, _B) in enumerate(batches):
        r, parts, P, B = results[bi]
        err[members] = _uncertainty(b, P, B, r, parts, s0, opt, xy[members])
    inflation = correlation_inflation(img - total.reshape(img.shape), s0)
    err *= np.sqrt(inflation)
    sig = np.exp(P_all[:, 3])
    shift = np.hypot(*(P_all[:, :2] - xy).T)
    ok = within_bounds(P_all[:, 2], sig, shift, s0, opt.max_shift_sigma) & np.isfinite(err)
    out = pd.DataFrame({
        "x_px": P_all[:, 0],
        "y_px": P_all[:, 1],
        "intensity": P_all[:, 2] * 2 * np.pi * sig**2,
        "sigma_px": sig,
        "pos_err_px": err,
        "fit_ok": ok,
        "group": gid,
        "parent": parent,
    })
    out.attrs["sigma0_px"] = s0
    out.attrs["variance_inflation"] = inflation
    out.attrs["split_candidates"] = n_cand
    return out


#: Close-pair atoms (a neighbour within PAIR_FIT_NM of the start) whose fit is this precise take the fit outright
#: in :func:`combine_with_start` (nm; see there).
PAIR_FIT_NM = 0.30
PRECISE_FIT_NM = 0.020


def combine_with_start(xy_start, xy_fit, pos_err_px, group, ok, *, min_atoms: int = 20, pair_px: float = 0.0,
                       precise_px: float = 0.0) -> np.ndarray:
    """Positions (N, 2) px: each start moved towards its fit by the weight this image's data give the fits.

    A fit and the detector that gave its start position each err; ``w = v_d / (v_d + v_f)`` of the way from the
    start to the fit is the inverse-variance combination, with ``v_f`` the median pos_err² of the fits and ``v_d``
    the detector's error variance per coordinate, estimated on this image from the moves themselves:
    median |fit − start|² / (2 ln 2) (the χ²₂ median) − v_f. One weight per class, isolated atoms and atoms fitted in
    joint groups (a detector's close pairs carry its own bias: the paper CNN puts them too close, the heat map too
    far apart), each from ≥ ``min_atoms`` fitted atoms (else from all; with fewer in all, the fits are taken as
    they are). Per-atom weights (pos_err² of each atom) were tried: the few atoms with a large pos_err on clean
    images (a partner the detector missed) then stayed at the detector's position, 1.7 px off the fit.

    Measured (docs/detection.md, refinement): on clean images the moves dwarf pos_err and the fits are taken
    (median error 0.6 → 0.003 px); with the calibrated support texture the moves are no larger than the fits' own
    errors (v_d ≈ 0: detector and fit follow the same texture bumps) and the fitted positions were worse than the
    detector's (median 1.74 → 1.80 px paper CNN, 1.47 → 1.69 px heat map), so the start is kept. Atoms whose fit
    hit a bound (``ok`` False) keep the start.

    Close pairs (``pair_px`` > 0: atoms whose nearest start lies within ``pair_px``) whose fit error ``pos_err_px``
    is at most ``precise_px`` take the fit outright, whatever the weight: the weight treats the detector's error as
    random, but its pair separations carry a systematic bias (the heat map puts a pair's peaks 4–6 pm too far apart
    at 0.10–0.15-nm atom widths and high dose, 27–35 pm at the calibrated 0.28 nm), which moves the multimer share
    (NND ≤ 0.22 nm, bonds of 0.22–0.26 nm sit right at it), while the moves that set the weight are no larger than
    the fits' errors there, so the weight keeps the detector. Measured on a toy simulator independent of
    :mod:`sacmap.detection.simulate` (core + tail probe, amorphous texture, Poisson noise; 6 atoms/nm², 40 %
    dimers at 0.20–0.26 nm): median pair-separation error +4–6 → −2–0 pm, multimer share at 4 and 6 atoms/nm²
    (truth 0.249 / 0.304) 0.141 / 0.192 → 0.251 / 0.326 at 0.03 nm/px and 2·10⁵ e/nm², 0.172 / 0.209 → 0.254 /
    0.313 at 3·10⁴ (``tests/detection/test_pair_positions.py``). At 0.045 nm/px it overshoots (+0.035 / +0.042):
    the fits' own noise then moves as many pairs below 0.22 nm as the bias moved above.
    The pipeline uses 0.30 nm and 20 pm (:data:`PAIR_FIT_NM`, :data:`PRECISE_FIT_NM`); 20 pm rather than 10 pm
    also takes the fits at 0.045 nm/px and 10⁵ e/nm² (multimer share at 4 / 6 atoms/nm², truth 0.252 / 0.308:
    0.192 / 0.201 → 0.228 / 0.265) and at peak 0.3 (0.249 / 0.304: 0.170 / 0.188 → 0.239 / 0.265) and, on our own
    simulator, bright dense images (hard-core + multimer 6/nm², truth 0.361: 0.229 → 0.249); the real images'
    scores (validation 0.662, held-out 0.644), the randomised median (0.478) and the calibrated sets do not
    change (close-pair fit errors there: medians 24–90 pm).
    """
    xy0 = np.asarray(xy_start, float)
    xyf = np.asarray(xy_fit, float)
    pe = np.asarray(pos_err_px, float)
    ok = np.asarray(ok, bool) & np.isfinite(pe)
    out = np.where(ok[:, None], xyf, xy0)
    if ok.sum() < min_atoms:
        return out
    d2 = ((xyf - xy0) ** 2).sum(1)
    size = np.bincount(group)[group]
    for cls in (size == 1, size > 1):
        sel = cls & ok
        if sel.sum() < min_atoms:
            sel = ok
        v_f = float(np.median(pe[sel] ** 2))
        v_d = max(float(np.median(d2[sel])) / (2.0 * np.log(2.0)) - v_f, 0.0)
        w = v_d / (v_d + v_f) if v_d + v_f > 0 else 1.0
        m = cls & ok
        out[m] = xy0[m] + w * (xyf[m] - xy0[m])
    if pair_px > 0 and precise_px > 0 and len(xy0) > 1:
        from scipy.spatial import cKDTree

        d, _ = cKDTree(xy0).query(xy0, k=2)
        take = ok & (d[:, 1] <= pair_px) & (pe <= precise_px)
        out[take] = xyf[take]
    return out
