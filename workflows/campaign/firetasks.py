"""FireTasks of a sacmap campaign (atomate style; importable by any worker that has sacmap installed).

Every Firework's spec holds ``sacmap``: ``{"config": {"meta", "atoms"} (``atoms`` only in ``relax``), "calc": {"calculator", "settings",
"settings_hash"}, "db": URL, "campaign": name}`` and ``sacmap_step`` (``relax``/``static``/``store``). Tasks
work in the launch directory (the current directory) and pass their outputs to child Fireworks through
``FWAction(update_spec=...)``: ``sacmap_relax``, ``sacmap_static``, ``sacmap_bader``.

Relaxations that end unconverged (NSW reached, custodian's WalltimeHandler stopped VASP, SCF not converged on
the last step) are never passed on as final: :class:`ParseVaspTask` continues them from their last structure
(CONTCAR) in a new Firework inserted before static/store (a FireWorks detour; a new launch folder), up to
``max_restarts`` times, then fails with the reason (as atomate2 does). A relaxation rerun after its job was
killed (lost run, ``rerun-failed``) starts from the CONTCAR of its previous launch folder, not from the original
structure. The corrections custodian applied in every launch are stored with the result.

Idempotency: each Firework starts with :class:`CheckFinishedTask`, which looks the calculation key
(``config_id``, ``settings_hash``) up in the results database and, when a finished row exists, skips the rest of
the Firework (nothing is recomputed, nothing written twice).
"""

from __future__ import annotations

import json
import logging
import os
import re
from pathlib import Path

import numpy as np
from fireworks import FiretaskBase, FWAction, explicit_serialize
from fireworks.user_objects.dupefinders.dupefinder_exact import DupeFinderExact

from sacmap.workflows.campaign import results
from sacmap.workflows.campaign.configs import atoms_from_dict, atoms_to_dict, meta_from_doc

log = logging.getLogger(__name__)
#: spec keys a restarted relaxation Firework takes over from the one it continues
RESTART_SPEC_KEYS = ("sacmap", "sacmap_step", "_dupefinder", "_category", "_priority", "sacmap_custodian")
DEFAULT_MAX_RESTARTS = 3


def fw_label(config_id: str, variant: dict) -> str:
    """The name stem of a calculation's Fireworks (``<config> [<calculator> <hash8>]``)."""
    return f"{config_id} [{variant['calculator']} {variant['settings_hash'][:8]}]"


def vasp_step_tasks(step: str, custodian: dict | None = None) -> list:
    """The FireTasks of a VASP ``relax`` or ``static`` Firework (one definition: the builders and the restarts of
    :class:`ParseVaspTask` use it). ``custodian``: :class:`~sacmap.workflows.campaign.settings.CustodianOptions`
    values; ``max_restarts`` goes to the parse step, the rest to custodian."""
    cust = dict(custodian or {})
    max_restarts = int(cust.pop("max_restarts", DEFAULT_MAX_RESTARTS))
    tasks = [CheckFinishedTask(), WriteVaspInputsTask(step=step), RunVaspCustodianTask(step=step, **cust),
             ParseVaspTask(step=step, max_restarts=max_restarts)]
    if step == "static":
        tasks.append(BaderTask())
    tasks.append(CompressOutputsTask(step=step))
    return tasks


@explicit_serialize
class ExactDupeFinder(DupeFinderExact):
    """FireWorks' ``DupeFinderExact`` (a Firework whose whole spec equals one already launched is not run again,
    it takes over that launch), explicitly serialised: workers load it directly instead of scanning all of
    FireWorks' packages for the name."""


@explicit_serialize
class NoOpTask(FiretaskBase):
    """Does nothing: measures FireWorks' own cost per Firework (``benchmarks/workflows.py``)."""

    def run_task(self, fw_spec):
        return FWAction()


def _result_doc(res: dict, calc_dir: str) -> dict:
    """A relaxation/parse result as JSON-able dict for the spec (atoms as dict, arrays as lists)."""
    doc = {k: v for k, v in res.items() if k not in ("atoms", "forces")}
    doc["atoms"] = atoms_to_dict(res["atoms"])
    doc["forces"] = np.round(np.asarray(res["forces"], float), 6).tolist()
    doc["calc_dir"] = calc_dir
    return doc


def _doc_result(doc: dict) -> dict:
    res = dict(doc)
    res["atoms"] = atoms_from_dict(doc["atoms"])
    res["forces"] = np.asarray(doc["forces"], float)
    return res


def _open_db(fw_spec: dict):
    """The results database: the worker's ``env.sacmap_db`` (the embedded runner sets it from its work folder, so
    moved or copied campaigns use their own database), else the URL in the spec."""
    return results.connect((fw_spec.get("_fw_env") or {}).get("sacmap_db") or fw_spec["sacmap"]["db"])


@explicit_serialize
class CheckFinishedTask(FiretaskBase):
    """Skip the rest of this Firework when the results database already has this calculation."""

    def run_task(self, fw_spec):
        s = fw_spec["sacmap"]
        try:
            row = results.find(_open_db(fw_spec), s["config"]["meta"]["config_id"], s["calc"]["settings_hash"])
        except Exception:
            # offline nodes (rlaunch --offline) may not reach the database: with env.sacmap_db_optional in
            # my_fworker.yaml the calculation goes ahead; its store step is finished later where the db is
            if not (fw_spec.get("_fw_env") or {}).get("sacmap_db_optional") or fw_spec.get("sacmap_step") == "store":
                raise
            return FWAction(stored_data={"db_check_skipped": True})
        if row is None:
            return FWAction()
        return FWAction(stored_data={"reused_row_id": row.id}, exit=True)


@explicit_serialize
class EmbeddedRelaxTask(FiretaskBase):
    """Relax the configuration with an embedded (ASE) calculator; trajectory ``relax.traj`` kept."""

    optional_params = ["max_restarts"]

    def run_task(self, fw_spec):
        from fireworks import Firework

        from sacmap.workflows.campaign.calculators.relax import relax

        s = fw_spec["sacmap"]
        calc = s["calc"]
        atoms = atoms_from_dict(fw_spec.get("sacmap_restart_atoms") or s["config"]["atoms"])
        res = relax(atoms, calc["calculator"], calc["settings"], os.getcwd())
        res["energy_kind"] = "total"
        restart = int(fw_spec.get("sacmap_restart", 0))
        if not res["converged"]:  # never stored as final: continue from the last structure, or fail
            reason = (f"not converged after {res['n_steps']} optimizer step(s) (max_steps "
                      f"{calc['settings'].get('max_steps')}; largest force {res['fmax_eV_A']:.3f} eV/Å > fmax "
                      f"{calc['settings'].get('fmax_eV_A')})")
            max_restarts = int(self.get("max_restarts", DEFAULT_MAX_RESTARTS))
            if restart >= max_restarts:
                raise RuntimeError(f"relaxation {reason} after {restart} restart(s) (max_restarts {max_restarts}) "
                                   f"({os.getcwd()})")
            spec = {k: fw_spec[k] for k in RESTART_SPEC_KEYS if k in fw_spec}
            spec.update(sacmap_restart=restart + 1, sacmap_restart_atoms=atoms_to_dict(res["atoms"]),
                        sacmap_restart_from=os.getcwd(), sacmap_restart_reason=reason)
            name = f"{fw_label(s['config']['meta']['config_id'], calc)} relax (restart {restart + 1})"
            fw = Firework([CheckFinishedTask(), EmbeddedRelaxTask(max_restarts=max_restarts)], spec=spec, name=name)
            return FWAction(detours=[fw], stored_data={"restart_reason": reason, "restart_next": restart + 1})
        doc = _result_doc(res, os.getcwd())
        doc["restarts"] = restart
        return FWAction(update_spec={"sacmap_relax": doc},
                        stored_data={"energy_eV": doc["energy_eV"], "converged": doc["converged"],
                                     "n_steps": doc["n_steps"], "restart": restart})


@explicit_serialize
class WriteVaspInputsTask(FiretaskBase):
    """Write INCAR/KPOINTS/POSCAR/POTCAR(.spec) for ``step`` (``relax``: the configuration; ``static``: the
    relaxed structure from ``sacmap_relax``)."""

    required_params = ["step"]

    def run_task(self, fw_spec):
        from sacmap.workflows.campaign.vasp_inputs import write_inputs
        from sacmap.workflows.campaign.vasp_run import worker_incar

        s = fw_spec["sacmap"]
        meta = meta_from_doc(s["config"])
        started_from = "configuration"
        if self["step"] == "static":
            atoms = atoms_from_dict(fw_spec["sacmap_relax"]["atoms"])
            started_from = "relaxed structure"
        elif fw_spec.get("sacmap_restart_atoms"):  # a continuation of an unconverged relaxation
            atoms = atoms_from_dict(fw_spec["sacmap_restart_atoms"])
            started_from = f"CONTCAR of {fw_spec.get('sacmap_restart_from', 'the previous launch')}"
        else:
            atoms = atoms_from_dict(s["config"]["atoms"])
            found = resume_structure(Path.cwd(), atoms, s)
            if found is not None:  # the previous launch of this Firework was killed (wall time, node failure)
                atoms, started_from = found[0], f"CONTCAR of {found[1]}"
                log.warning("%s: continuing from %s", os.getcwd(), started_from)
        info = write_inputs(atoms, meta, s["calc"]["settings"], os.getcwd(), static=self["step"] == "static",
                            worker_incar=worker_incar(fw_spec.get("_fw_env")))
        return FWAction(update_spec={f"sacmap_{self['step']}_started_from": started_from},
                        stored_data={f"{self['step']}_potcar_spec_only": info["potcar_spec"],
                                     "started_from": started_from, "kpoints": list(info["kpoints"])})


def _same_calculation(folder: Path, s: dict) -> bool:
    """Whether ``folder`` is a launch folder of the same calculation and step: sacmap's own layout
    (``calcs/<config>/<hash8>/relax[.n]``) or a FireWorks ``FW.json`` naming the same key."""
    fw_json = folder / "FW.json"
    if fw_json.is_file():
        try:
            spec = json.loads(fw_json.read_text()).get("spec", {})
        except (OSError, ValueError):
            return False
        other = spec.get("sacmap", {})
        return (spec.get("sacmap_step") == "relax"
                and other.get("config", {}).get("meta", {}).get("config_id") == s["config"]["meta"]["config_id"]
                and other.get("calc", {}).get("settings_hash") == s["calc"]["settings_hash"])
    return bool(re.fullmatch(r"relax(\.\d+)?", folder.name)) and folder.parent.name == s["calc"]["settings_hash"][:8]


def resume_structure(cwd: Path, atoms, s: dict):
    """``(atoms, folder)`` from the newest non-empty CONTCAR of an earlier launch of this relaxation (this folder
    or a sibling launch folder of the same calculation) with the same atoms in the same order; None when there is
    none. Keeps the configuration's cell and pbc."""
    from ase.io import read

    cands = []
    for folder in [cwd, *(p for p in cwd.parent.iterdir() if p.is_dir() and p != cwd)]:
        contcar = folder / "CONTCAR"
        if contcar.is_file() and contcar.stat().st_size > 0 and _same_calculation(folder, s):
            cands.append((contcar.stat().st_mtime, folder, contcar))
    for _, folder, contcar in sorted(cands, reverse=True):
        try:
            found = read(str(contcar), format="vasp")
        except Exception:  # noqa: BLE001 - a half-written CONTCAR: try the next one
            continue
        if list(found.numbers) == list(atoms.numbers):
            out = atoms.copy()
            out.positions = found.positions
            return out, str(folder)
    return None


@explicit_serialize
class RunVaspCustodianTask(FiretaskBase):
    """Run VASP through custodian (usual handlers + validators). VASP command from the FWorker's
    ``env.vasp_cmd`` or ``$SACMAP_VASP_CMD``."""

    optional_params = ["step", "max_errors", "walltime_s", "polling_time_step", "monitor_freq", "handlers",
                       "walltime_buffer_s"]

    def run_task(self, fw_spec):
        from sacmap.workflows.campaign.vasp_run import gamma_vasp_command, run_custodian, vasp_command

        if not Path("POTCAR").exists() and os.environ.get("SACMAP_ALLOW_POTCAR_SPEC") != "1":
            raise RuntimeError("no POTCAR (PMG_VASP_PSP_DIR not set; only POTCAR.spec written): VASP cannot run")
        env = fw_spec.get("_fw_env") or {}
        corrections = run_custodian(
            os.getcwd(), vasp_command(env), max_errors=self.get("max_errors", 5),
            walltime_s=self.get("walltime_s"), polling_time_step=self.get("polling_time_step", 10),
            monitor_freq=self.get("monitor_freq", 30), handlers=self.get("handlers"),
            gamma_vasp_cmd=gamma_vasp_command(env), scratch_dir=env.get("scratch_dir"),
            walltime_buffer_s=self.get("walltime_buffer_s", 300),
        )
        errors = [e for c in corrections for e in c["errors"]]
        step = self.get("step", fw_spec.get("sacmap_step", "relax"))
        return FWAction(update_spec={f"sacmap_{step}_corrections": corrections},
                        stored_data={"custodian_errors": errors, "n_corrections": len(corrections)})


@explicit_serialize
class ParseVaspTask(FiretaskBase):
    """Read the finished run in the current directory; pass it on as ``sacmap_<step>``."""

    required_params = ["step"]
    optional_params = ["max_restarts"]

    def run_task(self, fw_spec):
        from sacmap.workflows.campaign.vasp_run import parse_vasp_dir

        step = self["step"]
        cwd = os.getcwd()
        res = parse_vasp_dir(cwd)
        # VASP cells are periodic in 3D; keep the configuration's pbc so the vacuum axis stays known
        given = fw_spec["sacmap"]["config"].get("atoms") or fw_spec["sacmap_relax"]["atoms"]
        res["atoms"].pbc = given["pbc"]
        corrections = fw_spec.get(f"sacmap_{step}_corrections") or []
        restart = int(fw_spec.get("sacmap_restart", 0))
        launch = {"dir": cwd, "restart": restart, "started_from": fw_spec.get(f"sacmap_{step}_started_from", ""),
                  "corrections": corrections, "n_steps": res["n_steps"], "energy_eV": res["energy_eV"],
                  "converged_ionic": res["converged_ionic"], "converged_electronic": res["converged_electronic"]}
        history = [*((fw_spec.get("sacmap_history") or {}).get(step) or []), launch]
        if not res["converged"]:
            reason = unconverged_reason(res, corrections)
            launch["stopped"] = reason
            max_restarts = int(self.get("max_restarts", DEFAULT_MAX_RESTARTS))
            if step != "relax":
                raise RuntimeError(f"{step} run not converged: {reason} ({cwd})")
            if restart >= max_restarts:
                raise RuntimeError(f"relaxation not converged after {restart} restart(s) (max_restarts "
                                   f"{max_restarts}): {reason} ({cwd})")
            return self._restart(fw_spec, res, history, reason, restart + 1, cwd)
        doc = _result_doc(res, cwd)
        doc["history"] = history
        doc["restarts"] = restart
        return FWAction(update_spec={f"sacmap_{step}": doc},
                        stored_data={f"{step}_energy_eV": doc["energy_eV"], f"{step}_converged": doc["converged"],
                                     "restart": restart})

    def _restart(self, fw_spec, res, history, reason, n, cwd):
        from fireworks import Firework

        s = fw_spec["sacmap"]
        spec = {k: fw_spec[k] for k in RESTART_SPEC_KEYS if k in fw_spec}
        spec.update(sacmap_restart=n, sacmap_restart_atoms=atoms_to_dict(res["atoms"]), sacmap_restart_from=cwd,
                    sacmap_restart_reason=reason,
                    sacmap_history={**(fw_spec.get("sacmap_history") or {}), "relax": history})
        name = f"{fw_label(s['config']['meta']['config_id'], s['calc'])} relax (restart {n})"
        fw = Firework(vasp_step_tasks("relax", fw_spec.get("sacmap_custodian")), spec=spec, name=name)
        log.warning("%s: %s; continuing from its CONTCAR (restart %d)", cwd, reason, n)
        compress_outputs(Path(cwd), "relax")  # a detour skips this Firework's remaining tasks
        return FWAction(detours=[fw], stored_data={"restart_reason": reason, "restart_next": n})


def unconverged_reason(res: dict, corrections: list[dict]) -> str:
    """Why a VASP run ended unconverged: custodian's WalltimeHandler stopped it, the ionic relaxation ran out of
    steps (NSW), or the electronic SCF of the last step did not converge."""
    parts = []
    if any(c["handler"] == "WalltimeHandler" for c in corrections):
        parts.append("stopped by custodian WalltimeHandler (Walltime reached)")
    if not res["converged_ionic"]:
        parts.append(f"ionic relaxation not converged after {res['n_steps']} ionic step(s)")
    if not res["converged_electronic"]:
        parts.append("electronic SCF of the last ionic step not converged")
    return "; ".join(parts) or "not converged"


#: outputs deleted after parsing (never needed again) and those kept for Bader in the static run
DELETE_AFTER = {"relax": ("WAVECAR", "CHG", "CHGCAR", "AECCAR0", "AECCAR1", "AECCAR2", "PROCAR", "DOSCAR"),
                "static": ("WAVECAR", "CHG", "AECCAR1", "PROCAR")}
#: the files gzipped after parsing: VASP's inputs and outputs (also custodian's copies such as INCAR.orig or
#: vasprun.xml.relax1); nothing else in the launch folder (job logs still being written, FireWorks' files,
#: custodian.json, POTCAR.spec) is touched
VASP_FILES = ("INCAR", "KPOINTS", "POSCAR", "CONTCAR", "OUTCAR", "OSZICAR", "vasprun", "vasp", "std_err",
              "EIGENVAL", "DOSCAR", "PROCAR", "IBZKPT", "PCDAT", "XDATCAR", "REPORT", "CHGCAR", "AECCAR0",
              "AECCAR2", "LOCPOT", "ELFCAR", "POTCAR", "STOPCAR", "WAVEDER", "vaspout")


@explicit_serialize
class CompressOutputsTask(FiretaskBase):
    """After parsing: delete the large files nothing reads again (WAVECAR, CHG; the charge densities of a
    relaxation) and gzip VASP's other files (:data:`VASP_FILES`, as atomate2 does); a static run keeps CHGCAR,
    AECCAR0 and AECCAR2 (gzipped) for Bader. The readers open ``.gz`` files directly."""

    required_params = ["step"]

    def run_task(self, fw_spec):
        compress_outputs(Path.cwd(), self["step"])
        return FWAction()


def compress_outputs(folder: Path, step: str) -> list[str]:
    """:class:`CompressOutputsTask` on ``folder``; returns the names gzipped."""
    import gzip
    import shutil

    for name in DELETE_AFTER.get(step, ()):
        (folder / name).unlink(missing_ok=True)
    done = []
    for p in sorted(folder.iterdir()):
        if not p.is_file() or p.is_symlink() or p.suffix in (".gz", ".bz2", ".xz", ".spec"):
            continue
        if p.name.split(".")[0] not in VASP_FILES:
            continue
        tmp = p.with_name(p.name + ".gz.part")
        with open(p, "rb") as src, gzip.open(tmp, "wb", compresslevel=6) as dst:
            shutil.copyfileobj(src, dst)
        os.replace(tmp, p.with_name(p.name + ".gz"))
        p.unlink()
        done.append(p.name)
    return done


@explicit_serialize
class BaderTask(FiretaskBase):
    """Bader charges of the static run in the current directory (``sacmap_bader``; None when unavailable)."""

    def run_task(self, fw_spec):
        from sacmap.workflows.campaign.bader import bader_charges

        out = bader_charges(os.getcwd())
        return FWAction(update_spec={"sacmap_bader": out}, stored_data={"bader": out is not None})


@explicit_serialize
class StoreResultTask(FiretaskBase):
    """Write the finished calculation (relaxation + static/Bader when present) into the results database."""

    def run_task(self, fw_spec):
        s = fw_spec["sacmap"]
        calc = s["calc"]
        res = _doc_result(fw_spec["sacmap_relax"])
        extra = {}
        if calc["calculator"] == "vasp":
            extra["preset"] = calc["settings"].get("name", "")
            hub = calc["settings"].get("hubbard")
            if hub:
                extra["hubbard_u_eV"] = float(hub["u_eV"])
            static = fw_spec.get("sacmap_static")
            if static:
                res["static_energy_eV"] = static["energy_eV"]
            launches = {"relax": fw_spec["sacmap_relax"].get("history") or []}
            if static:
                launches["static"] = static.get("history") or []
            res["launches"] = launches
            res["corrections"] = {step: [c for launch in ls for c in launch.get("corrections", [])]
                                  for step, ls in launches.items()}
            extra["n_corrections"] = sum(len(v) for v in res["corrections"].values())
            bader = fw_spec.get("sacmap_bader")
            if bader:
                res["bader"] = {"electrons": bader["electrons"], "method": bader["charge_method"]}
                if bader.get("charges") is not None:
                    res["charges"] = bader["charges"]
                    res["charge_method"] = "bader"
        extra["n_restarts"] = int(fw_spec["sacmap_relax"].get("restarts", 0))
        if calc["calculator"] == "vasp":
            record = dict(fw_spec["sacmap_relax"].get("settings_record") or {})
        else:
            from sacmap.workflows.campaign.settings import settings_record

            record = settings_record(calc["calculator"], calc["settings"])
        # the settings record as key-value pairs (None = not applicable, e.g. ENCUT of an embedded model)
        extra.update({k: v for k, v in record.items() if v is not None})
        row_id = results.store(_open_db(fw_spec), res, meta_from_doc(s["config"]), calculator=calc["calculator"],
                               settings_hash=calc["settings_hash"], settings=calc["settings"],
                               campaign=s["campaign"], extra=extra)
        return FWAction(stored_data={"row_id": row_id})
