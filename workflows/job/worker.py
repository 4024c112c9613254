"""One campaign worker of the main job: ``python -m sacmap.workflows.job.worker SPEC WORKDIR --shard I N --db URL``
relaxes shard ``I`` of ``N`` of the spec's configurations (:func:`shard`) through FireWorks on its own embedded
launchpad in WORKDIR, writing into the results database shared by all shards. :func:`run_parallel` starts the
workers as subprocesses (the embedded launchpad is one process per work directory; see docs/workflows.md).
"""

from __future__ import annotations

import argparse
import os
import subprocess
import sys
import time
from pathlib import Path

from ase import Atoms

from sacmap.workflows.errors import WorkflowInputError


def default_workers(n_configs: int) -> int:
    """Workers to use: ``$SACMAP_WORKERS`` if set, else the CPU cores this process may use; never more than
    ``n_configs``. Each worker's torch uses ``$SACMAP_TORCH_THREADS`` (default 1) threads."""
    env = os.environ.get("SACMAP_WORKERS")
    if env:
        try:
            n = int(env)
        except ValueError:
            raise WorkflowInputError(f"SACMAP_WORKERS: expected an integer, got {env!r}") from None
        if n < 1:
            raise WorkflowInputError(f"SACMAP_WORKERS: must be >= 1, got {n}")
    else:
        n = len(os.sched_getaffinity(0)) if hasattr(os, "sched_getaffinity") else (os.cpu_count() or 1)
    return max(1, min(n, n_configs))


def shard(configs: list[Atoms], index: int, n: int) -> list[Atoms]:
    """Shard ``index`` of ``n``: the configurations sorted by size (largest first; stable) dealt round-robin, so
    every shard gets a similar share of the expensive slabs. Together the shards hold every configuration once."""
    if not 0 <= index < n:
        raise ValueError(f"shard {index} of {n}")
    order = sorted(range(len(configs)), key=lambda i: -len(configs[i]))
    return [configs[i] for k, i in enumerate(order) if k % n == index]


def shard_dir(campaign_dir: Path, index: int, n: int) -> Path:
    return Path(campaign_dir) / f"worker-{index + 1}-of-{n}"


def run_parallel(spec_path: Path, campaign_dir: Path, db_url: str, n: int, *, calculator: str | None = None,
                 progress: bool = True, n_configs: int | None = None) -> list[Path]:
    """Run the campaign of ``spec_path`` as ``n`` worker subprocesses (shards), all writing into ``db_url``;
    waits for all of them and returns their work directories. A failed worker raises RuntimeError naming its
    log (``worker.log`` in its work directory); the others finish first, so a rerun redoes only what is missing."""
    from tqdm import tqdm

    from sacmap.workflows.campaign import results

    campaign_dir = Path(campaign_dir)
    campaign_dir.mkdir(parents=True, exist_ok=True)
    db = results.connect(db_url)
    db.count()  # create the tables once, before several processes open the file
    procs = []
    for i in range(n):
        wdir = shard_dir(campaign_dir, i, n)
        wdir.mkdir(parents=True, exist_ok=True)
        cmd = [sys.executable, "-m", "sacmap.workflows.job.worker", str(spec_path), str(wdir),
               "--shard", str(i), str(n), "--db", db_url]
        if calculator:
            cmd += ["--calculator", calculator]
        log = open(wdir / "worker.log", "w")  # noqa: SIM115 -- closed below when the worker ends
        procs.append((subprocess.Popen(cmd, stdout=log, stderr=subprocess.STDOUT), log, wdir))
    start = db.count()
    bar = tqdm(total=n_configs, initial=start, disable=not progress, unit="calc", desc=f"relaxations ({n} workers)")
    try:
        while any(p.poll() is None for p, _, _ in procs):
            time.sleep(2.0)
            bar.update(db.count() - bar.n)
        bar.update(db.count() - bar.n)
    finally:
        bar.close()
        for p, log, _ in procs:
            if p.poll() is None:
                p.terminate()
                p.wait()
            log.close()
    failed = [(p.returncode, wdir) for p, _, wdir in procs if p.returncode != 0]
    if failed:
        rc, wdir = failed[0]
        tail = (wdir / "worker.log").read_text(errors="replace").strip().splitlines()[-3:]
        raise RuntimeError(f"campaign worker {wdir.name} exited with status {rc}: {' | '.join(tail)} "
                           f"(log: {wdir / 'worker.log'})")
    return [w for _, _, w in procs]


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(prog="sacmap.workflows.job.worker", description=__doc__.splitlines()[0])
    ap.add_argument("spec")
    ap.add_argument("workdir")
    ap.add_argument("--shard", nargs=2, type=int, metavar=("I", "N"), required=True)
    ap.add_argument("--db", required=True)
    ap.add_argument("--calculator")
    args = ap.parse_args(argv)
    from sacmap import structures
    from sacmap.workflows.campaign.runner import run_campaign

    spec = structures.load_spec(args.spec)
    configs = shard(structures.expand(spec), *args.shard)
    if configs:
        run_campaign(spec, args.workdir, calculator=args.calculator, db=args.db, progress=False, configs=configs)
    return 0


if __name__ == "__main__":
    sys.exit(main())
