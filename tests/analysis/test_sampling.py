"""Samplers: the paper's rules, exact equivalence of the fast implementations, seeds, statistics, bad input."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest
from scipy.spatial.distance import pdist

from sacmap.analysis.errors import AnalysisInputError
from sacmap.analysis.spatial.descriptors import descriptors
from sacmap.analysis.spatial.samplers.dft import DFTBiasedSampler, SiteSitePotential, dft_run, dft_run_naive
from sacmap.analysis.spatial.samplers.multispecies import MultiSpeciesSampler
from sacmap.analysis.spatial.samplers.point import (
    AttractiveSampler,
    RandomSampler,
    RepulsiveSampler,
    n_for_density,
    run_seeds,
    sample_repulsive_naive,
)
from sacmap.analysis.spatial.window import Region

POT = pd.DataFrame({"site_kinds": ["4N-4N"] * 6, "separation_A": [2.5, 3.5, 5.0, 6.5, 8.0, 12.0],
                    "energy_eV": [0.6, 0.25, -0.2, -0.1, 0.05, 0.0]})


def test_random_shape_region_and_seeds():
    xy = RandomSampler().sample(100, runs=4, seed=1)
    assert xy.shape == (4, 100, 2)
    assert np.all((xy >= 0) & (xy <= 10))  # the paper's 10 x 10 nm default
    assert np.array_equal(xy, RandomSampler().sample(100, runs=4, seed=1))
    assert not np.array_equal(xy, RandomSampler().sample(100, runs=4, seed=2))
    # a run does not depend on how many runs were asked for
    assert np.array_equal(xy[2], RandomSampler().sample(100, runs=7, seed=1)[2])
    assert n_for_density(4.0) == 400


@pytest.mark.parametrize("region", [None, Region.rectangle(6.0, 4.0, 1.0, 2.0)])
def test_repulsive_fast_equals_one_at_a_time_rule(region):
    n = 150 if region is None else 90
    fast = RepulsiveSampler().sample(n, region, runs=3, seed=42)
    for r, ss in enumerate(run_seeds(42, 3)):
        slow = sample_repulsive_naive(n, region, seed=np.random.default_rng(ss))
        np.testing.assert_allclose(fast[r], slow, rtol=0, atol=1e-9)


def test_repulsive_fast_equals_naive_at_high_density_and_on_a_mask():
    fast = RepulsiveSampler().sample(400, runs=1, seed=7)[0]  # the paper's 4 atoms/nm² case
    slow = sample_repulsive_naive(400, seed=np.random.default_rng(run_seeds(7, 1)[0]))
    np.testing.assert_allclose(fast, slow, atol=1e-9)
    mask = np.zeros((60, 60), bool)
    mask[10:50, 5:45] = True
    reg = Region.from_mask(mask, 0.1)
    fast = RepulsiveSampler().sample(60, reg, runs=1, seed=3)[0]
    slow = sample_repulsive_naive(60, reg, seed=np.random.default_rng(run_seeds(3, 1)[0]))
    np.testing.assert_allclose(fast, slow, atol=1e-9)
    assert reg.contains(fast).all()


def test_repulsive_statistics():
    xy = RepulsiveSampler().sample(400, runs=6, seed=0)
    for x in xy:
        assert pdist(x).min() > 0.2  # accepted only if R + C < NN(d), R >= 0
    rep = [descriptors(x, (10, 10)) for x in xy]
    rnd = [descriptors(x, (10, 10)) for x in RandomSampler().sample(400, runs=6, seed=0)]
    ce = np.mean([d["clark_evans"] for d in rep])
    assert ce > 1.15 and min(d["z"] for d in rep) > 3
    assert np.mean([d["clark_evans"] for d in rnd]) == pytest.approx(1.0, abs=0.05)
    # NND in (0.2, 0.22] nm needs R < 0.02: rare, against 46 % for random points at 4 atoms/nm²
    assert np.mean([d["multimer_share"] for d in rep]) < 0.05
    with pytest.raises(AnalysisInputError, match="lower the density"):
        RepulsiveSampler(c_nm=0.3, max_proposals=5000).sample(200, (2, 2), seed=0)


def test_attractive_two_stage_rule():
    xy = AttractiveSampler(n_first=50, box_nm=1.0).sample(400, runs=3, seed=5)
    assert xy.shape == (3, 400, 2) and np.all((xy >= 0) & (xy <= 10))
    for x in xy:
        first, kids = x[:50], x[50:]
        cheb = np.abs(kids[:, None, :] - first[None, :, :]).max(axis=2).min(axis=1)
        assert np.all(cheb <= 0.5 + 1e-12)  # every stage-2 point lies in a 1 x 1 nm box of a parent
    att = [descriptors(x, (10, 10)) for x in xy]
    rnd = [descriptors(x, (10, 10)) for x in RandomSampler().sample(400, runs=3, seed=5)]
    assert np.mean([d["nnd_mean_nm"] for d in att]) < 0.85 * np.mean([d["nnd_mean_nm"] for d in rnd])
    assert np.mean([d["multimer_share"] for d in att]) > np.mean([d["multimer_share"] for d in rnd]) + 0.1
    assert np.array_equal(xy, AttractiveSampler(n_first=50).sample(400, runs=3, seed=5))
    with pytest.raises(AnalysisInputError, match="n_first"):
        AttractiveSampler(n_first=20).sample(10)


def test_multispecies_independent_species():
    xy, labels = MultiSpeciesSampler().sample({"Ni": 200, "Pd": 100}, runs=2, seed=3)
    assert xy.shape == (2, 300, 2) and list(labels).count("Pd") == 100
    d = descriptors(xy[0], (10, 10), elements=labels)
    assert set(d["nnd_by_pair"]) == {"Ni->Ni", "Ni->Pd", "Pd->Ni", "Pd->Pd"}
    # random A and B: NND from A to B follows the B density, 1/(2 sqrt(1 nm⁻²)) = 0.5 nm (edge-biased up)
    assert d["nnd_by_pair"]["Ni->Pd"]["mean_nm"] == pytest.approx(0.5, rel=0.2)
    xy2, _ = MultiSpeciesSampler("repulsive").sample({"Ni": 200, "Pd": 100}, runs=2, seed=3)
    assert pdist(xy2[0, :200]).min() > 0.2 and pdist(xy2[0, 200:]).min() > 0.2
    with pytest.raises(AnalysisInputError):
        MultiSpeciesSampler("nope").sample({"Ni": 10})


def test_potential_reading_units_and_reference():
    pot = SiteSitePotential.from_table(POT)
    assert pot.r_cut_nm == pytest.approx(1.2)  # Å -> nm
    assert pot(np.array([0.1, 0.25, 0.575, 2.0])) == pytest.approx([0.6, 0.6, -0.15, 0.0])
    two = pd.concat([POT, POT.assign(site_kinds="3xN6-4N", energy_eV=POT.energy_eV - 0.1)])
    assert SiteSitePotential.from_table(two, "3N-4N").label == "3N-4N"
    env = SiteSitePotential.from_table(two)
    assert env.label.startswith("envelope") and env(np.array([0.5]))[0] == pytest.approx(-0.2)
    # two calculation set-ups are never averaged: the one with most rows is used unless chosen
    mixed = pd.concat([POT.assign(settings="vasp"), POT.iloc[:4].assign(settings="chgnet", energy_eV=9.0)])
    assert SiteSitePotential.from_table(mixed)(np.array([0.25]))[0] == pytest.approx(0.6)
    assert SiteSitePotential.from_table(mixed, settings="chgnet").energy_eV.max() == pytest.approx(0.0)
    with pytest.raises(AnalysisInputError, match="missing column"):
        SiteSitePotential.from_table(POT.drop(columns="energy_eV"))
    with pytest.raises(AnalysisInputError, match="non-numeric"):
        SiteSitePotential.from_table(POT.assign(energy_eV=["x", 1, 2, 3, 4, 5]))
    with pytest.raises(AnalysisInputError, match="no rows with site_kinds"):
        SiteSitePotential.from_table(POT, "6N")


@pytest.mark.parametrize("beta", [0.0, 8.0])
def test_dft_local_updates_equal_full_rebuild(beta):
    pot = SiteSitePotential.from_table(POT)
    reg = Region.rectangle(4.0, 3.0)
    a = dft_run(40, reg, np.random.default_rng(3), 0.15, beta, pot, grid_nm=0.05)
    b = dft_run_naive(40, reg, np.random.default_rng(3), 0.15, beta, pot, grid_nm=0.05)
    np.testing.assert_allclose(a, b, atol=1e-12)
    mask = np.zeros((40, 40), bool)
    mask[5:35, 8:40] = True
    mreg = Region.from_mask(mask, 0.1)
    a = dft_run(30, mreg, np.random.default_rng(4), 0.2, beta, pot, grid_nm=0.05)
    b = dft_run_naive(30, mreg, np.random.default_rng(4), 0.2, beta, pot, grid_nm=0.05)
    np.testing.assert_allclose(a, b, atol=1e-12)
    assert mreg.contains(a).mean() > 0.9  # cells on the support; jitter may cross a pixel edge


def test_dft_sampler_limits_and_trends():
    reg = Region.rectangle(8.0)
    n = 128  # 2 atoms/nm²
    s0 = 1 / np.sqrt(2 * np.pi * 2.0)
    neutral = DFTBiasedSampler(grid_nm=0.05).sample(n, reg, runs=6, seed=1)
    rnd = RandomSampler().sample(n, reg, runs=6, seed=1)
    nnd = lambda runs: np.mean([descriptors(x, reg)["nnd_mean_nm"] for x in runs])  # noqa: E731
    # sigma = sigma0 and no energy term: the random model
    assert nnd(neutral) == pytest.approx(nnd(rnd), rel=0.08)
    wide = DFTBiasedSampler(sigma_nm=1.4 * s0, grid_nm=0.05).sample(n, reg, runs=6, seed=1)
    narrow = DFTBiasedSampler(sigma_nm=0.8 * s0, grid_nm=0.05).sample(n, reg, runs=6, seed=1)
    assert nnd(narrow) < nnd(neutral) < nnd(wide)
    # a short-range penalty (0.6 eV below 0.25 nm) at kT = 0.05 eV suppresses multimers
    pen = DFTBiasedSampler(POT, kT_eV=0.05, grid_nm=0.05).sample(n, reg, runs=6, seed=1)
    share = lambda runs: np.mean([descriptors(x, reg)["multimer_share"] for x in runs])  # noqa: E731
    assert share(pen) < 0.3 * share(rnd)
    again = DFTBiasedSampler(POT, kT_eV=0.05, grid_nm=0.05).sample(n, reg, runs=6, seed=1)
    assert np.array_equal(pen, again)
    with pytest.raises(AnalysisInputError, match="kT"):
        DFTBiasedSampler(POT, kT_eV=-1.0).sample(10, reg)
    with pytest.raises(AnalysisInputError, match="grid"):
        DFTBiasedSampler(grid_nm=0.0).sample(10, reg)


def test_one_registry_builds_every_sampler_with_one_interface():
    from sacmap.analysis.spatial.samplers.registry import SAMPLERS, make_sampler

    assert set(SAMPLERS) == {"random", "attractive", "repulsive", "dft", "hardcore"}
    reg = Region.rectangle(6.0)
    for name, params in (("random", {}), ("attractive", {"first_fraction": 0.25}), ("repulsive", {"c_nm": 0.2}),
                         ("dft", {"grid_nm": 0.05}), ("hardcore", {"hard_core_nm": 0.3})):
        s = make_sampler(name, **params)
        xy = s.sample(36, reg, runs=2, seed=4)
        assert xy.shape == (2, 36, 2) and reg.contains(xy.reshape(-1, 2)).all()
        assert np.array_equal(xy, make_sampler(name, **params).sample(36, reg, runs=2, seed=4))
    assert np.array_equal(make_sampler("repulsive", c_nm=0.2).sample(50, reg, seed=1),
                          RepulsiveSampler(c_nm=0.2).sample(50, reg, seed=1))
    assert make_sampler("attractive", first_fraction=0.25).describe(36, reg) == {"n_first": 9, "box_nm": 1.0}
    with pytest.raises(AnalysisInputError, match="unknown sampler"):
        make_sampler("clustered")
    with pytest.raises(AnalysisInputError, match="sampler 'random'"):
        make_sampler("random", c_nm=0.2)


def test_dft_sampler_from_a_fit_keeps_sigma_over_sigma0():
    fit = {"sigma_factor": 1.2, "kT_eV": 0.1}
    s = DFTBiasedSampler.from_fit(fit, potential=POT, grid_nm=0.05)
    reg = Region.rectangle(6.0)
    s0 = 1 / np.sqrt(2 * np.pi * 36 / 36.0)
    assert s.sigma_for(36, reg) == pytest.approx(1.2 * s0)
    assert s.describe(36, reg)["kT_eV"] == pytest.approx(0.1)
    direct = DFTBiasedSampler(POT, sigma_nm=1.2 * s0, kT_eV=0.1, grid_nm=0.05)
    assert np.array_equal(s.sample(36, reg, seed=3), direct.sample(36, reg, seed=3))
    with pytest.raises(AnalysisInputError, match="sigma_factor"):
        DFTBiasedSampler.from_fit({"kT_eV": 0.1})
    with pytest.raises(AnalysisInputError, match="potential"):
        DFTBiasedSampler(kT_eV=0.1)


def test_hard_core_sampler_is_sequential_inhibition():
    """No two points closer than the hard core; identical to accepting proposals one at a time (same stream)."""
    from sacmap.analysis.spatial.samplers.point import HardCoreSampler, run_rngs

    reg = Region.rectangle(5.0, 4.0)
    h = 0.45
    xy = HardCoreSampler(h).sample(60, reg, runs=3, seed=11)
    for run in xy:
        d = np.sqrt(((run[:, None] - run[None]) ** 2).sum(-1)) + np.eye(len(run)) * 1e9
        assert d.min() > h and reg.contains(run).all()
    # one-at-a-time SSI on the same proposals: the batches draw rng.random((k, 2)) per batch, so replay them
    rng = run_rngs(11, 3)[0]
    acc: list = []
    while len(acc) < 60:
        k = max(64, 2 * (60 - len(acc)))
        for p in reg.sample_uniform(k, rng):
            if len(acc) < 60 and all(np.hypot(*(p - q)) > h for q in acc):
                acc.append(p)
    assert np.allclose(np.array(acc), xy[0])
    with pytest.raises(AnalysisInputError, match="hard core"):
        HardCoreSampler(1.5, max_proposals=5000).sample(200, reg)


def test_repulsive_row_ordered_lookups_change_nothing(monkeypatch):
    """Large batches are looked up in raster-row order (for speed at 10⁶ points): forcing that order on every
    batch gives the very same points as the plain order (which equals the one-at-a-time rule, tested above)."""
    import sacmap.analysis.spatial.samplers.point as point

    reg = Region.rectangle(20.0)
    plain = RepulsiveSampler(0.2).sample(1200, reg, runs=2, seed=8)
    monkeypatch.setattr(point, "SORT_ABOVE", 0)
    assert np.array_equal(RepulsiveSampler(0.2).sample(1200, reg, runs=2, seed=8), plain)
