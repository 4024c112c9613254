"""Monte-Carlo tests of a point pattern against a null model: global envelopes and their p-values (nm).

:func:`envelope_test` simulates ``nsim`` (199 by default) patterns of the null model with the observed number of
points in the SAME window, estimates the same summary function (:mod:`~sacmap.analysis.spatial.summary`, same
edge correction, same r values) on each, and compares the observed curve with them by three global tests:

* **global rank envelope test** (Myllymäki, Mrkvička, Grabarnik, Seijo & Hahn 2017, as in the R package GET):
  the extreme rank length (ERL) measure. Each curve's pointwise two-sided rank ``R_i(r) = min(rank↑, rank↓)``
  (average ranks for ties) over all ``nsim + 1`` curves; curves are ordered by their sorted rank vectors
  lexicographically (ties of the extreme rank broken by how many r share it); the p-value is the share of curves
  at least as extreme as the observed one. The 100(1 − α) % global envelope is the pointwise range of the curves
  that are not among the ``⌊α (nsim + 1)⌋`` most extreme: the observed curve leaves it somewhere iff p ≤ α
  (up to ties), so it may be drawn and read as a test, unlike pointwise bands;
* **MAD** (maximum absolute deviation) and **DCLF** (Diggle–Cressie–Loosmore–Ford, integrated squared
  deviation) tests against the mean of the other curves (observed included: spatstat's ``leaveout = 1``), so
  the observed and simulated statistics are exchangeable under the null and ``p = (1 + #{T_sim ≥ T_obs}) /
  (nsim + 1)`` is exact.

Null models (``null``): ``csr`` (uniform, fixed count), ``repulsive`` (the paper's ``R + C < NN`` rule, C
``c_nm``), ``hardcore`` (random sequential inhibition, hard core ``hard_core_nm``, default the observed minimum
NND), ``dft`` (a fitted :class:`~sacmap.analysis.spatial.samplers.dft.DFTBiasedSampler`, passed as ``sampler``),
``labels`` (random labelling: positions kept, species labels permuted; with a cross-type function), or any
sampler object with ``sample(n, window, runs, seed)``. A test of a composite hypothesis whose parameters were
estimated from the same data (a fitted DFT sampler, the hard core from the observed minimum NND) is
conservative. The patterns a detector saw are compared with detected null patterns in
``sacmap.workflows.job.detector_null`` through :func:`envelope_test_from_curves`.
"""

from __future__ import annotations

from dataclasses import dataclass, field

import numpy as np

from sacmap.analysis.errors import AnalysisInputError
from sacmap.analysis.spatial.summary import CROSS_FUNCTIONS, FUNCTIONS, default_r, summary_function
from sacmap.analysis.spatial.window import Region

NSIM = 199
ALPHA = 0.05
NULL_MODELS = ("csr", "repulsive", "hardcore", "dft", "labels")


@dataclass
class EnvelopeTest:
    """Result of a global envelope test: the curves, the envelope and the three p-values, with everything a
    reader needs to know what was tested (:meth:`as_dict` for JSON)."""

    function: str
    correction: str
    null_model: str
    null_params: dict
    nsim: int
    n_points: int
    window: dict
    r_nm: np.ndarray
    observed: np.ndarray
    central: np.ndarray
    lo: np.ndarray
    hi: np.ndarray
    alpha: float
    p_rank: float
    p_mad: float
    p_dclf: float
    theo: np.ndarray | None = None
    seed: object = None
    details: dict = field(default_factory=dict)

    @property
    def outside_r_nm(self) -> list[float]:
        """r values (nm) where the observed curve leaves the global envelope."""
        out = (self.observed < self.lo) | (self.observed > self.hi)
        return self.r_nm[out].tolist()

    def direction(self) -> str:
        """``above``/``below``/``both``/``inside``: where the observed curve leaves the envelope."""
        above = bool(np.any(self.observed > self.hi))
        below = bool(np.any(self.observed < self.lo))
        return "both" if above and below else "above" if above else "below" if below else "inside"

    def as_dict(self, curves: bool = True) -> dict:
        out = {"function": self.function, "correction": self.correction, "null_model": self.null_model,
               "null_params": self.null_params, "nsim": self.nsim, "n_points": self.n_points, "window": self.window,
               "alpha": self.alpha, "p_rank_erl": self.p_rank, "p_mad": self.p_mad, "p_dclf": self.p_dclf,
               "r_range_nm": [float(self.r_nm[0]), float(self.r_nm[-1])], "n_r": int(len(self.r_nm)),
               "leaves_envelope": self.direction(), "seed": self.seed, "details": self.details,
               "method": "global rank envelope (extreme rank length, Myllymäki et al. 2017); MAD and DCLF tests "
                         "against the leave-one-out mean"}
        if curves:
            out.update(r_nm=self.r_nm.tolist(), observed=self.observed.tolist(), central=self.central.tolist(),
                       lo=self.lo.tolist(), hi=self.hi.tolist(),
                       theo=None if self.theo is None else self.theo.tolist())
        return out

    def table(self):
        """The curves as a DataFrame (``r_nm, observed, central, lo, hi[, theo]``)."""
        import pandas as pd

        df = pd.DataFrame({"r_nm": self.r_nm, "observed": self.observed, "central": self.central, "lo": self.lo,
                           "hi": self.hi})
        if self.theo is not None:
            df["theo"] = self.theo
        return df

    def summary_line(self) -> str:
        return (f"{self.function} ({self.correction}) vs {self.null_model}, {self.nsim} sims: global rank envelope "
                f"p = {self.p_rank:.3g}, MAD p = {self.p_mad:.3g}, DCLF p = {self.p_dclf:.3g}; observed curve "
                f"{'stays inside' if self.direction() == 'inside' else 'leaves ' + self.direction()} the "
                f"{100 * (1 - self.alpha):.0f} % global envelope")


# ---------------------------------------------------------------------------------------------------- the tests
def erl_ranks(curves: np.ndarray) -> np.ndarray:
    """Position of each curve (row) in the extreme-rank-length ordering: 0 = most extreme; ties share the
    smallest position."""
    from scipy.stats import rankdata

    s1 = curves.shape[0]
    lo = rankdata(curves, axis=0, method="average")
    pw = np.minimum(lo, s1 + 1 - lo)
    srt = np.sort(pw, axis=1)
    # lexicographic order of the sorted pointwise-rank vectors (first column most significant)
    order = np.lexsort(srt.T[::-1])
    pos = np.empty(s1, dtype=np.int64)
    sorted_rows = srt[order]
    same = np.r_[False, np.all(sorted_rows[1:] == sorted_rows[:-1], axis=1)]
    block_start = np.maximum.accumulate(np.where(~same, np.arange(s1), 0))
    pos[order] = block_start
    return pos


def envelope_test_from_curves(r_nm, observed, simulated, *, function: str = "", correction: str = "",
                              null_model: str = "", null_params: dict | None = None, n_points: int = 0,
                              window: dict | None = None, alpha: float = ALPHA, theo=None, seed=None,
                              details: dict | None = None) -> EnvelopeTest:
    """Global rank envelope (ERL), MAD and DCLF tests of ``observed`` (m,) against ``simulated`` (nsim, m) curves on
    the same ``r_nm``. r values where any curve is NaN are dropped (stated in ``details``)."""
    r = np.asarray(r_nm, dtype=float)
    obs = np.asarray(observed, dtype=float)
    sims = np.asarray(simulated, dtype=float)
    if sims.ndim != 2 or sims.shape[1] != len(r) or obs.shape != r.shape:
        raise AnalysisInputError(f"envelope test: curves of {len(r)} r values expected, got {obs.shape} and "
                                 f"{sims.shape}")
    if len(sims) < 19:
        raise AnalysisInputError(f"envelope test: {len(sims)} simulations; at least 19 (199 recommended)")
    if not 0 < alpha < 1:
        raise AnalysisInputError(f"alpha must be in (0, 1), got {alpha!r}")
    curves = np.vstack([obs, sims])
    ok = np.all(np.isfinite(curves), axis=0)
    details = dict(details or {})
    if not ok.all():
        details["r_dropped_nm"] = r[~ok].tolist()
    if ok.sum() < 2:
        raise AnalysisInputError("envelope test: fewer than two r values with finite curves")
    r, curves = r[ok], curves[:, ok]
    theo = None if theo is None else np.asarray(theo, dtype=float)[ok]
    s1 = curves.shape[0]
    pos = erl_ranks(curves)
    p_rank = float(np.mean(pos <= pos[0]))
    k_out = int(np.floor(alpha * s1))
    keep = pos >= k_out
    lo, hi = curves[keep].min(axis=0), curves[keep].max(axis=0)
    total = curves.sum(axis=0)
    ref = (total[None, :] - curves) / (s1 - 1)
    dev = curves - ref
    mad = np.abs(dev).max(axis=1)
    dr = np.gradient(r) if len(r) > 1 else np.ones(1)
    dclf = (dev**2 * dr).sum(axis=1)
    p_mad = float(np.mean(mad >= mad[0] * (1 - 1e-12)))
    p_dclf = float(np.mean(dclf >= dclf[0] * (1 - 1e-12)))
    return EnvelopeTest(function, correction, null_model, dict(null_params or {}), int(len(sims)), int(n_points),
                        dict(window or {}), r, curves[0], curves[1:].mean(axis=0), lo, hi, float(alpha), p_rank,
                        p_mad, p_dclf, theo, seed, details)


def null_sampler(null, observed_xy: np.ndarray | None = None, window=None, **params):
    """The sampler of a null model by name (``csr``, ``repulsive`` [``c_nm``], ``hardcore`` [``hard_core_nm``,
    default the observed minimum NND], ``dft`` [``sampler``: a fitted DFTBiasedSampler]) or a sampler object;
    returns ``(sampler, name, params in effect)``."""
    from sacmap.analysis.spatial.samplers.point import HardCoreSampler, RandomSampler, RepulsiveSampler

    if hasattr(null, "sample"):
        return null, getattr(null, "name", type(null).__name__), params
    if null == "csr":
        return RandomSampler(), "csr", {}
    if null == "repulsive":
        c = float(params.get("c_nm", 0.2))
        return RepulsiveSampler(c_nm=c), "repulsive", {"c_nm": c}
    if null == "hardcore":
        h = params.get("hard_core_nm")
        if h is None:
            if observed_xy is None or len(observed_xy) < 2:
                raise AnalysisInputError("hardcore null: give hard_core_nm (no observed points to take it from)")
            from sacmap.analysis.spatial.descriptors import nearest_neighbour_distances

            h = float(nearest_neighbour_distances(observed_xy)[0].min())
        return HardCoreSampler(hard_core_nm=float(h)), "hardcore", {"hard_core_nm": float(h)}
    if null == "dft":
        sampler = params.get("sampler")
        if sampler is None or not hasattr(sampler, "sample"):
            raise AnalysisInputError("dft null: pass the fitted sampler (sampler=DFTBiasedSampler.from_fit(...))")
        info = sampler.describe(len(observed_xy), window) if observed_xy is not None else {}
        return sampler, "dft", {k: v for k, v in info.items() if k != "potential"}
    raise AnalysisInputError(f"unknown null model {null!r} (expected one of {', '.join(NULL_MODELS)})")


def envelope_test(xy_nm, window=None, null="csr", function: str = "L", nsim: int = NSIM,
                  correction: str | None = None, r_nm=None, r_max_nm: float | None = None, seed=0,
                  labels=None, i=None, j=None, alpha: float = ALPHA, **null_params) -> EnvelopeTest:
    """Global envelope test of the pattern ``xy_nm`` (nm) in ``window`` against ``null`` (see the module
    docstring) with the summary function ``function`` (``K L pcf G F J`` or, with ``labels``, ``Kcross Lcross
    Gcross`` from type ``i`` to ``j``). Simulations: ``nsim`` patterns of the same size in the same window, run
    ``k`` from child stream ``k`` of ``seed``."""
    xy = np.asarray(xy_nm, dtype=float)
    region = Region.coerce(window, xy)
    if int(nsim) < 19:
        raise AnalysisInputError(f"nsim must be ≥ 19 (199 by default), got {nsim!r}")
    nsim = int(nsim)
    cross = function in CROSS_FUNCTIONS
    if function not in FUNCTIONS and not cross:
        raise AnalysisInputError(f"unknown summary function {function!r}")
    if null == "labels" and not cross:
        raise AnalysisInputError("random labelling (null 'labels') tests a cross-type function: Kcross, Lcross or "
                                 "Gcross")
    lab = None
    if cross:
        if labels is None:
            raise AnalysisInputError(f"{function}: needs species labels")
        lab = np.asarray(labels).astype(str)
        if i is None or j is None:
            kinds, counts = np.unique(lab, return_counts=True)
            if len(kinds) < 2:
                raise AnalysisInputError(f"{function}: only one species ({', '.join(kinds)}); cross-type functions "
                                         "need two")
            top = kinds[np.argsort(-counts, kind="stable")][:2]
            i, j = (top[0] if i is None else i), (top[1] if j is None else j)
    n = len(xy)
    base = summary_function(function, xy, region, r_nm if r_nm is not None else
                            default_r(function, region, n, None, r_max_nm), correction, labels=lab, i=i, j=j)
    r = base.r_nm
    ss = seed if isinstance(seed, np.random.SeedSequence) else np.random.SeedSequence(seed)
    sims = np.empty((nsim, len(r)))
    if null == "labels":
        name, params = "random labelling", {"i": str(i), "j": str(j)}
        for k, child in enumerate(ss.spawn(nsim)):
            perm = np.random.default_rng(child).permutation(lab)
            sims[k] = summary_function(function, xy, region, r, base.correction, labels=perm, i=i, j=j).value
    else:
        sampler, name, params = null_sampler(null, xy, region, **null_params)
        if cross:  # species drawn independently, each by the null model, with the observed counts
            from sacmap.analysis.spatial.samplers.multispecies import MultiSpeciesSampler

            kinds, counts = np.unique(lab, return_counts=True)
            pts, plab = MultiSpeciesSampler(sampler).sample(dict(zip(kinds.tolist(), counts.tolist())), region,
                                                            nsim, ss)
            for k in range(nsim):
                sims[k] = summary_function(function, pts[k], region, r, base.correction, labels=plab, i=i,
                                           j=j).value
        else:
            pts = sampler.sample(n, region, runs=nsim, seed=ss)
            for k in range(nsim):
                sims[k] = summary_function(function, pts[k], region, r, base.correction).value
    return envelope_test_from_curves(
        r, base.value, sims, function=function, correction=base.correction, null_model=name, null_params=params,
        n_points=n, window={**region.describe(), "has_holes": region.has_holes}, alpha=alpha, theo=base.theo,
        seed=seed if isinstance(seed, (int, type(None))) else str(seed), details=dict(base.details))
