"""Reading the small YAML files users hand to sacmap (VASP presets, launchpad files, specs): safe loading, a
mapping at the top, known fields only — each failure an :class:`~sacmap.core.errors.InputError` (or the caller's
subclass of it) naming the file."""

from __future__ import annotations

from pathlib import Path

import yaml

from sacmap.core.errors import InputError


def read_text(path: str | Path, *, error: type[InputError] = InputError) -> str:
    """The UTF-8 text of a small user file; a file that is not UTF-8 is ``error`` naming the file and the byte
    offset (one line), not a :class:`UnicodeDecodeError` traceback."""
    raw = Path(path).read_bytes()
    try:
        return raw.decode("utf-8")
    except UnicodeDecodeError as exc:
        raise error(f"{path}: not UTF-8 text (byte 0x{raw[exc.start]:02x} at offset {exc.start}); "
                    f"save it as UTF-8") from None


def read_mapping(path: Path, kind: str, allowed: set[str], article: str = "a",
                 error: type[InputError] = InputError) -> dict:
    """``yaml.safe_load`` of ``path``, which must hold a mapping whose keys are all in ``allowed``.

    ``kind`` names the file in messages (``"launchpad"`` → "a launchpad file must be a mapping", "unknown
    launchpad field(s) [...]"). ``error`` is the exception class raised (the caller's package error).
    """
    try:
        data = yaml.safe_load(read_text(path, error=error))
    except yaml.YAMLError as exc:
        raise error(f"{path}: not valid YAML: {exc}") from exc
    if not isinstance(data, dict):
        raise error(f"{path}: {article} {kind} file must be a mapping")
    unknown = set(data) - set(allowed)
    if unknown:
        raise error(f"{path}: unknown {kind} field(s) {sorted(unknown)}; allowed {sorted(allowed)}")
    return data
