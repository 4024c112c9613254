"""The detection record: the files one detected image leaves behind, as the single definition that detection
writes and analysis, the main job and the web app read.

Per image ``<stem>``:

* ``<stem>.csv`` — one row per atom, columns :data:`DETECTION_COLUMNS`: ``x_px, y_px`` (image pixels; x = column,
  y = row, origin at the centre of the top-left pixel), ``x_nm, y_nm`` (the same in nm), ``score`` (CNN
  probability), ``component_size`` (px² of the connected component the atom came from), ``element`` (label or
  empty), and from the 2-D Gaussian refinement (:mod:`sacmap.detection.refine`; empty when not refined):
  ``intensity`` (integrated intensity above the local background, raw image units · px²), ``sigma_px`` (the
  Gaussian's width σ, px), ``pos_err_px`` (1-σ uncertainty of one coordinate, px). ``score`` and
  ``component_size`` of the default combination: heat-map atoms carry their peak height and 0, CNN atoms their
  probability and component size; atoms added by the refinement's pair split (``Settings.split_pairs``, ``sacmap
  detect --split-pairs``) come after the detected ones with the ``score`` and ``component_size`` of the atom they
  were split from;
* ``<stem>.json`` — the summary, keys :data:`DETECTION_JSON_KEYS` (pixel size nm/px, image shape in px, support
  area nm², threshold, counts, the settings used, the file names);
* ``<stem>_support.png`` — the support mask (white = support), the window of every statistic of the image;
* ``<stem>_overlay.png`` — an overlay for people.

The two PNGs carry a suffix so that no output can take the name of an input image (``frame.png`` detected into
its own folder stays ``frame.png``), and a folder's own outputs are recognised (the record lists them under
``"files"``) and never read back as input images.
"""

from __future__ import annotations

from pathlib import Path

#: Columns of ``<stem>.csv``, in order.
DETECTION_COLUMNS: tuple[str, ...] = ("x_px", "y_px", "x_nm", "y_nm", "score", "component_size", "element",
                                      "intensity", "sigma_px", "pos_err_px")

#: Keys every ``<stem>.json`` holds (more may follow).
DETECTION_JSON_KEYS: tuple[str, ...] = (
    "image", "pixel_size_nm", "pixel_size_y_nm", "shape", "support_area_nm2", "field_area_nm2", "threshold",
    "n_atoms", "n_atoms_on_support", "density_nm2", "element_counts", "settings", "files",
)

#: Suffix of the support-mask PNG written beside the CSV.
SUPPORT_SUFFIX = "_support.png"
#: Suffix of the overlay PNG written beside the CSV.
OVERLAY_SUFFIX = "_overlay.png"

TIFF_SUFFIXES: frozenset[str] = frozenset({".tif", ".tiff"})
RASTER_SUFFIXES: frozenset[str] = frozenset({".png", ".jpg", ".jpeg", ".bmp"})
#: Formats read through rosettasciio (the ``io`` extra).
RSCIIO_SUFFIXES: frozenset[str] = frozenset({".dm3", ".dm4", ".emd", ".ser"})
#: Every image suffix sacmap reads (lower case).
IMAGE_SUFFIXES: frozenset[str] = TIFF_SUFFIXES | RASTER_SUFFIXES | RSCIIO_SUFFIXES


def is_image(path: str | Path) -> bool:
    """True when ``path`` has a suffix sacmap reads as an image (case-insensitive)."""
    return Path(path).suffix.lower() in IMAGE_SUFFIXES


def detection_paths(outdir: str | Path, stem: str) -> dict[str, Path]:
    """The files of one detection record in ``outdir``: ``csv``, ``json``, ``support``, ``overlay``."""
    outdir = Path(outdir)
    return {"csv": outdir / f"{stem}.csv", "json": outdir / f"{stem}.json",
            "support": outdir / f"{stem}{SUPPORT_SUFFIX}", "overlay": outdir / f"{stem}{OVERLAY_SUFFIX}"}
