"""Resumable pipeline steps: a step is skipped on a rerun when its inputs' fingerprint is unchanged and all of its
recorded outputs still exist. The record is ``OUTDIR/.steps/<name>.json`` written atomically after the step.
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


class StepRecord:
    """Bookkeeping for one named step under ``outdir``. Keys are combined with :data:`STEP_FORMAT`."""

    def __init__(self, outdir: Path, name: str):
        self.outdir = Path(outdir)
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
        rec = self.load() or {}
        return rec.get("result", {})

    def mark_done(self, key: str, outputs: list[Path], result: dict | None = None) -> None:
        rels = [os.path.relpath(p, self.outdir) for p in outputs]
        payload = json.dumps({"key": f"{key}-f{STEP_FORMAT}", "outputs": rels, "result": result or {}}, indent=1, default=str)
        atomic_write(self.path, payload)
