"""`sacmap energies`: end to end from a results database, a CML collection and VASP folders; bad inputs."""

from __future__ import annotations

import shutil
from pathlib import Path

import numpy as np
import pandas as pd
import pytest

from sacmap.structures import builders as B
from sacmap.structures.pairs import enumerate_pairs
from sacmap.workflows import cli

DATA = Path(__file__).resolve().parents[1] / "data" / "analysis"


def _write_db(path: Path) -> None:
    import ase.db
    from ase.calculators.singlepoint import SinglePointCalculator

    p = [q for q in enumerate_pairs("4N", "4N", 9.0) if q.swap_symmetric][0]
    far = enumerate_pairs("4N", "4N", 9.0)[-1]
    rows = [
        (B.build_pair(p), -1000.0), (B.build_pair(p, ("Ni", None)), -1005.5), (B.build_pair(p, ("Ni", "Ni")), -1010.8),
        (B.build_pair(far), -1000.3), (B.build_single_site("4N"), -1003.0), (B.build_single_site("4N", "Ni"), -1008.0),
        (B.build_dimer("4N", "Ni"), -1011.0), (B.build_gas_atom("Ni"), -0.7),
    ]
    db = ase.db.connect(str(path))
    for k, (at, e) in enumerate(rows):
        at = at.copy()
        at.calc = SinglePointCalculator(at, energy=e, forces=np.zeros((len(at), 3)))
        kv = dict(config_id=at.info["id"], settings_hash="h1", energy_eV=e, energy_kind="e_0_energy",
                  fmax_eV_A=0.01, converged=True, converged_electronic=True, converged_ionic=k != 3,
                  calc_dir=f"/scratch/{k}", campaign="t")
        db.write(at, key_value_pairs=kv)


def test_cli_from_database(tmp_path, capsys):
    db = tmp_path / "results.db"
    _write_db(db)
    out = tmp_path / "out"
    assert cli.main(["energies", str(db), "-o", str(out)]) == 0
    printed = capsys.readouterr()
    assert "read 8, recognised 8, flagged 1, used 7" in printed.out
    assert "/scratch/3: ionic relaxation not converged" in printed.err
    e_int = pd.read_csv(out / "e_int.csv")
    assert e_int["E_int_eV"].tolist() == pytest.approx([0.2])
    dim = pd.read_csv(out / "dimer_formation.csv")
    # Ni2/4N: from isolated centres -1011 - 1003 + 2 * 1008 = +2.0; from gas -1011 + 1003 + 1.4 = -6.6
    assert dim["E_dimer_from_isolated_eV"].tolist() == pytest.approx([2.0])
    assert dim["E_dimer_from_gas_eV"].tolist() == pytest.approx([-6.6])
    ssp = pd.read_csv(out / "site_site_potential.csv")
    assert len(ssp) == 1 and ssp["energy_eV"].iloc[0] == 0.0  # the unconverged far pair is not the reference
    for png in ("fig4a_dimer_formation.png", "fig4b_site_site_potential.png", "fig4c_nC_bader.png", "e_int.png"):
        assert (out / png).stat().st_size > 1000


def test_cli_mixed_sources_count_flags(tmp_path, capsys):
    tree = tmp_path / "download"
    shutil.copytree(DATA / "iochem", tree / "iochem")
    shutil.copytree(DATA / "vasp" / "unconverged-ionic", tree / "hpc" / "run1")
    shutil.copytree(DATA / "vasp" / "relax-ldau-spin", tree / "hpc" / "deeper" / "run2")
    out = tmp_path / "out"
    assert cli.main(["energies", str(tree), "-o", str(out), "--no-figures"]) == 0
    printed = capsys.readouterr()
    # 2 CML (recognised N-doped graphene) + 2 VASP runs of bulk oxides/metals (not recognised, one unconverged)
    assert "read 4, recognised 2, flagged 1, used 0" in printed.out
    assert "not recognised" in printed.err
    rec = pd.read_csv(out / "records.csv")
    assert set(rec["kind"].dropna()) == {"single_site", "metal_single"}
    assert not list(out.glob("*.png"))


def test_cli_bad_inputs(tmp_path, capsys):
    assert cli.main(["energies", str(tmp_path / "nope"), "-o", str(tmp_path / "o")]) == 2
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 1 and "no such file" in err[0]
    (tmp_path / "empty").mkdir()
    assert cli.main(["energies", str(tmp_path / "empty"), "-o", str(tmp_path / "o")]) == 2
    assert "no calculations found" in capsys.readouterr().err
    evil = tmp_path / "evil.tar"
    import tarfile

    with tarfile.open(evil, "w") as tf:
        tf.add(DATA / "iochem" / "collection" / "4N" / "INCAR", arcname="../../escape/INCAR")
    assert cli.main(["energies", str(evil), "-o", str(tmp_path / "o")]) == 2
    assert "unsafe member path" in capsys.readouterr().err
