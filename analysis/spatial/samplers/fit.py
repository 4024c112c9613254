"""Fitting the DFT-biased sampler to observed coordinates (nm, eV).

:func:`fit_dft_sampler` searches σ (as a multiple of the Poisson NND scale σ₀ = 1/√(2πρ) of the observed
density) and β = 1/kT (eV⁻¹; 0 = no energy term) so that the NND distribution of the sampler, run in the
observed region with the observed number of atoms, matches the observed NNDs:

1. a coarse grid ``sigma_factors × beta_grid``; every grid point is simulated with the same seeds (common
   random numbers, so differences between grid points are not sampling noise), ``runs_per_point`` runs each;
2. a finer grid around the best point (half steps in σ/σ₀, geometric midpoints in β);
3. the objective is the 1-Wasserstein distance (nm) between the observed NNDs and the pooled simulated NNDs
   (raw NNDs in the same window, so edge effects are the same on both sides);
4. uncertainty: ``n_boot`` bootstrap resamples of the observed NNDs, each re-fitted against the same bank of
   simulations (cheap), giving SDs and 95 % percentile intervals of σ and kT;
5. goodness of fit: the Wasserstein distance and the two-sample Kolmogorov–Smirnov statistic and p-value at
   the best point, next to the same numbers for the neutral random model (σ = σ₀, β = 0).

The KS p-value treats the pooled simulated NNDs as independent draws; NNDs within a pattern are weakly
correlated, so read it as indicative.
"""

from __future__ import annotations

import numpy as np
from scipy.stats import ks_2samp, wasserstein_distance

from sacmap.analysis.errors import AnalysisInputError
from sacmap.analysis.spatial.descriptors import _check_xy, nearest_neighbour_distances, pooled_nnd
from sacmap.analysis.spatial.window import Region

DEFAULT_SIGMA_FACTORS = (0.8, 0.9, 1.0, 1.1, 1.2, 1.35, 1.5)
DEFAULT_BETA_GRID = (0.0, 2.5, 5.0, 10.0, 20.0)  # eV⁻¹ → kT = ∞, 0.4, 0.2, 0.1, 0.05 eV


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
                    progress: bool = False) -> dict:
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

    def evaluate(points):
        todo = [p for p in points if p not in bank]
        it = todo
        if progress and todo:
            from tqdm import tqdm

            it = tqdm(todo, desc="fit grid", unit="point")
        for f, b in it:
            sims = sampler.sample(n, region, runs=runs, seed=seed, sigma_nm=f * sigma0, beta_per_eV=b)
            bank[(f, b)] = np.sort(pooled_nnd(sims, workers=1))

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

    ss = seed if isinstance(seed, np.random.SeedSequence) else np.random.SeedSequence(seed)
    rng = np.random.default_rng(ss.spawn(1)[0])
    boot = np.empty((n_boot, 2))
    for i in range(n_boot):
        res = obs[rng.integers(0, n, n)]
        wb = [wasserstein_distance(res, bank[k]) for k in keys]
        boot[i] = keys[int(np.argmin(wb))]

    def summary(values: np.ndarray) -> tuple[float, list[float]]:
        if values.size == 0:
            return float("nan"), [float("nan"), float("nan")]
        return float(np.std(values, ddof=1)) if values.size > 1 else 0.0, \
            [float(np.percentile(values, 2.5)), float(np.percentile(values, 97.5))]

    s_sd, s_ci = summary(boot[:, 0] * sigma0)
    f_sd, f_ci = summary(boot[:, 0])
    b_sd, b_ci = summary(boot[:, 1])
    kts = np.where(boot[:, 1] > 0, 1.0 / np.where(boot[:, 1] > 0, boot[:, 1], 1.0), np.inf)
    ks = ks_2samp(obs, bank[best])
    ks0 = ks_2samp(obs, bank[(1.0, 0.0)])
    return {
        "n_observed": int(n),
        "density_nm2": float(n / region.area_nm2),
        "sigma_poisson_nm": float(sigma0),
        "sigma_factor": float(best[0]),
        "sigma_nm": float(best[0] * sigma0),
        "sigma_nm_sd": s_sd,
        "sigma_nm_ci95": s_ci,
        "sigma_factor_sd": f_sd,
        "sigma_factor_ci95": f_ci,
        "beta_per_eV": float(best[1]),
        "beta_per_eV_sd": b_sd,
        "beta_per_eV_ci95": b_ci,
        "kT_eV": None if best[1] == 0 else float(1.0 / best[1]),
        "kT_eV_ci95": [None if not np.isfinite(v) else float(v)
                       for v in np.percentile(kts, [2.5, 97.5], method="nearest")] if n_boot else [None, None],
        "share_of_bootstraps_without_energy_term": float(np.mean(boot[:, 1] == 0)) if n_boot else None,
        "wasserstein_nm": float(w[best]),
        "ks_statistic": float(ks.statistic),
        "ks_pvalue": float(ks.pvalue),
        "wasserstein_random_nm": float(w[(1.0, 0.0)]),
        "ks_statistic_random": float(ks0.statistic),
        "ks_pvalue_random": float(ks0.pvalue),
        "nnd_mean_observed_nm": float(obs.mean()),
        "nnd_mean_fitted_nm": float(bank[best].mean()),
        "runs_per_point": runs,
        "n_boot": n_boot,
        "seed": seed if isinstance(seed, (int, type(None))) else str(seed),
        "grid_nm": sampler.grid_nm_for(n, region),
        "potential": sampler.potential_.describe() if has_pot else None,
        "grid": [{"sigma_factor": float(k[0]), "sigma_nm": float(k[0] * sigma0), "beta_per_eV": float(k[1]),
                  "wasserstein_nm": float(w[k])} for k in sorted(keys)],
    }
