"""FireTasks of a sacmap campaign (atomate style; importable by any worker that has sacmap installed).

Every Firework's spec holds ``sacmap``: ``{"config": {"meta", "atoms"} (``atoms`` only in ``relax``), "calc": {"calculator", "settings",
"settings_hash"}, "db": URL, "campaign": name}`` and ``sacmap_step`` (``relax``/``static``/``store``). Tasks
work in the launch directory (the current directory) and pass their outputs to child Fireworks through
``FWAction(update_spec=...)``: ``sacmap_relax``, ``sacmap_static``, ``sacmap_bader``.

Idempotency: each Firework starts with :class:`CheckFinishedTask`, which looks the calculation key
(``config_id``, ``settings_hash``) up in the results database and, when a finished row exists, skips the rest of
the Firework (nothing is recomputed, nothing written twice).
"""

from __future__ import annotations

import os
from pathlib import Path

import numpy as np
from fireworks import FiretaskBase, FWAction, explicit_serialize
from fireworks.user_objects.dupefinders.dupefinder_exact import DupeFinderExact

from sacmap.workflows.campaign import results
from sacmap.workflows.campaign.configs import atoms_from_dict, atoms_to_dict, meta_from_doc


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
    return results.connect(fw_spec["sacmap"]["db"])


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

    def run_task(self, fw_spec):
        from sacmap.workflows.campaign.calculators.relax import relax

        s = fw_spec["sacmap"]
        calc = s["calc"]
        atoms = atoms_from_dict(s["config"]["atoms"])
        res = relax(atoms, calc["calculator"], calc["settings"], os.getcwd())
        res["energy_kind"] = "total"
        doc = _result_doc(res, os.getcwd())
        return FWAction(update_spec={"sacmap_relax": doc},
                        stored_data={"energy_eV": doc["energy_eV"], "converged": doc["converged"],
                                     "n_steps": doc["n_steps"]})


@explicit_serialize
class WriteVaspInputsTask(FiretaskBase):
    """Write INCAR/KPOINTS/POSCAR/POTCAR(.spec) for ``step`` (``relax``: the configuration; ``static``: the
    relaxed structure from ``sacmap_relax``)."""

    required_params = ["step"]

    def run_task(self, fw_spec):
        from sacmap.workflows.campaign.vasp_inputs import write_inputs

        s = fw_spec["sacmap"]
        meta = meta_from_doc(s["config"])
        if self["step"] == "static":
            atoms = atoms_from_dict(fw_spec["sacmap_relax"]["atoms"])
        else:
            atoms = atoms_from_dict(s["config"]["atoms"])
        info = write_inputs(atoms, meta, s["calc"]["settings"], os.getcwd(), static=self["step"] == "static")
        return FWAction(stored_data={f"{self['step']}_potcar_spec_only": info["potcar_spec"]})


@explicit_serialize
class RunVaspCustodianTask(FiretaskBase):
    """Run VASP through custodian (usual handlers + validators). VASP command from the FWorker's
    ``env.vasp_cmd`` or ``$SACMAP_VASP_CMD``."""

    optional_params = ["max_errors", "walltime_s", "polling_time_step", "monitor_freq", "handlers"]

    def run_task(self, fw_spec):
        from sacmap.workflows.campaign.vasp_run import run_custodian, vasp_command

        if not Path("POTCAR").exists() and os.environ.get("SACMAP_ALLOW_POTCAR_SPEC") != "1":
            raise RuntimeError("no POTCAR (PMG_VASP_PSP_DIR not set; only POTCAR.spec written): VASP cannot run")
        corrections = run_custodian(
            os.getcwd(), vasp_command(fw_spec.get("_fw_env")), max_errors=self.get("max_errors", 5),
            walltime_s=self.get("walltime_s"), polling_time_step=self.get("polling_time_step", 10),
            monitor_freq=self.get("monitor_freq", 30), handlers=self.get("handlers"),
        )
        errors = [e for c in corrections for e in c.get("errors", [])]
        return FWAction(stored_data={"custodian_errors": errors, "n_corrections": len(corrections)})


@explicit_serialize
class ParseVaspTask(FiretaskBase):
    """Read the finished run in the current directory; pass it on as ``sacmap_<step>``."""

    required_params = ["step"]

    def run_task(self, fw_spec):
        from sacmap.workflows.campaign.vasp_run import parse_vasp_dir

        res = parse_vasp_dir(os.getcwd())
        # VASP cells are periodic in 3D; keep the configuration's pbc so the vacuum axis stays known
        given = fw_spec["sacmap"]["config"].get("atoms") or fw_spec["sacmap_relax"]["atoms"]
        res["atoms"].pbc = given["pbc"]
        doc = _result_doc(res, os.getcwd())
        return FWAction(update_spec={f"sacmap_{self['step']}": doc},
                        stored_data={f"{self['step']}_energy_eV": doc["energy_eV"],
                                     f"{self['step']}_converged": doc["converged"]})


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
            bader = fw_spec.get("sacmap_bader")
            if bader:
                res["bader"] = {"electrons": bader["electrons"], "method": bader["charge_method"]}
                if bader.get("charges") is not None:
                    res["charges"] = bader["charges"]
                    res["charge_method"] = "bader"
        row_id = results.store(_open_db(fw_spec), res, meta_from_doc(s["config"]), calculator=calc["calculator"],
                               settings_hash=calc["settings_hash"], settings=calc["settings"],
                               campaign=s["campaign"], extra=extra)
        return FWAction(stored_data={"row_id": row_id})
