"""Reading the small YAML files users hand to the workflows (VASP presets, launchpad files): safe loading, a
mapping at the top, known fields only — each failure a :class:`WorkflowInputError` naming the file."""

from __future__ import annotations

from pathlib import Path

import yaml

from workflows.errors import WorkflowInputError


def read_mapping(path: Path, kind: str, allowed: set[str], article: str = "a") -> dict:
    """``yaml.safe_load`` of ``path``, which must hold a mapping whose keys are all in ``allowed``.

    ``kind`` names the file in messages (``"launchpad"`` → "a launchpad file must be a mapping", "unknown
    launchpad field(s) [...]").
    """
    try:
        data = yaml.safe_load(Path(path).read_text())
    except yaml.YAMLError as exc:
        raise WorkflowInputError(f"{path}: not valid YAML: {exc}") from exc
    if not isinstance(data, dict):
        raise WorkflowInputError(f"{path}: {article} {kind} file must be a mapping")
    unknown = set(data) - set(allowed)
    if unknown:
        raise WorkflowInputError(f"{path}: unknown {kind} field(s) {sorted(unknown)}; allowed {sorted(allowed)}")
    return data
