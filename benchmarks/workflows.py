"""Workflow benchmarks: FireWorks overhead per Firework and one embedded relaxation of a 216-atom sheet.

Prints, measured in this run:
- seconds per no-op Firework through `sacmap.workflows.campaign.runner.run` (embedded mongomock store flushed
  after every Firework, launch folder, FireWorks checkout/complete), for an empty spec and for a spec carrying a 216-atom
  configuration like a real campaign's; target < 0.5 s per Firework;
- seconds and optimizer steps of a CHGNet + D3 relaxation (fmax 0.05 eV/Å, the same final criterion for each)
  of Pd in a 4xN6 site of the paper's 216-atom sheet (215 atoms) with BFGS and with PreconLBFGS (the demo's);
- the wall time of a small campaign (the demo's bare 4xN6 pairs up to ``--max-separation``, five by default; PreconLBFGS) run by
  the main job's calculation step with 1 and with 2 worker processes, each from an empty results database.

The machine's load average is printed before and after (the numbers mean little on a busy machine).

Run: .venv/bin/python benchmarks/workflows.py [--n 40] [--skip-relax] [--max-separation 4.95] [--skip-campaign]
"""

from __future__ import annotations

import argparse
import json
import os
import tempfile
import time
from pathlib import Path

TARGET_S = 0.5


def overhead(n: int, with_config: bool) -> float:
    from fireworks import Firework, Workflow

    from sacmap.workflows.campaign import runner
    from sacmap.workflows.campaign.configs import config_to_doc
    from sacmap.workflows.campaign.firetasks import NoOpTask
    from sacmap.workflows.campaign.launchpad import EmbeddedLaunchPad

    spec = {}
    if with_config:
        from sacmap import structures

        spec = {"sacmap": {"config": config_to_doc(structures.build_single_site("4N", "Pd"))}}
    with tempfile.TemporaryDirectory() as tmp:
        wd = Path(tmp)
        (wd / runner.STATE_FILE).write_text(json.dumps({"name": "bench", "db": str(wd / "r.db"),
                                                        "launchpad": None, "variants": []}))
        with EmbeddedLaunchPad(wd) as handle:
            for i in range(n):
                handle.lp.add_wf(Workflow([Firework([NoOpTask()], spec=dict(spec, i=i), name=f"noop{i}")]))
            handle.flush()
        t0 = time.perf_counter()
        counts = runner.run(wd, progress=False)
        dt = time.perf_counter() - t0
    assert counts == {"COMPLETED": n}, counts
    return dt / n


def relax_216(optimizer: str, fmax: float = 0.05) -> tuple[float, int, int, float]:
    from sacmap import structures
    from sacmap.workflows.campaign.calculators.relax import relax
    from sacmap.workflows.campaign.settings import embedded_variant

    atoms = structures.build_single_site("4N", "Pd")
    settings = embedded_variant("chgnet-d3", fmax=fmax, optimizer=optimizer)["settings"]
    with tempfile.TemporaryDirectory() as tmp:
        t0 = time.perf_counter()
        res = relax(atoms, "chgnet-d3", settings, tmp)
        dt = time.perf_counter() - t0
    return dt, res["n_steps"], len(atoms), res["energy_eV"]


def campaign_wall(max_separation: float, workers: int) -> tuple[float, int]:
    """Wall time (s) of the job's calculation step for the demo's bare 4xN6 pairs up to ``max_separation`` (Å)
    (4.95: five pairs), and the number of configurations."""
    import yaml

    from sacmap import structures
    from sacmap.workflows.job import steps_compute

    spec = {"name": "bench", "calculation": {"calculator": "embedded", "optimizer": "PreconLBFGS"},
            "structures": {"slab": {"nx": 9, "ny": 6, "vacuum": 15.0},
                           "sets": [{"name": "pairs", "type": "pair", "kinds": ["4N", "4N"],
                                     "max_separation": max_separation}]}}
    with tempfile.TemporaryDirectory() as tmp:
        path = Path(tmp) / "bench.yaml"
        path.write_text(yaml.safe_dump(spec))
        spec_obj = structures.load_spec(path)
        n = len(structures.expand(spec_obj))
        t0 = time.perf_counter()
        res = steps_compute.run_calculations(spec_obj, Path(tmp) / "out", workers=workers, progress=False)
        dt = time.perf_counter() - t0
        assert res["status"]["counts"].get("FIZZLED", 0) == 0, res["status"]
    return dt, n


def _load() -> str:
    return "load average " + ", ".join(f"{v:.2f}" for v in os.getloadavg())


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--n", type=int, default=40, help="no-op Fireworks per measurement")
    ap.add_argument("--skip-relax", action="store_true")
    ap.add_argument("--skip-campaign", action="store_true")
    ap.add_argument("--max-separation", type=float, default=4.95,
                    help="bare 4xN6 pairs up to this separation (A) in the 1- vs 2-worker campaign (4.95: 5 pairs)")
    args = ap.parse_args()
    print(f"cores available: {len(os.sched_getaffinity(0))}; {_load()}")
    for label, cfg in (("empty spec", False), ("216-atom configuration in spec", True)):
        per = overhead(args.n, cfg)
        print(f"FireWorks overhead per Firework ({label}, n={args.n}): {per:.3f} s "
              f"= {per / TARGET_S:.2f} x target {TARGET_S} s")
    if not args.skip_relax:
        res = {}
        for opt in ("BFGS", "PreconLBFGS"):
            dt, steps, natoms, energy = relax_216(opt)
            res[opt] = (dt, steps)
            print(f"embedded relaxation (CHGNet+D3, {opt}, fmax 0.05 eV/A) of Pd/4N, {natoms} atoms: {dt:.1f} s, "
                  f"{steps} steps, {dt / max(steps, 1):.2f} s/step, E = {energy:.4f} eV")
        print(f"PreconLBFGS / BFGS: {res['PreconLBFGS'][0] / res['BFGS'][0]:.2f} x the time, "
              f"{res['PreconLBFGS'][1] / max(res['BFGS'][1], 1):.2f} x the steps")
    if not args.skip_campaign:
        walls = {}
        for workers in (1, 2):
            dt, n = campaign_wall(args.max_separation, workers)
            walls[workers] = dt
            print(f"campaign of {n} configurations (CHGNet+D3, PreconLBFGS) with {workers} worker(s): {dt:.1f} s "
                  f"wall ({_load()})")
        print(f"2 workers / 1 worker: {walls[2] / walls[1]:.2f} x the wall time")
    print(_load())


if __name__ == "__main__":
    main()
