"""FireWorks workflows of a campaign: one small workflow per (configuration, calculation variant).

One workflow per configuration keeps failures, reruns and status per configuration (a fizzled relaxation
blocks only its own static/store steps), and lets ``campaign submit`` skip keys already on the LaunchPad.

- embedded: ``relax`` → ``store``
- VASP: ``relax`` → ``static`` (LCHARG/LAECHG, Bader) → ``store`` (``store`` also a child of ``relax``, so it
  receives both Fireworks' outputs)

Every Firework has ``DupeFinderExact`` (:class:`sacmap.workflows.campaign.firetasks.ExactDupeFinder`) and a step name in its spec, so the same configuration + settings + step is
never run twice on one LaunchPad; :class:`sacmap.workflows.campaign.firetasks.CheckFinishedTask` guards across LaunchPads through
the results database.
"""

from __future__ import annotations

from fireworks import Firework, Workflow

from sacmap.workflows.campaign.firetasks import (
    BaderTask,
    CheckFinishedTask,
    EmbeddedRelaxTask,
    ExactDupeFinder,
    ParseVaspTask,
    RunVaspCustodianTask,
    StoreResultTask,
    WriteVaspInputsTask,
)


def calc_key(config_id: str, settings_hash: str) -> str:
    """The key of one calculation."""
    return f"{config_id}|{settings_hash}"


def _spec(common: dict, step: str) -> dict:
    return {"sacmap": common, "sacmap_step": step, "_dupefinder": ExactDupeFinder()}


def build_workflow(config_doc: dict, variant: dict, *, db: str, campaign: str,
                   custodian: dict | None = None) -> Workflow:
    """The workflow of one configuration (``configs.config_to_doc``) under one calculation variant."""
    cid = config_doc["meta"]["config_id"]
    h = variant["settings_hash"]
    common = {"config": config_doc, "calc": variant, "db": db, "campaign": campaign}
    # later steps get the relaxed structure through FWAction; their specs carry only the metadata (small store)
    light = dict(common, config={"meta": config_doc["meta"]})
    label = f"{cid} [{variant['calculator']} {h[:8]}]"
    store = Firework([CheckFinishedTask(), StoreResultTask()], spec=_spec(light, "store"), name=f"{label} store")
    if variant["calculator"] == "vasp":
        cust = dict(custodian or {})
        relax = Firework(
            [CheckFinishedTask(), WriteVaspInputsTask(step="relax"), RunVaspCustodianTask(**cust),
             ParseVaspTask(step="relax")],
            spec=_spec(common, "relax"), name=f"{label} relax",
        )
        static = Firework(
            [CheckFinishedTask(), WriteVaspInputsTask(step="static"), RunVaspCustodianTask(**cust),
             ParseVaspTask(step="static"), BaderTask()],
            spec=_spec(light, "static"), name=f"{label} static",
        )
        fws, links = [relax, static, store], {relax: [static, store], static: [store]}
    else:
        relax = Firework([CheckFinishedTask(), EmbeddedRelaxTask()], spec=_spec(common, "relax"),
                         name=f"{label} relax")
        fws, links = [relax, store], {relax: [store]}
    meta = {"sacmap_key": calc_key(cid, h), "campaign": campaign, "config_id": cid, "settings_hash": h,
            "calculator": variant["calculator"]}
    return Workflow(fws, links_dict=links, name=label, metadata=meta)
