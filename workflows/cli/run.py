"""``sacmap run SPEC -o OUTDIR``: the main job, end to end (see :mod:`sacmap.workflows.job`); SPEC is a file or a bundled spec name."""

from __future__ import annotations

import argparse


def register(sub: argparse._SubParsersAction) -> None:
    p = sub.add_parser("run", help="run the main job: structures → calculations → energetics → detection → "
                       "statistics → samplers → report.html",
                       description="Run the whole pipeline for a campaign spec. Every step writes its outputs as soon "
                       "as they exist and is skipped on a rerun when they are current, so an interrupted run resumes.")
    p.add_argument("spec", help="campaign spec: a YAML file, or the name of a bundled spec (demo, paper)")
    p.add_argument("-o", "--outdir", required=True, help="output folder (report.html, tables, figures)")
    p.add_argument("--calculator", help="override the spec's calculator (embedded, vasp, ...)")
    p.add_argument("--launchpad", help="FireWorks launchpad file (real MongoDB); default: embedded")
    p.add_argument("--db", help="results database URL (SQLite path or postgresql://...)")
    p.add_argument("--skip-calculations", action="store_true",
                   help="build structures but run no calculations (energetics skipped)")
    p.add_argument("--no-progress", action="store_true", help="no progress bars")
    p.set_defaults(func=_run)


def _run(args: argparse.Namespace) -> int:
    from sacmap.workflows.job import run_job

    report = run_job(args.spec, args.outdir, calculator=args.calculator, launchpad=args.launchpad, db=args.db,
                     progress=not args.no_progress, skip_calculations=args.skip_calculations)
    print(f"report: {report}")
    return 0
