"""The app's one adapter to the science: detection (``detection``) and spatial statistics (``analysis``).

Nothing here detects atoms or computes a statistic itself. :func:`process_image` reads the image with
``detection.io.read_image`` (pixel-size rules of the page), finds atoms with ``detection.pipeline.detect_image``
(the call behind ``sacmap detect``) and writes its files with the detection package's own writer; computes the
descriptors with ``analysis.spatial.descriptors`` over the detected support mask and the random reference with
``analysis.sampling.sample_random`` (as ``sacmap stats``); and writes, for one image:

* ``<stem>.csv`` — ``x_px, y_px, x_nm, y_nm, score, component_size, element`` (the detection contract);
* ``<stem>.json`` — detection record: pixel size (nm/px), shape, support area (nm²), threshold, counts, settings;
* ``<stem>_support.png`` — the support mask (white = support);
* ``<stem>_descriptors.json`` — density (nm⁻²), NND (nm), multimer share, nuclearity counts, Clark–Evans, ...;
* ``<stem>_overlay.png`` — the image with atoms marked (colour = element; atoms in multimers ringed and bonded);
* ``<stem>_nnd.png`` — the NND histogram against uniform random points at the same density in the same window.
"""

from __future__ import annotations

import json
import math
from collections.abc import Callable
from dataclasses import asdict, dataclass, field
from pathlib import Path

import numpy as np

from sacmap.analysis.errors import AnalysisInputError
from sacmap.analysis.spatial.io import jsonable
from sacmap.core.atomic import atomic_write
from sacmap.detection.errors import DetectionInputError
from sacmap.workflows.errors import WorkflowInputError

#: errors that mean "this file / these settings are bad" (shown to the user, the batch goes on)
INPUT_ERRORS: tuple[type[BaseException], ...] = (
    DetectionInputError, AnalysisInputError, WorkflowInputError, FileNotFoundError,
)

#: columns of the coordinate CSV (docs/contracts.md, "Detection output")
COORD_COLUMNS = ["x_px", "y_px", "x_nm", "y_nm", "score", "component_size", "element"]
#: random reference patterns for the NND histogram: runs (the paper uses >= 40) and seed (reproducible)
RANDOM_RUNS, RANDOM_SEED = 40, 0


class PixelSizeMissing(DetectionInputError):
    """The image has no pixel-size calibration and none was given (the page asks for one)."""


@dataclass
class AppSettings:
    """Settings of one batch (the form of the page).

    pixel_size_nm : nm/px used for images whose file records none (or for all images when
        ``override_pixel_size``); None = from the file only.
    threshold : detection probability threshold, 0 < t < 1.
    elements : expected elements for multimetallic samples (e.g. ``("Ni", "Pd")``, in order of Z); empty = one
        species, no element labelling.
    multimer_nm : two atoms closer than this (nm) are bonded in a multimer (paper: 0.22 nm).
    """

    pixel_size_nm: float | None = None
    override_pixel_size: bool = False
    threshold: float = 0.8
    elements: tuple[str, ...] = field(default_factory=tuple)
    multimer_nm: float = 0.22
    device: str = "cpu"

    def __post_init__(self):
        self.elements = tuple(self.elements or ())
        problems = []
        if self.pixel_size_nm is not None and not (math.isfinite(self.pixel_size_nm) and 0 < self.pixel_size_nm < 100):
            problems.append(f"pixel size must be a positive number of nm/px (< 100), got {self.pixel_size_nm}")
        if self.override_pixel_size and self.pixel_size_nm is None:
            problems.append("'override file calibration' needs a pixel size")
        if not (math.isfinite(self.threshold) and 0 < self.threshold < 1):
            problems.append(f"detection threshold must lie between 0 and 1, got {self.threshold}")
        if not (math.isfinite(self.multimer_nm) and 0 < self.multimer_nm <= 5):
            problems.append(f"multimer distance must be > 0 and <= 5 nm, got {self.multimer_nm}")
        if len(set(self.elements)) != len(self.elements):
            problems.append(f"expected elements repeat: {','.join(self.elements)}")
        from ase.data import chemical_symbols

        bad = [e for e in self.elements if e not in chemical_symbols[1:]]
        if bad:
            problems.append(f"not element symbols: {', '.join(bad)}")
        if problems:
            raise WorkflowInputError("settings: " + "; ".join(problems))

    @classmethod
    def from_form(cls, pixel_size_nm: str = "", override_pixel_size: str = "", threshold: str = "0.8",
                  elements: str = "", multimer_nm: str = "0.22", device: str = "cpu") -> AppSettings:
        """Settings from the strings of the HTML form; raises WorkflowInputError naming the bad field."""

        def num(text: str, name: str) -> float:
            try:
                return float(str(text).strip().replace(",", "."))
            except ValueError:
                raise WorkflowInputError(f"settings: {name} must be a number, got {text!r}") from None

        px = str(pixel_size_nm or "").strip()
        els = tuple(e.strip().capitalize() for e in str(elements or "").replace(";", ",").split(",") if e.strip())
        return cls(
            pixel_size_nm=num(px, "pixel size") if px else None,
            override_pixel_size=str(override_pixel_size).lower() in ("1", "true", "on", "yes"),
            threshold=num(threshold or "0.8", "threshold"),
            elements=els,
            multimer_nm=num(multimer_nm or "0.22", "multimer distance"),
            device=device,
        )

    def to_dict(self) -> dict:
        d = asdict(self)
        d["elements"] = list(self.elements)
        return d


def software_versions() -> dict:
    """Versions of sacmap and the libraries the results depend on."""
    from importlib.metadata import PackageNotFoundError, version

    out = {}
    for name in ("sacmap", "numpy", "scipy", "scikit-learn", "scikit-image", "torch", "tifffile"):
        try:
            out[name] = version(name)
        except PackageNotFoundError:
            out[name] = None
    return out


def _atomic_write(path: Path, data: bytes | str) -> None:
    """Write a file via a temporary file in the same folder and ``os.replace``."""
    atomic_write(path, data)


def warm_up() -> None:
    """Import the detection and statistics packages (torch included) ahead of the first image."""
    import sacmap.analysis.spatial.descriptors  # noqa: F401
    import sacmap.detection.model  # noqa: F401  (torch)
    import sacmap.detection.pipeline  # noqa: F401


def read_image(path: Path, settings: AppSettings, pixel_size_nm: float | None = None):
    """Read an image with ``detection.io.read_image`` applying the app's pixel-size rule.

    Order: a pixel size given for this image; the batch's pixel size when it overrides; the file's calibration;
    the batch's pixel size as a fallback. Returns ``(image, pixel_size_nm, meta, source)`` with source one of
    ``"file"``, ``"user"``. Raises :class:`PixelSizeMissing` when the file has no calibration and none is given.
    """
    from sacmap.detection.io import read_image as det_read

    if pixel_size_nm is not None:
        img, px, meta = det_read(path, pixel_size_nm=pixel_size_nm)
        return img, px, meta, "user"
    if settings.override_pixel_size and settings.pixel_size_nm is not None:
        img, px, meta = det_read(path, pixel_size_nm=settings.pixel_size_nm)
        return img, px, meta, "user"
    try:
        img, px, meta = det_read(path)
        return img, px, meta, "file"
    except DetectionInputError as first:
        # Is the pixel size the only problem? Then the file reads fine once one is given.
        try:
            img, px, meta = det_read(path, pixel_size_nm=settings.pixel_size_nm or 1.0)
        except DetectionInputError:
            raise first from None
        if settings.pixel_size_nm is None:
            raise PixelSizeMissing(
                f"{path}: the file records no pixel size; enter one (nm/px) for this image"
            ) from None
        return img, px, meta, "user"


def detect(path: Path, pixel_size_nm: float | None, settings: AppSettings, name: str | None = None):
    """Atoms in an image file via ``detection.pipeline.detect_image`` (the function behind ``sacmap detect``).

    ``pixel_size_nm`` None = the file's calibration (x and y), else the given value (nm/px) for both axes.
    Returns the detection package's ``DetectionResult`` (``atoms`` table, ``support`` mask,
    ``support_area_nm2``, ``settings``, ``meta``; ``write()`` writes the CSV/JSON as ``sacmap detect`` does).
    """
    from sacmap.detection.pipeline import detect_image

    res = detect_image(Path(path), pixel_size_nm=pixel_size_nm, threshold=settings.threshold,
                       elements=list(settings.elements) or None, device=settings.device)
    if name:
        res.name = name
    return res


def statistics(xy_nm: np.ndarray, support_mask: np.ndarray | None, pixel_size_nm: float, support_area_nm2: float,
               elements, settings: AppSettings) -> tuple[dict, dict]:
    """Descriptors via ``analysis.spatial.descriptors`` over the support mask (the function behind
    ``sacmap stats``); returns the descriptor dict and the per-atom arrays (``nnd_nm``, ``cluster``, ...).

    With fewer than two atoms there are no nearest-neighbour statistics: only the count, support area and
    density are returned, with a ``note`` saying why.
    """
    from sacmap.analysis.spatial.window import Region

    n_detected = len(xy_nm)
    region = Region.from_mask(support_mask, pixel_size_nm) if support_mask is not None and np.any(support_mask) \
        else None
    inside = region.contains(xy_nm) if region is not None and n_detected else np.ones(n_detected, bool)
    xy_nm = np.asarray(xy_nm, float)[inside]
    if elements is not None:
        elements = [e for e, keep in zip(elements, inside) if keep]
    n = len(xy_nm)
    extra = {"n_detected": n_detected, "n_off_support": int(n_detected - n)}
    if n < 2 or region is None:
        return {"n_atoms": n, **extra, "support_area_nm2": support_area_nm2,
                "density_nm2": n / support_area_nm2 if support_area_nm2 else None,
                "multimer_nm": settings.multimer_nm,
                "note": "nearest-neighbour statistics need at least 2 atoms on the support"}, {}
    from sacmap.analysis.spatial.descriptors import descriptors

    desc = descriptors(xy_nm, region, elements=elements, multimer_nm=settings.multimer_nm, return_arrays=True)
    arrays = desc.pop("arrays", {})
    desc.update(extra)
    arrays["random_nnd_nm"] = random_reference_nnd(region, n, runs=RANDOM_RUNS, seed=RANDOM_SEED)
    # same keys and reference as `sacmap stats` (40 runs, seed 0)
    desc["nnd_mean_random_same_window_nm"] = float(np.mean(arrays["random_nnd_nm"]))
    desc["multimer_share_random_same_window"] = float(np.mean(arrays["random_nnd_nm"] <= settings.multimer_nm))
    desc["random_reference"] = {"sampler": "sacmap.analysis.spatial.samplers.point.sample_random", "runs": RANDOM_RUNS,
                                "seed": RANDOM_SEED, "window": "support mask"}
    return desc, arrays


def random_reference_nnd(region, n_atoms: int, runs: int = 40, seed: int = 0) -> np.ndarray:
    """NNDs (nm) of ``runs`` uniform random patterns of ``n_atoms`` points in the same window (same density),
    pooled: ``analysis.sampling.sample_random`` + ``analysis.spatial.nearest_neighbour_distances``."""
    from sacmap.analysis.spatial.descriptors import nearest_neighbour_distances
    from sacmap.analysis.spatial.samplers.point import sample_random

    runs_xy = sample_random(int(n_atoms), region, runs=runs, seed=seed)
    return np.concatenate([nearest_neighbour_distances(xy)[0] for xy in runs_xy])


def multimer_bonds(xy_nm: np.ndarray, multimer_nm: float) -> np.ndarray:
    """Index pairs of atoms at most ``multimer_nm`` apart (the bonds the overlay draws; the multimer share and
    nuclearity themselves come from ``analysis.spatial``, which uses the same ≤ rule)."""
    if len(xy_nm) < 2:
        return np.empty((0, 2), int)
    from scipy.spatial import cKDTree

    return cKDTree(xy_nm).query_pairs(multimer_nm, output_type="ndarray").reshape(-1, 2)


def nnd_histogram_png(nnd_nm, desc: dict, random_nnd_nm=None) -> bytes:
    """The NND histogram against the random expectation at the same density (PNG bytes)."""
    from sacmap.workflows.app import figures

    return figures.nnd_histogram_png(nnd_nm, desc, random_nnd_nm)


def process_image(path: Path, stem: str, out_dir: Path, settings: AppSettings, *,
                  pixel_size_nm: float | None = None, name: str | None = None,
                  progress: Callable[[str, float], None] | None = None) -> dict:
    """Detect atoms in one image, compute its descriptors and write its files (see the module docstring).

    Parameters
    ----------
    path : the stored upload. stem : output file stem (safe). out_dir : folder for the outputs.
    settings : the batch settings. pixel_size_nm : nm/px given for this image only (overrides everything).
    name : the image's name for the records (default: the file name). progress : called with (stage, 0..1).

    The statistics use the atoms on the support (as the detection record's ``n_atoms_on_support`` and
    ``density_nm2``); detections over vacuum stay in the coordinate table and are counted in
    ``n_off_support``.

    Returns a JSON-serialisable summary: ``pixel_size_nm``, ``pixel_size_source``, ``shape``, ``n_atoms``,
    ``support_area_nm2``, ``descriptors``, ``element_counts``, ``detection_settings``, ``warnings``, ``files``
    (names relative to ``out_dir``).
    """
    progress = progress or (lambda stage, fraction: None)
    out_dir = Path(out_dir)
    progress("reading image", 0.02)
    _, px, meta, source = read_image(Path(path), settings, pixel_size_nm)

    progress("detecting atoms", 0.1)
    det = detect(path, px if source == "user" else None, settings, name=name or Path(path).name)
    table = det.atoms.reset_index(drop=True)
    xy_px = table[["x_px", "y_px"]].to_numpy(float)
    xy_nm = table[["x_nm", "y_nm"]].to_numpy(float)
    labels = table["element"].fillna("").astype(str).tolist()

    progress("spatial statistics", 0.7)
    desc, arrays = statistics(xy_nm, det.support, det.pixel_size_nm, det.support_area_nm2,
                              labels if settings.elements else None, settings)

    progress("drawing figures", 0.85)
    from sacmap.workflows.app import figures

    files = {"csv": f"{stem}.csv", "json": f"{stem}.json", "support": f"{stem}_support.png",
             "descriptors": f"{stem}_descriptors.json", "overlay": f"{stem}_overlay.png", "nnd": f"{stem}_nnd.png"}
    bonds = multimer_bonds(xy_nm, settings.multimer_nm)
    _atomic_write(out_dir / files["overlay"], figures.overlay_png(
        det.image, xy_px, det.pixel_size_nm, elements=labels, element_order=settings.elements or None,
        bonds=bonds, support_mask=det.support, multimer_nm=settings.multimer_nm))
    _atomic_write(out_dir / files["nnd"], nnd_histogram_png(arrays.get("nnd_nm"), desc,
                                                              arrays.get("random_nnd_nm")))

    progress("writing files", 0.95)
    det.write(out_dir, stem, overlay=False)  # <stem>.csv, <stem>.json, <stem>_support.png as `sacmap detect`
    _atomic_write(out_dir / files["descriptors"], json.dumps(jsonable(desc), indent=2))
    record = det.summary()
    warnings = [w for w in (det.meta.get("warning"),) if w]
    if desc.get("n_off_support"):
        warnings.append(f"{desc['n_off_support']} detection(s) lie over vacuum (outside the support mask); they "
                        "are in the coordinate table but not in the statistics")
    progress("done", 1.0)
    return jsonable({
        "pixel_size_nm": det.pixel_size_nm, "pixel_size_y_nm": det.pixel_size_y_nm, "pixel_size_source": source,
        "shape": list(det.image.shape), "n_atoms": int(len(table)), "support_area_nm2": det.support_area_nm2,
        "support_fraction": float(np.mean(det.support)),
        "descriptors": {k: v for k, v in desc.items() if k not in ("arrays", "region")},
        "element_counts": record.get("element_counts", {}), "detection_settings": record.get("settings"),
        "elements_method": (det.meta.get("elements") or {}).get("method"),
        "warnings": warnings, "files": files, "file_format": meta.get("format"),
    })
