"""Batches that go on: a command given several input files tries every one, keeps the results of the good ones,
names every bad one with its reason, writes a per-batch summary and only then reports failure (exit status
:data:`~sacmap.core.errors.EXIT_SOME_FAILED`, 3).

    report = BatchReport("sacmap detect")
    for path in files:
        with report.item(path):          # InputError / OSError -> recorded as failed, the loop goes on
            ... process path ...
    report.write(outdir)                 # outdir/batch_summary.csv: file, status, reason
    return report.exit_code              # 0 when every file was processed, 3 otherwise

Only bad *input* is absorbed (:class:`~sacmap.core.errors.InputError`, :class:`OSError`, :class:`MemoryError`);
programming errors still propagate.
"""

from __future__ import annotations

import contextlib
import csv
import io
import os
import sys
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

from sacmap.core.errors import EXIT_BAD_INPUT, EXIT_OK, EXIT_SOME_FAILED, InputError

#: file name of the per-batch summary written into the output folder
SUMMARY_NAME = "batch_summary.csv"
#: the exceptions one bad input may raise without stopping its batch
ITEM_ERRORS: tuple[type[BaseException], ...] = (InputError, OSError, MemoryError)


def error_text(exc: BaseException) -> str:
    """One line for a user: an OSError as ``<path>: <reason>`` (the path it names, the system's reason), a
    MemoryError as what it is, anything else as its message (first line)."""
    if isinstance(exc, OSError) and exc.strerror:
        names = [str(n) for n in (exc.filename, exc.filename2) if n is not None]
        reason = exc.strerror
        if isinstance(exc, FileExistsError) and exc.filename is not None and reason == os.strerror(17):
            # what makedirs(..., exist_ok=True) raises for a file where a folder is wanted (an -o naming a file)
            if Path(exc.filename).exists() and not Path(exc.filename).is_dir():
                reason = "exists and is not a folder"
        return f"{' -> '.join(names)}: {reason}" if names else reason
    if isinstance(exc, MemoryError):
        return f"out of memory{f' ({exc})' if str(exc) else ''}"
    text = str(exc).strip() or type(exc).__name__
    return text.splitlines()[0]


def _reason(file: str, exc: BaseException) -> str:
    """The error's text without a leading ``<file>: `` (the summary names the file in its own column)."""
    text = error_text(exc)
    for prefix in (f"{file}: ", f"{Path(file).name}: "):
        if text.startswith(prefix):
            return text[len(prefix):]
    return text


@dataclass
class BatchItem:
    file: str
    status: str  # "ok" | "failed" | "skipped"
    reason: str = ""


class BatchReport:
    """Per-file outcomes of one batch; ``command`` prefixes the failure lines printed on stderr."""

    def __init__(self, command: str = "sacmap", *, stream=None):
        self.command = command
        self.items: list[BatchItem] = []
        self._stream = stream

    def ok(self, file: str | os.PathLike, reason: str = "") -> None:
        self.items.append(BatchItem(str(file), "ok", reason))

    def skipped(self, file: str | os.PathLike, reason: str) -> None:
        self.items.append(BatchItem(str(file), "skipped", reason))

    def failed(self, file: str | os.PathLike, reason: str | BaseException) -> None:
        from sacmap.core.redact import redact_text

        file = redact_text(str(file))
        text = redact_text(_reason(file, reason) if isinstance(reason, BaseException) else str(reason))
        self.items.append(BatchItem(file, "failed", text))
        print(f"{self.command}: failed: {file}: {text}", file=self._stream or sys.stderr)

    @contextlib.contextmanager
    def item(self, file: str | os.PathLike) -> Iterator[None]:
        """Run the block for ``file``: recorded as ``ok`` when it finishes, ``failed`` (with the reason) when it
        raises one of :data:`ITEM_ERRORS` (which is then swallowed, so the batch goes on)."""
        try:
            yield
        except ITEM_ERRORS as exc:
            self.failed(file, exc)
        else:
            if not any(it.file == str(file) for it in self.items):
                self.ok(file)

    @property
    def failures(self) -> list[BatchItem]:
        return [it for it in self.items if it.status == "failed"]

    @property
    def n_ok(self) -> int:
        return sum(it.status == "ok" for it in self.items)

    @property
    def exit_code(self) -> int:
        """0 when no input failed; :data:`~sacmap.core.errors.EXIT_SOME_FAILED` (3) when one of several inputs
        failed; :data:`~sacmap.core.errors.EXIT_BAD_INPUT` (2) when the batch's only input failed (it is then plain
        bad input, as for a command that takes one file)."""
        if not self.failures:
            return EXIT_OK
        return EXIT_BAD_INPUT if len(self.items) == 1 else EXIT_SOME_FAILED

    def text(self) -> str:
        """The summary as CSV text (columns ``file, status, reason``)."""
        buf = io.StringIO()
        w = csv.writer(buf, lineterminator="\n")
        w.writerow(["file", "status", "reason"])
        for it in self.items:
            w.writerow([it.file, it.status, it.reason])
        return buf.getvalue()

    def write(self, outdir: str | os.PathLike) -> Path:
        """Write ``outdir/batch_summary.csv`` atomically; returns its path."""
        from sacmap.core.atomic import atomic_write

        return atomic_write(Path(outdir) / SUMMARY_NAME, self.text())

    def closing_line(self) -> str:
        """``N of M input(s) processed; K failed (see batch_summary.csv)`` — for the end of the command."""
        n = len(self.items)
        bad = len(self.failures)
        tail = f"; {bad} failed (listed in {SUMMARY_NAME})" if bad else ""
        return f"{self.n_ok} of {n} input(s) processed{tail}"
