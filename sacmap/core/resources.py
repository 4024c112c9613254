"""The bundled inputs: VASP presets (``vasp/*.yaml``), example campaign specs (``campaigns/*.yaml``), FireWorks
templates (``fireworks/*.yaml``) and the two Pt₁/NC images (``stem/``).

They live in the repository's ``inputs/`` folder, which is installed as the ``sacmap.inputs`` package data, so a
wheel finds them as an editable checkout does. ``$SACMAP_INPUTS`` points sacmap at another folder of the same
layout.
"""

from __future__ import annotations

import os
from importlib.resources import files
from pathlib import Path


def inputs_dir() -> Path:
    """Folder holding ``vasp/``, ``campaigns/``, ``fireworks/`` and ``stem/``."""
    env = os.environ.get("SACMAP_INPUTS")
    if env:
        return Path(env)
    return Path(str(files("sacmap.inputs")))


def bundled_specs() -> dict[str, Path]:
    """Bundled campaign specs by name (``paper``, ``demo``, ...)."""
    return {p.stem: p for p in sorted((inputs_dir() / "campaigns").glob("*.yaml"))}


def resolve_spec(path_or_name: str | os.PathLike) -> Path:
    """A campaign spec given as a path, or as the name of a bundled spec (``paper``, ``demo``).

    An existing file always wins; a bare name without a suffix that is not a file names a bundled spec. Anything
    else is returned as a path, so the caller's reader reports it as missing.
    """
    p = Path(path_or_name)
    if p.exists() or p.suffix or len(p.parts) > 1:
        return p
    return bundled_specs().get(str(path_or_name), p)
