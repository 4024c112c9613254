"""Readers: real VASP outputs (custodian test files), synthetic ioChem-BD CML, archives, the ASE database."""

from __future__ import annotations

import gzip
import io
import shutil
import tarfile
import zipfile
from pathlib import Path

import numpy as np
import pytest

from sacmap.analysis.energetics.readers import (
    load_records,
    parse_acf,
    read_acf,
    read_ase_db,
    read_vasp_folder,
    safe_extract,
)
from sacmap.analysis.errors import AnalysisInputError

DATA = Path(__file__).resolve().parents[1] / "data" / "analysis"
VASP = DATA / "vasp"


def test_converged_vasprun_reads_energy_sigma0_settings_and_convergence():
    rec = read_vasp_folder(VASP / "relax-ldau-spin")
    assert rec["usable"] and rec["problems"] == ""
    assert rec["reader"] == "vasprun" and rec["energy_kind"] == "e_0_energy"
    # the run's last "energy(sigma->0)" in OUTCAR is -28.21851457 eV (vasprun's e_0_energy is VASP 5's 0.0 bug)
    assert rec["energy_eV"] == pytest.approx(-28.21851457, abs=1e-7)
    assert rec["converged_electronic"] and rec["converged_ionic"]
    assert (rec["functional"], rec["encut_eV"], rec["ispin"], rec["ivdw"]) == ("PBE", 520.0, 2, 0)
    assert rec["ldau"] and rec["ldau_u"] == "Fe:4,O:0"
    assert rec["formula"] == "Fe2O2" and rec["n_atoms"] == 4
    assert rec["fmax_eV_A"] < 0.05
    assert rec["magmoms"] is not None and len(rec["magmoms"]) == 4  # from the OUTCAR beside it


def test_outcar_fallback_matches_vasprun(tmp_path):
    d = tmp_path / "calc"
    d.mkdir()
    for name in ("OUTCAR.gz", "OSZICAR", "INCAR", "CONTCAR"):
        shutil.copy(VASP / "relax-ldau-spin" / name, d / name)
    rec = read_vasp_folder(d)
    ref = read_vasp_folder(VASP / "relax-ldau-spin")
    assert rec["reader"] == "outcar" and rec["usable"], rec["problems"]
    assert rec["energy_eV"] == pytest.approx(ref["energy_eV"], abs=1e-6)
    assert rec["ldau_u"] == ref["ldau_u"] and rec["encut_eV"] == 520.0
    assert np.allclose(rec["atoms"].positions, ref["atoms"].positions, atol=1e-4)


def test_truncated_outcar_is_flagged(tmp_path):
    d = tmp_path / "cut"
    d.mkdir()
    with gzip.open(VASP / "relax-ldau-spin" / "OUTCAR.gz", "rt") as fh:
        lines = fh.readlines()
    (d / "OUTCAR").write_text("".join(lines[: len(lines) // 2]))
    shutil.copy(VASP / "relax-ldau-spin" / "INCAR", d / "INCAR")
    rec = read_vasp_folder(d)
    assert not rec["usable"]
    assert rec["problems"].startswith(f"{d}: truncated OUTCAR: no 'General timing and accounting' footer")


def test_truncated_vasprun_precise_message():
    rec = read_vasp_folder(VASP / "truncated")
    assert not rec["usable"]
    assert rec["problems"].startswith(f"{VASP / 'truncated'}: truncated vasprun.xml.gz: the XML ends before")
    assert "not converged" not in rec["problems"]  # a partial file says nothing trustworthy about convergence


def test_unconverged_ionic_precise_message():
    rec = read_vasp_folder(VASP / "unconverged-ionic")
    assert not rec["usable"] and rec["converged_electronic"] and not rec["converged_ionic"]
    assert rec["problems"] == (
        f"{VASP / 'unconverged-ionic'}: ionic relaxation not converged (stopped before EDIFFG was reached)"
    )


def test_unconverged_electronic_precise_message():
    rec = read_vasp_folder(VASP / "unconverged-electronic")
    assert not rec["usable"] and not rec["converged_electronic"]
    assert rec["problems"] == f"{VASP / 'unconverged-electronic'}: electronic SCF not converged (hit NELM = 100)"


def test_tree_of_folders_any_nesting(tmp_path):
    root = tmp_path / "scratch"
    shutil.copytree(VASP / "relax-ldau-spin", root / "a" / "b" / "run_final")
    shutil.copytree(VASP / "unconverged-ionic", root / "x")
    (root / "a" / "notes.txt").write_text("not a calculation")
    df = load_records([root])
    assert len(df) == 2
    assert df["usable"].tolist().count(True) == 1
    assert df.loc[~df["usable"], "problems"].iloc[0].startswith(str(root / "x"))


def test_bader_acf(tmp_path):
    d = tmp_path / "calc"
    shutil.copytree(VASP / "relax-ldau-spin", d)
    (d / "ACF.dat").write_text(
        "    #         X           Y           Z       CHARGE      MIN DIST   ATOMIC VOL\n"
        " --------------------------------------------------------------------------------\n"
        "    1      0.0000      0.0000      0.0000     14.5000      1.0000     10.0000\n"
        "    2      1.0000      0.0000      0.0000     14.6000      1.0000     10.0000\n"
        "    3      2.0000      0.0000      0.0000      7.1000      1.0000     10.0000\n"
        "    4      3.0000      0.0000      0.0000      7.2000      1.0000     10.0000\n"
        " --------------------------------------------------------------------------------\n"
        "    VACUUM CHARGE:               0.0000\n    NUMBER OF ELECTRONS:        43.4\n"
    )
    rec = read_vasp_folder(d)
    assert rec["charges"] == [14.5, 14.6, 7.1, 7.2] and rec["charge_method"] == "bader"
    (d / "ACF.dat").write_text("garbage\n")
    with pytest.raises(AnalysisInputError, match="no atom rows"):
        read_acf(d / "ACF.dat")
    rec = read_vasp_folder(d)
    assert rec["charges"] is None and "ignored Bader charges" in rec["problems"]


def test_cml_collection_reads_energy_geometry_and_incar():
    df = load_records([DATA / "iochem"])
    assert len(df) == 2 and df["usable"].all()
    df = df.sort_values("energy_eV")
    ni, bare = df.iloc[0], df.iloc[1]
    assert ni["reader"] == "cml" and ni["energy_kind"] == "e_0_energy"
    assert ni["energy_eV"] == pytest.approx(-518.76543210) and bare["energy_eV"] == pytest.approx(-512.34567891)
    assert ni["free_energy_eV"] == pytest.approx(-518.76543210 - 0.0012)
    assert ni["ivdw"] == 11 and ni["encut_eV"] == 450.0 and ni["functional"] == "PBE" and ni["ispin"] == 2
    assert ni["ldau_u"] == "C:0,N:0,Ni:6" and bare["ldau_u"] == ""
    assert ni["formula"] == "C54N4Ni" and ni["atoms"].cell.cellpar()[0] == pytest.approx(12.3)


def test_cml_without_finalization_is_flagged(tmp_path):
    text = (DATA / "iochem" / "collection" / "4N" / "output.cml").read_text()
    cut = text[: text.index('<module dictRef="cc:finalization">')] + " </module>\n</module>\n"
    (tmp_path / "x.cml").write_text(cut)
    df = load_records([tmp_path / "x.cml"])
    assert not df["usable"].iloc[0] and "no cc:finalization" in df["problems"].iloc[0]


def test_archives_zip_and_targz(tmp_path):
    zpath = tmp_path / "download.zip"
    with zipfile.ZipFile(zpath, "w") as zf:
        for f in (VASP / "relax-ldau-spin").iterdir():
            zf.write(f, f"coll/item1/{f.name}")
    tpath = tmp_path / "scratch.tar.gz"
    with tarfile.open(tpath, "w:gz") as tf:
        tf.add(VASP / "unconverged-ionic", arcname="runs/u")
        tf.add(DATA / "iochem" / "collection" / "4N", arcname="runs/cml")
    df = load_records([zpath, tpath])
    assert len(df) == 3
    assert df["usable"].sum() == 2
    flagged = df.loc[~df["usable"], "problems"].iloc[0]
    assert flagged.startswith(f"{tpath}!/runs/u: ionic relaxation not converged")


def _zip_with(path: Path, name: str, data: bytes = b"x", symlink: bool = False) -> Path:
    with zipfile.ZipFile(path, "w") as zf:
        info = zipfile.ZipInfo(name)
        if symlink:
            info.external_attr = 0o120777 << 16
        zf.writestr(info, data)
    return path


def test_archive_path_traversal_and_links_refused(tmp_path):
    for name in ("../evil.txt", "/abs/evil.txt", "a/../../evil.txt"):
        z = _zip_with(tmp_path / "bad.zip", name)
        with pytest.raises(AnalysisInputError, match="unsafe member path|outside"):
            safe_extract(z, tmp_path / "out")
    z = _zip_with(tmp_path / "link.zip", "link", b"/etc/passwd", symlink=True)
    with pytest.raises(AnalysisInputError, match="symbolic link"):
        safe_extract(z, tmp_path / "out")
    t = tmp_path / "link.tar"
    with tarfile.open(t, "w") as tf:
        info = tarfile.TarInfo("calc/OUTCAR")
        info.type = tarfile.SYMTYPE
        info.linkname = "/etc/passwd"
        tf.addfile(info)
    with pytest.raises(AnalysisInputError, match="is a link"):
        safe_extract(t, tmp_path / "out")
    assert not (tmp_path / "evil.txt").exists()


def test_archive_size_limit(tmp_path):
    z = _zip_with(tmp_path / "big.zip", "calc/OUTCAR", b"0" * 10_000)
    with pytest.raises(AnalysisInputError, match="exceeds the limit"):
        safe_extract(z, tmp_path / "out", max_bytes=1000)
    t = tmp_path / "big.tar.gz"
    with tarfile.open(t, "w:gz") as tf:
        info = tarfile.TarInfo("calc/OUTCAR")
        info.size = 10_000
        tf.addfile(info, io.BytesIO(b"0" * 10_000))
    with pytest.raises(AnalysisInputError, match="exceeds the limit"):
        safe_extract(t, tmp_path / "out", max_bytes=1000)


def test_bad_sources(tmp_path):
    with pytest.raises(FileNotFoundError, match="no such file"):
        load_records([tmp_path / "missing"])
    (tmp_path / "x.txt").write_text("hello")
    with pytest.raises(AnalysisInputError, match="not a calculation folder"):
        load_records([tmp_path / "x.txt"])
    (tmp_path / "fake.zip").write_bytes(b"not a zip")
    with pytest.raises(AnalysisInputError, match="not a readable zip or tar"):
        load_records([tmp_path / "fake.zip"])
    (tmp_path / "bad.db").write_text("not sqlite")
    with pytest.raises(AnalysisInputError, match="cannot read as an ASE database"):
        read_ase_db(str(tmp_path / "bad.db"))
    with pytest.raises(AnalysisInputError, match="no vasprun.xml or OUTCAR"):
        read_vasp_folder(tmp_path)


def test_ase_database_rows(tmp_path):
    import ase.db

    from sacmap.structures.builders import build_single_site

    db_path = tmp_path / "results.db"
    db = ase.db.connect(str(db_path))
    at = build_single_site("4N", "Pt")
    from ase.calculators.singlepoint import SinglePointCalculator

    spc = SinglePointCalculator(at, energy=-1234.5, forces=np.zeros((len(at), 3)), magmom=1.5)
    spc.name = "vasp"
    at.calc = spc
    # layout of sacmap.workflows.campaign.results.store: calculator name and magmom live in the (reserved) calculator columns
    kv = dict(config_id="Pt/4N", kind="metal_single", site_kinds="4N", occupants="Pt/4N", metals="Pt",
              pair_id="4N", settings_hash="abc", energy_eV=-1234.5, energy_kind="e_0_energy",
              fmax_eV_A=0.01, converged=True, converged_electronic=True, converged_ionic=True,
              calc_dir="/scratch/Pt-4N", campaign="paper")
    db.write(at, key_value_pairs=kv, data={"charges": [1.0] * len(at), "charge_method": "bader"})
    db.write(at, key_value_pairs={**kv, "converged": False, "converged_ionic": False, "calc_dir": "/scratch/bad"})
    df = load_records([str(db_path)])
    assert len(df) == 2
    good = df[df["usable"]].iloc[0]
    assert good["energy_eV"] == -1234.5 and good["charges"] == [1.0] * len(at) and good["calc_dir"] == "/scratch/Pt-4N"
    assert good["meta"]["config_id"] == "Pt/4N" and good["functional"] == "vasp"
    assert good["magmom"] == 1.5 and good["settings_id"] == "abc"
    assert df.loc[~df["usable"], "problems"].iloc[0] == "/scratch/bad: ionic relaxation not converged " \
        "(stopped before EDIFFG was reached)"


@pytest.mark.postgres
def test_postgres_database_rows():
    import os
    import uuid

    url = os.environ.get("SACMAP_TEST_PG_URL")
    if not url:
        pytest.skip("SACMAP_TEST_PG_URL not set")
    import ase.db

    from sacmap.structures.builders import build_single_site

    tag = f"analysis-{uuid.uuid4().hex[:8]}"
    db = ase.db.connect(url)
    at = build_single_site("3N", "Pd")
    ids = [db.write(at, key_value_pairs=dict(config_id="Pd/3N", energy_eV=-700.25, energy_kind="e_0_energy",
                                             converged=True, calc_dir=f"/x/{tag}", campaign=tag))]
    try:
        recs = read_ase_db(url, selection=f"campaign={tag}")
        assert len(recs) == 1 and recs[0]["usable"] and recs[0]["energy_eV"] == -700.25
        assert recs[0]["atoms"].get_chemical_formula() == at.get_chemical_formula()
    finally:
        db.delete(ids)


def test_archive_inside_archive_and_folder_names(tmp_path):
    inner = tmp_path / "inner.tar.gz"
    with tarfile.open(inner, "w:gz") as tf:
        tf.add(VASP / "unconverged-ionic", arcname="u")
    outer = tmp_path / "outer.zip"
    with zipfile.ZipFile(outer, "w") as zf:
        zf.write(inner, "runs/inner.tar.gz")
    df = load_records([outer], progress=False)
    assert df["calc_dir"].tolist() == [f"{outer}!/runs/inner.tar.gz!/u"]
    assert df["problems"].iloc[0].startswith(f"{outer}!/runs/inner.tar.gz!/u: ionic relaxation not converged")


ACF = (Path(__file__).resolve().parents[1] / "data/analysis/bader/ACF.dat").read_text()  # 3 atoms, 19.7 e


def test_parse_acf_reads_every_column(tmp_path):
    path = tmp_path / "ACF.dat"
    path.write_text(ACF)
    acf = parse_acf(path)
    assert acf["electrons"] == [9.3512, 4.2230, 6.1258]
    assert acf["positions"][1] == [1.42, 0.0, 0.0]
    assert acf["volume"] == [11.2234, 9.8110, 10.1]
    assert acf["n_electrons"] == pytest.approx(19.7)
    assert sum(acf["electrons"]) == pytest.approx(acf["n_electrons"])


@pytest.mark.parametrize("text, match", [
    (ACF.replace("    2      1.4200", "    5      1.4200"), "indices are not 1..3"),
    (ACF.replace("6.1258      0.9020     10.1000", "6.1258"), "expected 7"),
    ("# nothing\n", "no atom rows"),
    (ACF.replace("4.2230", "four"), "unreadable"),
])
def test_parse_acf_rejects_damaged_files(tmp_path, text, match):
    path = tmp_path / "ACF.dat"
    path.write_text(text)
    with pytest.raises(AnalysisInputError, match=match):
        parse_acf(path)
