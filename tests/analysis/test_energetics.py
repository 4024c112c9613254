"""E_int (paper eqs. 1-5), dimer formation energies, site-site potential and <B> on small synthetic record sets.

Energies are built from an additive model with a known interaction term, so every expected number below is
computed by hand from the equations (signs included).
"""

from __future__ import annotations

import math

import numpy as np
import pandas as pd
import pytest

from sacmap.analysis.energetics.equations import (
    annotate,
    bader_descriptor,
    compute_energetics,
    dimer_energies,
    interaction_energies,
    site_site_potential,
)
from sacmap.analysis.energetics.readers import records_from_atoms
from sacmap.analysis.errors import AnalysisInputError
from sacmap.structures import builders as B
from sacmap.structures.pairs import enumerate_pairs

SETTINGS = dict(functional="PBE", ivdw=11, encut_eV=450.0, energy_kind="e_0_energy")


def _placement(kind_a, kind_b, index=0, swap=None):
    ps = enumerate_pairs(kind_a, kind_b, 9.0)
    if swap is not None:
        ps = [p for p in ps if p.swap_symmetric == swap]
    return ps[index]


def _pair_set(p, m_a, m_b, e_bare, e_a, e_b, e_both):
    """The four cells of one E_int: bare, metal on A only, metal on B only, both."""
    atoms = [B.build_pair(p), B.build_pair(p, (m_a, None)), B.build_pair(p, (None, m_b)), B.build_pair(p, (m_a, m_b))]
    return atoms, [e_bare, e_a, e_b, e_both]


def _records(atoms, energies, **over):
    return records_from_atoms(atoms, energies, **{**SETTINGS, **over})


def test_eq1_square_planar_hand_computed():
    p = _placement("4N", "4N", swap=True)
    atoms = [B.build_pair(p), B.build_pair(p, ("Ni", None)), B.build_pair(p, ("Ni", "Ni"))]
    df = annotate(_records(atoms, [-1000.0, -1005.5, -1010.8]))
    e_int, missing = interaction_energies(df)
    assert missing.empty
    assert list(e_int["equation"]) == ["1"] and list(e_int["label"]) == ["sq"]
    # E(M/4N-M/4N) + E(4N-4N) - 2 E(M/4N-4N) = -1010.8 - 1000.0 + 2 * 1005.5 = +0.2 (repulsive)
    assert e_int["E_int_eV"].iloc[0] == pytest.approx(0.2, abs=1e-9)
    assert e_int["separation_A"].iloc[0] == pytest.approx(p.separation_A, abs=1e-3)


def test_eq2_trigonal_negative_sign():
    p = _placement("3N", "3N", swap=True)
    atoms = [B.build_pair(p), B.build_pair(p, ("Pd", None)), B.build_pair(p, ("Pd", "Pd"))]
    df = annotate(_records(atoms, [-900.0, -903.0, -906.4]))
    e_int, _ = interaction_energies(df)
    assert list(e_int["equation"]) == ["2"]
    # -906.4 - 900.0 + 2 * 903.0 = -0.4 (attractive)
    assert e_int["E_int_eV"].iloc[0] == pytest.approx(-0.4, abs=1e-9)


def test_eq3_mixed_same_metal():
    p = _placement("3N", "4N")
    atoms, energies = _pair_set(p, "Ni", "Ni", -950.0, -953.0, -954.0, -957.3)
    df = annotate(_records(atoms, energies))
    e_int, missing = interaction_energies(df)
    assert missing.empty
    row = e_int.iloc[0]
    assert row["equation"] == "3" and row["label"] == "mix"
    # E(M/3N-M/4N) + E(3N-4N) - E(M/3N-4N) - E(3N-M/4N) = -957.3 - 950 + 953 + 954 = -0.3
    assert row["E_int_eV"] == pytest.approx(-0.3, abs=1e-9)


def test_eq4_and_eq5_two_species():
    p = _placement("3N", "4N", index=3)
    # eq. 4: A = Ni (alphabetically first) on 3N, B = Pd on 4N
    a4, e4 = _pair_set(p, "Ni", "Pd", -950.0, -953.0, -954.5, -957.2)
    # eq. 5: B = Pd on 3N, A = Ni on 4N
    a5, e5 = _pair_set(p, "Pd", "Ni", -950.0, -952.0, -955.0, -957.5)
    atoms = a4 + a5[1:]  # the bare pair is shared
    df = annotate(_records(atoms, e4 + e5[1:]))
    e_int, missing = interaction_energies(df)
    assert missing.empty
    by_eq = e_int.set_index("equation")
    # (4): -957.2 - 950.0 + 953.0 + 954.5 = +0.3
    assert by_eq.loc["4", "E_int_eV"] == pytest.approx(0.3, abs=1e-9)
    assert by_eq.loc["4", "label"] == "mix-AB" and by_eq.loc["4", "occupants"] == "Ni/3N-Pd/4N"
    # (5): -957.5 - 950.0 + 952.0 + 955.0 = -0.5
    assert by_eq.loc["5", "E_int_eV"] == pytest.approx(-0.5, abs=1e-9)
    assert by_eq.loc["5", "label"] == "mix-BA"
    assert set(e_int["metal_A"]) == {"Ni"} and set(e_int["metal_B"]) == {"Pd"}


def test_asymmetric_same_kind_pair_uses_both_single_partners():
    p = _placement("4N", "4N", swap=False)
    atoms, energies = _pair_set(p, "Ni", "Ni", -1000.0, -1005.0, -1005.4, -1010.1)
    df = annotate(_records(atoms, energies))
    e_int, missing = interaction_energies(df)
    assert missing.empty
    # -1010.1 - 1000.0 + 1005.0 + 1005.4 = +0.3 (metal on A and metal on B are different cells)
    assert e_int["E_int_eV"].iloc[0] == pytest.approx(0.3, abs=1e-9)


def test_missing_partner_is_reported_not_guessed():
    p = _placement("3N", "4N")
    atoms, energies = _pair_set(p, "Ni", "Ni", -950.0, -953.0, -954.0, -957.3)
    df = annotate(_records(atoms[:2] + atoms[3:], energies[:2] + energies[3:]))  # no 3N-Ni/4N
    e_int, missing = interaction_energies(df)
    assert e_int.empty
    assert list(missing["needed"]) == ["3N-Ni/4N"] and list(missing["reason"]) == ["not found"]


def test_partners_at_other_placement_do_not_match():
    p, q = _placement("3N", "3N", 0, swap=True), _placement("3N", "3N", 1, swap=True)
    atoms = [B.build_pair(q), B.build_pair(q, ("Pd", None)), B.build_pair(p, ("Pd", "Pd"))]
    e_int, missing = interaction_energies(annotate(_records(atoms, [-900.0, -903.0, -906.4])))
    assert e_int.empty and len(missing) == 2


def test_inconsistent_settings_are_not_mixed():
    p = _placement("4N", "4N", swap=True)
    atoms = [B.build_pair(p), B.build_pair(p, ("Ni", None)), B.build_pair(p, ("Ni", "Ni"))]
    rec = pd.concat([_records(atoms[:2], [-1000.0, -1005.5]), _records(atoms[2:], [-1010.8], encut_eV=400.0)])
    e_int, missing = interaction_energies(annotate(rec))
    assert e_int.empty
    assert missing["reason"].str.contains("inconsistent settings").all()
    assert missing["reason"].str.contains("ENCUT").all()
    # U on an element both cells contain must agree too
    rec = pd.concat([_records(atoms[:2], [-1000.0, -1005.5], ldau_u="Ni:6"),
                     _records(atoms[2:], [-1010.8], ldau_u="Ni:4")])
    e_int, missing = interaction_energies(annotate(rec))
    assert e_int.empty and missing["reason"].str.contains(r"U\(Ni\)").any()


def test_flagged_records_are_excluded():
    p = _placement("4N", "4N", swap=True)
    atoms = [B.build_pair(p), B.build_pair(p, ("Ni", None)), B.build_pair(p, ("Ni", "Ni"))]
    rec = _records(atoms, [-1000.0, -1005.5, -1010.8])
    rec.loc[1, "usable"] = False
    e_int, missing = interaction_energies(annotate(rec))
    assert e_int.empty and "Ni/4N-4N" in set(missing["needed"])


def _dimer_set():
    atoms = [B.build_single_site("4N"), B.build_single_site("4N", "Pt"), B.build_dimer("4N", "Pt"),
             B.build_gas_atom("Pt"), B.build_gas_dimer("Pt")]
    return atoms, [-1000.0, -1006.0, -1009.0, -0.5, -3.0]


def test_dimer_formation_energies_hand_computed():
    atoms, energies = _dimer_set()
    dim, missing = dimer_energies(annotate(_records(atoms, energies)))
    assert missing.empty and len(dim) == 1
    row = dim.iloc[0]
    assert (row["site_kind"], row["metal"]) == ("4N", "Pt")
    # from gas: E(Pt2/4N) - E(4N) - 2 E(Pt) = -1009 + 1000 + 1 = -8.0
    assert row["E_dimer_from_gas_eV"] == pytest.approx(-8.0, abs=1e-9)
    # from two isolated centres: E(Pt2/4N) + E(4N) - 2 E(Pt/4N) = -1009 - 1000 + 2012 = +3.0 (unfavourable)
    assert row["E_dimer_from_isolated_eV"] == pytest.approx(3.0, abs=1e-9)
    # from the gas dimer: -1009 + 1000 + 3 = -6.0; single adsorption: -1006 + 1000 + 0.5 = -5.5
    assert row["E_dimer_from_gas_dimer_eV"] == pytest.approx(-6.0, abs=1e-9)
    assert row["E_ads_single_eV"] == pytest.approx(-5.5, abs=1e-9)


def test_dimer_missing_single_reported():
    atoms, energies = _dimer_set()
    dim, missing = dimer_energies(annotate(_records(atoms[:1] + atoms[2:], energies[:1] + energies[2:])))
    assert list(missing["needed"]) == ["Pt/4N"]
    assert math.isnan(dim["E_dimer_from_isolated_eV"].iloc[0])
    assert dim["E_dimer_from_gas_eV"].iloc[0] == pytest.approx(-8.0)


def test_site_site_potential_relative_to_furthest_and_bader():
    ps = enumerate_pairs("4N", "4N", 9.0)[:4] + enumerate_pairs("4N", "4N", 9.0)[-1:]
    atoms = [B.build_pair(p) for p in ps]
    energies = [-1000.0 + 0.1 * k for k in range(len(ps))]
    for k, at in enumerate(atoms):  # Bader charges: N of the sites get 6.0 + 0.01 k electrons
        q = np.full(len(at), 4.0)
        q[[i for i, s in enumerate(at.get_chemical_symbols()) if s == "N"]] = 6.0 + 0.01 * k
        at.arrays["charges"] = q
    n2 = B.build_gas_atom("Pt")  # a pure-N reference phase: N2 in a box with 5.0 e per N
    from ase import Atoms

    n2 = Atoms("N2", positions=[[5, 5, 5], [5, 5, 6.1]], cell=[10, 10, 10], pbc=True)
    n2.arrays["charges"] = np.array([5.0, 5.0])
    df = annotate(_records(atoms + [n2], energies + [-16.0]))
    ssp = site_site_potential(df)
    assert list(ssp.columns[:5]) == ["site_kinds", "separation_A", "energy_eV", "shares_NN_bond", "n_C_between"]
    furthest = ssp["separation_A"].idxmax()
    assert ssp.loc[furthest, "energy_eV"] == 0.0
    assert ssp["energy_eV"].tolist() == pytest.approx([-0.4, -0.3, -0.2, -0.1, 0.0])
    assert ssp["shares_NN_bond"].iloc[0]  # the closest 4N-4N pair shares an N-N bond
    bader = bader_descriptor(df)
    assert bader["B_mean_e"].tolist() == pytest.approx([6.0, 6.01, 6.02, 6.03, 6.04])
    assert bader["B_rel_e"].tolist() == pytest.approx([1.0, 1.01, 1.02, 1.03, 1.04])
    assert bader_descriptor(df, n_reference_charge_e=5.5)["B_rel_e"].iloc[0] == pytest.approx(0.5)


def test_compute_energetics_writes_tables_and_figures(tmp_path):
    atoms, energies = _dimer_set()
    p = _placement("4N", "4N", swap=True)
    atoms += [B.build_pair(p), B.build_pair(p, ("Ni", None)), B.build_pair(p, ("Ni", "Ni"))]
    energies += [-1000.0, -1005.5, -1010.8]
    res = compute_energetics(_records(atoms, energies), tmp_path)
    assert res["counts"] == {"read": 8, "recognised": 8, "flagged": 0, "used": 8, "duplicates": 0, "gas": 2,
                             "bulk": 0, "sheet": 6}
    for name in ("e_int.csv", "dimer_formation.csv", "site_site_potential.csv", "bader_descriptor.csv",
                 "records.csv", "fig4a_dimer_formation.png", "fig4b_site_site_potential.png", "fig4c_nC_bader.png",
                 "e_int.png"):
        assert (tmp_path / name).stat().st_size > 0, name
    back = pd.read_csv(tmp_path / "e_int.csv")
    assert back["E_int_eV"].iloc[0] == pytest.approx(0.2)


def test_bad_records_input():
    with pytest.raises(AnalysisInputError, match="DataFrame"):
        annotate([1, 2])
    with pytest.raises(AnalysisInputError, match="lack columns"):
        annotate(pd.DataFrame({"energy_eV": [1.0]}))


def test_duplicate_calculations_give_one_row():
    p = _placement("4N", "4N", swap=True)
    atoms = [B.build_pair(p), B.build_pair(p, ("Ni", None)), B.build_pair(p, ("Ni", "Ni"))]
    rec = pd.concat([_records(atoms, [-1000.0, -1005.5, -1010.8]), _records(atoms[2:], [-1010.8])])
    e_int, _ = interaction_energies(annotate(rec))
    assert len(e_int) == 1 and e_int["E_int_eV"].iloc[0] == pytest.approx(0.2)
