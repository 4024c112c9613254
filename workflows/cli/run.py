"""``sacmap run SPEC -o OUTDIR``: the main job, end to end (see :mod:`sacmap.workflows.job`); SPEC is a file or a bundled spec name.

Exit status: 0 done; 2 bad input (spec, options, an unusable output folder); 3 the report was written but some
input images could not be used (each named with its reason on stderr and in ``OUTDIR/detection/batch_summary.csv``).
The output folder may be moved or copied: a rerun there resumes from its own files.
"""

from __future__ import annotations

import argparse
import json
from pathlib import Path

from sacmap.workflows.cli.options import number


def register(sub: argparse._SubParsersAction) -> None:
    p = sub.add_parser("run", help="run the main job: structures → calculations → energetics → detection → "
                       "statistics → samplers → report.html",
                       description="Run the whole pipeline for a campaign spec. Every step writes its outputs as soon "
                       "as they exist and is skipped on a rerun when they are current, so an interrupted run resumes "
                       "(also in a moved or copied output folder).")
    p.add_argument("spec", help="campaign spec: a YAML file, or the name of a bundled spec (demo, paper)")
    p.add_argument("-o", "--outdir", required=True, help="output folder (report.html, tables, figures)")
    p.add_argument("--calculator", help="override the spec's calculator (embedded, vasp, ...)")
    p.add_argument("--launchpad", help="FireWorks launchpad file (real MongoDB); default: embedded")
    p.add_argument("--db", help="results database URL (SQLite path or postgresql://...)")
    p.add_argument("--workers", **number(int, lo=1), default=None, metavar="N",
                   help="parallel relaxation workers with the embedded launchpad (default: $SACMAP_WORKERS, else "
                   "the cores available)")
    p.add_argument("--skip-calculations", action="store_true",
                   help="build structures but run no calculations (energetics skipped)")
    p.add_argument("--no-progress", action="store_true", help="no progress bars")
    p.set_defaults(func=_run)


def _run(args: argparse.Namespace) -> int:
    from sacmap.core.atomic import output_dir
    from sacmap.core.errors import EXIT_OK, EXIT_SOME_FAILED
    from sacmap.workflows.job import run_job

    out = output_dir(args.outdir)
    report = run_job(args.spec, out, calculator=args.calculator, launchpad=args.launchpad, db=args.db,
                     progress=not args.no_progress, skip_calculations=args.skip_calculations, workers=args.workers)
    print(f"report: {report}")
    try:
        failed = json.loads((Path(out) / "run_summary.json").read_text()).get("failed_inputs") or []
    except (OSError, ValueError):
        failed = []
    if failed:
        print(f"{len(failed)} input(s) could not be used (listed in {Path(out) / 'detection' / 'batch_summary.csv'})")
        return EXIT_SOME_FAILED
    return EXIT_OK
