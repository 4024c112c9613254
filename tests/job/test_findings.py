"""The report's Findings: each verdict follows from the numbers it is given (the paper's finding reproduced, not
reproduced, or only partly), the numbers shown are those numbers, and a missing input says why."""

from __future__ import annotations

import pandas as pd
import pytest

from sacmap.workflows.job import findings as F


def _ssp(rows):
    return pd.DataFrame(rows, columns=["separation_A", "energy_eV", "shares_NN_bond"]).assign(site_kinds="4N-4N")


PAPER_LIKE = _ssp([(4.26, 1.12, True), (4.26, 0.36, True), (4.43, 0.36, True), (4.92, -0.155, False),
                   (5.36, -0.11, False), (6.5, 0.02, False), (8.87, 0.0, False)])


def test_nn_bond_and_minimum_reproduced_on_a_paper_like_curve():
    f = F.nn_bond_finding(PAPER_LIKE, "")
    assert f.verdict == "yes"
    assert "+0.613 eV (n = 3" in f.measured  # mean of the three sharing pairs
    m = F.minimum_finding(PAPER_LIKE, "")
    assert m.verdict == "yes" and "-0.155 eV at 4.92 Å" in m.measured


def test_nn_bond_not_reproduced_when_sharing_costs_nothing():
    flat = _ssp([(4.26, -0.2, True), (4.43, -0.1, True), (5.0, 0.1, False), (8.0, 0.0, False)])
    assert F.nn_bond_finding(flat, "").verdict == "no"
    # higher on average but overlapping the others: partly
    mixed = _ssp([(4.26, 0.5, True), (4.43, -0.3, True), (5.0, 0.0, False), (6.0, 0.05, False), (8.0, 0.0, False)])
    assert F.nn_bond_finding(mixed, "").verdict == "partly"


def test_minimum_far_from_5_angstrom_is_not_reproduced():
    far = _ssp([(4.26, 0.5, True), (5.0, 0.2, False), (7.5, -0.3, False), (8.87, 0.0, False)])
    m = F.minimum_finding(far, "")
    assert m.verdict == "no" and "7.50 Å" in m.measured


def test_dimer_finding_is_per_metal():
    dim = pd.DataFrame({"metal": ["Pd", "Pt"], "site_kind": ["4N", "4N"], "E_dimer_from_isolated_eV": [2.62, -0.4]})
    f = F.dimer_finding(dim, "; trend")
    assert f.verdict == "partly" and "Pd₂ in 4N: +2.620 eV" in f.measured and "Pt₂ in 4N: -0.400 eV" in f.measured
    assert F.dimer_finding(dim.assign(E_dimer_from_isolated_eV=[2.6, 0.3]), "").verdict == "yes"
    assert F.dimer_finding(pd.DataFrame(), "").verdict == "not tested"


def _desc(rows):
    return pd.DataFrame(rows, columns=["image", "simulated", "density_nm2", "nnd_mean_nm",
                                       "nnd_mean_random_same_window_nm", "multimer_share",
                                       "multimer_share_random_same_window"])


def test_organisation_needs_significance_for_yes():
    desc = _desc([("a", False, 0.5, 0.80, 0.72, 0.02, 0.07), ("b", False, 0.2, 1.26, 1.17, 0.03, 0.04)])
    env = pd.DataFrame({"image": ["a", "b"], "function": ["G", "G"], "null_model": "csr", "p_rank": [0.28, 0.40]})
    f = F.organisation_finding(desc, env)
    assert f.verdict == "partly" and "G envelope p = 0.28" in f.measured
    assert F.organisation_finding(desc, env.assign(p_rank=[0.01, 0.02])).verdict == "yes"
    # the detector-aware p decides where it exists (a significant naive p is not enough)
    aware = pd.concat([env.assign(p_rank=[0.01, 0.02]),
                       pd.DataFrame({"image": ["a", "b"], "function": "G", "null_model": "csr, detector-aware",
                                     "p_rank": [0.30, 0.01]})])
    f = F.organisation_finding(desc, aware)
    assert f.verdict == "partly" and "detector-aware p = 0.30" in f.measured
    # an invalid detector-aware test (no p-value) is named, and the naive p is used
    invalid = pd.concat([env, pd.DataFrame({"image": ["a"], "function": "G", "null_model": "csr, detector-aware",
                                            "p_rank": [float("nan")]})])
    f = F.organisation_finding(desc, invalid)
    assert "detector-aware test not valid" in f.measured and f.verdict == "partly"
    closer = _desc([("a", False, 0.5, 0.60, 0.72, 0.10, 0.07)])
    assert F.organisation_finding(closer, env).verdict == "no"


def test_isolation_uses_real_images_below_one_atom_per_nm2_only():
    desc = _desc([("a", False, 0.5, 0.8, 0.7, 0.02, 0.07), ("s", True, 0.5, 0.8, 0.7, 0.30, 0.07),
                  ("dense", False, 3.0, 0.3, 0.3, 0.40, 0.4)])
    f = F.isolation_finding(desc)
    assert f.verdict == "yes" and "2.0 %" in f.measured and "30.0" not in f.measured
    assert F.isolation_finding(desc.assign(multimer_share=0.06)).verdict == "no"


@pytest.mark.parametrize("detected, verdict", [([1.0, 2.0, 4.0], "yes"), ([1.0, 1.5, 1.6], "partly"),
                                               ([0.5, 0.6, 0.7], "no")])
def test_simulated_control(detected, verdict):
    true = [1.0, 2.0, 4.0]
    nnd_true = [0.55, 0.40, 0.30]
    nnd_det = [n * (t / d) ** 0.5 for n, t, d in zip(nnd_true, true, detected)]  # fewer atoms: larger NND
    sim = pd.DataFrame({"density_true_nm2": true, "density_detected_nm2": detected, "recall": [0.9, 0.7, 0.4],
                        "nnd_mean_true_nm": nnd_true, "nnd_mean_detected_nm": nnd_det})
    assert F.simulated_finding(sim).verdict == verdict


def test_skipped_energetics_say_why():
    rows = F.build_findings(pd.DataFrame(), pd.DataFrame(), pd.DataFrame(), pd.DataFrame(), pd.DataFrame(),
                            calculator=None, energetics_skipped="run with --skip-calculations")
    assert len(rows) == 6
    assert all(r.verdict == "not tested" for r in rows)
    assert rows[0].comment == "run with --skip-calculations"


def test_embedded_energies_are_labelled_as_trends():
    dim = pd.DataFrame({"metal": ["Pd"], "site_kind": ["4N"], "E_dimer_from_isolated_eV": [2.6]})
    rows = F.build_findings(PAPER_LIKE, dim, pd.DataFrame(), pd.DataFrame(), pd.DataFrame(),
                            calculator="CHGNet 0.3.0 + D3")
    assert all("a trend of the embedded calculator, not DFT" in r.measured for r in rows[:3])
    vasp = F.build_findings(PAPER_LIKE, dim, pd.DataFrame(), pd.DataFrame(), pd.DataFrame(), calculator="VASP (pbe-d3)")
    assert not any("trend" in r.measured for r in vasp[:3])
