"""Resumable pipeline steps: a step is skipped on a rerun when its inputs' fingerprint is unchanged and all of its
recorded outputs still exist. The record is ``OUTDIR/.steps/<name>.json`` written atomically after the step.

Records are relocatable: outputs are stored relative to OUTDIR, and every path inside OUTDIR in a step's result is
stored as ``{outdir}/<relative path>`` and read back under the folder the record now lies in, so an output folder
moved or copied elsewhere resumes there (and never reads or writes the files of the folder it was copied from).
"""

from __future__ import annotations

import hashlib
import json
import os
from pathlib import Path
from typing import Any

from sacmap.core.atomic import atomic_write


def fingerprint(*parts: Any) -> str:
    """Stable SHA-256 of JSON-serialisable parts (dict keys sorted); files may be passed as ``Path`` (hashed by
    content) so a changed input image or CSV invalidates the step."""

    def _norm(obj: Any) -> Any:
        if isinstance(obj, Path):
            if obj.is_file():
                h = hashlib.sha256()
                with open(obj, "rb") as fh:
                    for chunk in iter(lambda: fh.read(1 << 20), b""):
                        h.update(chunk)
                return {"file": obj.name, "sha256": h.hexdigest()}
            return {"path": str(obj)}
        if isinstance(obj, dict):
            return {str(k): _norm(v) for k, v in sorted(obj.items(), key=lambda kv: str(kv[0]))}
        if isinstance(obj, (list, tuple)):
            return [_norm(v) for v in obj]
        return obj

    blob = json.dumps(_norm(list(parts)), sort_keys=True, default=str).encode()
    return hashlib.sha256(blob).hexdigest()[:16]


# Bump when what a step writes changes meaning, so results of older code are recomputed rather than reused.
STEP_FORMAT = 2


#: placeholder for OUTDIR in stored step results (see :func:`_to_stored` / :func:`_from_stored`)
OUTDIR_MARK = "{outdir}"


def _to_stored(obj: Any, root: str) -> Any:
    """``obj`` with every string that is a path inside ``root`` rewritten as ``{outdir}/<relative path>``."""
    if isinstance(obj, dict):
        return {k: _to_stored(v, root) for k, v in obj.items()}
    if isinstance(obj, (list, tuple)):
        return [_to_stored(v, root) for v in obj]
    if isinstance(obj, os.PathLike):
        obj = os.fspath(obj)
    if isinstance(obj, str):
        if obj == root:
            return OUTDIR_MARK
        for sep in {os.sep, "/"}:
            if obj.startswith(root + sep):
                return OUTDIR_MARK + "/" + obj[len(root) + 1:].replace(os.sep, "/")
        for scheme in ("sqlite:///",):  # database URLs of a SQLite file inside OUTDIR
            if obj.startswith(scheme + root + "/"):
                return scheme + OUTDIR_MARK + "/" + obj[len(scheme) + len(root) + 1:]
    return obj


def _from_stored(obj: Any, root: str) -> Any:
    """The inverse of :func:`_to_stored` for the folder ``root`` the record is read from now."""
    if isinstance(obj, dict):
        return {k: _from_stored(v, root) for k, v in obj.items()}
    if isinstance(obj, list):
        return [_from_stored(v, root) for v in obj]
    if isinstance(obj, str) and OUTDIR_MARK in obj:
        return obj.replace(OUTDIR_MARK, root)
    return obj


class StepRecord:
    """Bookkeeping for one named step under ``outdir``. Keys are combined with :data:`STEP_FORMAT`."""

    def __init__(self, outdir: Path, name: str):
        self.outdir = Path(outdir).absolute()
        self.name = name
        self.path = self.outdir / ".steps" / f"{name}.json"

    def load(self) -> dict | None:
        try:
            return json.loads(self.path.read_text())
        except (OSError, ValueError):
            return None

    def is_current(self, key: str) -> bool:
        rec = self.load()
        if not rec or rec.get("key") != f"{key}-f{STEP_FORMAT}":
            return False
        return all((self.outdir / p).exists() for p in rec.get("outputs", []))

    def result(self) -> dict:
        """The step's recorded result, its paths under the folder the record lies in now."""
        rec = self.load() or {}
        return _from_stored(rec.get("result", {}), str(self.outdir))

    def mark_done(self, key: str, outputs: list[Path], result: dict | None = None) -> None:
        """Record the step as done: ``outputs`` (stored relative to OUTDIR) and ``result`` (paths inside OUTDIR
        stored relative to it, see the module docstring)."""
        rels = [os.path.relpath(p, self.outdir) for p in outputs]
        stored = _to_stored(json.loads(json.dumps(result or {}, default=str)), str(self.outdir))
        for root in {str(self.outdir.resolve())} - {str(self.outdir)}:  # the same folder through a symlink
            stored = _to_stored(stored, root)
        payload = json.dumps({"key": f"{key}-f{STEP_FORMAT}", "outputs": rels, "result": stored}, indent=1)
        atomic_write(self.path, payload)
