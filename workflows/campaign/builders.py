"""FireWorks workflows of a campaign: one small workflow per (configuration, calculation variant).

One workflow per configuration keeps failures, reruns and status per configuration (a fizzled relaxation
blocks only its own static/store steps), and lets ``campaign submit`` skip keys already on the LaunchPad.

- embedded: ``relax`` → ``store``
- VASP: ``relax`` → ``static`` (LCHARG/LAECHG, Bader) → ``store`` (``store`` also a child of ``relax``, so it
  receives both Fireworks' outputs)

Every Firework has ``DupeFinderExact`` (:class:`sacmap.workflows.campaign.firetasks.ExactDupeFinder`) and a step name in its spec, so the same configuration + settings + step is
never run twice on one LaunchPad; :class:`sacmap.workflows.campaign.firetasks.CheckFinishedTask` guards across LaunchPads through
the results database.

FireWorks categories (``_category``) route the steps: relaxations and static runs get the ``compute`` category
(default ``sacmap-compute``), the store steps (seconds each) the ``light`` one (default ``sacmap-light``), so a
worker with ``category: sacmap-light`` in its my_fworker.yaml (a login node, a small queue) finishes them
without occupying a compute allocation. A worker with ``category: ''`` runs everything.
"""

from __future__ import annotations

from fireworks import Firework, Workflow

from sacmap.workflows.campaign.firetasks import (
    CheckFinishedTask,
    EmbeddedRelaxTask,
    ExactDupeFinder,
    StoreResultTask,
    fw_label,
    vasp_step_tasks,
)

DEFAULT_CATEGORIES = {"compute": "sacmap-compute", "light": "sacmap-light"}


def calc_key(config_id: str, settings_hash: str) -> str:
    """The key of one calculation."""
    return f"{config_id}|{settings_hash}"


def _spec(common: dict, step: str, category: str | None) -> dict:
    spec = {"sacmap": common, "sacmap_step": step, "_dupefinder": ExactDupeFinder()}
    if category:
        spec["_category"] = category
    return spec


def build_workflow(config_doc: dict, variant: dict, *, db: str, campaign: str,
                   custodian: dict | None = None, categories: dict | None = None,
                   max_restarts: int | None = None) -> Workflow:
    """The workflow of one configuration (``configs.config_to_doc``) under one calculation variant.

    ``custodian``: :class:`~sacmap.workflows.campaign.settings.CustodianOptions` values (incl. ``max_restarts``);
    ``categories``: ``{"compute": ..., "light": ...}`` FireWorks categories (default :data:`DEFAULT_CATEGORIES`;
    ``None`` values: no category); ``max_restarts``: continuations of an unconverged relaxation (default 3;
    ``custodian["max_restarts"]`` wins for VASP).
    """
    cid = config_doc["meta"]["config_id"]
    h = variant["settings_hash"]
    cats = {**DEFAULT_CATEGORIES, **(categories or {})}
    common = {"config": config_doc, "calc": variant, "db": db, "campaign": campaign}
    # later steps get the relaxed structure through FWAction; their specs carry only the metadata (small store)
    light = dict(common, config={"meta": config_doc["meta"]})
    label = fw_label(cid, variant)
    store = Firework([CheckFinishedTask(), StoreResultTask()], spec=_spec(light, "store", cats["light"]),
                     name=f"{label} store")
    if variant["calculator"] == "vasp":
        cust = dict(custodian or {})
        if max_restarts is not None:
            cust.setdefault("max_restarts", int(max_restarts))
        relax_spec = _spec(common, "relax", cats["compute"])
        relax_spec["sacmap_custodian"] = cust  # restarts (firetasks.ParseVaspTask) rebuild the same tasks
        relax = Firework(vasp_step_tasks("relax", cust), spec=relax_spec, name=f"{label} relax")
        static = Firework(vasp_step_tasks("static", cust), spec=_spec(light, "static", cats["compute"]),
                          name=f"{label} static")
        fws, links = [relax, static, store], {relax: [static, store], static: [store]}
    else:
        task = EmbeddedRelaxTask() if max_restarts is None else EmbeddedRelaxTask(max_restarts=int(max_restarts))
        relax = Firework([CheckFinishedTask(), task], spec=_spec(common, "relax", cats["compute"]),
                         name=f"{label} relax")
        fws, links = [relax, store], {relax: [store]}
    meta = {"sacmap_key": calc_key(cid, h), "campaign": campaign, "config_id": cid, "settings_hash": h,
            "calculator": variant["calculator"]}
    return Workflow(fws, links_dict=links, name=label, metadata=meta)
