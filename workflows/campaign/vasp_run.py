"""Running VASP through custodian and reading its outputs (through the analysis readers)."""

from __future__ import annotations

import logging
import os
import shlex
from pathlib import Path

import numpy as np

from sacmap.workflows.errors import WorkflowInputError

log = logging.getLogger(__name__)


def vasp_command(fw_env: dict | None = None) -> list[str]:
    """The VASP command: FWorker ``env.vasp_cmd`` (my_fworker.yaml), else ``$SACMAP_VASP_CMD``."""
    cmd = (fw_env or {}).get("vasp_cmd") or os.environ.get("SACMAP_VASP_CMD")
    if not cmd:
        raise WorkflowInputError(
            "no VASP command: set env.vasp_cmd in my_fworker.yaml or the SACMAP_VASP_CMD environment variable"
        )
    return list(cmd) if isinstance(cmd, (list, tuple)) else shlex.split(str(cmd))


def default_handlers(output_file: str = "vasp.out", walltime_s: int | None = None,
                     names: list[str] | None = None) -> list:
    """custodian's usual VASP error handlers (+ WalltimeHandler when a wall time is known); ``names`` keeps
    only those handler classes."""
    from custodian.vasp.handlers import (
        FrozenJobErrorHandler,
        IncorrectSmearingHandler,
        LargeSigmaHandler,
        MeshSymmetryErrorHandler,
        NonConvergingErrorHandler,
        PositiveEnergyErrorHandler,
        PotimErrorHandler,
        StdErrHandler,
        UnconvergedErrorHandler,
        VaspErrorHandler,
        WalltimeHandler,
    )

    handlers = [
        VaspErrorHandler(output_filename=output_file),
        MeshSymmetryErrorHandler(output_filename=output_file),
        UnconvergedErrorHandler(),
        NonConvergingErrorHandler(),
        PotimErrorHandler(),
        PositiveEnergyErrorHandler(),
        FrozenJobErrorHandler(output_filename=output_file),
        StdErrHandler(),
        LargeSigmaHandler(),
        IncorrectSmearingHandler(),
    ]
    if names is not None:
        handlers = [h for h in handlers if type(h).__name__ in names]
    if walltime_s:
        handlers.append(WalltimeHandler(wall_time=int(walltime_s)))
    return handlers


def run_custodian(directory: str | Path, vasp_cmd: list[str], *, max_errors: int = 5,
                  walltime_s: int | None = None, polling_time_step: float = 10, monitor_freq: int = 30,
                  handlers: list[str] | None = None) -> list:
    """Run VASP in ``directory`` under custodian (handlers + VasprunXML/VaspFiles validators).

    Returns the list of corrections custodian applied (also in ``custodian.json``).
    """
    from custodian import Custodian
    from custodian.vasp.jobs import VaspJob
    from custodian.vasp.validators import VaspFilesValidator, VasprunXMLValidator

    directory = Path(directory).resolve()
    cwd = os.getcwd()
    os.chdir(directory)
    try:
        c = Custodian(
            default_handlers(walltime_s=walltime_s, names=handlers),
            [VaspJob(vasp_cmd, auto_npar=False)],
            validators=[VasprunXMLValidator(), VaspFilesValidator()],
            max_errors=max_errors,
            polling_time_step=polling_time_step,
            monitor_freq=monitor_freq,
            directory=str(directory),
        )
        return c.run()
    finally:
        os.chdir(cwd)


def parse_vasp_dir(directory: str | Path) -> dict:
    """Final structure and energy of a finished VASP run (vasprun.xml, OSZICAR), read with the analysis readers
    (:func:`sacmap.analysis.energetics.readers.read_vasprun`, the one vasprun.xml parser).

    ``energy_eV`` is the last ionic step's ``e_0_energy`` (energy(sigma→0), eV; pymatgen's ``final_energy``,
    which repairs the zero ``e_0_energy`` that VASP 5.4.4 writes in vasprun.xml); ``forces`` in eV/Å;
    ``magmom`` the total moment (μB) from OSZICAR (0 for ISPIN 1). A truncated vasprun.xml, or outputs whose
    composition differs from the POSCAR in the folder, raise ``RuntimeError`` (never a partial or foreign
    energy).
    """
    from pymatgen.core import Composition

    from sacmap.analysis.energetics.readers import oszicar_magmom, read_vasprun
    from sacmap.analysis.errors import AnalysisInputError

    directory = Path(directory)
    vr_path = next((p for p in (directory / "vasprun.xml", directory / "vasprun.xml.gz") if p.is_file()), None)
    if vr_path is None:
        raise FileNotFoundError(f"{directory / 'vasprun.xml'} (nor vasprun.xml.gz) not found")
    try:
        run = read_vasprun(vr_path)
    except AnalysisInputError as exc:
        raise RuntimeError(f"{vr_path}: incomplete or unreadable vasprun.xml ({exc})") from exc
    if not run.n_steps:
        raise RuntimeError(f"{vr_path}: no completed ionic step")
    atoms = run.atoms
    poscar = directory / "POSCAR"
    if poscar.is_file():
        from pymatgen.io.vasp import Poscar

        given = Poscar.from_file(str(poscar), check_for_potcar=False).structure.composition
        found = Composition(atoms.get_chemical_formula())
        if given != found:
            raise RuntimeError(f"{vr_path}: outputs are for {found.formula}, but the "
                               f"POSCAR here is {given.formula}: not this calculation's outputs")
    forces = run.forces if run.forces is not None else np.zeros((len(atoms), 3))
    magmom = oszicar_magmom(directory)
    if magmom is None and run.parameters.get("ISPIN", 1) == 1:
        magmom = 0.0
    return {
        "atoms": atoms,
        "energy_eV": run.energy_eV,  # e_0_energy with pymatgen's fix of VASP 5.4.4's vasprun bug
        "energy_kind": "e_0_energy",
        "forces": forces,
        "fmax_eV_A": float(np.sqrt((forces**2).sum(axis=1)).max()) if len(forces) else 0.0,
        "converged_electronic": bool(run.converged_electronic),
        "converged_ionic": bool(run.converged_ionic),
        "converged": run.converged,
        "magmom": magmom,
        "n_steps": run.n_steps,
    }
