"""Atoms the networks left out: band-pass candidates and the features a verifier scores them by.

Arrays in, arrays out, no I/O (as ``skimage.feature``). Everything is in the *model frame* (0.0293 nm/px, the
pre-processed image of :func:`sacmap.detection.preprocess.to_model_frame`); lengths in model px unless named nm.

Why: at the calibrated Pt₁/NC dose the two networks keep about half of the atoms of a 4-atoms/nm² image and a
fifth at 8/nm², although a difference-of-Gaussians band-pass still shows most of the missed ones as local maxima
(hard-core 4/nm²: a plain DoG at a fixed height recovers 0.73 of the atoms at precision 0.94, the networks 0.49).
On sparse real images the same band-pass also fires on carbon-texture bumps, many of them as high as atoms, so
a candidate is only added when a verifier (:mod:`sacmap.detection.verifier`) finds it atom-like *in its
context*: its contrast relative to the atoms already detected in the same image, to the pixel noise and to the
band-pass spread of the whole image, the heat map's and the CNN's own evidence at that point, and the image's
candidates as a population (how many there are per detected atom and what share of them is as high as a faint
atom).

:func:`candidate_peaks` gives the candidates (local maxima of the band-pass farther than ``min_sep_px`` from
every detected atom); :func:`candidate_features` the feature matrix, columns :data:`FEATURES`.
"""

from __future__ import annotations

import numpy as np

from sacmap.detection import filters

#: Band-pass: Gaussian σ (model px) of the narrow and the wide blur (0.06 / 0.18 nm), and a second, broader pair
#: (0.09 / 0.23 nm) for wide atoms.
BAND = (2.0, 6.0)
BAND_WIDE = (3.0, 8.0)
#: Local-maximum window (model px, 0.15 nm) and the border (px) where no candidate is taken.
PEAK_WINDOW = 5
BORDER = 3
#: Column names of :func:`candidate_features`, in order.
FEATURES = ("rel_contrast", "rel_contrast_wide", "log_noise_sig", "texture_sig", "heat", "cnn", "log_atom_noise_sig",
            "atom_texture_sig", "cand_high_share", "log_cand_per_atom")
#: ``cand_high_share`` counts the image's candidates at least this high relative to the detected atoms.
HIGH_REL = 0.3


def _half_blur(f: np.ndarray, sigma: float) -> np.ndarray:
    """Gaussian blur of σ ``sigma`` (full-resolution px) evaluated on the 2 × 2 block means of ``f`` (their box adds
    (2² − 1)/12 px² of variance per axis, subtracted); an array of half the size."""
    h, w = f.shape
    hp, wp = h + h % 2, w + w % 2
    g = np.pad(f, ((0, hp - h), (0, wp - w)), mode="edge").reshape(hp // 2, 2, wp // 2, 2).mean(axis=(1, 3))
    return filters.gaussian_filter(g, np.sqrt(sigma**2 - 0.25) / 2.0, mode="reflect", truncate=3.0)


def _half_coords(n: int, size: int, at=None):
    """Bilinear weights of full-resolution rows (or columns) ``at`` (all ``n`` when None) on a half-size axis."""
    x = np.clip(((np.arange(n) if at is None else np.asarray(at, float)) - 0.5) / 2.0, 0, size - 1)
    i0 = np.floor(x).astype(int)
    return i0, np.minimum(i0 + 1, size - 1), (x - i0).astype(np.float32)


def blur(f: np.ndarray, sigma: float) -> np.ndarray:
    """Gaussian blur of σ ``sigma`` px (float32, reflecting edges, kernel cut at 3σ). From σ ≥ 4 px it runs on
    the 2 × 2 block means (:func:`_half_blur`) and is interpolated back bilinearly: a fifth of the cost, and at
    that width the field is smooth enough that the difference is ≤ 1.5 % of its range."""
    f = np.asarray(f, dtype=np.float32)
    if sigma < 4.0 or min(f.shape) < 16:
        return filters.gaussian_filter(f, sigma, mode="reflect", truncate=3.0)
    g = _half_blur(f, sigma)
    r0, r1, fr = _half_coords(f.shape[0], g.shape[0])
    c0, c1, fc = _half_coords(f.shape[1], g.shape[1])
    g = g[r0] * (1 - fr[:, None]) + g[r1] * fr[:, None]  # rows, then columns
    return g[:, c0] * (1 - fc) + g[:, c1] * fc


def band_pass(frame: np.ndarray, band: tuple[float, float] = BAND) -> np.ndarray:
    """Difference of two Gaussian blurs (:func:`blur`, σ in model px) of a model-frame image; float32, same
    shape."""
    return blur(frame, band[0]) - blur(frame, band[1])


def band_pass_at(frame: np.ndarray, band: tuple[float, float], rows, cols) -> np.ndarray:
    """:func:`band_pass` at integer pixels (``rows``, ``cols``) only, both blurs on the 2 × 2 block means
    (σ ≥ 3 px: within 2.5 % of the full-resolution band-pass's range), sampled bilinearly: for the wide band,
    needed at the candidates and the atoms, not everywhere."""
    f = np.asarray(frame, dtype=np.float32)
    if min(f.shape) < 16 or min(band) < 3.0:
        return band_pass(f, band)[rows, cols]
    g = _half_blur(f, band[0]) - _half_blur(f, band[1])
    r0, r1, fr = _half_coords(f.shape[0], g.shape[0], rows)
    c0, c1, fc = _half_coords(f.shape[1], g.shape[1], cols)
    return ((g[r0, c0] * (1 - fc) + g[r0, c1] * fc) * (1 - fr) + (g[r1, c0] * (1 - fc) + g[r1, c1] * fc) * fr)


def _kernel_norm(band: tuple[float, float]) -> float:
    """L2 norm of the band-pass kernel: white noise of σ = 1 per pixel comes out with this σ."""
    n = 2 * int(np.ceil(3 * band[1])) + 1
    d = np.zeros((n, n))
    d[n // 2, n // 2] = 1.0
    return float(np.sqrt((band_pass(d, band) ** 2).sum()))


def pixel_noise_sd(frame: np.ndarray) -> float:
    """Robust per-pixel noise σ of an image (its units): the MAD of each pixel minus the mean of its four
    neighbours, which removes anything smooth on the scale of an atom (σ ≥ 2 px) and keeps pixel noise
    (× √(5/4) for white noise). It sees row-to-row offsets (scan-line noise) as the band-pass does, which horizontal
    differences (:func:`sacmap.detection.gaussfit.pixel_noise`, the refinement's estimate, kept there for the
    reason its docstring gives) do not."""
    f = np.asarray(frame, dtype=np.float32)
    if min(f.shape) < 5:
        return 0.0
    r = f[1:-1, 1:-1] - 0.25 * (f[:-2, 1:-1] + f[2:, 1:-1] + f[1:-1, :-2] + f[1:-1, 2:])
    return _mad(r) / np.sqrt(1.25)


def band_noise_sd(frame: np.ndarray, band: tuple[float, float] = BAND) -> float:
    """The pixel noise of ``frame`` (:func:`pixel_noise_sd`) as it comes out of :func:`band_pass` with ``band``."""
    return pixel_noise_sd(frame) * _kernel_norm(band)


def _mad(a: np.ndarray) -> float:
    """Normal-consistent median absolute deviation (×1.4826); over every other row and column from 512² on
    (a quarter of the pixels: the same to < 1 %, four times faster)."""
    from sacmap.detection.gaussfit import robust_sd

    return robust_sd(a[::2, ::2] if a.size >= 512 * 512 else a)


def candidate_peaks(bp: np.ndarray, atoms_xy: np.ndarray, min_sep_px: float) -> np.ndarray:
    """Local maxima (positive, window :data:`PEAK_WINDOW`, off the border) of a band-passed frame ``bp`` farther
    than ``min_sep_px`` from every detected atom (``atoms_xy``: (n, 2), x = column); returns (m, 2) integer px
    (x, y)."""
    from scipy.spatial import cKDTree

    h, w = bp.shape
    mx = filters.maximum_filter(bp, size=PEAK_WINDOW, mode="nearest")
    ys, xs = np.nonzero((bp == mx) & (bp > 0))
    inside = (xs >= BORDER) & (ys >= BORDER) & (xs < w - BORDER) & (ys < h - BORDER)
    xy = np.c_[xs[inside], ys[inside]]
    if len(atoms_xy) and len(xy):
        d, _ = cKDTree(np.asarray(atoms_xy, float)).query(xy)
        xy = xy[d > min_sep_px]
    return xy.astype(int).reshape(-1, 2)


def candidate_features(frame: np.ndarray, atoms_xy: np.ndarray, heat: np.ndarray, cnn: np.ndarray,
                       min_sep_px: float) -> tuple[np.ndarray, np.ndarray]:
    """Candidates of a model-frame image and their features.

    Parameters
    ----------
    frame : the model-frame image (the CNN's pre-processing).
    atoms_xy : (n, 2) detected atoms (model px, x = column).
    heat, cnn : the heat map and the CNN probability map of the image (model frame, any shape: sampled at the
        candidate's relative position).
    min_sep_px : candidates closer than this to a detected atom are not taken (model px).

    Returns
    -------
    (xy, X): candidate positions (m, 2) in model px (the band-pass maximum, sub-pixel by a parabola per axis) and
    the (m, len(FEATURES)) float64 feature matrix.
    """
    atoms_xy = np.asarray(atoms_xy, float).reshape(-1, 2)
    h, w = frame.shape
    bp = band_pass(frame, BAND)
    xy = candidate_peaks(bp, atoms_xy, min_sep_px)
    if not len(xy):
        return xy, np.empty((0, len(FEATURES)))
    noise = max(band_noise_sd(frame, BAND), 1e-9)
    spread = max(_mad(bp), 1e-9)
    cx, cy = xy[:, 0], xy[:, 1]
    ai = (np.clip(np.rint(atoms_xy[:, 1]).astype(int), 0, h - 1),
          np.clip(np.rint(atoms_xy[:, 0]).astype(int), 0, w - 1))
    bw = band_pass_at(frame, BAND_WIDE, np.r_[cy, ai[0]], np.r_[cx, ai[1]])
    v, vw = bp[cy, cx], bw[: len(xy)]
    if len(atoms_xy):
        ref, ref_w = float(np.median(bp[ai])), float(np.median(bw[len(xy):]))
    else:  # nothing detected: the candidates are judged against the image's own spread
        ref = ref_w = spread
    ref, ref_w = max(ref, 1e-9), max(ref_w, 1e-9)

    def sample(m):
        m = np.asarray(m)
        r = np.clip((cy + 0.5) * m.shape[0] / h - 0.5, 0, m.shape[0] - 1).round().astype(int)
        c = np.clip((cx + 0.5) * m.shape[1] / w - 0.5, 0, m.shape[1] - 1).round().astype(int)
        return m[r, c].astype(np.float64)

    # sub-pixel: a parabola through the band-pass maximum and its neighbours, per axis (≤ ½ px)
    def offset(lo, mid, hi):
        den = lo - 2 * mid + hi
        return np.clip(np.where(den < 0, 0.5 * (lo - hi) / np.where(den < 0, den, -1.0), 0.0), -0.5, 0.5)

    sub = np.c_[cx + offset(bp[cy, cx - 1], v, bp[cy, cx + 1]), cy + offset(bp[cy - 1, cx], v, bp[cy + 1, cx])]
    X = np.c_[np.clip(v / ref, -1, 3), np.clip(vw / ref_w, -1, 3), np.log(np.clip(v / noise, 0.1, None)),
              np.clip(v / spread, -5, 20), sample(heat), sample(cnn),
              np.full(len(xy), np.log(max(ref / noise, 0.1))), np.full(len(xy), min(ref / spread, 20.0))]
    # the image's candidates as a population: a mixture of texture bumps and missed atoms, whose share of atoms
    # the verifier cannot know from one candidate (the same bump is texture on a sparse field and an atom in a
    # crowd); their share at least HIGH_REL of the atoms' height and their number per detected atom say which
    share = float((X[:, 0] >= HIGH_REL).mean())
    per_atom = np.log((len(xy) + 1.0) / (len(atoms_xy) + 1.0))
    X = np.c_[X, np.full(len(xy), share), np.full(len(xy), per_atom)]
    return sub, X


def pair_shift(sigma: float, band: tuple[float, float] = BAND, max_sep: float | None = None):
    """How far the band-pass maxima of two equal Gaussian atoms sit inside their centres.

    Two atoms of Gaussian σ ``sigma`` at separation d, band-passed by :func:`band_pass` with the blur σ of
    ``band`` (all lengths in one unit, e.g. image px): along the pair's axis each blur of a Gaussian is again a
    Gaussian, so the band-pass profile is a sum of four analytic terms and its maxima are found on a fine grid.
    Overlapping atoms pull the two maxima towards each other (calibrated 0.28-nm atoms, 0.0293 nm/px: a 0.27-nm
    pair shows maxima ≈ 0.19 nm apart; below ≈ 0.25 nm there is one maximum only). Returns ``(d, delta)``:
    separations from the smallest that shows two maxima up to ``max_sep`` (default 8 σ_wide) and the inward
    displacement of each maximum (negative where the neighbour's negative ring pushes it outwards)."""
    s1, s2 = sigma**2 + band[0] ** 2, sigma**2 + band[1] ** 2
    a1, a2 = sigma**2 / s1, sigma**2 / s2
    top = max_sep if max_sep is not None else 8.0 * np.sqrt(s2)
    d = np.linspace(0.02 * top, top, 400)
    x = np.linspace(0.0, top, 4001)[1:]  # half-axis; the maximum of one atom's side, x > 0

    def prof(c):  # (len(d), len(x)) band-pass along the axis, atoms at ±c
        u, v = (x[None] - c[:, None]) ** 2, (x[None] + c[:, None]) ** 2
        narrow = np.exp(-u / (2 * s1)) + np.exp(-v / (2 * s1))
        return a1 * narrow - a2 * (np.exp(-u / (2 * s2)) + np.exp(-v / (2 * s2)))

    f = prof(d / 2)
    inner = (f[:, 1:-1] > f[:, :-2]) & (f[:, 1:-1] >= f[:, 2:])
    has = inner.any(axis=1)
    first = np.argmax(inner, axis=1) + 1  # the first local maximum off the centre: the atom's own
    delta = d / 2 - x[first]
    d, delta = d[has], delta[has]
    if len(d) == 0:
        return d, delta
    start = int(np.flatnonzero(np.diff(np.r_[0, has.astype(int)]) == 1)[-1])  # the last run of two maxima
    run = np.cumsum(has)[start] - 1
    return d[run:], delta[run:]


def debias_pairs(xy: np.ndarray, moved: np.ndarray, sigma: float, band: tuple[float, float] = BAND) -> np.ndarray:
    """Positions ``xy`` (n, 2) with band-pass maxima of close pairs put back where two atoms would make them.

    ``moved`` marks the points that are band-pass maxima (the verifier's candidates); the others (the networks'
    atoms) stay where they are. Each marked point and its nearest neighbour are read as two equal atoms of σ
    ``sigma`` (:func:`pair_shift`, same unit as ``xy`` and ``band``): a pair of two marked mutual nearest
    neighbours measured m apart is spread to the separation d whose two maxima lie m apart (d − 2δ(d) = m), each
    point moving half the difference along the pair's axis; a marked point next to an unmarked one moves by δ
    alone (d − δ(d) = m). Measured separations below the smallest that two atoms can show are read as that
    smallest one. Why: a hard-core pattern at 6 atoms/nm² (≥ 0.25 nm apart) was measured with 0.135 of its atoms
    < 0.22 nm from another (0.017 after this, benchmark images): the band-pass alone manufactured close pairs."""
    from scipy.spatial import cKDTree

    xy = np.asarray(xy, float).reshape(-1, 2)
    moved = np.asarray(moved, bool)
    out = xy.copy()
    if len(xy) < 2 or not moved.any() or not (np.isfinite(sigma) and sigma > 0):
        return out
    d, delta = pair_shift(sigma, band)
    if len(d) < 2:
        return out
    both = np.maximum.accumulate(d - 2 * delta)  # measured separation of a pair of two maxima (monotone)
    one = np.maximum.accumulate(d - delta)
    dist, nb = cKDTree(xy).query(xy, k=2)
    dist, nb = dist[:, 1], nb[:, 1]
    reach = d[-1]
    for i in np.flatnonzero(moved & (dist < reach) & (dist > 0)):
        k = nb[i]
        u = (xy[i] - xy[k]) / dist[i]
        if moved[k] and nb[k] == i:
            if k < i:
                continue  # the pair was spread when its first point came
            gap = float(np.interp(dist[i], both, d)) - dist[i]
            out[i] += u * gap / 2
            out[k] -= u * gap / 2
        else:
            out[i] += u * (float(np.interp(dist[i], one, d)) - dist[i])
    return out
