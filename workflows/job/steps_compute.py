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
                     progress: bool = True, workers: int | None = None) -> dict:
    """Submit and run the campaign on the embedded (or named) launchpad/calculator; returns ``{"db": url, ...}``.

    With the embedded launchpad and ``workers`` > 1 (default :func:`~sacmap.workflows.job.worker.default_workers`:
    the cores available) the configurations are sharded over that many worker processes, each with its own
    launchpad in ``campaign/worker-I-of-N`` and all writing ``campaign/results.db``; one worker uses ``campaign/``
    itself. A named launchpad (MongoDB) runs in this process: start more ``rlaunch`` workers against it.
    The campaign itself is resumable (finished calculations are found in the results database and never
    recomputed, whatever the number of workers), so this step always runs the launcher; it is fast when all
    Fireworks are complete.
    """
    from sacmap.workflows.campaign import results
    from sacmap.workflows.campaign.runner import load_state, run_campaign, status
    from sacmap.workflows.job.worker import default_workers, run_parallel

    wdir = out / "campaign"
    configs = structures.expand(spec)
    block = spec.get("calculation") or {}
    n = workers or default_workers(len(configs))
    if launchpad or block.get("launchpad") or n <= 1:
        url = run_campaign(spec, wdir, calculator=calculator, launchpad=launchpad, db=db, progress=progress,
                           configs=configs)
        dirs = [wdir]
    else:
        url = results.normalise_url(db or block.get("database") or "results.db", base=wdir.resolve())
        dirs = run_parallel(Path(spec["_source"]), wdir, url, n, calculator=calculator, progress=progress,
                            n_configs=len(configs))
    sts = []
    for d in dirs:
        try:
            sts.append(status(d))
        except Exception as exc:  # status is informative only
            sts.append({"error": str(exc)})
    counts: dict = {}
    for st in sts:
        for k, v in (st.get("counts") or {}).items():
            counts[k] = counts.get(k, 0) + v
    merged = {"counts": counts, "failures": [f for st in sts for f in st.get("failures", [])],
              "n_results": max((st.get("n_results", 0) for st in sts), default=0),
              "errors": [st["error"] for st in sts if "error" in st]}
    try:
        variants = load_state(dirs[0])["variants"]
    except Exception:  # informative only
        variants = []
    return {"db": url, "workdir": str(wdir), "workers": n if len(dirs) > 1 else 1, "status": merged,
            "variants": variants}
