"""Second-order and distance summary functions of a point pattern, edge-corrected as spatstat does (nm, nm⁻²).

Every function takes points (n, 2) in nm and a window (:class:`~sacmap.analysis.spatial.window.Region`: a
rectangle, or a support mask, holes included) and returns a :class:`SummaryFunction`: the distances ``r_nm``,
the estimate, the Poisson (CSR) value ``theo`` and the NAME of the edge correction used. The estimators are the
ones of spatstat 3.0 (``Kest``, ``Lest``, ``pcf``, ``Gest``, ``Fest``, ``Jest``, ``Kcross``, ``Gcross``) and are
cross-checked against it in ``tests/analysis/test_spatstat.py``:

* **K** (Ripley), ``K(r) = A / (n (n-1)) Σ_{i≠j} 1{d_ij ≤ r} e_ij`` with the edge weight ``e_ij`` of the
  correction: ``translate`` ``A / |W ∩ (W + x_j − x_i)|`` (set covariance; analytic for rectangles, FFT for
  masks), ``isotropic`` (Ripley) ``2π d_ij / |b(x_i, d_ij) ∩ W|₁`` (length of the circle inside W; analytic for
  rectangles; for masks from 128 points on each circle — spatstat has no isotropic correction for masks), or
  ``border`` (reduced sample: ``K(r) = Σ_i 1{b_i ≥ r} #{j: d_ij ≤ r} / (λ #{i: b_i ≥ r})``, ``λ = n/A``).
  Weights are capped at 100 (as spatstat's ``edge.Ripley``). **L** = ``√(K/π)``.
* **pcf** g(r): ``g(r) = A / (n (n-1)) Σ_{i≠j} κ_h(r − d_ij) e_ij / (2π r)`` with the Epanechnikov kernel of
  standard deviation ``h`` (half-width √5 h); default ``h = 0.15 / √(5λ)`` (Stoyan's rule, spatstat's default),
  the edge weight of ``translate`` or ``isotropic``, divisor r (spatstat's default ``divisor = "r"``).
* **G** (nearest-neighbour distance distribution), censored by the distance ``b_i`` to the boundary: ``km``
  (Kaplan–Meier), ``hanisch`` (``Σ 1{d_i ≤ r, d_i ≤ b_i}/|W ⊖ d_i| / Σ 1{d_i ≤ b_i}/|W ⊖ d_i|``), ``border``
  (reduced sample ``#{d_i ≤ r ≤ b_i} / #{b_i ≥ r}``).
* **F** (empty-space function) from test points on a raster (the mask's support pixels; 128 per long side for a
  rectangle): ``km`` or ``border``. **J** = ``(1 − G) / (1 − F)`` with the same correction for both.
* **Gcross**, **Kcross**, **Lcross** (type i to type j): as G and K with i-points as centres and j-points as
  neighbours (``K_ij(r) = A / (n_i n_j) Σ_{i, j} 1{d ≤ r} e_ij``; border: ``λ_j``).

The Poisson values ``theo``: K ``πr²``, L ``r``, pcf 1, G and F ``1 − exp(−λπr²)``, J 1 (cross: ``λ_j``).
"""

from __future__ import annotations

from dataclasses import dataclass, field

import numpy as np
from scipy.spatial import cKDTree

from sacmap.analysis.errors import AnalysisInputError
from sacmap.analysis.spatial.window import Region

#: corrections each function accepts (the first is the default)
CORRECTIONS = {
    "K": ("translate", "isotropic", "border"),
    "L": ("translate", "isotropic", "border"),
    "pcf": ("translate", "isotropic"),
    "G": ("km", "hanisch", "border"),
    "F": ("km", "border"),
    "J": ("km", "border"),
    "Gcross": ("km", "hanisch", "border"),
    "Kcross": ("translate", "isotropic", "border"),
    "Lcross": ("translate", "isotropic", "border"),
}
MAX_WEIGHT = 100.0
N_R = 129  # default number of r values


@dataclass
class SummaryFunction:
    """One estimated summary function: ``r_nm`` (nm), ``value`` (the estimate), ``theo`` (the Poisson value),
    ``correction`` (the edge correction's name), the ``window`` it was estimated in and ``details`` (bandwidth,
    types, test-point spacing, ...)."""

    name: str
    r_nm: np.ndarray
    value: np.ndarray
    theo: np.ndarray
    correction: str
    n_points: int
    window: dict = field(default_factory=dict)
    details: dict = field(default_factory=dict)

    def as_dict(self) -> dict:
        return {"name": self.name, "correction": self.correction, "n_points": self.n_points, "window": self.window,
                "details": self.details, "r_nm": self.r_nm.tolist(), "value": self.value.tolist(),
                "theo": self.theo.tolist()}


# ---------------------------------------------------------------------------------------------------- helpers
def _xy(xy_nm, what="points", min_points=2) -> np.ndarray:
    xy = np.asarray(xy_nm, dtype=float)
    if xy.ndim != 2 or xy.shape[1] != 2:
        raise AnalysisInputError(f"{what}: expected an (n, 2) array of x, y in nm, got shape {xy.shape}")
    if not np.all(np.isfinite(xy)):
        raise AnalysisInputError(f"{what}: NaN or infinite coordinates")
    if len(xy) < min_points:
        raise AnalysisInputError(f"{what}: {len(xy)} point(s); summary functions need at least {min_points}")
    return xy


def _correction(name: str, correction: str | None) -> str:
    allowed = CORRECTIONS[name]
    if correction is None:
        return allowed[0]
    c = {"trans": "translate", "translation": "translate", "iso": "isotropic", "ripley": "isotropic",
         "rs": "border", "reduced": "border", "kaplan-meier": "km", "han": "hanisch"}.get(correction.lower(),
                                                                                          correction.lower())
    if c not in allowed:
        raise AnalysisInputError(f"{name}: unknown edge correction {correction!r} (expected one of "
                                 f"{', '.join(allowed)})")
    return c


def short_side_nm(region: Region) -> float:
    return float(min(region.width_nm, region.height_nm))


def default_r(name: str, region: Region, n: int, r_nm=None, r_max_nm: float | None = None) -> np.ndarray:
    """The r values (nm): given, else ``N_R`` values from 0 to ``r_max_nm`` (default: K, L, pcf — a quarter of
    the short side, at most ``√(1000/(πλ))``; G, F, J — the Poisson 99.9 % NND quantile, at most a quarter of the
    short side)."""
    if r_nm is not None:
        r = np.asarray(r_nm, dtype=float).ravel()
        if r.size < 2 or np.any(np.diff(r) <= 0) or r[0] < 0:
            raise AnalysisInputError("r values must be increasing, non-negative, at least two")
        return r
    lam = n / region.area_nm2
    if r_max_nm is None:
        if name in ("K", "L", "pcf", "Kcross", "Lcross"):
            r_max_nm = min(0.25 * short_side_nm(region), np.sqrt(1000.0 / (np.pi * lam)))
        else:
            r_max_nm = min(0.25 * short_side_nm(region), np.sqrt(np.log(1000.0) / (np.pi * lam)))
    if not r_max_nm > 0:
        raise AnalysisInputError(f"r_max must be positive (nm), got {r_max_nm!r}")
    return np.linspace(0.0, float(r_max_nm), N_R)


def _pairs(xa: np.ndarray, xb: np.ndarray | None, r_max: float):
    """Pairs within ``r_max`` (nm): indices into a and b, displacement b − a and distance. ``xb`` None: each
    unordered pair of ``xa`` once (i < j)."""
    if xb is None:
        p = cKDTree(xa, balanced_tree=False, compact_nodes=False).query_pairs(r_max, output_type="ndarray")
        i, j = p[:, 0], p[:, 1]
        x, y = xa[:, 0], xa[:, 1]
        v = np.empty((len(i), 2))
        np.subtract(x[j], x[i], out=v[:, 0])
        np.subtract(y[j], y[i], out=v[:, 1])
        d = v[:, 0] * v[:, 0]
        d += v[:, 1] * v[:, 1]
        return i, j, v, np.sqrt(d, out=d)
    ta, tb = cKDTree(xa), cKDTree(xb)
    m = ta.sparse_distance_matrix(tb, r_max, output_type="ndarray")
    i, j = m["i"].astype(np.int64), m["j"].astype(np.int64)
    v = xb[j] - xa[i]
    return i, j, v, np.hypot(v[:, 0], v[:, 1])


STRIP_POINTS = 50_000


def _strips(xy: np.ndarray, reach: float):
    """``(points, n_own)`` per vertical strip of about :data:`STRIP_POINTS` points (sorted by x), each with a
    halo of the points up to ``reach`` nm to its right after its own ``n_own`` points; one strip when small."""
    n = len(xy)
    if n <= 2 * STRIP_POINTS:
        yield xy, n
        return
    order = np.argsort(xy[:, 0], kind="stable")
    xs = xy[order]
    bounds = list(range(0, n, STRIP_POINTS)) + [n]
    for a, b in zip(bounds[:-1], bounds[1:]):
        end = int(np.searchsorted(xs[:, 0], xs[b - 1, 0] + reach, side="right")) if b < n else n
        yield xs[a:end], b - a


def _ordered_weights(region: Region, xa, xb, i, j, v, d, correction: str) -> np.ndarray:
    """Total edge weight per pair row: for one type (``xb`` None) the sum over both orders of the unordered
    pair (translation weights are symmetric: twice one), for two types the i → j weight."""
    if xb is not None:
        return _edge_weights(region, xa[i], v, d, correction)
    if correction == "translate":
        w = _edge_weights(region, None, v, d, correction)
        w *= 2.0
        return w
    return _edge_weights(region, xa[i], v, d, correction) + _edge_weights(region, xa[j], -v, d, correction)


def _edge_weights(region: Region, centres: np.ndarray, v: np.ndarray, d: np.ndarray, correction: str):
    """Edge weight per ordered pair (1 = no correction needed); pairs the window cannot hold get weight 0."""
    if correction == "translate" and not region.is_mask and len(d) and d.max() < short_side_nm(region):
        w = np.abs(v[:, 0])  # fast path for rectangles (every pair fits): A / ((W − |dx|)(H − |dy|))
        np.subtract(region.width_nm, w, out=w)
        dy = np.abs(v[:, 1])
        np.subtract(region.height_nm, dy, out=dy)
        w *= dy
        np.divide(region.area_nm2, w, out=w)
        return np.minimum(w, MAX_WEIGHT, out=w)
    if correction == "translate":
        gam = region.set_covariance_nm2(v)
        w = np.where(gam > 0, region.area_nm2 / np.where(gam > 0, gam, 1.0), 0.0)
    elif correction == "isotropic":
        frac = region.circle_inside_fraction(centres, d)
        w = np.where(frac > 0, 1.0 / np.where(frac > 0, frac, 1.0), 0.0)
    else:
        raise AnalysisInputError(f"edge correction {correction!r} has no pair weights")
    return np.minimum(w, MAX_WEIGHT)


def _cum_at(d: np.ndarray, w: np.ndarray | None, r: np.ndarray) -> np.ndarray:
    """Σ w over d ≤ r, for every r."""
    order = np.argsort(d, kind="stable")
    cw = np.concatenate([[0.0], np.cumsum(np.ones(len(d)) if w is None else w[order])])
    return cw[np.searchsorted(d[order], r, side="right")]


def _interval_count(lo: np.ndarray, hi: np.ndarray, r: np.ndarray) -> np.ndarray:
    """#{k: lo_k ≤ r ≤ hi_k} for every r (intervals with lo > hi count nowhere)."""
    ok = lo <= hi
    lo, hi = np.sort(lo[ok]), np.sort(hi[ok])
    return (np.searchsorted(lo, r, side="right") - np.searchsorted(hi, r, side="left")).astype(float)


def _fn(name, r, value, theo, correction, n, region, **details) -> SummaryFunction:
    return SummaryFunction(name, np.asarray(r, float), np.asarray(value, float), np.asarray(theo, float),
                           correction, int(n), region.describe(), details)


# ---------------------------------------------------------------------------------------------------- K, L, pcf
def _k_core(name, xa, xb, region, r, correction, lam_b):
    """K (or K_ij) on r; ``xb`` None for the one-type K."""
    same = xb is None
    na = len(xa)
    nb = na if same else len(xb)
    num = np.zeros(len(r))
    b_all = region.distance_to_boundary(xa) if correction == "border" else None
    parts = _strips(xa, float(r[-1])) if same else [(xa, na)]
    for part, n_own in parts:  # one-type K of large patterns in strips (see pcf)
        i, j, v, d = _pairs(part, xb, float(r[-1]))
        if same and n_own < len(part):
            keep = np.minimum(i, j) < n_own
            i, j, v, d = i[keep], j[keep], v[keep], d[keep]
        if correction == "border":
            b = region.distance_to_boundary(part)
            num += _interval_count(d, b[i], r)
            if same:  # the pair counts for each end whose boundary distance allows it
                num += _interval_count(d, b[j], r)
        else:
            num += _cum_at(d, _ordered_weights(region, part, xb, i, j, v, d, correction), r)
    if correction == "border":
        den = _interval_count(np.zeros(na), b_all, r)
        with np.errstate(invalid="ignore", divide="ignore"):
            k = np.where(den > 0, num / (lam_b * den), np.nan)
    else:
        k = region.area_nm2 / (na * (nb - 1 if same else nb)) * num
    return k


def k_function(xy_nm, window=None, r_nm=None, correction: str | None = None,
               r_max_nm: float | None = None) -> SummaryFunction:
    """Ripley's K (nm²) with the ``translate`` (default), ``isotropic`` or ``border`` correction (spatstat
    ``Kest``)."""
    xy = _xy(xy_nm)
    region = Region.coerce(window, xy)
    c = _correction("K", correction)
    r = default_r("K", region, len(xy), r_nm, r_max_nm)
    k = _k_core("K", xy, None, region, r, c, len(xy) / region.area_nm2)
    return _fn("K", r, k, np.pi * r**2, c, len(xy), region)


def l_function(xy_nm, window=None, r_nm=None, correction: str | None = None,
               r_max_nm: float | None = None) -> SummaryFunction:
    """Besag's L = √(K/π) (nm); same corrections as :func:`k_function` (spatstat ``Lest``)."""
    k = k_function(xy_nm, window, r_nm, correction, r_max_nm)
    return SummaryFunction("L", k.r_nm, np.sqrt(np.clip(k.value, 0, None) / np.pi), k.r_nm.copy(), k.correction,
                           k.n_points, k.window, k.details)


def stoyan_bandwidth_nm(density_nm2: float, stoyan: float = 0.15) -> float:
    """Standard deviation (nm) of the Epanechnikov kernel by Stoyan's rule: half-width ``stoyan/√λ``, σ = that/√5."""
    return float(stoyan / np.sqrt(density_nm2) / np.sqrt(5.0))


def _kernel_sum(d: np.ndarray, w: np.ndarray, r: np.ndarray, h: float) -> np.ndarray:
    """Σ w κ_h(r − d) for the Epanechnikov kernel of SD ``h`` (half-width √5 h): distances binned to h/40
    (bin centres; relative error ≲ 10⁻³ against the exact sum), then the kernel applied to the bins."""
    half = np.sqrt(5.0) * h
    step = h / 40.0
    lo = 0.0
    k = (d * (1.0 / step)).astype(np.int64)
    nbin = int(k.max()) + 1 if len(k) else 1
    hist = np.bincount(k, weights=w, minlength=nbin)
    centres = lo + step * (np.arange(nbin) + 0.5)
    out = np.empty(len(r))
    for a, rv in enumerate(r):
        sel = slice(max(int((rv - half - lo) / step), 0), min(int((rv + half - lo) / step) + 2, nbin))
        u = (rv - centres[sel]) / half
        kern = np.where(np.abs(u) < 1, 0.75 * (1 - u * u) / half, 0.0)
        out[a] = np.dot(hist[sel], kern)
    return out


def pcf(xy_nm, window=None, r_nm=None, correction: str | None = None, bandwidth_nm: float | None = None,
        r_max_nm: float | None = None, stoyan: float = 0.15) -> SummaryFunction:
    """Pair-correlation function g(r) by kernel smoothing (spatstat ``pcf.ppp``: Epanechnikov kernel,
    ``bandwidth_nm`` its SD, default Stoyan's rule :func:`stoyan_bandwidth_nm`; divisor r; correction
    ``translate`` (default) or ``isotropic``). g is undefined at r = 0 (NaN there)."""
    xy = _xy(xy_nm)
    region = Region.coerce(window, xy)
    c = _correction("pcf", correction)
    n = len(xy)
    lam = n / region.area_nm2
    r = default_r("pcf", region, n, r_nm, r_max_nm)
    h = stoyan_bandwidth_nm(lam, stoyan) if bandwidth_nm is None else float(bandwidth_nm)
    if not h > 0:
        raise AnalysisInputError(f"pcf: bandwidth must be positive (nm), got {bandwidth_nm!r}")
    reach = float(r[-1]) + np.sqrt(5.0) * h
    s = np.zeros(len(r))
    for part, n_own in _strips(xy, reach):  # large patterns in strips: the pair arrays stay small
        i, j, v, d = _pairs(part, None, reach)
        if n_own < len(part):  # a pair belongs to the strip of its left point (both in the halo: the next strip)
            keep = np.minimum(i, j) < n_own
            i, j, v, d = i[keep], j[keep], v[keep], d[keep]
        s += _kernel_sum(d, _ordered_weights(region, part, None, i, j, v, d, c), r, h)
    with np.errstate(invalid="ignore", divide="ignore"):
        g = np.where(r > 0, s / (2 * np.pi * r) * region.area_nm2 / (n * (n - 1)), np.nan)
    return _fn("pcf", r, g, np.ones_like(r), c, n, region, bandwidth_nm=h, kernel="epanechnikov",
               bandwidth_rule="given" if bandwidth_nm is not None else f"Stoyan: {stoyan}/sqrt(5 lambda)")


# ---------------------------------------------------------------------------------------------------- G, F, J
def kaplan_meier(obs: np.ndarray, event: np.ndarray, r: np.ndarray) -> np.ndarray:
    """Kaplan–Meier distribution function at ``r`` from censored times ``obs = min(d, b)``, ``event = d ≤ b``."""
    order = np.argsort(obs, kind="stable")
    t, e = obs[order], event[order].astype(float)
    if t.size == 0:
        return np.full(len(r), np.nan)
    ut, first = np.unique(t, return_index=True)
    de = np.add.reduceat(e, first)
    at_risk = len(t) - first
    surv = np.cumprod(1.0 - de / at_risk)
    idx = np.searchsorted(ut, r, side="right") - 1
    return 1.0 - np.where(idx >= 0, surv[np.maximum(idx, 0)], 1.0)


def _censored_cdf(d: np.ndarray, b: np.ndarray, r: np.ndarray, correction: str, region: Region) -> np.ndarray:
    if correction == "km":
        return kaplan_meier(np.minimum(d, b), d <= b, r)
    if correction == "border":
        num = _interval_count(d, b, r)
        den = _interval_count(np.zeros(len(b)), b, r)
        with np.errstate(invalid="ignore", divide="ignore"):
            return np.where(den > 0, num / den, np.nan)
    if correction == "hanisch":
        ok = d <= b
        a = region.eroded_area_nm2(d[ok])
        good = a > 0
        x, w = d[ok][good], 1.0 / a[good]
        if x.size == 0:
            return np.full(len(r), np.nan)
        return _cum_at(x, w, r) / w.sum()
    raise AnalysisInputError(f"unknown correction {correction!r}")


def _nn_to(xa: np.ndarray, xb: np.ndarray, same: bool) -> np.ndarray:
    d, _ = cKDTree(xb).query(xa, k=2 if same else 1)
    return d[:, 1] if same else d


def g_function(xy_nm, window=None, r_nm=None, correction: str | None = None,
               r_max_nm: float | None = None) -> SummaryFunction:
    """Nearest-neighbour distance distribution G(r): ``km`` (default), ``hanisch`` or ``border`` (spatstat
    ``Gest``)."""
    xy = _xy(xy_nm)
    region = Region.coerce(window, xy)
    c = _correction("G", correction)
    n = len(xy)
    r = default_r("G", region, n, r_nm, r_max_nm)
    d = _nn_to(xy, xy, True)
    b = region.distance_to_boundary(xy)
    val = _censored_cdf(d, b, r, c, region)
    return _fn("G", r, val, 1 - np.exp(-n / region.area_nm2 * np.pi * r**2), c, n, region)


def _test_points(region: Region, spacing_nm: float | None) -> tuple[np.ndarray, float]:
    if region.is_mask and spacing_nm is None:
        ij = np.argwhere(region.mask)
        return ij[:, ::-1] * region.pixel_size_nm, region.pixel_size_nm
    s = float(spacing_nm) if spacing_nm is not None else max(region.width_nm, region.height_nm) / 128.0
    xs = np.arange(region.x0 + 0.5 * s, region.x1, s)
    ys = np.arange(region.y0 + 0.5 * s, region.y1, s)
    xx, yy = np.meshgrid(xs, ys)
    pts = np.column_stack([xx.ravel(), yy.ravel()])
    return pts[region.contains(pts)], s


def f_function(xy_nm, window=None, r_nm=None, correction: str | None = None, r_max_nm: float | None = None,
               spacing_nm: float | None = None) -> SummaryFunction:
    """Empty-space function F(r) (spherical contact distribution) from test points on a raster (the mask's
    support pixels, or ``spacing_nm``; 128 per long side of a rectangle): ``km`` (default) or ``border`` (spatstat
    ``Fest``)."""
    xy = _xy(xy_nm, min_points=1)
    region = Region.coerce(window, xy)
    c = _correction("F", correction)
    n = len(xy)
    r = default_r("F", region, n, r_nm, r_max_nm)
    tp, s = _test_points(region, spacing_nm)
    e = _nn_to(tp, xy, False)
    b = region.distance_to_boundary(tp)
    val = _censored_cdf(e, b, r, c, region)
    return _fn("F", r, val, 1 - np.exp(-n / region.area_nm2 * np.pi * r**2), c, n, region,
               test_points=int(len(tp)), spacing_nm=s)


def j_function(xy_nm, window=None, r_nm=None, correction: str | None = None, r_max_nm: float | None = None,
               spacing_nm: float | None = None) -> SummaryFunction:
    """Van Lieshout–Baddeley J(r) = (1 − G)/(1 − F), both with ``km`` (default) or ``border`` (spatstat
    ``Jest``); NaN where F = 1."""
    xy = _xy(xy_nm)
    region = Region.coerce(window, xy)
    c = _correction("J", correction)
    r = default_r("J", region, len(xy), r_nm, r_max_nm)
    g = g_function(xy, region, r, c)
    f = f_function(xy, region, r, c, spacing_nm=spacing_nm)
    with np.errstate(invalid="ignore", divide="ignore"):
        j = np.where(f.value < 1, (1 - g.value) / (1 - f.value), np.nan)
    return _fn("J", r, j, np.ones_like(r), c, len(xy), region, **f.details)


# ---------------------------------------------------------------------------------------------------- cross types
def _split(xy_nm, labels, i, j, what):
    xy = _xy(xy_nm, min_points=1)
    lab = np.asarray(labels).astype(str)
    if len(lab) != len(xy):
        raise AnalysisInputError(f"{what}: {len(lab)} labels for {len(xy)} points")
    a, b = xy[lab == str(i)], xy[lab == str(j)]
    if len(a) < 1 or len(b) < 1:
        raise AnalysisInputError(f"{what}: type {i!r} has {len(a)} and type {j!r} {len(b)} point(s); need ≥ 1 each "
                                 f"(types present: {', '.join(sorted(set(lab)))})")
    if str(i) == str(j):
        raise AnalysisInputError(f"{what}: the two types must differ (use the one-type function for {i!r})")
    return xy, a, b


def cross_k_function(xy_nm, labels, i, j, window=None, r_nm=None, correction: str | None = None,
                     r_max_nm: float | None = None) -> SummaryFunction:
    """Cross-type K_ij (nm²): ``translate`` (default), ``isotropic`` or ``border`` (spatstat ``Kcross``)."""
    xy, a, b = _split(xy_nm, labels, i, j, "Kcross")
    region = Region.coerce(window, xy)
    c = _correction("Kcross", correction)
    r = default_r("Kcross", region, len(xy), r_nm, r_max_nm)
    k = _k_core("Kcross", a, b, region, r, c, len(b) / region.area_nm2)
    return _fn("Kcross", r, k, np.pi * r**2, c, len(xy), region, i=str(i), j=str(j), n_i=len(a), n_j=len(b))


def cross_l_function(xy_nm, labels, i, j, window=None, r_nm=None, correction: str | None = None,
                     r_max_nm: float | None = None) -> SummaryFunction:
    """Cross-type L_ij = √(K_ij/π) (nm)."""
    k = cross_k_function(xy_nm, labels, i, j, window, r_nm, correction, r_max_nm)
    return SummaryFunction("Lcross", k.r_nm, np.sqrt(np.clip(k.value, 0, None) / np.pi), k.r_nm.copy(),
                           k.correction, k.n_points, k.window, k.details)


def cross_g_function(xy_nm, labels, i, j, window=None, r_nm=None, correction: str | None = None,
                     r_max_nm: float | None = None) -> SummaryFunction:
    """Cross-type G_ij: distance from each i-point to the nearest j-point, censored by the i-point's distance to
    the boundary; ``km`` (default), ``hanisch`` or ``border`` (spatstat ``Gcross``)."""
    xy, a, b = _split(xy_nm, labels, i, j, "Gcross")
    region = Region.coerce(window, xy)
    c = _correction("Gcross", correction)
    r = default_r("Gcross", region, len(b), r_nm, r_max_nm)
    d = _nn_to(a, b, False)
    val = _censored_cdf(d, region.distance_to_boundary(a), r, c, region)
    return _fn("Gcross", r, val, 1 - np.exp(-len(b) / region.area_nm2 * np.pi * r**2), c, len(xy), region,
               i=str(i), j=str(j), n_i=len(a), n_j=len(b))


def km_mean_nnd_nm(xy_nm, window=None) -> float:
    """Mean NND (nm) from the Kaplan–Meier estimate of G (spatstat ``clarkevans(correction="cdf")``): the
    edge-corrected mean for any window, masks with holes included."""
    xy = _xy(xy_nm)
    region = Region.coerce(window, xy)
    d = _nn_to(xy, xy, True)
    b = region.distance_to_boundary(xy)
    r = np.unique(np.minimum(d, b))
    cdf = kaplan_meier(np.minimum(d, b), d <= b, r)
    jumps = np.diff(np.concatenate([[0.0], cdf]))
    return float(np.sum(r * jumps) / np.sum(jumps))


FUNCTIONS = {"K": k_function, "L": l_function, "pcf": pcf, "G": g_function, "F": f_function, "J": j_function}
CROSS_FUNCTIONS = {"Kcross": cross_k_function, "Lcross": cross_l_function, "Gcross": cross_g_function}


def summary_function(name: str, xy_nm, window=None, r_nm=None, correction: str | None = None, labels=None,
                     i=None, j=None, **kw) -> SummaryFunction:
    """Any summary function by name (``K L pcf G F J Kcross Lcross Gcross``)."""
    if name in FUNCTIONS:
        return FUNCTIONS[name](xy_nm, window, r_nm, correction, **kw)
    if name in CROSS_FUNCTIONS:
        return CROSS_FUNCTIONS[name](xy_nm, labels, i, j, window, r_nm, correction, **kw)
    raise AnalysisInputError(f"unknown summary function {name!r} (expected one of "
                             f"{', '.join([*FUNCTIONS, *CROSS_FUNCTIONS])})")
