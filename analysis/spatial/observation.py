"""One observed point pattern: atom positions (nm), their labels and the window they were observed in.

:meth:`Observation.from_detection` is the one way a detection record becomes an observation, for ``sacmap stats``,
``sacmap sample fit``, the main job and the web app alike. The window is chosen ONE way:

1. an explicit ``mask`` (file, with the pixel size) or ``region`` (rectangle in nm) when the caller gives one;
2. else the detection's support mask (``<stem>_support.png`` beside the CSV, or the mask of an in-memory
   detection): densities, random references, g(r) and fits all use the support, never the whole frame;
3. else the image rectangle from the record's ``shape`` × ``pixel_size_nm`` (pixel centres at ``j · p``, so the
   frame spans ``[-p/2, (nx - 1/2) p]``); a warning says so when the record's support area differs from it;
4. else (a plain coordinate CSV without metadata) the points' bounding box.

Atoms outside the window are excluded from the pattern and counted in ``n_off_window`` (with a warning), never
dropped silently.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path

import numpy as np

from sacmap.analysis.errors import AnalysisInputError
from sacmap.analysis.spatial.io import parse_region, read_coordinates, read_mask, table_elements
from sacmap.analysis.spatial.window import Region
from sacmap.core.records import SUPPORT_SUFFIX, detection_paths

#: relative mismatch between a record's support area and the image rectangle that earns a warning
_AREA_TOLERANCE = 0.005


@dataclass
class Observation:
    """Atom positions ``xy_nm`` (n, 2; nm) inside ``window``, with per-atom ``elements`` (or None).

    ``source`` names the record; ``pixel_size_nm`` (nm/px) is None for coordinates without a calibration;
    ``n_detected`` counts every atom of the record and ``n_off_window`` those outside the window (excluded);
    ``window_source`` says how the window was chosen (``mask``, ``region``, ``support mask``,
    ``image rectangle``, ``bounding box``); ``warnings`` are sentences for the user; ``rows`` are the kept atoms'
    row numbers in the record (0-based), so per-atom results can be joined back to its table.
    """

    xy_nm: np.ndarray
    elements: np.ndarray | None
    window: Region
    source: str = "points"
    pixel_size_nm: float | None = None
    n_detected: int = 0
    n_off_window: int = 0
    window_source: str = "given"
    warnings: list[str] = field(default_factory=list)
    rows: np.ndarray | None = None

    # ------------------------------------------------------------------ constructors
    @classmethod
    def from_points(cls, xy_nm, window=None, elements=None, *, source: str = "points",
                    pixel_size_nm: float | None = None, window_source: str | None = None) -> Observation:
        """An observation of ``xy_nm`` (nm) in ``window`` (a :class:`Region`, ``(w, h)``, ``(x0, y0, x1, y1)``,
        or None for the points' bounding box); atoms outside the window are excluded and counted."""
        xy = np.asarray(xy_nm, dtype=float).reshape(-1, 2)
        if window is None:
            region, kind = Region.coerce(None, xy), window_source or "bounding box"
        else:
            region, kind = Region.coerce(window), window_source or "given"
        el = None if elements is None else np.asarray(["" if e is None else str(e) for e in elements])
        if el is not None and len(el) != len(xy):
            raise AnalysisInputError(f"{source}: {len(el)} element labels for {len(xy)} atoms")
        inside = region.contains(xy) if len(xy) else np.ones(0, bool)
        n_off = int((~inside).sum())
        warnings = []
        if n_off:
            first = int(np.flatnonzero(~inside)[0]) + 1
            warnings.append(f"{n_off} of {len(xy)} atom(s) lie outside the window ({kind}; first: row {first}); "
                            "they are excluded from the statistics")
        return cls(xy[inside], None if el is None else el[inside], region, str(source), pixel_size_nm,
                   int(len(xy)), n_off, kind, warnings, np.flatnonzero(inside))

    @classmethod
    def from_detection(cls, record, *, pixel_size_nm: float | None = None, region=None, mask=None,
                       run: int | None = None) -> Observation:
        """The observation of a detection record (the window rule of the module docstring).

        ``record``: the path of a ``<stem>.csv`` (with ``<stem>.json`` and ``<stem>_support.png`` beside it when
        they exist; any CSV with x/y columns, see :func:`~sacmap.analysis.spatial.io.read_coordinates`), an
        in-memory detection (``atoms`` table, ``support`` mask, ``pixel_size_nm``, ``summary()``), or a tuple
        ``(table, summary dict, support mask or None)``. ``pixel_size_nm`` (nm/px) overrides the record's;
        ``region`` (``"W,H"`` / ``"X0,Y0,X1,Y1"`` in nm, a tuple or a :class:`Region`) or ``mask`` (a mask file)
        replace the record's window; ``run`` picks one run of a sampler's ``coords.csv``.
        """
        if isinstance(record, (str, Path)):
            path = Path(record)
            xy, elements, meta = read_coordinates(path, pixel_size_nm, run)
            source = str(path)
            support = detection_paths(path.parent, path.stem)["support"]
            support_mask = None
            support_file = support if support.is_file() else None
        else:
            if hasattr(record, "atoms") and hasattr(record, "support"):
                table, meta, support_mask = record.atoms, dict(record.summary()), record.support
            else:
                try:
                    table, meta, support_mask = record
                except (TypeError, ValueError):
                    raise AnalysisInputError("detection record: expected a CSV path, a detection result or "
                                             "(table, summary, support mask)") from None
            meta = dict(meta or {})
            source = str(meta.get("image") or meta.get("source") or "detection")
            if pixel_size_nm is not None:
                meta["pixel_size_nm"] = pixel_size_nm
            xy, elements = _table_points(table, meta.get("pixel_size_nm"), source)
            support_file = None
        px = meta.get("pixel_size_nm")
        px = None if px is None else float(px)
        window, kind, notes = _window(xy, meta, px, source, region=region, mask=mask, support_mask=support_mask,
                                      support_file=support_file)
        obs = cls.from_points(xy, window, elements, source=source, pixel_size_nm=px, window_source=kind)
        obs.warnings[:0] = notes
        return obs

    # ------------------------------------------------------------------ summaries
    @property
    def n_atoms(self) -> int:
        """Atoms in the window (the pattern's size)."""
        return int(len(self.xy_nm))

    @property
    def density_nm2(self) -> float:
        """Atoms per nm² of the window's support area."""
        return self.n_atoms / self.window.area_nm2

    def summary(self) -> dict:
        """JSON-friendly counts: atoms in / outside the window, support area (nm²), density (nm⁻²), window."""
        return {"source": self.source, "n_atoms": self.n_atoms, "n_detected": self.n_detected,
                "n_off_window": self.n_off_window, "support_area_nm2": float(self.window.area_nm2),
                "density_nm2": float(self.density_nm2), "pixel_size_nm": self.pixel_size_nm,
                "window": {**self.window.describe(), "source": self.window_source}, "warnings": list(self.warnings)}


def _table_points(table, pixel_size_nm, source: str):
    """``(xy_nm, elements or None)`` of a detection table (``x_nm, y_nm`` or ``x_px, y_px`` × pixel size)."""
    cols = set(table.columns)
    if {"x_nm", "y_nm"} <= cols:
        xy = table[["x_nm", "y_nm"]].to_numpy(float)
    elif {"x_px", "y_px"} <= cols and pixel_size_nm:
        xy = table[["x_px", "y_px"]].to_numpy(float) * float(pixel_size_nm)
    else:
        raise AnalysisInputError(f"{source}: detection table lacks x_nm, y_nm (or x_px, y_px with a pixel size)")
    return xy, table_elements(table)


def _window(xy, meta: dict, px: float | None, source: str, *, region, mask, support_mask, support_file):
    """``(Region, how it was chosen, warnings)`` by the module's rule."""
    if mask is not None:
        if px is None:
            raise AnalysisInputError(f"{mask}: a mask needs the pixel size (--pixel-size NM)")
        return read_mask(mask, px), "mask", []
    if region is not None:
        return (parse_region(region) if isinstance(region, str) else Region.coerce(region)), "region", []
    shape = [int(v) for v in meta["shape"][:2]] if meta.get("shape") else None
    if support_file is not None or (support_mask is not None and np.any(support_mask)):
        if px is None:
            raise AnalysisInputError(f"{source}: the support mask needs the pixel size (--pixel-size NM)")
        win = read_mask(support_file, px) if support_file is not None else Region.from_mask(support_mask, px)
        if shape is not None and list(win.mask.shape) != shape:
            where = support_file or "support mask"
            raise AnalysisInputError(f"{where}: mask of {win.mask.shape[0]} × {win.mask.shape[1]} px does not "
                                     f"match the image's {shape[0]} × {shape[1]} px")
        return win, "support mask", []
    if shape is not None and px is not None:
        ny, nx = shape
        win = Region.rectangle(nx * px, ny * px, -0.5 * px, -0.5 * px)
        notes = []
        support_area = meta.get("support_area_nm2")
        if support_area and abs(float(support_area) - win.area_nm2) > _AREA_TOLERANCE * win.area_nm2:
            notes.append(f"{source}: no support mask ({Path(source).stem}{SUPPORT_SUFFIX}) beside the record: the "
                         f"window is the whole image ({win.area_nm2:.2f} nm²), not the detector's support "
                         f"({float(support_area):.2f} nm²)")
        return win, "image rectangle", notes
    return None, "bounding box", []  # Observation.from_points takes the bounding box
