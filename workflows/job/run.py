"""Orchestration of the main job (``sacmap run``).

Steps and their outputs under OUTDIR (each skipped on a rerun when its inputs are unchanged and its outputs exist):

1. ``structures/``   extxyz + POSCAR per configuration, ``index.csv``;
2. ``campaign/``     FireWorks workflows on the embedded (or named) calculator; results in an ASE database;
3. ``energetics/``   E_int, dimer formation, site–site potential, Bader descriptor (CSV + figures);
4. ``detection/``    per image: ``<stem>.csv``, ``<stem>.json``, overlay PNG (or the given detector CSVs);
5. ``statistics/``   descriptors per image (``descriptors.csv``/``.json``), NND and nuclearity figures;
6. ``sampling/``     the fitted DFT-biased sampler, density sweeps of random/repulsive/DFT-biased samplers;
7. ``report.html``   self-contained report (figures embedded) with the tables it shows as CSV.
"""

from __future__ import annotations

import json
import logging
import time
from pathlib import Path

from sacmap import structures
from sacmap.core.atomic import atomic_write
from sacmap.workflows.job import steps_analysis, steps_compute, steps_images
from sacmap.workflows.job.spec import job_settings

log = logging.getLogger("sacmap.run")


def _say(msg: str) -> None:
    log.info(msg)


def run_job(spec_path: str | Path, outdir: str | Path, *, calculator: str | None = None,
            launchpad: str | Path | None = None, db: str | None = None, progress: bool = True,
            skip_calculations: bool = False, workers: int | None = None) -> Path:
    """Run the whole job for ``spec_path`` (a spec file, or the name of a bundled spec: ``demo``, ``paper``) into
    ``outdir``; returns the path of ``report.html``.

    Interrupting and rerunning resumes: finished steps (and finished calculations, images) are reused.
    ``workers``: parallel relaxation processes (default: the cores available, ``$SACMAP_WORKERS``).
    """
    spec = structures.load_spec(spec_path)
    spec_path = Path(spec["_source"]).resolve()
    settings = job_settings(spec, spec_path)
    out = Path(outdir).resolve()
    out.mkdir(parents=True, exist_ok=True)
    t0 = time.perf_counter()
    state: dict = {"spec_path": str(spec_path), "name": spec.get("name", spec_path.stem), "timings_s": {}}

    def timed(name, func, *args, **kw):
        t = time.perf_counter()
        _say(f"[{name}] ...")
        res = func(*args, **kw)
        state["timings_s"][name] = round(time.perf_counter() - t, 2)
        _say(f"[{name}] done in {state['timings_s'][name]:.1f} s")
        return res

    if spec.get("structures"):
        state["structures"] = timed("structures", steps_compute.build_structures, spec, out)
        if not skip_calculations:
            state["campaign"] = timed("calculations", steps_compute.run_calculations, spec, out,
                                      calculator=calculator, launchpad=launchpad, db=db, progress=progress,
                                      workers=workers)
            state["energetics"] = timed("energetics", steps_analysis.energetics, state["campaign"]["db"], out)
    if settings.get("simulated_images"):
        state["simulated"] = timed("simulated images", steps_images.simulate, settings, out)
    if settings["images"] or state.get("simulated"):
        state["detection"] = timed("detection", steps_images.detect, settings, out, progress=progress,
                                   simulated=state.get("simulated"))
        state["statistics"] = timed("statistics", steps_images.statistics, state["detection"], settings, out)
        state["envelopes"] = timed("envelope tests", steps_images.envelope_tests, state["statistics"], settings,
                                   out)
        potential = (state.get("energetics") or {}).get("site_site_potential")
        state["sampling"] = timed("sampling", steps_analysis.sampling, state["statistics"], settings, out,
                                  potential=potential, progress=progress)
    from sacmap.workflows.job.report import build_report

    state["failed_inputs"] = (state.get("detection") or {}).get("failed", [])
    skipped = {}
    if skip_calculations and spec.get("structures"):
        skipped["energetics"] = ("run with --skip-calculations: structures were built but not relaxed, so there are "
                                 "no energies (run without it, or point --db at a results database)")
    state["total_s"] = round(time.perf_counter() - t0, 1)  # up to the report
    report = timed("report", build_report, state, settings, out, skipped=skipped)
    state["total_s"] = round(time.perf_counter() - t0, 1)
    atomic_write(out / "run_summary.json", json.dumps(state, indent=1, default=str))
    _say(f"report: {report}  ({state['total_s']:.0f} s)")
    return report
