"""Workflow benchmarks: FireWorks overhead per Firework and one embedded relaxation of a 216-atom sheet.

Prints, measured in this run:
- seconds per no-op Firework through `sacmap.workflows.campaign.runner.run` (embedded mongomock store flushed
  after every Firework, launch folder, FireWorks checkout/complete), for an empty spec and for a spec carrying a 216-atom
  configuration like a real campaign's; target < 0.5 s per Firework;
- wall time of a CHGNet + D3 relaxation (BFGS, fmax 0.05 eV/Å) of Pd in a 4xN6 site of the paper's 216-atom
  sheet (215 atoms), with the number of optimizer steps.

Run: .venv/bin/python benchmarks/workflows.py [--n 40] [--skip-relax]
"""

from __future__ import annotations

import argparse
import json
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


def relax_216(fmax: float = 0.05) -> tuple[float, int, int]:
    from sacmap import structures
    from sacmap.workflows.campaign.calculators.relax import relax
    from sacmap.workflows.campaign.settings import embedded_variant

    atoms = structures.build_single_site("4N", "Pd")
    settings = embedded_variant("chgnet-d3", fmax=fmax)["settings"]
    with tempfile.TemporaryDirectory() as tmp:
        t0 = time.perf_counter()
        res = relax(atoms, "chgnet-d3", settings, tmp)
        dt = time.perf_counter() - t0
    return dt, res["n_steps"], len(atoms)


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--n", type=int, default=40, help="no-op Fireworks per measurement")
    ap.add_argument("--skip-relax", action="store_true")
    args = ap.parse_args()
    for label, cfg in (("empty spec", False), ("216-atom configuration in spec", True)):
        per = overhead(args.n, cfg)
        print(f"FireWorks overhead per Firework ({label}, n={args.n}): {per:.3f} s "
              f"= {per / TARGET_S:.2f} x target {TARGET_S} s")
    if not args.skip_relax:
        dt, steps, natoms = relax_216()
        print(f"embedded relaxation (CHGNet+D3, BFGS, fmax 0.05 eV/A) of Pd/4N, {natoms} atoms: {dt:.1f} s, "
              f"{steps} steps, {dt / max(steps, 1):.2f} s/step")


if __name__ == "__main__":
    main()
