"""The ``sacmap`` command line.

Sub-command groups live in :mod:`sacmap.workflows.cli` (one module each, named for the group). Errors
caused by user input (bad files, bad fields) print one clear line naming the file and the problem and exit with
status 2; nothing already written is removed.
"""

from __future__ import annotations

import argparse
import importlib
import logging
import sys

# sub-command group -> module in sacmap.workflows.cli (imported lazily, in this order for --help)
COMMAND_MODULES = [
    "structures",
    "campaign",
    "energies",
    "stats",
    "sample",
    "detect",
    "run",
    "app",
]


OWN_LOGGERS = ("sacmap",)


class _OwnInfoFilter(logging.Filter):
    """Let our own loggers through from INFO, everybody else's (FireWorks' rocket/launchpad loggers reset
    themselves to DEBUG on every launch) only from WARNING."""

    def filter(self, record: logging.LogRecord) -> bool:
        if record.levelno >= logging.WARNING:
            return True
        return record.levelno >= logging.INFO and record.name.split(".")[0] in OWN_LOGGERS


def _configure_logging(verbose: bool) -> None:
    logging.basicConfig(level=logging.DEBUG if verbose else logging.INFO, format="%(levelname)s %(name)s: %(message)s")
    if not verbose:
        for handler in logging.getLogger().handlers:
            handler.addFilter(_OwnInfoFilter())


def _input_error_types() -> tuple[type[BaseException], ...]:
    """Exception classes that mean 'bad user input': every package's error derives from the core's
    :class:`~sacmap.core.errors.InputError`; missing files and permissions are the user's too."""
    from sacmap.core.errors import InputError

    return (InputError, FileNotFoundError, IsADirectoryError, NotADirectoryError, PermissionError)


def build_parser() -> argparse.ArgumentParser:
    from importlib.metadata import PackageNotFoundError, version

    try:
        ver = version("sacmap")
    except PackageNotFoundError:  # running from a source tree
        ver = "unknown"
    parser = argparse.ArgumentParser(
        prog="sacmap",
        description="Metal-centre organisation in single-atom catalysts: structures, DFT campaigns, energetics, "
        "STEM atom detection, spatial statistics and samplers.",
    )
    parser.add_argument("--version", action="version", version=f"sacmap {ver}")
    parser.add_argument("-v", "--verbose", action="store_true", help="debug logging")
    sub = parser.add_subparsers(dest="command", metavar="COMMAND")
    for name in COMMAND_MODULES:
        try:
            mod = importlib.import_module(f"sacmap.workflows.cli.{name}")
        except ModuleNotFoundError as exc:
            if exc.name == f"sacmap.workflows.cli.{name}":
                continue  # group not available in this build
            raise
        mod.register(sub)
    return parser


def main(argv: list[str] | None = None) -> int:
    parser = build_parser()
    args = parser.parse_args(argv)
    _configure_logging(args.verbose)
    func = getattr(args, "func", None)
    if func is None:
        parser.print_help()
        return 2
    try:
        rc = func(args)
    except _input_error_types() as exc:
        print(f"sacmap: error: {exc}", file=sys.stderr)
        return 2
    except KeyboardInterrupt:
        print("sacmap: interrupted; outputs written so far are kept", file=sys.stderr)
        return 130
    return int(rc or 0)
