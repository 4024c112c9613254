"""Bader availability and the embedded calculator registry (charges only when real); ACF.dat parsing is tested
with the analysis readers (tests/analysis/test_readers.py)."""

from __future__ import annotations

import os
from pathlib import Path

import numpy as np
import pytest

from sacmap.workflows.campaign import bader
from sacmap.workflows.campaign.calculators import CalculatorEntry, available, get_calculator
from sacmap.workflows.campaign.calculators.relax import relax
from sacmap.workflows.errors import WorkflowInputError

ACF = (Path(__file__).resolve().parents[1] / "data/analysis/bader/ACF.dat").read_text()  # 3 atoms, 19.7 e


def test_no_bader_program_or_density_gives_no_charges(tmp_path, monkeypatch):
    assert bader.bader_charges(tmp_path) is None  # no CHGCAR
    (tmp_path / "CHGCAR").write_text("x")
    monkeypatch.setattr(bader, "_real_bader", lambda: None)
    import builtins

    real_import = builtins.__import__

    def no_pybader(name, *args, **kwargs):
        if name.startswith("pybader"):
            raise ImportError(name)
        return real_import(name, *args, **kwargs)

    monkeypatch.setattr(builtins, "__import__", no_pybader)
    assert bader.bader_charges(tmp_path) is None


def test_pybader_console_script_is_not_taken_for_henkelmans_bader(tmp_path, monkeypatch):
    script = tmp_path / "bader"
    script.write_text("#!/usr/bin/env python3\nfrom pybader.cli import main\nmain()\n")
    script.chmod(0o755)
    monkeypatch.setenv("PATH", str(tmp_path))
    assert bader._real_bader() is None
    script.write_bytes(b"\x7fELF\x02\x01\x01" + b"\0" * 64)
    assert bader._real_bader() == str(script)


def test_registry_lists_calculators_and_names_missing_extras():
    names = available()
    assert {"chgnet-d3", "chgnet", "emt", "sevennet-d3", "tblite", "gpaw"} <= set(names)
    assert get_calculator("chgnet-d3").charge_method is None  # CHGNet predicts no atomic charges
    with pytest.raises(KeyError, match="unknown calculator 'x'"):
        get_calculator("x")
    for name, extra in (("tblite", "xtb"), ("sevennet-d3", "sevennet")):
        try:
            get_calculator(name).factory({})
        except WorkflowInputError as exc:
            assert extra in str(exc) or "GPAW" in str(exc)
        except Exception:  # installed here: building it is enough
            pass


class _ChargedEMT:
    """EMT plus a per-atom 'charges' result, to exercise the charge plumbing of :func:`relax`."""

    def __new__(cls):
        from ase.calculators.emt import EMT

        class ChargedEMT(EMT):
            implemented_properties = [*EMT.implemented_properties, "charges"]

            def calculate(self, atoms=None, properties=("energy",), system_changes=None):
                super().calculate(atoms, properties, system_changes or [])
                self.results["charges"] = np.linspace(-0.1, 0.1, len(self.atoms))

        return ChargedEMT()


def test_charges_are_recorded_only_when_the_calculator_gives_them(make_config, tmp_path, monkeypatch):
    from sacmap.workflows.campaign import calculators

    monkeypatch.setattr(calculators, "_REGISTRY", dict(calculators._REGISTRY))
    atoms = make_config(None, "4N_q", rattle=0.02)
    settings = {"fmax_eV_A": 0.5, "optimizer": "FIRE", "max_steps": 5}
    plain = relax(atoms, "emt", settings, tmp_path / "plain")
    assert "charges" not in plain and "charge_method" not in plain
    calculators.register(CalculatorEntry("test-charged-emt", lambda s: _ChargedEMT(), "test only", charge_method="test"))
    charged = relax(atoms, "test-charged-emt", settings, tmp_path / "charged")
    assert charged["charge_method"] == "test"
    assert charged["charges"] == pytest.approx(np.linspace(-0.1, 0.1, len(atoms)))
    assert (tmp_path / "charged" / "relax.traj").stat().st_size > 0
    assert charged["n_steps"] <= 5


def _density_folder(tmp_path):
    """POSCAR + CHGCAR + AECCAR0/2 of a 3-atom cell (uniform density: only the files' plumbing matters)."""
    from pymatgen.core import Lattice, Structure
    from pymatgen.io.vasp import Chgcar, Poscar

    tmp_path.mkdir(parents=True, exist_ok=True)
    s = Structure(Lattice.cubic(6.0), ["Ni", "C", "N"], [[0, 0, 0], [0.25, 0, 0], [0.5, 0, 0]])
    Poscar(s).write_file(tmp_path / "POSCAR")
    for name in ("CHGCAR", "AECCAR0", "AECCAR2"):
        Chgcar(Poscar(s), {"total": np.full((4, 4, 4), 19.7 * 216.0 / 64)}).write_file(tmp_path / name)
    return tmp_path


def test_henkelman_bader_through_pymatgen(tmp_path, monkeypatch):
    """A stand-in for Henkelman's binary (a shell script, not Python) writes a recorded ACF.dat."""
    run = _density_folder(tmp_path / "run")
    (tmp_path / "ACF.src").write_text(ACF)
    binary = tmp_path / "bin" / "bader"
    binary.parent.mkdir()
    binary.write_text(f"#!/bin/sh\ncp {tmp_path / 'ACF.src'} ACF.dat\n"
                      "echo '  GRID BASED BADER ANALYSIS  (Version 1.05 08/19/23)'\n")
    binary.chmod(0o755)
    monkeypatch.setenv("PATH", f"{binary.parent}:{os.environ['PATH']}")
    monkeypatch.setattr(bader, "zvals", lambda d: None)
    out = bader.bader_charges(run)
    assert out["charge_method"] == "bader-henkelman"  # AECCAR0 + AECCAR2 reference used
    assert out["electrons"] == pytest.approx([9.3512, 4.2230, 6.1258])
    assert out["charges"] is None  # no POTCAR: no ZVAL, so no net charges (never guessed)
    monkeypatch.setattr(bader, "zvals", lambda d: [10.0, 4.0, 5.0])  # Ni, C, N valence electrons
    out = bader.bader_charges(run)
    assert out["charges"] == pytest.approx([10.0 - 9.3512, 4.0 - 4.2230, 5.0 - 6.1258])
