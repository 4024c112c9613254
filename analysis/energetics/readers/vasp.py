"""VASP calculation folders: ``vasprun.xml`` preferred; ``OUTCAR`` + ``OSZICAR`` + ``CONTCAR`` otherwise (gzip,
bzip2 or xz compressed files too), read with pymatgen and ASE. Energies in eV, forces in eV/Å, moments in μB.

Energy: VASP's ``energy(sigma->0)`` (``energy_kind = "e_0_energy"``); from vasprun.xml pymatgen's
``Vasprun.final_energy`` (which also corrects VASP 5's zero ``e_0_energy``), from an OUTCAR ASE's ``energy``
(sigma→0 of the last *completed* ionic step).

:func:`read_vasprun` is the one vasprun.xml parser of sacmap (the campaign's ``parse_vasp_dir`` uses it too);
:func:`read_vasp_folder` turns a folder into a record (:mod:`.records`).
"""

from __future__ import annotations

import logging
import os
import re
import warnings
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from sacmap.analysis.energetics.readers.bader import attach_bader
from sacmap.analysis.energetics.readers.records import (
    add_problem,
    empty_record,
    find_output,
    finish_record,
    max_force,
    set_atoms,
    settings_record,
    species_order,
)
from sacmap.analysis.errors import AnalysisInputError

log = logging.getLogger(__name__)


@dataclass
class VasprunData:
    """The end of a VASP run as vasprun.xml records it.

    ``energy_eV``: e_0 (sigma→0, eV) of the last ionic step (pymatgen's ``final_energy``), NaN when no ionic
    step completed; ``free_energy_eV``: its ``e_fr_energy``; ``forces``: ``(n, 3)`` eV/Å of the last step (None
    when not written); ``atoms``: the final structure (Å; None without ionic steps); ``truncated``: "" or the
    problem of an XML that ends before the run finished (then the convergence flags are None).
    """

    path: Path
    incar: dict
    parameters: dict
    symbols: list[str]
    potcar_symbols: list[str] | None = None
    n_steps: int = 0
    energy_eV: float = float("nan")
    free_energy_eV: float = float("nan")
    forces: np.ndarray | None = None
    atoms: object = None
    converged_electronic: bool | None = None
    converged_ionic: bool | None = None
    truncated: str = ""

    @property
    def converged(self) -> bool:
        """Both electronically and ionically converged."""
        return bool(self.converged_electronic) and bool(self.converged_ionic)

    @property
    def settings(self) -> dict:
        """The run's settings record (:func:`~sacmap.analysis.energetics.readers.records.settings_record`)."""
        return settings_record(self.incar, self.parameters, potcar_symbols=self.potcar_symbols,
                               species=species_order(self.symbols))


def read_vasprun(path: str | os.PathLike, *, allow_truncated: bool = False) -> VasprunData:
    """Parse a (possibly compressed) ``vasprun.xml`` with pymatgen (no DOS, eigenvalues or POTCAR).

    A truncated XML raises :class:`AnalysisInputError` (``"truncated vasprun.xml: ..."``) unless
    ``allow_truncated``: then the completed ionic steps are read and ``truncated`` holds the problem. An
    unreadable file raises :class:`AnalysisInputError` (``"unreadable vasprun.xml (...)"``).
    """
    from lxml.etree import XMLSyntaxError
    from pymatgen.io.ase import AseAtomsAdaptor
    from pymatgen.io.vasp.outputs import Vasprun

    path = Path(path)
    kw = dict(parse_dos=False, parse_eigen=False, parse_projected_eigen=False, parse_potcar_file=False)
    truncated = ""
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        try:
            vr = Vasprun(str(path), **kw)
        except XMLSyntaxError as exc:
            truncated = f"truncated {path.name}: the XML ends before the run finished ({exc})"
            if not allow_truncated:
                raise AnalysisInputError(truncated) from exc
            try:
                vr = Vasprun(str(path), exception_on_bad_xml=False, **kw)
            except Exception:  # noqa: BLE001
                raise AnalysisInputError(truncated) from exc
        except Exception as exc:  # noqa: BLE001 - pymatgen raises many kinds of errors on bad files
            raise AnalysisInputError(f"unreadable {path.name} ({type(exc).__name__}: {exc})") from exc
    out = VasprunData(path=path, incar=dict(vr.incar), parameters=dict(vr.parameters),
                      symbols=list(vr.atomic_symbols), potcar_symbols=list(vr.potcar_symbols or []),
                      n_steps=len(vr.ionic_steps), truncated=truncated)
    if not vr.ionic_steps:
        return out
    if not truncated:  # a partial run cannot be trusted, whatever pymatgen claims about convergence
        out.converged_ionic = bool(vr.converged_ionic)
        out.converged_electronic = bool(vr.converged_electronic)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        out.energy_eV = float(vr.final_energy)
    last = vr.ionic_steps[-1]
    out.free_energy_eV = float(last.get("e_fr_energy", np.nan))
    forces = last.get("forces")
    out.forces = None if forces is None else np.asarray(forces, float)
    out.atoms = AseAtomsAdaptor.get_atoms(vr.final_structure)
    return out


def oszicar_magmom(folder: str | os.PathLike) -> float | None:
    """Total magnetic moment (μB) of the last ionic step in ``folder/OSZICAR``; None when absent or unreadable."""
    from pymatgen.io.vasp import Oszicar

    osz = Path(folder) / "OSZICAR"
    if not osz.is_file():
        return None
    try:
        steps = Oszicar(str(osz)).ionic_steps
    except Exception:  # noqa: BLE001 - a damaged OSZICAR only loses the moment
        log.warning("%s: OSZICAR unreadable; magnetic moment not recorded", osz)
        return None
    return float(steps[-1]["mag"]) if steps and "mag" in steps[-1] else None


def read_incar(folder: Path) -> dict:
    """The INCAR tags in ``folder`` (plain or compressed); {} when absent or unreadable (logged)."""
    from pymatgen.io.vasp.inputs import Incar

    p = find_output(folder, "INCAR")
    if p is None:
        return {}
    try:
        return dict(Incar.from_file(p))
    except Exception as exc:  # noqa: BLE001 - a broken INCAR is a record problem, not a crash
        log.warning("%s: unreadable INCAR (%s)", p, exc)
        return {}


def _read_vasprun(path: Path, rec: dict, folder: Path) -> None:
    try:
        run = read_vasprun(path, allow_truncated=True)
    except AnalysisInputError as exc:
        add_problem(rec, str(exc))
        return
    if run.truncated:
        add_problem(rec, run.truncated)
        rec["meta"]["truncated"] = True
    params = run.parameters
    rec.update(run.settings)
    if not run.n_steps:
        add_problem(rec, f"{path.name} holds no completed ionic step")
        return
    if not run.truncated:
        rec["converged_ionic"] = run.converged_ionic
        rec["converged_electronic"] = run.converged_electronic
        rec["meta"]["nelm"] = int(params.get("NELM", 60))
    rec["energy_eV"] = run.energy_eV
    rec["free_energy_eV"] = run.free_energy_eV
    rec["energy_kind"] = "e_0_energy"
    rec["fmax_eV_A"] = max_force(run.forces)
    set_atoms(rec, run.atoms)
    # magnetic moments are not in vasprun.xml: take them from an OUTCAR beside it, if any
    outcar = find_output(folder, "OUTCAR")
    if outcar is not None and rec["ispin"] == 2:
        try:
            from ase.io import read

            at = read(str(outcar), index=-1, format="vasp-out")
            rec["magmom"] = float(at.get_magnetic_moment())
            rec["magmoms"] = [float(m) for m in at.get_magnetic_moments()]
        except Exception:  # noqa: BLE001 - magnetisation is optional
            pass


def _outcar_text(path: Path) -> str:
    from monty.io import zopen

    with zopen(str(path), "rt", errors="replace") as fh:
        return fh.read()


def _outcar_potcars(text: str) -> list[str]:
    """POTCAR TITEL lines of an OUTCAR (``PAW_PBE Fe 06Sep2000``), once per species."""
    return list(dict.fromkeys(m.strip() for m in re.findall(r"TITEL\s*=\s*(.+)", text)))


def _read_outcar(path: Path, rec: dict, folder: Path) -> None:
    from ase.io import read
    from pymatgen.io.vasp.outputs import Oszicar

    incar = read_incar(folder)
    text = _outcar_text(path)
    if "General timing and accounting" not in text:
        add_problem(rec, f"truncated {path.name}: no 'General timing and accounting' footer (run did not finish)")
        rec["converged_ionic"] = False
    try:
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            at = read(str(path), index=-1, format="vasp-out")
    except Exception as exc:  # noqa: BLE001
        add_problem(rec, f"unreadable {path.name} ({type(exc).__name__}: {exc}); no completed ionic step")
        return
    species = species_order(at.get_chemical_symbols())
    if not incar:
        add_problem(rec, "no INCAR beside the OUTCAR: settings unknown")
    rec.update(settings_record(incar, potcar_symbols=_outcar_potcars(text), species=species))
    calc = at.calc
    rec["energy_eV"] = float(calc.results.get("energy", np.nan))
    rec["free_energy_eV"] = float(calc.results.get("free_energy", np.nan))
    rec["energy_kind"] = "e_0_energy"
    rec["fmax_eV_A"] = max_force(calc.results.get("forces"))
    if "magmoms" in calc.results:
        rec["magmoms"] = [float(m) for m in calc.results["magmoms"]]
    if "magmom" in calc.results:
        rec["magmom"] = float(calc.results["magmom"])
    contcar = find_output(folder, "CONTCAR")
    if contcar is not None:
        try:
            at_c = read(str(contcar), format="vasp")
            if len(at_c) == len(at):
                at = at_c
        except Exception:  # noqa: BLE001 - fall back to the OUTCAR geometry
            pass
    at.calc = None
    set_atoms(rec, at)
    # ionic convergence: VASP prints this line when EDIFFG is met; single points (NSW <= 1 / IBRION -1) count
    nsw, ibrion = int(incar.get("NSW", 0) or 0), int(incar.get("IBRION", -1 if int(incar.get("NSW", 0) or 0) <= 1 else 0))
    if rec["converged_ionic"] is None:
        rec["converged_ionic"] = bool("reached required accuracy" in text or nsw <= 1 or ibrion == -1)
    # electronic convergence of the last ionic step: number of SCF steps against NELM
    nelm = int(incar.get("NELM", 60))
    oszicar = find_output(folder, "OSZICAR")
    n_scf = None
    if oszicar is not None:
        try:
            steps = Oszicar(str(oszicar)).electronic_steps
            n_scf = len(steps[-1]) if steps else None
        except Exception:  # noqa: BLE001
            n_scf = None
    if n_scf is None:
        last = text.rsplit("FREE ENERGIE OF THE ION-ELECTRON SYSTEM", 1)[0]
        its = re.findall(r"Iteration\s+(\d+)\(\s*(\d+)\)", last)
        n_scf = int(its[-1][1]) if its else None
    rec["meta"]["nelm"] = nelm
    rec["converged_electronic"] = None if n_scf is None else bool(n_scf < nelm)
    if n_scf is None:
        add_problem(rec, "cannot tell electronic convergence (no OSZICAR and no SCF iterations in OUTCAR)")


def is_calc_folder(folder: Path) -> bool:
    """True when ``folder`` holds a vasprun.xml or an OUTCAR (plain, compressed or custodian-suffixed)."""
    return find_output(folder, "vasprun.xml") is not None or find_output(folder, "OUTCAR") is not None


def read_vasp_folder(folder: str | os.PathLike, source: str | None = None) -> dict:
    """One record (dict with :data:`~.records.RECORD_COLUMNS`) from a VASP calculation folder.

    Raises :class:`AnalysisInputError` only if the folder holds neither vasprun.xml nor OUTCAR.
    """
    folder = Path(folder)
    vasprun, outcar = find_output(folder, "vasprun.xml"), find_output(folder, "OUTCAR")
    if vasprun is None and outcar is None:
        raise AnalysisInputError(f"{folder}: no vasprun.xml or OUTCAR (plain or .gz) in this folder")
    rec = empty_record(source or str(folder), str(folder), "vasprun" if vasprun else "outcar")
    if vasprun is not None:
        _read_vasprun(vasprun, rec, folder)
    else:
        _read_outcar(outcar, rec, folder)
    attach_bader(rec, folder)
    return finish_record(rec)
