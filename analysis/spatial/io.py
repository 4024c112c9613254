"""Reading coordinates, masks and rectangles for spatial statistics (nm, px). Writers live in
:mod:`sacmap.core.atomic`; the window of a detection record is chosen by
:meth:`sacmap.analysis.spatial.observation.Observation.from_detection`.

Coordinates come from a detection CSV (``x_px, y_px, x_nm, y_nm, score, component_size, element``, with a
sibling ``<stem>.json`` holding ``pixel_size_nm``, ``shape`` and ``support_area_nm2``) or any CSV with x/y
columns: ``x_nm, y_nm`` (nm), or ``x_px, y_px`` / ``X, Y`` / ``x, y`` (pixels, converted with the pixel size
given or found in the JSON).
"""

from __future__ import annotations

import json
import math
from pathlib import Path

import numpy as np

from sacmap.analysis.errors import AnalysisInputError
from sacmap.analysis.spatial.window import Region
from sacmap.core.records import TIFF_SUFFIXES

MAX_CSV_BYTES = 512 * 1024 * 1024
PIXEL_COLUMNS = [("x_px", "y_px"), ("X", "Y"), ("x", "y")]


def _sidecar(path: Path) -> dict:
    js = path.with_suffix(".json")
    if not js.is_file():
        return {}
    try:
        meta = json.loads(js.read_text())
    except (json.JSONDecodeError, UnicodeDecodeError) as exc:
        raise AnalysisInputError(f"{js}: not valid JSON ({exc})") from exc
    if not isinstance(meta, dict):
        raise AnalysisInputError(f"{js}: expected a JSON object")
    meta["_path"] = str(js)
    return meta


def _positive(value, what: str) -> float:
    try:
        v = float(value)
    except (TypeError, ValueError) as exc:
        raise AnalysisInputError(f"{what} must be a number, got {value!r}") from exc
    if not math.isfinite(v) or v <= 0:
        raise AnalysisInputError(f"{what} must be positive, got {value!r}")
    return v


def table_elements(table) -> np.ndarray | None:
    """Per-row element labels of a coordinate table (stripped, empty for none), or None when it has no
    ``element`` column or every label is empty."""
    if "element" not in table.columns:
        return None
    el = table["element"].fillna("").astype(str).str.strip().to_numpy()
    return el if np.any(el != "") else None


def read_coordinates(path, pixel_size_nm: float | None = None, run: int | None = None
                     ) -> tuple[np.ndarray, np.ndarray | None, dict]:
    """Read ``(xy_nm (n, 2), elements or None, meta)`` from a coordinates CSV.

    A ``run`` column (sampler output) must hold a single run unless ``run`` selects one.

    ``meta`` has ``pixel_size_nm``, ``support_area_nm2`` and ``shape`` when known (from the sibling JSON),
    ``units`` (``nm`` or ``px``) and ``source``. Bad files raise :class:`AnalysisInputError` naming the file.
    """
    import pandas as pd

    path = Path(path)
    if not path.is_file():
        raise FileNotFoundError(f"coordinates file not found: {path}")
    if path.stat().st_size > MAX_CSV_BYTES:
        raise AnalysisInputError(f"{path}: larger than {MAX_CSV_BYTES // 2**20} MiB")
    try:
        table = pd.read_csv(path)
    except pd.errors.EmptyDataError as exc:
        raise AnalysisInputError(f"{path}: empty file") from exc
    except (pd.errors.ParserError, UnicodeDecodeError) as exc:
        raise AnalysisInputError(f"{path}: not a readable CSV ({exc})") from exc
    meta = _sidecar(path)
    if pixel_size_nm is not None:
        pixel_size_nm = _positive(pixel_size_nm, f"{path}: pixel size (nm/px)")
    elif "pixel_size_nm" in meta:
        pixel_size_nm = _positive(meta["pixel_size_nm"], f"{meta['_path']}: pixel_size_nm")
    if len(table) == 0:
        raise AnalysisInputError(f"{path}: no rows (no atoms)")
    if "run" in table.columns:
        if run is not None:
            table = table[table["run"] == run]
            if len(table) == 0:
                raise AnalysisInputError(f"{path}: no rows with run == {run}")
        elif table["run"].nunique() > 1:
            raise AnalysisInputError(f"{path}: holds {table['run'].nunique()} runs (column run); pick one with "
                                     "--run N")
    elif run is not None:
        raise AnalysisInputError(f"{path}: no run column, so --run does not apply")
    if {"x_nm", "y_nm"} <= set(table.columns):
        cols, scale, units = ("x_nm", "y_nm"), 1.0, "nm"
    else:
        found = [c for c in PIXEL_COLUMNS if set(c) <= set(table.columns)]
        if not found:
            raise AnalysisInputError(f"{path}: missing coordinate columns; expected x_nm, y_nm or x_px, y_px "
                                     f"(or X, Y / x, y in pixels); have {', '.join(map(str, table.columns))}")
        if pixel_size_nm is None:
            raise AnalysisInputError(f"{path}: columns {found[0]} are in pixels; give the pixel size "
                                     "(--pixel-size NM) or a sibling JSON with pixel_size_nm")
        cols, scale, units = found[0], pixel_size_nm, "px"
    xy = np.empty((len(table), 2))
    for k, c in enumerate(cols):
        v = pd.to_numeric(table[c], errors="coerce").to_numpy(dtype=float)
        bad = ~np.isfinite(v)
        if bad.any():
            raise AnalysisInputError(f"{path}: column {c} row {int(np.flatnonzero(bad)[0]) + 1} is empty, NaN or "
                                     "not a number")
        xy[:, k] = v * scale
    elements = table_elements(table)
    out_meta = {"source": str(path), "units": units, "pixel_size_nm": pixel_size_nm}
    for k in ("support_area_nm2", "shape", "image"):
        if k in meta:
            out_meta[k] = meta[k]
    if "support_area_nm2" in out_meta:
        out_meta["support_area_nm2"] = _positive(out_meta["support_area_nm2"], f"{meta['_path']}: support_area_nm2")
    return xy, elements, out_meta


def read_mask(path, pixel_size_nm: float) -> Region:
    """Support mask from ``.npy`` (no pickles), ``.png``/``.tif`` (non-zero = support)."""
    path = Path(path)
    if not path.is_file():
        raise FileNotFoundError(f"mask file not found: {path}")
    pixel_size_nm = _positive(pixel_size_nm, f"{path}: pixel size (nm/px)")
    try:
        if path.suffix.lower() == ".npy":
            mask = np.load(path, allow_pickle=False)
        elif path.suffix.lower() in TIFF_SUFFIXES:
            import tifffile

            mask = tifffile.imread(path)
        else:
            from skimage.io import imread

            mask = imread(path)
    except (ValueError, OSError) as exc:
        raise AnalysisInputError(f"{path}: cannot read mask ({exc})") from exc
    mask = np.asarray(mask)
    if mask.ndim == 3:
        mask = mask[..., 0]
    try:
        return Region.from_mask(mask != 0, pixel_size_nm)
    except AnalysisInputError as exc:
        raise AnalysisInputError(f"{path}: {exc}") from exc


def parse_region(text: str) -> Region:
    """``W,H`` or ``X0,Y0,X1,Y1`` (nm) → rectangle."""
    try:
        vals = [float(v) for v in str(text).replace(" ", "").split(",")]
    except ValueError as exc:
        raise AnalysisInputError(f"--region: expected W,H or X0,Y0,X1,Y1 in nm, got {text!r}") from exc
    return Region.coerce(vals)
