"""Issue 17, energetics: gas references must be isolated, spin per term, duplicates reported, one settings
record per calculation from every source, and the hardened CML reader (ioChem-BD's cc:/v: dictionary layout).

Expected numbers are hand-computed from the equations (see test_energetics.py for the additive model).
"""

from __future__ import annotations

import math
import shutil
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
from ase import Atoms
from ase.build import bulk

from sacmap.analysis.energetics.equations import (
    annotate,
    compute_energetics,
    dimer_energies,
    incompatibility,
    interaction_energies,
)
from sacmap.analysis.energetics.readers import load_records, read_cml, read_vasp_folder, records_from_atoms
from sacmap.analysis.energetics.readers.records import incar_ivdw, settings_record
from sacmap.analysis.energetics.recognition import RecognitionError, periodicity, recognise
from sacmap.structures import builders as B
from sacmap.structures.pairs import enumerate_pairs

DATA = Path(__file__).resolve().parents[1] / "data"
VASP = DATA / "workflows" / "vasp-fixtures"
SETTINGS = dict(functional="PBE", ivdw=11, encut_eV=450.0, energy_kind="e_0_energy")


# ------------------------------------------------------------------------------- 5: gas vs bulk vs slab
@pytest.mark.parametrize("atoms,kind", [
    (bulk("Pt", "fcc", a=3.92), "bulk"),
    (bulk("Ni", "fcc", a=3.52, cubic=False), "bulk"),
    (bulk("Ru", "hcp", a=2.71, c=4.28), "bulk"),          # Ru2
    (bulk("Fe", "bcc", a=2.87, cubic=True), "bulk"),       # Fe2
    (bulk("Pd", "fcc", a=3.89), "bulk"),
])
def test_periodic_metal_cells_are_never_gas_references(atoms, kind):
    assert len(atoms) in (1, 2)
    res = recognise(atoms)
    assert res["kind"] == kind and "not a gas reference" in res["phase_note"]


def test_gas_box_slab_and_non_metal_bulk():
    box = Atoms("Pd", positions=[[7.5, 7.75, 8.0]], cell=[15.0, 15.5, 16.0], pbc=True)
    assert recognise(box)["kind"] == "gas_atom"
    dimer = Atoms("Pd2", positions=[[7.5, 7.75, 8.0], [9.7, 7.75, 8.0]], cell=[15.0, 15.5, 16.0], pbc=True)
    assert recognise(dimer)["kind"] == "gas_dimer"
    slab = Atoms("Pt", positions=[[0, 0, 5]], cell=[2.77, 2.77, 20.0], pbc=True)  # a monolayer: vacuum along c only
    assert periodicity(slab)[0] == "slab" and recognise(slab)["kind"] == "slab"
    with pytest.raises(RecognitionError):
        recognise(bulk("Si", "diamond", a=5.43))  # Si2: no metal, no sheet
    far = Atoms("Pd2", positions=[[2, 2, 2], [9, 9, 9]], cell=[15.0, 15.5, 16.0], pbc=True)
    with pytest.raises(RecognitionError, match="not a gas dimer"):
        recognise(far)


def test_bulk_cell_does_not_replace_the_gas_atom_in_dimer_energies():
    atoms = [B.build_single_site("4N"), B.build_single_site("4N", "Pd"), B.build_dimer("4N", "Pd"),
             B.build_gas_atom("Pd")]
    energies = [-1000.0, -1006.0, -1009.0, -0.5]
    ref = dimer_energies(annotate(records_from_atoms(atoms, energies, **SETTINGS)))[0]
    # a bulk Pd cell 5 eV lower than the gas atom: it would be "gas Pd" if periodicity were not checked
    with_bulk = records_from_atoms([*atoms, bulk("Pd", "fcc", a=3.89)], [*energies, -5.5], **SETTINGS)
    res = compute_energetics(with_bulk)
    # E(Pd2/4N) - E(4N) - 2 E(Pd, gas) = -1009 + 1000 + 1 = -8.0, unchanged
    assert ref["E_dimer_from_gas_eV"].iloc[0] == pytest.approx(-8.0)
    assert res["dimers"]["E_dimer_from_gas_eV"].iloc[0] == pytest.approx(-8.0)
    assert res["counts"]["bulk"] == 1 and res["counts"]["gas"] == 1
    assert any("bulk cell of Pd" in w and "not a gas reference" in w for w in res["warnings"])


# ------------------------------------------------------------------------------------- 6: spin per term
def test_e_int_table_carries_spin_per_term_and_warns_when_it_differs():
    p = [q for q in enumerate_pairs("4N", "4N", 9.0) if q.swap_symmetric][0]
    atoms = [B.build_pair(p), B.build_pair(p, ("Ni", None)), B.build_pair(p, ("Ni", "Ni"))]
    # the paper's convention: the singly occupied cell is spin-polarised, the others are not
    recs = records_from_atoms(atoms, [-1000.0, -1005.5, -1010.8], ispin=[1, 2, 1], magmom=[0.0, 1.2, 0.0],
                              **SETTINGS)
    e_int, _ = interaction_energies(annotate(recs))
    row = e_int.iloc[0]
    assert (row["ispin_both"], row["ispin_bare"], row["ispin_first_only"]) == (1, 1, 2)
    assert row["magmom_first_only_muB"] == pytest.approx(1.2)
    assert "differ in spin treatment" in row["spin_note"] and "as in the paper's convention" in row["spin_note"]
    # all ISPIN 2: no difference between terms, but the bare and doubly occupied cells deviate from the paper
    recs = records_from_atoms(atoms, [-1000.0, -1005.5, -1010.8], ispin=2, **SETTINGS)
    res = compute_energetics(recs)
    note = res["e_int"]["spin_note"].iloc[0]
    assert "differ in spin treatment" not in note and "both" in note and "bare" in note and "ISPIN differs from" in note
    assert any("E_int eq. 1 (" in w and "ISPIN" in w and " sq" not in w for w in res["warnings"])


def test_duplicate_gas_run_is_reported_not_silently_dropped(tmp_path):
    atoms = [B.build_single_site("4N"), B.build_single_site("4N", "Pd"), B.build_dimer("4N", "Pd"),
             B.build_gas_atom("Pd"), B.build_gas_atom("Pd")]
    recs = records_from_atoms(atoms, [-1000.0, -1006.0, -1009.0, -0.5, 0.4], ispin=[1, 2, 1, 2, 1], **SETTINGS)
    recs.loc[4, "calc_dir"] = "memory:gas_Pd_rerun"
    res = compute_energetics(recs, tmp_path, figures=False)
    (dup,) = res["duplicates"].itertuples()
    assert dup.kept_dir == "memory:gas_Pd" and dup.dropped_dir == "memory:gas_Pd_rerun"
    assert dup.delta_eV == pytest.approx(0.9) and (dup.ispin_kept, dup.ispin_dropped) == (2, 1)
    assert res["dimers"]["E_gas_atom_eV"].iloc[0] == pytest.approx(-0.5)  # the lowest is used...
    text = (tmp_path / "warnings.txt").read_text()
    assert "memory:gas_Pd_rerun: duplicate of gas_atom" in text and "+0.900 eV" in text  # ...and the other named
    assert len(pd.read_csv(tmp_path / "duplicates.csv")) == 1


# ------------------------------------------------------------------------------ 7: one settings record
def test_vasp_folder_settings_record(tmp_path):
    rec = read_vasp_folder(VASP / "relax-ldau-spin")
    assert rec["functional"] == "PBE" and rec["prec"] == "Accurate" and rec["smearing"] == "ISMEAR=0,SIGMA=0.05"
    assert rec["potcar"] == "Fe:PAW_PBE Fe,O:PAW_PBE O" and rec["dispersion"] == "none" and rec["ispin"] == 2


def test_terms_must_agree_on_every_setting():
    base = {"functional": "PBE", "dispersion": "D3(zero)", "ivdw": 11, "encut_eV": 450.0, "ldau_u": "",
            "prec": "Accurate", "smearing": "ISMEAR=0,SIGMA=0.05", "potcar": "C:PAW_PBE C,N:PAW_PBE N",
            "energy_kind": "e_0_energy", "formula_elements": "C,N"}
    assert incompatibility(base, dict(base)) == ""
    for key, val, word in (("prec", "Normal", "PREC"), ("smearing", "ISMEAR=-5,SIGMA=0.05", "smearing"),
                           ("potcar", "C:PAW_PBE C_h,N:PAW_PBE N", "POTCAR(C)"),
                           ("dispersion", "unknown", "dispersion"), ("functional", "chgnet:0.3.0", "functional")):
        assert word in incompatibility(base, {**base, key: val}), key
    # a record that does not know its PREC (e.g. an old database row) is not refused for it
    assert incompatibility(base, {**base, "prec": ""}) == ""


def test_old_vdw_tags_and_hybrid_functional():
    assert incar_ivdw({"LVDW": True, "VDW_VERSION": 3}) == 11
    assert incar_ivdw({"LVDW": ".TRUE."}) == 1 and incar_ivdw({"LVDW": True, "VDW_VERSION": 4}) == 12
    assert incar_ivdw({"ENCUT": 450}) == 0 and incar_ivdw({}) is None
    rec = settings_record({"LVDW": True, "VDW_VERSION": 3, "LHFCALC": ".TRUE.", "HFSCREEN": 0.2, "ENCUT": 450})
    assert rec["dispersion"] == "D3(zero)" and rec["functional"] == "HSE(HFSCREEN=0.2)"


def test_campaign_rows_store_the_settings_record(tmp_path):
    """A row the campaign's store writes carries functional, dispersion, IVDW, ENCUT... and reads back with them;
    an embedded model is its own functional, so it never combines with VASP records of the same cells."""
    from sacmap.workflows.campaign.settings import settings_record as embedded_record

    rec = embedded_record("chgnet-d3", {"model": "0.3.0", "dispersion": "d3-zero-pbe"})
    assert rec["functional"] == "chgnet:0.3.0" and rec["dispersion"] == "D3(zero)" and rec["ivdw"] == 11
    assert embedded_record("tblite", {"method": "GFN2-xTB"})["dispersion"] == "D4"


# ----------------------------------------------------------------------------------------- 8: CML
CML_HEAD = """<?xml version="1.0" encoding="UTF-8"?>
<module xmlns="http://www.xml-cml.org/schema" xmlns:cmlx="http://www.xml-cml.org/schema/cmlx" dictRef="cc:jobList">
 <module id="job" dictRef="cc:job">
  <module dictRef="cc:initialization"><parameterList>
   <parameter dictRef="v:ispin"><scalar dataType="xsd:integer">1</scalar></parameter>
   <parameter dictRef="v:ibrion"><scalar dataType="xsd:integer">2</scalar></parameter>
   <parameter dictRef="v:nsw"><scalar dataType="xsd:integer">300</scalar></parameter>
   <parameter dictRef="v:ediffg"><scalar dataType="xsd:double">{ediffg}</scalar></parameter>
   <parameter dictRef="v:energyCutoff"><scalar dataType="xsd:double" units="nonsi:electronvolt">450.0</scalar></parameter>
   <parameter dictRef="v:gga"><scalar dataType="xsd:string">PE</scalar></parameter>
   <parameter dictRef="v:lhfcalc"><scalar dataType="xsd:boolean">{lhfcalc}</scalar></parameter>
   <parameter dictRef="v:prec"><scalar dataType="xsd:string">accurate</scalar></parameter>
  </parameterList></module>
  <module dictRef="cc:finalization">
   <molecule id="final">
    <crystal>
{cellpar}
{lattice}
    </crystal>
    <atomArray>
{atoms}
    </atomArray>
   </molecule>
   <propertyList><property dictRef="cc:energies"><module cmlx:templateRef="energies">
    <scalar dataType="xsd:double" dictRef="cc:freeEnergy" units="nonsi:electronvolt">-10.1</scalar>
    <scalar dataType="xsd:double" dictRef="cc:e0" units="nonsi:electronvolt">-10.0</scalar>
   </module></property>
   {forces}
   </propertyList>
  </module>
 </module>
</module>
"""


def _skewed_sheet():
    """Graphene in its primitive (γ = 120°) cell, rotated so that a is not along x: the case CML cell
    parameters cannot place."""
    from ase.build import graphene

    g = graphene(a=2.46, vacuum=7.5).repeat((3, 3, 1))
    g.rotate(37.0, "z", rotate_cell=True)
    return g


def _write_cml(path: Path, atoms, *, fractional: bool, lattice: bool, ediffg="-0.02", lhfcalc="false",
               forces=None) -> Path:
    cp = atoms.cell.cellpar()
    cellpar = "\n".join(f'     <scalar title="{t}" dataType="xsd:double">{v:.8f}</scalar>'
                        for t, v in zip(("a", "b", "c", "alpha", "beta", "gamma"), cp))
    lat = ""
    if lattice:
        lat = "     <lattice>" + "".join(
            f'<latticeVector units="units:angstrom">{v[0]:.8f} {v[1]:.8f} {v[2]:.8f}</latticeVector>'
            for v in atoms.cell.array) + "</lattice>"
    rows = []
    frac = atoms.get_scaled_positions()
    for k, (sym, pos) in enumerate(zip(atoms.get_chemical_symbols(), atoms.positions)):
        extra = (f' xFract="{frac[k, 0]:.10f}" yFract="{frac[k, 1]:.10f}" zFract="{frac[k, 2]:.10f}"'
                 if fractional else "")
        rows.append(f'     <atom id="a{k + 1}" elementType="{sym}" x3="{pos[0]:.8f}" y3="{pos[1]:.8f}" '
                    f'z3="{pos[2]:.8f}"{extra}/>')
    fblock = ""
    if forces is not None:
        fblock = ('<property dictRef="cc:forces"><array dataType="xsd:double" dictRef="cc:forces" '
                  f'units="nonsi:ev.angstrom-1" size="{forces.size}">' + " ".join(f"{x:.6f}" for x in forces.ravel())
                  + "</array></property>")
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(CML_HEAD.format(ediffg=ediffg, lhfcalc=lhfcalc, cellpar=cellpar, lattice=lat,
                                    atoms="\n".join(rows), forces=fblock))
    return path


def _nn(atoms) -> float:
    d = atoms.get_all_distances(mic=True)
    return float(d[d > 0.1].min())


def test_cml_cartesian_only_non_orthogonal_cell(tmp_path):
    sheet = _skewed_sheet()
    assert _nn(sheet) == pytest.approx(2.46 / math.sqrt(3), abs=1e-6)
    # with the lattice vectors, Cartesian-only coordinates give the right geometry
    rec = read_cml(_write_cml(tmp_path / "vec" / "output.cml", sheet, fractional=False, lattice=True))
    assert _nn(rec["atoms"]) == pytest.approx(2.46 / math.sqrt(3), abs=1e-5)
    assert np.allclose(rec["atoms"].positions, sheet.positions, atol=1e-6)
    # without them (only a, b, c, alpha, beta, gamma) the orientation is unknown: flagged, never guessed
    rec = read_cml(_write_cml(tmp_path / "par" / "output.cml", sheet, fractional=False, lattice=False))
    assert not rec["usable"] and "orientation is unknown" in rec["problems"]
    # a CONTCAR beside the file gives the cell
    sheet.write(tmp_path / "par" / "CONTCAR", format="vasp")
    rec = read_cml(tmp_path / "par" / "output.cml")
    assert rec["atoms"] is not None and _nn(rec["atoms"]) == pytest.approx(2.46 / math.sqrt(3), abs=1e-5)
    # fractional coordinates need no orientation
    rec = read_cml(_write_cml(tmp_path / "frac" / "output.cml", sheet, fractional=True, lattice=False))
    assert _nn(rec["atoms"]) == pytest.approx(2.46 / math.sqrt(3), abs=1e-5)


def test_cml_convergence_from_forces_and_ediffg(tmp_path):
    sheet = _skewed_sheet()
    small = np.full((len(sheet), 3), 0.005)
    big = small.copy()
    big[3] = [0.3, 0.0, 0.0]
    ok = read_cml(_write_cml(tmp_path / "ok" / "output.cml", sheet, fractional=True, lattice=True, forces=small))
    assert ok["converged_ionic"] and ok["usable"] and "vs |EDIFFG| 0.02" in ok["meta"]["convergence"]
    bad = read_cml(_write_cml(tmp_path / "bad" / "output.cml", sheet, fractional=True, lattice=True, forces=big))
    assert not bad["converged_ionic"] and not bad["usable"] and bad["fmax_eV_A"] == pytest.approx(0.3)
    assumed = read_cml(_write_cml(tmp_path / "e" / "output.cml", sheet, fractional=True, lattice=True,
                                  ediffg="1e-4"))
    assert assumed["usable"] and "ionic convergence assumed" in assumed["notes"]


def test_cml_settings_missing_incar_is_noted_and_lhfcalc_read(tmp_path):
    sheet = _skewed_sheet()
    folder = tmp_path / "coll"
    _write_cml(folder / "a" / "output.cml", sheet, fractional=True, lattice=True, lhfcalc="true")
    _write_cml(folder / "b" / "output.cml", sheet, fractional=True, lattice=True)
    (folder / "b" / "INCAR").write_text("LVDW = .TRUE.\nVDW_VERSION = 3\nENCUT = 450\n")
    df = load_records([folder]).sort_values("calc_dir").reset_index(drop=True)
    a, b = df.iloc[0], df.iloc[1]
    assert a["functional"] == "HYBRID" and a["dispersion"] == "unknown" and "no INCAR beside the CML" in a["notes"]
    assert b["functional"] == "PBE" and b["dispersion"] == "D3(zero)" and b["ivdw"] == 11
    assert "INCAR" not in b["notes"] and "ionic convergence assumed (no forces" in b["notes"]
    assert a["prec"] == b["prec"] == "Accurate"
    out = tmp_path / "out"
    compute_energetics(df, out, figures=False)
    assert "no INCAR beside the CML" in (out / "warnings.txt").read_text()
    assert "no INCAR beside the CML" in pd.read_csv(out / "records.csv")["notes"].fillna("").str.cat()


# ------------------------------------------------------------------ issue 16 item 8: nothing usable
def test_energies_cli_exits_3_when_nothing_is_usable(tmp_path, capsys):
    from sacmap.workflows import cli

    tree = tmp_path / "tree"
    shutil.copytree(VASP / "truncated", tree / "t1")
    shutil.copytree(VASP / "truncated", tree / "t2")
    code = cli.main(["energies", str(tree), "-o", str(tmp_path / "out"), "--no-figures"])
    err = capsys.readouterr().err
    assert code == 3
    assert "none of the 2 calculation(s) is usable" in err and "2x truncated vasprun.xml.gz" in err


def test_campaign_database_rows_combine_with_folder_records_of_the_same_settings(tmp_path):
    """A doubly occupied cell stored by the campaign (with its settings record) combines with VASP-style records
    of the same settings; a row written without a settings record (older sacmap) does not."""
    import numpy as np

    from sacmap.analysis.energetics.readers import read_ase_db
    from sacmap.workflows.campaign import results
    from sacmap.workflows.campaign.configs import config_meta

    p = [q for q in enumerate_pairs("4N", "4N", 9.0) if q.swap_symmetric][0]
    bare, single, both = B.build_pair(p), B.build_pair(p, ("Ni", None)), B.build_pair(p, ("Ni", "Ni"))
    record = {"functional": "PBE", "dispersion": "D3(zero)", "ivdw": 11, "encut_eV": 450.0, "ldau": False,
              "ldau_u": "", "ispin": 1, "prec": "Accurate", "smearing": "ISMEAR=0,SIGMA=0.05"}

    def write(url, extra):
        db = results.connect(str(url))
        res = {"atoms": both, "energy_eV": -1010.8, "forces": np.zeros((len(both), 3)), "energy_kind": "e_0_energy",
               "converged": True, "calc_dir": "/db/both"}
        results.store(db, res, config_meta(both), calculator="vasp", settings_hash="abc", settings={},
                      campaign="t", extra=extra)

    write(tmp_path / "new.db", record)
    write(tmp_path / "old.db", {})
    folders = records_from_atoms([bare, single], [-1000.0, -1005.5], **{**SETTINGS, **record, "ispin": [1, 2]})
    new = pd.concat([pd.DataFrame(read_ase_db(str(tmp_path / "new.db"))), folders], ignore_index=True)
    e_int, missing = interaction_energies(annotate(new))
    assert missing.empty and e_int["E_int_eV"].iloc[0] == pytest.approx(0.2)
    old = pd.concat([pd.DataFrame(read_ase_db(str(tmp_path / "old.db"))), folders], ignore_index=True)
    e_int, missing = interaction_energies(annotate(old))
    assert e_int.empty and "dispersion unknown vs D3(zero)" in missing["reason"].str.cat()
