"""The one argparse helper of every ``sacmap`` command module: numbers checked as they are parsed, output files
checked for a writable format, and parsers whose errors are one line.

    p.add_argument("--batch", **number(int, lo=1), default=4, help="images per CNN batch")
    p.add_argument("--radius-px", **number(lo=0, lo_open=True), default=5.0)
    p.add_argument("-o", "--out", **output_file(".png", ".svg", ".pdf"), required=True)

A bad value raises :class:`~sacmap.core.errors.InputError` ``<prog>: <option>: <problem>`` while the command line
is parsed, before any file is read or written; :func:`sacmap.workflows.cli.main` prints it as one line, exit 2.
The checks are those of :func:`sacmap.core.validation.check_value` (type, ``lo``/``hi``/``lo_open``/``hi_open``,
``choices``, ``check``), the same rules as the specs' fields.
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

from sacmap.core.errors import EXIT_BAD_INPUT, InputError
from sacmap.core.validation import check_value


class OneLineParser(argparse.ArgumentParser):
    """An :class:`argparse.ArgumentParser` whose errors (unknown option, missing argument, bad choice) are one
    line on stderr, ``<prog>: error: <problem> (see '<prog> -h')``, exit status 2 — no usage block."""

    def error(self, message: str):  # noqa: D102 - argparse's hook
        print(f"{self.prog}: error: {message} (see '{self.prog} -h')", file=sys.stderr)
        raise SystemExit(EXIT_BAD_INPUT)


class Checked(argparse.Action):
    """Store an option's value after :func:`~sacmap.core.validation.check_value` (``value_type`` and ``limits``:
    ``lo``/``hi``/``lo_open``/``hi_open``/``choices``/``check``); ``split`` cuts the text into a list first
    (``"16,32,32"``). A bad value raises ``error`` (an :class:`InputError` subclass) ``<prog>: <option>: <problem>``."""

    def __init__(self, option_strings, dest, *, value_type=float, split: str | None = None, limits=None,
                 error: type[InputError] = InputError, **kw):
        super().__init__(option_strings, dest, **kw)
        self.value_type, self.split, self.limits, self.error = value_type, split, dict(limits or {}), error

    def __call__(self, parser, namespace, values, option_string=None):
        if self.split is not None:
            values = [v.strip() for v in values.split(self.split) if v.strip()]
        name = option_string or self.metavar or self.dest
        setattr(namespace, self.dest, check_value(values, self.value_type, name=name, source=parser.prog,
                                                  error=self.error, **self.limits))


def number(value_type=float, *, error: type[InputError] = InputError, **limits) -> dict:
    """``add_argument`` keywords for a number checked at parse time: ``value_type`` ``int`` or ``float``,
    ``limits`` as :func:`sacmap.core.validation.option` (``lo=1``; ``lo=0, lo_open=True`` for "> 0"; ``hi``...)."""
    return {"action": Checked, "value_type": value_type, "limits": limits, "error": error}


def listed(value_type=list[float], *, sep: str = ",", error: type[InputError] = InputError, **limits) -> dict:
    """``add_argument`` keywords for a ``sep``-separated list (``"0.5,1,2"``), each item checked as by
    :func:`number` (``value_type`` ``list[float]``, ``list[str]``, ``tuple[int, int, int]``, ...)."""
    return {"action": Checked, "value_type": value_type, "split": sep, "limits": limits, "error": error}


def _suffix_check(suffixes: tuple[str, ...]):
    allowed = tuple(s.lower() for s in suffixes)

    def check(value: str) -> str:
        suffix = Path(value).suffix.lower()
        if suffix not in allowed:
            raise ValueError(f"{value}: cannot write {suffix or 'a file without suffix'} "
                             f"(use {', '.join(allowed)})")
        return value

    return check


def output_file(*suffixes: str, error: type[InputError] = InputError) -> dict:
    """``add_argument`` keywords for an output file whose format comes from its suffix (``.png``, ``.svg``...):
    another suffix is refused at parse time naming the option and the formats that work."""
    return {"action": Checked, "value_type": str, "limits": {"check": _suffix_check(suffixes)}, "error": error}


#: destinations of output options: never protected as inputs (an existing output file may be replaced)
OUTPUT_DESTS = frozenset({"out", "outdir", "output", "workdir", "words"})


def input_files(namespace: argparse.Namespace) -> list[Path]:
    """The existing files named by a parsed command line's non-output options and arguments (strings, paths and
    lists of them): the command's inputs, which :func:`sacmap.core.atomic.protect_inputs` keeps from being
    overwritten."""
    found = []
    for dest, value in vars(namespace).items():
        if dest in OUTPUT_DESTS or dest == "func":
            continue
        for v in value if isinstance(value, (list, tuple)) else [value]:
            if isinstance(v, (str, Path)) and str(v):
                try:
                    if Path(v).is_file():
                        found.append(Path(v))
                except (OSError, ValueError):
                    continue
    return found


def positive(value: float) -> float:
    """A ``check`` for :func:`number`: strictly above 0 ("must be positive, got -0.1")."""
    if not value > 0:
        raise ValueError(f"must be positive, got {value:g}")
    return value
