"""Fitting the DFT-biased sampler: recovers known parameters, reports uncertainty and goodness of fit."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest

from sacmap.analysis.errors import AnalysisInputError
from sacmap.analysis.spatial.samplers.dft import DFTBiasedSampler
from sacmap.analysis.spatial.samplers.point import RandomSampler
from sacmap.analysis.spatial.window import Region

POT = pd.DataFrame({"site_kinds": ["4N-4N"] * 6, "separation_A": [2.5, 3.5, 5.0, 6.5, 8.0, 12.0],
                    "energy_eV": [0.5, 0.2, -0.2, -0.1, 0.05, 0.0]})
REG = Region.rectangle(8.0)
N = 128  # 2 atoms/nm²
S0 = 1 / np.sqrt(2 * np.pi * 2.0)


def test_fit_recovers_sigma_and_kT_of_synthetic_data():
    truth = DFTBiasedSampler(POT, sigma_nm=1.3 * S0, kT_eV=0.1, grid_nm=0.05).sample(N, REG, seed=123)[0]
    est = DFTBiasedSampler(POT, grid_nm=0.05, runs_per_point=4, n_boot=100,
                           sigma_factors=(0.9, 1.0, 1.15, 1.3, 1.5), beta_grid=(0.0, 5.0, 10.0, 20.0))
    est.fit(truth, REG)
    r = est.fit_result_
    assert r["sigma_factor"] == pytest.approx(1.3, abs=0.21)  # within one grid step
    assert r["sigma_nm_ci95"][0] <= 1.3 * S0 <= r["sigma_nm_ci95"][1] + 1e-9
    assert r["sigma_nm_sd"] > 0
    assert r["kT_eV"] is not None and 0.03 < r["kT_eV"] < 0.3
    # goodness of fit: the fitted model is far closer than the random model, and KS does not reject it
    assert r["wasserstein_nm"] < 0.3 * r["wasserstein_random_nm"]
    assert r["ks_pvalue"] > 0.01 and r["ks_pvalue_random"] < 1e-6
    assert len(r["grid"]) >= 20
    assert est.sigma_nm_ == pytest.approx(r["sigma_nm"]) and est.kT_eV_ == r["kT_eV"]
    # the fitted sampler samples with the fitted parameters (sigma as a multiple of sigma0)
    xy = est.sample(N, REG, runs=1, seed=5)
    assert xy.shape == (1, N, 2)


def test_fit_without_potential_fits_sigma_only_and_finds_random():
    obs = RandomSampler().sample(N, REG, seed=4)[0]
    est = DFTBiasedSampler(grid_nm=0.05, runs_per_point=4, n_boot=50, sigma_factors=(0.8, 1.0, 1.25))
    r = est.fit(obs, REG).fit_result_
    assert r["kT_eV"] is None and r["beta_per_eV"] == 0.0
    assert r["sigma_factor"] == pytest.approx(1.0, abs=0.15)
    assert r["ks_pvalue"] > 0.01


def test_fit_bad_input():
    with pytest.raises(AnalysisInputError, match="at least 3"):
        DFTBiasedSampler().fit(np.array([[1.0, 1.0], [2.0, 2.0]]), REG)


def test_fit_reports_honest_uncertainty_temperature_and_effective_nnd():
    truth = DFTBiasedSampler(POT, sigma_nm=1.3 * S0, kT_eV=0.1, grid_nm=0.05).sample(N, REG, seed=123)[0]
    grid = (0.9, 1.0, 1.15, 1.3, 1.5, 1.8)
    est = DFTBiasedSampler(POT, grid_nm=0.05, runs_per_point=4, n_boot=60, sigma_factors=grid,
                           beta_grid=(0.0, 5.0, 10.0, 20.0))
    r = est.fit(truth, REG).fit_result_
    assert r["sim_banks"] == 3 and r["better_than_random"]
    assert r["sigma_factor_ci95"][0] <= 1.3 <= r["sigma_factor_ci95"][1]
    assert r["kT_eV_ci95"][0] <= 0.1 <= r["kT_eV_ci95"][1]
    # σ is weakly pinned (σ and kT both push neighbours apart): its interval may reach the grid edge, and then says so
    assert all("grid edge" in w for w in r["warnings"])
    assert ("sigma_factor" in r["at_grid_edge"]) == (max(r["sigma_factor_ci95"]) >= max(grid) - 1e-9)
    # intervals from continuously refined replicates: not only grid values
    assert not set(np.round(r["sigma_factor_ci95"], 9)) <= set(grid) | {1.075, 1.225, 1.4, 0.95}
    assert r["kT_K"] == pytest.approx(r["kT_eV"] / 8.617333262e-5) and "not the synthesis temperature" in \
        r["kT_meaning"]
    # the sampler's NNDs are narrower than Rayleigh(σ): later points shorten earlier points' NNDs
    assert r["sigma_poisson_nm"] < r["sigma_effective_nm"] < r["sigma_nm"]


def test_fit_warns_at_the_grid_edge_and_when_not_better_than_random():
    truth = DFTBiasedSampler(sigma_nm=1.4 * S0, grid_nm=0.05).sample(N, REG, seed=7)[0]
    est = DFTBiasedSampler(grid_nm=0.05, runs_per_point=4, n_boot=30, sigma_factors=(0.8, 0.9, 1.0))
    r = est.fit(truth, REG).fit_result_
    assert "sigma_factor" in r["at_grid_edge"] and any("grid edge" in w for w in r["warnings"])
    rnd = RandomSampler().sample(N, REG, seed=8)[0]
    r = DFTBiasedSampler(POT, grid_nm=0.05, runs_per_point=4, n_boot=30, sigma_factors=(0.9, 1.0, 1.1),
                         beta_grid=(0.0, 5.0)).fit(rnd, REG).fit_result_
    assert not r["better_than_random"] and any("not clearly better" in w for w in r["warnings"])
