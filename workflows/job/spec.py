"""Validation of the blocks of a campaign spec that the main job owns: ``images``, ``detection``,
``statistics`` and ``sampling`` (``structures`` is validated by :mod:`structures`, ``calculation`` by the
workflows settings).
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

from sacmap.workflows.errors import WorkflowInputError

IMAGE_SUFFIXES = {".tif", ".tiff", ".png", ".jpg", ".jpeg", ".dm3", ".dm4", ".emd", ".ser"}

DETECTION_DEFAULTS: dict[str, Any] = {"threshold": 0.8, "pixel_size_nm": None, "elements": None, "weights": None,
                                      "device": "cpu"}
STATISTICS_DEFAULTS: dict[str, Any] = {"multimer_nm": 0.22}
SAMPLING_DEFAULTS: dict[str, Any] = {
    "runs": 40,            # independent runs per density and sampler (the paper: ≥ 40)
    "seed": 0,
    "field_nm": 10.0,      # side of the square sampling area for the density sweep (the paper: 10 × 10 nm)
    "densities_nm2": None, # None: spread over the observed densities
    "repulsive_c_nm": 0.2,
    "fit": True,           # fit the DFT-biased sampler to the detected coordinates
    "n_boot": 50,
    "site_kinds": None,    # which site–site potential curve drives the DFT-biased sampler (default: first)
}


def _block(spec: dict, name: str, defaults: dict, source: str) -> dict:
    block = spec.get(name) or {}
    if not isinstance(block, dict):
        raise WorkflowInputError(f"{source}: '{name}' must be a mapping, got {type(block).__name__}")
    unknown = sorted(set(block) - set(defaults))
    if unknown:
        raise WorkflowInputError(f"{source}: unknown key(s) in '{name}': {', '.join(unknown)} "
                                 f"(allowed: {', '.join(sorted(defaults))})")
    return {**defaults, **block}


def _positive(value, where: str, source: str, integer: bool = False):
    try:
        v = int(value) if integer else float(value)
    except (TypeError, ValueError):
        raise WorkflowInputError(f"{source}: {where} must be a number, got {value!r}") from None
    if not v > 0:
        raise WorkflowInputError(f"{source}: {where} must be positive, got {value!r}")
    return v


def resolve_images(spec: dict, spec_path: Path) -> list[Path]:
    """Image files and detector-output CSVs named by ``images:`` (paths relative to the spec file; folders are
    expanded to the images/CSVs they contain, sorted)."""
    entries = spec.get("images") or []
    if isinstance(entries, str):
        entries = [entries]
    if not isinstance(entries, list):
        raise WorkflowInputError(f"{spec_path}: 'images' must be a list of files or folders")
    out: list[Path] = []
    for entry in entries:
        p = Path(str(entry)).expanduser()
        if not p.is_absolute():
            p = (spec_path.parent / p).resolve()
        if p.is_dir():
            found = sorted(q for q in p.iterdir() if q.suffix.lower() in IMAGE_SUFFIXES)
            if not found:
                found = sorted(q for q in p.iterdir() if q.suffix.lower() == ".csv")
            if not found:
                raise WorkflowInputError(f"{spec_path}: images: folder {p} holds no image or CSV")
            out.extend(found)
        elif p.is_file():
            if p.suffix.lower() not in IMAGE_SUFFIXES | {".csv"}:
                raise WorkflowInputError(f"{spec_path}: images: {p.name} is neither an image nor a detector CSV")
            out.append(p)
        else:
            raise WorkflowInputError(f"{spec_path}: images: {entry} does not exist")
    return out


def job_settings(spec: dict, spec_path: Path) -> dict:
    """Validated settings of the job-owned blocks, defaults filled in."""
    source = str(spec_path)
    det = _block(spec, "detection", DETECTION_DEFAULTS, source)
    det["threshold"] = float(det["threshold"])
    if not 0 < det["threshold"] < 1:
        raise WorkflowInputError(f"{source}: detection.threshold must be in (0, 1), got {det['threshold']}")
    if det["pixel_size_nm"] is not None:
        det["pixel_size_nm"] = _positive(det["pixel_size_nm"], "detection.pixel_size_nm", source)
    if isinstance(det["elements"], str):
        det["elements"] = [e.strip() for e in det["elements"].split(",") if e.strip()]
    stats = _block(spec, "statistics", STATISTICS_DEFAULTS, source)
    stats["multimer_nm"] = _positive(stats["multimer_nm"], "statistics.multimer_nm", source)
    samp = _block(spec, "sampling", SAMPLING_DEFAULTS, source)
    samp["runs"] = _positive(samp["runs"], "sampling.runs", source, integer=True)
    samp["field_nm"] = _positive(samp["field_nm"], "sampling.field_nm", source)
    samp["n_boot"] = _positive(samp["n_boot"], "sampling.n_boot", source, integer=True)
    if samp["densities_nm2"] is not None:
        if not isinstance(samp["densities_nm2"], list) or not samp["densities_nm2"]:
            raise WorkflowInputError(f"{source}: sampling.densities_nm2 must be a non-empty list")
        samp["densities_nm2"] = [_positive(d, "sampling.densities_nm2[]", source) for d in samp["densities_nm2"]]
    return {"detection": det, "statistics": stats, "sampling": samp, "images": resolve_images(spec, spec_path)}
