"""Where the shipped presets live (``inputs/`` at the repository root, or ``$SACMAP_INPUTS``)."""

from __future__ import annotations

import os
from pathlib import Path

REPO_ROOT = Path(__file__).resolve().parent.parent


def inputs_dir() -> Path:
    """Directory holding ``vasp/``, ``campaigns/``, ``fireworks/`` and ``stem/`` presets."""
    env = os.environ.get("SACMAP_INPUTS")
    return Path(env) if env else REPO_ROOT / "inputs"
