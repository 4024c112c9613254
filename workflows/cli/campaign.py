"""``sacmap campaign``: submit a campaign spec as FireWorks workflows, run them, inspect, rerun, export."""

from __future__ import annotations

import argparse
from pathlib import Path


def register(subparsers) -> None:
    from sacmap.workflows.cli.options import number

    p = subparsers.add_parser("campaign", help="DFT/embedded calculation campaigns through FireWorks",
                              description="Run a campaign's calculations as FireWorks workflows.")
    sub = p.add_subparsers(dest="campaign_command", metavar="ACTION", required=True)

    def common(sp):
        sp.add_argument("-w", "--workdir", default="campaign", type=Path,
                        help="campaign work directory (state, embedded launchpad, results.db, calcs/)")

    s = sub.add_parser("submit", help="add one workflow per configuration to the launchpad")
    s.add_argument("spec", type=Path, help="campaign spec YAML")
    s.add_argument("--calculator", help="vasp | embedded (= chgnet-d3) | chgnet | sevennet-d3 | tblite | gpaw | emt")
    s.add_argument("--launchpad", help="my_launchpad.yaml of a MongoDB, or 'embedded' (the default unless the "
                   "spec names a launchpad file)")
    s.add_argument("--db", help="results database: SQLite path (.db) or postgresql:// URL (default results.db)")
    common(s)
    s.set_defaults(func=_submit)

    r = sub.add_parser("run", help="run all READY Fireworks here, sequentially (rapidfire), with a progress bar")
    r.add_argument("--max", **number(int, lo=1), default=None, help="stop after this many Fireworks")
    r.add_argument("--no-progress", action="store_true", help="no progress bar")
    r.add_argument("--fworker", type=Path, default=None,
                   help="my_fworker.yaml of this machine (VASP commands, scratch, NCORE/KPAR, category); default: "
                   "FireWorks' own lookup (FW_config.yaml), else a local worker")
    common(r)
    r.set_defaults(func=_run)

    ro = sub.add_parser("reserve-offline", help="reserve READY Fireworks for offline compute nodes (FW.json in "
                        "each launch folder); run them with offline-run, then recover-offline")
    ro.add_argument("--max", **number(int, lo=1), default=None, help="reserve at most this many")
    ro.add_argument("--fworker", type=Path, default=None, help="my_fworker.yaml whose category/query select them")
    common(ro)
    ro.set_defaults(func=_reserve_offline)

    orun = sub.add_parser("offline-run", help="run a reserved Firework in its launch folder without database "
                          "access (instead of `rlaunch singleshot --offline`)")
    orun.add_argument("launch_dir", nargs="?", default=".", type=Path, help="launch folder (default: here)")
    orun.add_argument("--fworker", type=Path, default=None, help="my_fworker.yaml of this node")
    orun.set_defaults(func=_offline_run)

    rec = sub.add_parser("recover-offline", help="read finished offline runs back (as `lpad recover_offline`)")
    common(rec)
    rec.set_defaults(func=_recover_offline)

    st = sub.add_parser("status", help="Firework counts per state and failures with their messages")
    common(st)
    st.set_defaults(func=_status)

    rf = sub.add_parser("rerun-failed", help="reset FIZZLED Fireworks to READY")
    common(rf)
    rf.set_defaults(func=_rerun_failed)

    e = sub.add_parser("export", help="write the results database rows to CSV")
    e.add_argument("-o", "--output", type=Path, default=Path("results.csv"), help="CSV file (default results.csv)")
    common(e)
    e.set_defaults(func=_export)


def _submit(args: argparse.Namespace) -> int:
    from sacmap.workflows.campaign import runner

    info = runner.submit_spec(args.spec, args.workdir, calculator=args.calculator, launchpad=args.launchpad,
                              db=args.db)
    variants = ", ".join(f"{v['calculator']}:{v['settings_hash']}" for v in info["variants"])
    print(f"submitted {info['added']} workflow(s) ({info['skipped']} already there) for {info['n_configs']} "
          f"configuration(s) x [{variants}]")
    print(f"launchpad: {info['launchpad_shown']}")
    print(f"results database: {info['db_shown']}")
    for w in info["warnings"]:
        print(f"warning: {w}")
    return 0


def _run(args: argparse.Namespace) -> int:
    from sacmap.workflows.campaign import runner

    counts = runner.run(args.workdir, progress=not args.no_progress, max_fireworks=args.max, fworker=args.fworker)
    print("fireworks: " + ", ".join(f"{k} {v}" for k, v in counts.items()))
    if counts.get("FIZZLED"):
        print(f"{counts['FIZZLED']} failed: see `sacmap campaign status -w {args.workdir}`")
        return 1
    return 0


def _status(args: argparse.Namespace) -> int:
    from sacmap.workflows.campaign import runner
    from sacmap.workflows.campaign.results import redact_url

    st = runner.status(args.workdir)
    shown = f"{st['n_results']} results" if st["n_results"] is not None else f"unreadable: {st['db_error']}"
    print(f"campaign {st['name']}: launchpad {st['launchpad']}, database {redact_url(st['db'])} ({shown})")
    for state, n in st["counts"].items():
        print(f"  {state:<10} {n}")
    for f in st["failures"]:
        print(f"  FIZZLED fw {f['fw_id']} {f['name']}: {f['message']}")
    for r in st["restarts"]:
        print(f"  restart {r['restart']} ({r['state']}) fw {r['fw_id']} {r['name']}: {r['reason']}")
    return 0


def _reserve_offline(args: argparse.Namespace) -> int:
    from sacmap.workflows.campaign import runner

    dirs = runner.reserve_offline(args.workdir, max_fireworks=args.max, fworker=args.fworker)
    for d in dirs:
        print(d)
    print(f"reserved {len(dirs)} Firework(s) for offline runs: `sacmap campaign offline-run DIR` on the node, then "
          f"`sacmap campaign recover-offline -w {args.workdir}`")
    return 0


def _offline_run(args: argparse.Namespace) -> int:
    from sacmap.workflows.campaign.offline import run_offline

    run_offline(args.launch_dir, args.fworker)
    print(f"offline run finished in {args.launch_dir}; recover it on a machine with database access")
    return 0


def _recover_offline(args: argparse.Namespace) -> int:
    from sacmap.workflows.campaign import runner

    info = runner.recover_offline(args.workdir)
    print(f"recovered {info['recovered']} offline run(s) ({info['pending']} not finished yet); fireworks: "
          + ", ".join(f"{k} {v}" for k, v in info["counts"].items()))
    return 1 if info["counts"].get("FIZZLED") else 0


def _rerun_failed(args: argparse.Namespace) -> int:
    from sacmap.workflows.campaign import runner

    n = runner.rerun_failed(args.workdir)
    print(f"reset {n} failed Firework(s) to READY; run `sacmap campaign run -w {args.workdir}`")
    return 0


def _export(args: argparse.Namespace) -> int:
    from sacmap.workflows.campaign import runner

    n = runner.export(args.workdir, args.output)
    print(f"wrote {n} row(s) to {args.output}")
    return 0
