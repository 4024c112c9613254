"""Fitting the DFT-biased sampler to observed coordinates (nm, eV).

:func:`fit_dft_sampler` searches σ (as a multiple of the Poisson NND scale σ₀ = 1/√(2πρ) of the observed
density) and β = 1/kT (eV⁻¹; 0 = no energy term) so that the NND distribution of the sampler, run in the
observed region with the observed number of atoms, matches the observed NNDs:

1. a coarse grid ``sigma_factors × beta_grid``; every grid point is simulated with the same seeds (common
   random numbers, so differences between grid points are not sampling noise), ``runs_per_point`` runs each;
2. a finer grid around the best point (half steps in σ/σ₀, geometric midpoints in β);
3. the objective is the 1-Wasserstein distance (nm) between the observed NNDs and the pooled simulated NNDs
   (raw NNDs in the same window, so edge effects are the same on both sides);
4. the estimate is refined off the grid: along each axis the vertex of the parabola through the best grid point
   and its neighbours (``grid_best`` keeps the grid point); a best point on the grid's edge is flagged
   (``at_grid_edge`` and a line in ``warnings``), as is a 95 % interval that reaches the edge;
5. uncertainty with simulation noise inside: ``n_boot`` replicates, each resampling the observed NNDs AND the
   simulation runs, against ``sim_banks`` banks of simulations (the first plus ``sim_banks − 1`` simulated afresh
   with new seeds; replicates cycle through them), each replicate re-fitted with the same refinement, giving SDs
   and 95 % percentile intervals of σ and kT (not bound to grid values);
6. goodness of fit: the Wasserstein distance and the two-sample Kolmogorov–Smirnov statistic and p-value at
   the best point, next to the same numbers for the neutral random model (σ = σ₀, β = 0); ``better_than_random``
   is False, with a warning, unless the KS p-value is at least the random model's and the fitted point is closer
   (Wasserstein) to the data than the random model in ≥ 95 % of the bootstrap replicates;
7. ``kT_K`` = kT/k_B with ``kT_meaning`` (an effective weight of the DFT energy, not a temperature);
   ``sigma_effective_nm``: the Rayleigh scale ``√(⟨d²⟩/2)`` of the NNDs the fitted sampler actually produces
   (not σ: the field biases each new point's NND, later points shorten earlier points' NNDs).

The KS p-value treats the pooled simulated NNDs as independent draws; NNDs within a pattern are weakly
correlated, so read it as indicative.
"""

from __future__ import annotations

import numpy as np
from scipy.stats import ks_2samp, wasserstein_distance

from sacmap.analysis.errors import AnalysisInputError
from sacmap.analysis.spatial.descriptors import _check_xy, nearest_neighbour_distances
from sacmap.analysis.spatial.window import Region

DEFAULT_SIGMA_FACTORS = (0.8, 0.9, 1.0, 1.1, 1.2, 1.35, 1.5)
DEFAULT_BETA_GRID = (0.0, 2.5, 5.0, 10.0, 20.0)  # eV⁻¹ → kT = ∞, 0.4, 0.2, 0.1, 0.05 eV
K_B_EV_PER_K = 8.617333262e-5
KT_MEANING = ("kT weighs the DFT pair energy in the sampling field (exp(-ΔE/kT)); it is a fitted effective scale, "
              "not the synthesis temperature: kT_K = kT / k_B is given only to show the scale (0.1 eV ≈ 1160 K). "
              "σ and kT are partly degenerate (both push neighbours apart), so a wide kT interval or many "
              "bootstraps without energy term mean the data do not fix the energy scale.")


def _parabola_vertex(x, y) -> float | None:
    """Vertex of the parabola through three points (x ascending), None when it is not convex."""
    (x0, x1, x2), (y0, y1, y2) = x, y
    d = (x0 - x1) * (x0 - x2) * (x1 - x2)
    a = (x2 * (y1 - y0) + x1 * (y0 - y2) + x0 * (y2 - y1)) / d
    b = (x2**2 * (y0 - y1) + x1**2 * (y2 - y0) + x0**2 * (y1 - y2)) / d
    return None if a <= 0 else -b / (2 * a)


def _refine_continuous(w: dict, best: tuple[float, float], sf, bg) -> tuple[float, float, dict]:
    """The grid minimum refined off the grid: along each axis, the vertex of the parabola through the best point
    and its two neighbours (clamped between them). Returns σ/σ₀, β and {axis: True when the best point sits on
    the grid's edge along it (no refinement possible)}."""
    out, edge = list(best), {}
    for axis, name in ((0, "sigma_factor"), (1, "beta_per_eV")):
        vals = sorted({k[axis] for k in w if k[1 - axis] == best[1 - axis]})
        if len(vals) < 2:
            continue
        i = vals.index(best[axis])
        if i == 0 or i == len(vals) - 1:
            edge[name] = True
            continue
        xs = [vals[i - 1], vals[i], vals[i + 1]]
        ys = [w[(x, best[1]) if axis == 0 else (best[0], x)] for x in xs]
        v = _parabola_vertex(xs, ys)
        if v is not None:
            out[axis] = float(np.clip(v, xs[0], xs[2]))
    return out[0], out[1], edge


def _refine(values: list[float], best: float, geometric: bool) -> list[float]:
    vals = sorted(set(values))
    i = vals.index(best)
    out = []
    for j in (i - 1, i + 1):
        if 0 <= j < len(vals):
            a, b = vals[min(i, j)], vals[max(i, j)]
            if geometric and a > 0:
                out.append(float(np.sqrt(a * b)))
            else:
                out.append(0.5 * (a + b))
    return out


def fit_dft_sampler(sampler, observed_xy_nm, region=None, sigma_factors=None, beta_grid=None,
                    runs_per_point: int | None = None, n_boot: int | None = None, seed=None,
                    progress: bool = False, sim_banks: int = 3) -> dict:
    """Fit ``sampler`` to observed coordinates (nm) in ``region``.

    ``sampler``: any object with the DFT-biased sampler's interface (``sample(n, window, runs, seed, sigma_nm=,
    beta_per_eV=)``, ``potential_``, ``grid_nm_for(n, window)`` and the fit settings ``sigma_factors``,
    ``beta_grid``, ``runs_per_point``, ``n_boot``, ``seed``); this module imports no sampler.

    Returns a JSON-friendly dict: ``sigma_nm``, ``sigma_factor`` (σ/σ₀), ``beta_per_eV``, ``kT_eV`` (None when
    β = 0, i.e. no energy term), their bootstrap ``*_sd`` and ``*_ci95``, ``wasserstein_nm``, ``ks_statistic``,
    ``ks_pvalue``, the same for the random model (``*_random``), ``n_observed``, ``density_nm2``,
    ``sigma_poisson_nm`` and the whole ``grid`` of evaluated points.
    """
    xy = _check_xy(observed_xy_nm, "observed coordinates", min_points=3)
    region = Region.coerce(region, xy)
    n = len(xy)
    obs = nearest_neighbour_distances(xy)[0]
    sigma0 = 1.0 / np.sqrt(2.0 * np.pi * n / region.area_nm2)
    sf = list(sigma_factors or sampler.sigma_factors or DEFAULT_SIGMA_FACTORS)
    has_pot = sampler.potential_ is not None
    bg = list(beta_grid or sampler.beta_grid or DEFAULT_BETA_GRID) if has_pot else [0.0]
    if any(f <= 0 for f in sf) or any(b < 0 for b in bg):
        raise AnalysisInputError("fit grid: σ factors must be > 0 and 1/kT values ≥ 0")
    runs = int(runs_per_point or sampler.runs_per_point)
    n_boot = int(sampler.n_boot if n_boot is None else n_boot)
    seed = sampler.seed if seed is None else seed
    bank: dict[tuple[float, float], np.ndarray] = {}
    runs_bank: dict[tuple[float, float], list[np.ndarray]] = {}

    def evaluate(points):
        todo = [p for p in points if p not in bank]
        it = todo
        if progress and todo:
            from tqdm import tqdm

            it = tqdm(todo, desc="fit grid", unit="point")
        for f, b in it:
            sims = sampler.sample(n, region, runs=runs, seed=seed, sigma_nm=f * sigma0, beta_per_eV=b)
            runs_bank[(f, b)] = [nearest_neighbour_distances(x, workers=1)[0] for x in sims]
            bank[(f, b)] = np.sort(np.concatenate(runs_bank[(f, b)]))

    evaluate([(f, b) for f in sf for b in bg] + [(1.0, 0.0)])
    keys = list(bank)
    w = {k: wasserstein_distance(obs, bank[k]) for k in keys}
    best = min(w, key=w.get)
    fine_f = _refine(sf, best[0], geometric=False)
    fine_b = _refine(bg, best[1], geometric=True) if has_pot else []
    evaluate([(f, b) for f in [best[0], *fine_f] for b in [best[1], *fine_b]])
    keys = list(bank)
    w = {k: wasserstein_distance(obs, bank[k]) for k in keys}
    best = min(w, key=w.get)

    best_grid = best
    est_f, est_b, edge = _refine_continuous(w, best, sf, bg)

    # bootstrap: resampled observed NNDs (data noise) against simulation banks with fresh seeds (simulation noise:
    # bank k is simulated anew with child seed k), runs resampled within the bank; each replicate is re-fitted
    # with the same continuous refinement, so the intervals are not bound to grid values
    ss = seed if isinstance(seed, np.random.SeedSequence) else np.random.SeedSequence(seed)
    boot_ss, *bank_ss = ss.spawn(1 + max(int(sim_banks) - 1, 0))
    rng = np.random.default_rng(boot_ss)
    banks = [runs_bank]
    for child in bank_ss:
        other: dict = {}
        for k in keys:
            sims = sampler.sample(n, region, runs=runs, seed=child, sigma_nm=k[0] * sigma0, beta_per_eV=k[1])
            other[k] = [nearest_neighbour_distances(x, workers=1)[0] for x in sims]
        banks.append(other)
    boot = np.empty((n_boot, 2))
    gain = np.empty(n_boot)
    for i in range(n_boot):
        res = obs[rng.integers(0, n, n)]
        bank_i = banks[i % len(banks)]
        pick = rng.integers(0, runs, runs)
        wb = {k: wasserstein_distance(res, np.concatenate([bank_i[k][j] for j in pick])) for k in keys}
        bk = min(wb, key=wb.get)
        boot[i] = _refine_continuous(wb, bk, sf, bg)[:2]
        gain[i] = wb[(1.0, 0.0)] - wb[best_grid]

    def summary(values: np.ndarray) -> tuple[float, list[float]]:
        if values.size == 0:
            return float("nan"), [float("nan"), float("nan")]
        return float(np.std(values, ddof=1)) if values.size > 1 else 0.0, \
            [float(np.percentile(values, 2.5)), float(np.percentile(values, 97.5))]

    s_sd, s_ci = summary(boot[:, 0] * sigma0)
    f_sd, f_ci = summary(boot[:, 0])
    b_sd, b_ci = summary(boot[:, 1])
    kts = np.where(boot[:, 1] > 0, 1.0 / np.where(boot[:, 1] > 0, boot[:, 1], 1.0), np.inf)
    best_pool = bank[best_grid]
    ks = ks_2samp(obs, best_pool)
    ks0 = ks_2samp(obs, bank[(1.0, 0.0)])
    warnings: list[str] = []
    flags = []
    for name, grid_vals, est_v, ci in (("sigma_factor", sf, est_f, f_ci), ("beta_per_eV", bg, est_b, b_ci)):
        lo_g, hi_g = min(grid_vals), max(grid_vals)
        if len(set(grid_vals)) < 2:
            continue
        # β = 0 (no energy term) is a natural bound, not a grid edge: only its upper end counts
        lo_edge = name != "beta_per_eV" or lo_g > 0
        at = [v for v in (est_v, *ci) if np.isfinite(v) and ((lo_edge and abs(v - lo_g) < 1e-9) or abs(v - hi_g) < 1e-9)]
        at_best = edge.get(name) and (lo_edge or abs(est_v - lo_g) > 1e-9)
        if at_best or at:
            flags.append(name)
            warnings.append(f"{name}: the estimate or its 95 % interval reaches the grid edge ({lo_g:g}–{hi_g:g}); "
                            "the true value may lie beyond it: widen the grid")
    gain_obs = float(w[(1.0, 0.0)] - w[best_grid])
    gain_sd = float(np.std(gain, ddof=1)) if n_boot > 1 else float("nan")
    share_better = float(np.mean(gain > 0)) if n_boot else float("nan")
    better = bool(ks.pvalue >= ks0.pvalue and (not np.isfinite(share_better) or share_better >= 0.95))
    if not better:
        warnings.append(f"the fit is not clearly better than the random model (KS p {ks.pvalue:.3g} vs {ks0.pvalue:.3g}"
                        f" for random; the fitted point is closer than random in {100 * share_better:.0f} % of the "
                        "bootstrap replicates, < 95 %): read σ and kT as unsupported by these data")
    kt = None if est_b <= 0 else float(1.0 / est_b)
    kt_ci = [None if not np.isfinite(v) else float(v)
             for v in np.percentile(kts, [2.5, 97.5], method="nearest")] if n_boot else [None, None]
    eff = float(np.sqrt(np.mean(best_pool**2) / 2.0))
    return {
        "n_observed": int(n),
        "density_nm2": float(n / region.area_nm2),
        "sigma_poisson_nm": float(sigma0),
        "sigma_factor": float(est_f),
        "sigma_nm": float(est_f * sigma0),
        "sigma_nm_sd": s_sd,
        "sigma_nm_ci95": s_ci,
        "sigma_factor_sd": f_sd,
        "sigma_factor_ci95": f_ci,
        "beta_per_eV": float(est_b),
        "beta_per_eV_sd": b_sd,
        "beta_per_eV_ci95": b_ci,
        "kT_eV": kt,
        "kT_eV_ci95": kt_ci,
        "kT_K": None if kt is None else kt / K_B_EV_PER_K,
        "kT_K_ci95": [None if v is None else v / K_B_EV_PER_K for v in kt_ci],
        "kT_meaning": KT_MEANING,
        "grid_best": {"sigma_factor": float(best_grid[0]), "beta_per_eV": float(best_grid[1])},
        "at_grid_edge": flags,
        "better_than_random": better,
        "wasserstein_gain_over_random_nm": gain_obs,
        "wasserstein_gain_sd_nm": gain_sd,
        "share_of_bootstraps_better_than_random": share_better,
        "warnings": warnings,
        "sigma_effective_nm": eff,
        "sigma_effective_factor": eff / sigma0,
        "sigma_observed_rayleigh_nm": float(np.sqrt(np.mean(obs**2) / 2.0)),
        "sim_banks": len(banks),
        "share_of_bootstraps_without_energy_term": float(np.mean(boot[:, 1] == 0)) if n_boot else None,
        "wasserstein_nm": float(w[best_grid]),
        "ks_statistic": float(ks.statistic),
        "ks_pvalue": float(ks.pvalue),
        "wasserstein_random_nm": float(w[(1.0, 0.0)]),
        "ks_statistic_random": float(ks0.statistic),
        "ks_pvalue_random": float(ks0.pvalue),
        "nnd_mean_observed_nm": float(obs.mean()),
        "nnd_mean_fitted_nm": float(best_pool.mean()),
        "runs_per_point": runs,
        "n_boot": n_boot,
        "seed": seed if isinstance(seed, (int, type(None))) else str(seed),
        "grid_nm": sampler.grid_nm_for(n, region),
        "potential": sampler.potential_.describe() if has_pot else None,
        "grid": [{"sigma_factor": float(k[0]), "sigma_nm": float(k[0] * sigma0), "beta_per_eV": float(k[1]),
                  "wasserstein_nm": float(w[k])} for k in sorted(keys)],
    }
