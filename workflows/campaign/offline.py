"""Offline runs: compute nodes that cannot reach the LaunchPad's database.

The flow is FireWorks' own (reservation mode): on the login node a Firework is *reserved* and written into its
launch folder as ``FW.json`` + ``FW_offline.json`` (:func:`sacmap.workflows.campaign.runner.reserve_offline`,
or ``qlaunch -r`` with ``inputs/fireworks/my_qadapter_offline.yaml``); the compute node runs it there without any
database access (:func:`run_offline`); back on the login node ``lpad recover_offline`` (or
:func:`sacmap.workflows.campaign.runner.recover_offline`) reads ``FW_offline.json`` and completes the launch,
which makes the next steps READY.

Why not ``rlaunch singleshot --offline``: with FireWorks 2.1.4 and current monty it fails with ``TypeError:
zopen() missing 1 required positional argument: 'mode'`` (FireWorks' Rocket opens ``FW_offline.json`` with
``zopen(path)``, and monty now requires an explicit mode). :func:`run_offline` runs the same ``Rocket`` with a
compatible ``zopen`` (mode ``"rt"`` when none is given) bound in FireWorks' rocket module for the duration of the
run: nothing in site-packages is changed. The command line mirrors rlaunch's, so queue templates and
``qlaunch -r`` (which requires ``singleshot`` in ``rocket_launch`` and appends ``--fw_id N``) work unchanged::

    python -m sacmap.workflows.campaign.offline singleshot --offline [--fw_id N] [-w my_fworker.yaml]
"""

from __future__ import annotations

import argparse
import contextlib
import os
import sys
from pathlib import Path

from sacmap.workflows.errors import WorkflowInputError

OFFLINE_FILES = ("FW.json", "FW_offline.json")


@contextlib.contextmanager
def compatible_zopen():
    """FireWorks' rocket module sees a ``zopen`` whose ``mode`` defaults to ``"rt"`` (monty's has no default)."""
    import fireworks.core.rocket as rocket
    from monty.io import zopen

    def zopen_rt(filename, mode: str = "rt", **kwargs):
        return zopen(filename, mode, **kwargs)

    orig = rocket.zopen
    rocket.zopen = zopen_rt
    try:
        yield
    finally:
        rocket.zopen = orig


def run_offline(launch_dir: str | os.PathLike = ".", fworker=None) -> bool:
    """Run the reserved Firework of ``launch_dir`` (its ``FW.json``) offline: no LaunchPad, outcome written to
    ``FW_offline.json`` for ``recover_offline``. ``fworker``: a FireWorks ``FWorker`` or a my_fworker.yaml path
    (its ``env`` reaches the tasks). Returns True when the Rocket ran."""
    from fireworks import FWorker
    from fireworks.core.rocket import Rocket

    folder = Path(launch_dir).resolve()
    missing = [name for name in OFFLINE_FILES if not (folder / name).is_file()]
    if missing:
        raise WorkflowInputError(f"{folder}: not a reserved offline launch folder (missing {', '.join(missing)}; "
                                 "reserve it first: sacmap campaign reserve-offline or qlaunch -r)")
    if fworker is None or isinstance(fworker, (str, os.PathLike)):
        from sacmap.workflows.campaign.runner import load_fworker

        fworker = load_fworker(fworker)
    elif not isinstance(fworker, FWorker):
        raise TypeError("fworker must be a FWorker or a my_fworker.yaml path")
    cwd = os.getcwd()
    os.chdir(folder)
    try:
        with compatible_zopen():
            return bool(Rocket(None, fworker, None).run())
    finally:
        os.chdir(cwd)


def main(argv: list[str] | None = None) -> int:
    """``singleshot --offline [--fw_id N] [-w FWORKER] [-l LAUNCHPAD]``, as ``rlaunch``: run the reserved Firework
    in the current folder offline (``--fw_id`` and ``-l`` are accepted for qlaunch/rlaunch compatibility; the
    reserved Firework is the one in FW.json)."""
    p = argparse.ArgumentParser(prog="python -m sacmap.workflows.campaign.offline",
                                description="Run a reserved Firework offline (rlaunch singleshot --offline).")
    p.add_argument("command", choices=["singleshot"])
    p.add_argument("--offline", action="store_true", required=True)
    p.add_argument("--fw_id", type=int, default=None)
    p.add_argument("-w", "--fworker_file", default=None)
    p.add_argument("-l", "--launchpad_file", default=None)
    p.add_argument("--loglvl", default="INFO")
    p.add_argument("-s", "--silencer", action="store_true")
    p.add_argument("--launch_dir", default=".")
    args = p.parse_args(argv)
    try:
        run_offline(args.launch_dir, args.fworker_file)
    except WorkflowInputError as exc:
        print(f"offline: {exc}", file=sys.stderr)
        return 2
    return 0


if __name__ == "__main__":
    sys.exit(main())
