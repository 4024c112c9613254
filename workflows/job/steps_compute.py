"""Main-job steps 1–2: build the campaign's structures and run their calculations through FireWorks."""

from __future__ import annotations

from pathlib import Path

from sacmap import structures
from sacmap.workflows.job.steps import StepRecord, fingerprint


def build_structures(spec: dict, out: Path) -> dict:
    """Write every configuration of ``spec`` under ``out/structures`` (skipped when current)."""
    sdir = out / "structures"
    rec = StepRecord(out, "structures")
    key = fingerprint(spec.get("name"), spec.get("structures"))
    index = sdir / "index.csv"
    if rec.is_current(key):
        return rec.result()
    configs = structures.expand(spec)
    structures.write_configurations(configs, sdir)
    counts = structures.counts_per_set(spec)
    result = {"index": str(index), "n_configurations": len(configs), "per_set": counts}
    rec.mark_done(key, [index], result)
    return result


def run_calculations(spec: dict, out: Path, *, calculator=None, launchpad=None, db=None,
                     progress: bool = True) -> dict:
    """Submit and run the campaign on the embedded (or named) launchpad/calculator; returns ``{"db": url}``.

    The campaign itself is resumable (finished calculations are found in the results database and never
    recomputed), so this step always runs the launcher; it is fast when all Fireworks are complete.
    """
    from sacmap.workflows.campaign.runner import run_campaign, status

    wdir = out / "campaign"
    url = run_campaign(spec, wdir, calculator=calculator, launchpad=launchpad, db=db, progress=progress)
    try:
        st = status(wdir)
    except Exception as exc:  # status is informative only
        st = {"error": str(exc)}
    return {"db": url, "workdir": str(wdir), "status": st}
