"""Running VASP through custodian and reading its outputs (through the analysis readers)."""

from __future__ import annotations

import logging
import os
import shlex
from pathlib import Path

import numpy as np

from sacmap.workflows.errors import WorkflowInputError

log = logging.getLogger(__name__)


def _split(cmd) -> list[str]:
    return list(cmd) if isinstance(cmd, (list, tuple)) else shlex.split(str(cmd))


def vasp_command(fw_env: dict | None = None) -> list[str]:
    """The VASP command: FWorker ``env.vasp_cmd`` (my_fworker.yaml), else ``$SACMAP_VASP_CMD``."""
    cmd = (fw_env or {}).get("vasp_cmd") or os.environ.get("SACMAP_VASP_CMD")
    if not cmd:
        raise WorkflowInputError(
            "no VASP command: set env.vasp_cmd in my_fworker.yaml or the SACMAP_VASP_CMD environment variable"
        )
    return _split(cmd)


def gamma_vasp_command(fw_env: dict | None = None) -> list[str] | None:
    """The Γ-only VASP command (``vasp_gam``): FWorker ``env.gamma_vasp_cmd``, else ``$SACMAP_GAMMA_VASP_CMD``;
    custodian's ``VaspJob`` runs it when the KPOINTS is a single Γ point (gas references) and its last word is an
    executable on PATH. None when not configured."""
    cmd = (fw_env or {}).get("gamma_vasp_cmd") or os.environ.get("SACMAP_GAMMA_VASP_CMD")
    return _split(cmd) if cmd else None


#: per-worker INCAR tags (parallelisation only: they never change results, so they stay out of the settings hash)
WORKER_INCAR_TAGS = ("NCORE", "KPAR", "NPAR", "NSIM")


def worker_incar(fw_env: dict | None = None) -> dict:
    """Parallelisation tags of this worker: ``env.incar`` in my_fworker.yaml (e.g. ``{NCORE: 8, KPAR: 2}``) or
    ``env.NCORE`` / ``env.KPAR`` / ``env.NPAR`` / ``env.NSIM``; anything else is refused (physics settings
    belong in the preset, where the settings hash sees them)."""
    env = fw_env or {}
    tags = {k.upper(): v for k, v in (env.get("incar") or {}).items()}
    tags.update({k: env[k] for k in WORKER_INCAR_TAGS if k in env})
    bad = sorted(set(tags) - set(WORKER_INCAR_TAGS))
    if bad:
        raise WorkflowInputError(f"my_fworker.yaml env.incar: {bad} are not parallelisation tags (only "
                                 f"{list(WORKER_INCAR_TAGS)}); put physics settings in the VASP preset")
    out = {}
    for k, v in tags.items():
        try:
            out[k] = int(v)
        except (TypeError, ValueError):
            raise WorkflowInputError(f"my_fworker.yaml env.{k}: {v!r} is not an integer") from None
        if out[k] < 1:
            raise WorkflowInputError(f"my_fworker.yaml env.{k}: {v!r} must be at least 1")
    return out


def corrections_record(run_log) -> list[dict]:
    """custodian's run log (``Custodian.run()`` or ``custodian.json``) as JSON-able corrections:
    ``[{"handler": class name, "errors": [...], "actions": [...]}]`` in the order applied."""
    out = []
    for job in run_log or []:
        for corr in job.get("corrections", []) or []:
            handler = corr.get("handler")
            if isinstance(handler, dict):
                name = str(handler.get("@class", "?"))
            else:
                name = type(handler).__name__ if handler is not None else "?"
            out.append({"handler": name, "errors": [str(e) for e in corr.get("errors") or []],
                        "actions": _jsonable(corr.get("actions"))})
    return out


def _jsonable(obj):
    import json

    try:
        return json.loads(json.dumps(obj, default=str))
    except (TypeError, ValueError):
        return str(obj)


def custodian_failure(exc: Exception, run_log=None) -> str:
    """One line naming a custodian failure: the error class, the handler or validator class, the errors it
    found and custodian's message (object reprs such as ``<…VaspErrorHandler object at 0x…>`` replaced by the
    class name)."""
    import re

    culprit = getattr(exc, "handler", None) or getattr(exc, "validator", None)
    name = type(culprit).__name__ if culprit is not None else ""
    msg = re.sub(r"<[\w.]*?\.?(\w+) object at 0x[0-9a-f]+>", r"\1", str(getattr(exc, "message", exc)))
    errors = []
    for corr in corrections_record(run_log)[::-1]:
        if not name or corr["handler"] == name:
            errors = corr["errors"]
            break
    text = f"custodian {type(exc).__name__}"
    if name:
        text += f" ({name})"
    if errors:
        text += f": {', '.join(errors)}"
    return f"{text} [{msg}]"


def default_handlers(output_file: str = "vasp.out", walltime_s: int | None = None,
                     names: list[str] | None = None, walltime_buffer_s: int = 300) -> list:
    """custodian's usual VASP error handlers (+ WalltimeHandler when a wall time is known: STOPCAR
    ``walltime_buffer_s`` before it); ``names`` keeps only those handler classes."""
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
        handlers.append(WalltimeHandler(wall_time=int(walltime_s), buffer_time=int(walltime_buffer_s)))
    return handlers


def run_custodian(directory: str | Path, vasp_cmd: list[str], *, max_errors: int = 5,
                  walltime_s: int | None = None, polling_time_step: float = 10, monitor_freq: int = 30,
                  handlers: list[str] | None = None, gamma_vasp_cmd: list[str] | None = None,
                  scratch_dir: str | None = None, walltime_buffer_s: int = 300) -> list[dict]:
    """Run VASP in ``directory`` under custodian (handlers + VasprunXML/VaspFiles validators).

    Returns the corrections custodian applied (:func:`corrections_record`; all of them also in
    ``custodian.json``). A custodian failure raises ``RuntimeError`` with :func:`custodian_failure`'s line (the
    error class, the handler and the errors it found), never the bare handler object. ``scratch_dir``: custodian
    runs VASP in a temporary folder there and copies the outputs back (the worker's ``env.scratch_dir``).
    """
    from custodian import Custodian
    from custodian.custodian import CustodianError
    from custodian.vasp.jobs import VaspJob
    from custodian.vasp.validators import VaspFilesValidator, VasprunXMLValidator

    directory = Path(directory).resolve()
    cwd = os.getcwd()
    os.chdir(directory)
    try:
        c = Custodian(
            default_handlers(walltime_s=walltime_s, names=handlers, walltime_buffer_s=walltime_buffer_s),
            [VaspJob(vasp_cmd, auto_npar=False, gamma_vasp_cmd=gamma_vasp_cmd)],
            validators=[VasprunXMLValidator(), VaspFilesValidator()],
            max_errors=max_errors,
            polling_time_step=polling_time_step,
            monitor_freq=monitor_freq,
            directory=str(directory),
            scratch_dir=os.path.expandvars(scratch_dir) if scratch_dir else None,
        )
        try:
            return corrections_record(c.run())
        except CustodianError as exc:
            raise RuntimeError(custodian_failure(exc, c.run_log)) from exc
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
        "settings_record": _plain(run.settings),  # the analysis readers' settings record, stored with the row
    }


def _plain(record: dict) -> dict:
    return {k: (None if isinstance(v, float) and np.isnan(v) else v) for k, v in record.items()}
