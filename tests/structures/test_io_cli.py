"""extxyz/POSCAR/index.csv round trips and the `sacmap structures` commands."""

from __future__ import annotations

import math

import numpy as np
import pytest
from ase.io import read

from sacmap.structures import (
    build_gas_atom,
    build_pair,
    build_single_site,
    enumerate_pairs,
    read_configuration,
    read_index,
    safe_name,
    write_configurations,
)
from sacmap.workflows import cli


def test_write_read_round_trip(tmp_path):
    p = enumerate_pairs("3N", "4N")[4]
    atoms = [build_pair(p, ("Ni", "Pd")), build_single_site("6N"), build_gas_atom("Pt")]
    index = write_configurations(atoms, tmp_path)
    df = read_index(tmp_path)
    assert index == tmp_path / "index.csv"
    assert list(df["id"]) == [a.info["id"] for a in atoms]
    assert list(df.columns[:8]) == ["id", "kind", "site_kinds", "separation_A", "shares_NN_bond", "occupants",
                                    "n_atoms", "formula"]
    assert df["separation_A"][0] == pytest.approx(p.separation_A, abs=1e-4) and math.isnan(df["separation_A"][1])
    assert df["n_atoms"].tolist() == [len(a) for a in atoms]
    assert df["shares_NN_bond"].dtype == bool
    for a in atoms:
        b = read_configuration(tmp_path, a.info["id"])
        assert b.get_chemical_symbols() == a.get_chemical_symbols()
        assert np.allclose(b.positions, a.positions)
        for k in ("id", "kind", "site_kinds", "occupants", "metals", "pair_id", "sites", "n_C_between",
                  "shares_NN_bond", "spin_polarised", "kpts"):
            assert b.info[k] == a.info[k], k
            assert type(b.info[k]) is type(a.info[k]), k
        assert b.info["separation_A"] == pytest.approx(a.info["separation_A"], nan_ok=True)
        stem = safe_name(a.info["id"])
        poscar = read(tmp_path / f"{stem}.POSCAR", format="vasp")
        assert poscar.get_chemical_symbols() == a.get_chemical_symbols()
        assert np.allclose(poscar.positions, a.positions, atol=1e-6)
    assert not [f for f in tmp_path.iterdir() if f.name.startswith(".")]  # no temp files left behind


def test_safe_names():
    assert safe_name("Ni/3N-Pd/4N_d3.55_a") == "Ni__3N-Pd__4N_d3.55_a"
    assert "/" not in safe_name("a/b c") and " " not in safe_name("a/b c")


def test_cli_build_list_show(tmp_path, repo_dir, capsys):
    spec = repo_dir / "inputs" / "campaigns" / "demo.yaml"
    assert cli.main(["structures", "list", str(spec)]) == 0
    out = capsys.readouterr().out
    assert "bare_4N-4N" in out and "total" in out
    total = int(out.strip().splitlines()[-1].split()[-1])
    outdir = tmp_path / "built"
    assert cli.main(["structures", "build", str(spec), "-o", str(outdir)]) == 0
    df = read_index(outdir)
    assert len(df) == total
    assert len(list(outdir.glob("*.extxyz"))) == total and len(list(outdir.glob("*.POSCAR"))) == total
    cid = df[df["kind"] == "metal_pair"]["id"].iloc[0]
    png = tmp_path / "show.png"
    assert cli.main(["structures", "show", str(outdir), cid, "-o", str(png)]) == 0
    assert png.stat().st_size > 10_000 and png.read_bytes()[:4] == b"\x89PNG"


def test_cli_errors_exit_2(tmp_path, capsys):
    bad = tmp_path / "bad.yaml"
    bad.write_text("name: x\nstructures:\n  sets:\n    - {name: a, type: pair, kinds: [4N, 9N]}\n")
    assert cli.main(["structures", "build", str(bad), "-o", str(tmp_path / "o")]) == 2
    err = capsys.readouterr().err
    assert str(bad) in err and "kinds[1]" in err and len(err.strip().splitlines()) == 1
    assert cli.main(["structures", "list", str(tmp_path / "missing.yaml")]) == 2
    assert cli.main(["structures", "show", str(tmp_path), "nope", "-o", str(tmp_path / "x.png")]) == 2
