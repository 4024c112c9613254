"""The ``sacmap`` command line.

Sub-command groups live in :mod:`sacmap.workflows.cli` (one module each, named for the group). Errors
caused by user input (bad files, bad fields, bad option values, file-system problems such as a read-only or
unwritable output folder, a non-UTF-8 file) print one clear line naming the file or option and the problem and
exit with status 2; nothing already written is removed. A batch that went on past bad inputs exits with status 3
(:data:`sacmap.core.errors.EXIT_SOME_FAILED`). The files a command reads are never overwritten by it
(:func:`sacmap.core.atomic.protect_inputs`).
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
    from sacmap.core.redact import RedactingFilter

    logging.basicConfig(level=logging.DEBUG if verbose else logging.INFO, format="%(levelname)s %(name)s: %(message)s")
    for handler in logging.getLogger().handlers:
        if not any(isinstance(f, RedactingFilter) for f in handler.filters):
            handler.addFilter(RedactingFilter())  # passwords in database / launchpad URLs, also in library logs
        if not verbose:
            handler.addFilter(_OwnInfoFilter())


def _input_error_types() -> tuple[type[BaseException], ...]:
    """Exception classes that mean 'bad user input': every package's error derives from the core's
    :class:`~sacmap.core.errors.InputError`; file-system problems (missing files, permissions, a read-only
    folder, ``-o`` naming a file, a full disk: :class:`OSError`), undecodable text and exhausted memory are the
    user's to fix too."""
    from sacmap.core.errors import InputError

    return (InputError, OSError, UnicodeDecodeError, MemoryError)


def build_parser() -> argparse.ArgumentParser:
    from importlib.metadata import PackageNotFoundError, version

    try:
        ver = version("sacmap")
    except PackageNotFoundError:  # running from a source tree
        ver = "unknown"
    from sacmap.workflows.cli.options import OneLineParser

    parser = OneLineParser(
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


def _error_line(exc: BaseException) -> str:
    """The one line printed for a user error (secrets such as database passwords redacted)."""
    from sacmap.core.batch import error_text
    from sacmap.core.redact import redact_text

    if isinstance(exc, UnicodeDecodeError):
        return f"a file is not UTF-8 text ({exc.reason} at byte {exc.start}); save it as UTF-8"
    return redact_text(error_text(exc))


def main(argv: list[str] | None = None) -> int:
    """Run ``sacmap`` with ``argv`` (default: ``sys.argv[1:]``); returns the exit status (0 done, 2 bad input,
    3 a batch with failed inputs, 130 interrupted)."""
    from sacmap.core.atomic import protect_inputs
    from sacmap.core.errors import EXIT_BAD_INPUT
    from sacmap.workflows.cli.options import input_files

    parser = build_parser()
    try:
        args = parser.parse_args(argv)
    except SystemExit as exc:  # a one-line argparse error (--help and --version exit as argparse does)
        if not exc.code:
            raise
        return exc.code if isinstance(exc.code, int) else EXIT_BAD_INPUT
    except _input_error_types() as exc:  # a value refused while parsing (options.number & co.)
        print(f"sacmap: error: {_error_line(exc)}", file=sys.stderr)
        return EXIT_BAD_INPUT
    _configure_logging(args.verbose)
    func = getattr(args, "func", None)
    if func is None:
        parser.print_help()
        return EXIT_BAD_INPUT
    try:
        with protect_inputs(input_files(args)):
            rc = func(args)
    except SystemExit as exc:  # a group's own parser (sacmap detect VERB) refused its words
        if not exc.code:
            raise
        return exc.code if isinstance(exc.code, int) else EXIT_BAD_INPUT
    except _input_error_types() as exc:
        print(f"sacmap: error: {_error_line(exc)}", file=sys.stderr)
        return EXIT_BAD_INPUT
    except KeyboardInterrupt:
        print("sacmap: interrupted; outputs written so far are kept", file=sys.stderr)
        return 130
    return int(rc or 0)
