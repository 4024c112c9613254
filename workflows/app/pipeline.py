"""The app's one adapter to the science: detection (``detection``) and spatial statistics (``analysis``).

Nothing here detects atoms or computes a statistic itself. :func:`process_image` reads the image with
``sacmap.detection.io.read_image`` (pixel-size rules of the page), finds atoms with ``sacmap.detection.pipeline.detect_image``
(the call behind ``sacmap detect``) and writes its files with the detection package's own writer; turns the
detection into an :class:`~sacmap.analysis.spatial.observation.Observation` (the window is the detected support
mask, as for ``sacmap stats`` and ``sacmap run``) and describes it with
:func:`~sacmap.analysis.spatial.describe.describe` (descriptors and the random reference in the same window, 40
runs, seed 0, as ``sacmap stats``); and writes, for one image:

* ``<stem>.csv`` — ``x_px, y_px, x_nm, y_nm, score, component_size, element`` (the detection contract,
  :data:`sacmap.core.records.DETECTION_COLUMNS`);
* ``<stem>.json`` — detection record: pixel size (nm/px), shape, support area (nm²), threshold, counts, settings;
* ``<stem>_support.png`` — the support mask (white = support);
* ``<stem>_descriptors.json`` — density (nm⁻²), NND (nm), multimer share, nuclearity counts, Clark–Evans, ...;
* ``<stem>_overlay.png`` — the image with atoms marked (colour = element; atoms in multimers ringed and bonded);
* ``<stem>_nnd.png`` — the NND histogram against uniform random points at the same density in the same window;
* ``<stem>_envelopes.json`` / ``<stem>_envelopes.png`` — global envelope tests of G (the NND distribution) and
  Besag's L against complete spatial randomness in the same window
  (:func:`~sacmap.analysis.spatial.envelopes.envelope_test`, 199 simulations, seed 0: the test of ``sacmap stats``
  and ``sacmap run``): p-values and curves, drawn by :func:`~sacmap.analysis.spatial.plots.plot_envelopes` as
  global envelopes (not pointwise bands). Images with fewer than 3 atoms in the window are not tested.
"""

from __future__ import annotations

import dataclasses
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import get_type_hints

import numpy as np

from sacmap.analysis.errors import AnalysisInputError
from sacmap.core.atomic import atomic_write, write_json
from sacmap.core.constants import MULTIMER_NM
from sacmap.core.jsonable import jsonable
from sacmap.core.validation import check_value, dump, option, parse
from sacmap.detection.errors import DetectionInputError
from sacmap.workflows.errors import WorkflowInputError
from sacmap.workflows.job.steps_images import ENVELOPE_FUNCTIONS  # the functions `sacmap run` tests: G and L

#: errors that mean "this file / these settings are bad" (shown to the user, the batch goes on)
INPUT_ERRORS: tuple[type[BaseException], ...] = (
    DetectionInputError, AnalysisInputError, WorkflowInputError, FileNotFoundError,
)


class PixelSizeMissing(DetectionInputError):
    """The image has no pixel-size calibration and none was given (the page asks for one)."""


def _element_symbols(elements) -> tuple[str, ...]:
    from ase.data import chemical_symbols

    elements = tuple(elements or ())
    if len(set(elements)) != len(elements):
        raise ValueError(f"expected elements repeat: {','.join(elements)}")
    bad = [e for e in elements if e not in chemical_symbols[1:]]
    if bad:
        raise ValueError(f"not element symbols: {', '.join(bad)}")
    return elements


@dataclass
class AppSettings:
    """Settings of one batch (the form of the page), validated by :mod:`sacmap.core.validation`.

    pixel_size_nm : nm/px used for images whose file records none (or for all images when
        ``override_pixel_size``); None = from the file only.
    threshold : detection threshold, 0 < t < 1; None = the operating threshold stored with the detector's weights.
    elements : expected elements for multimetallic samples (e.g. ``("Ni", "Pd")``, in order of Z); empty = one
        species, no element labelling.
    multimer_nm : two atoms closer than this (nm) are bonded in a multimer (paper: 0.22 nm).
    """

    pixel_size_nm: float | None = option(None, lo=0.0, lo_open=True, hi=100.0, hi_open=True, unit="nm/px",
                                         doc="pixel size for files without a calibration (or for all, with "
                                         "override_pixel_size)")
    override_pixel_size: bool = option(False, doc="use pixel_size_nm even where the file records one")
    threshold: float | None = option(None, lo=0.0, lo_open=True, hi=1.0, hi_open=True,
                                     doc="detection threshold, 0 < t < 1 (empty: the detector's own)")
    elements: tuple[str, ...] = option(factory=tuple, check=_element_symbols,
                                       doc="expected elements (multimetallic samples), in order of Z")
    multimer_nm: float = option(MULTIMER_NM, lo=0.0, lo_open=True, hi=5.0, unit="nm",
                                doc="multimer bond distance")
    device: str = option("cpu", doc="torch device of the detector")

    def __post_init__(self):
        # the same rules for settings built in code as for parsed ones (one validator: core.validation)
        hints = get_type_hints(type(self))
        for f in dataclasses.fields(self):  # every constraint option() recorded (bounds, choices, check, ...)
            value = getattr(self, f.name)
            if f.name == "elements":
                value = tuple(value or ())
            setattr(self, f.name, check_value(value, hints[f.name], name=f.name, source="settings",
                                              error=WorkflowInputError, **f.metadata))
        if self.override_pixel_size and self.pixel_size_nm is None:  # cross-field rule (parse() names the source)
            raise WorkflowInputError("override_pixel_size: 'override file calibration' needs a pixel size")

    @classmethod
    def parse(cls, mapping: dict, source: str = "settings") -> AppSettings:
        """Settings from a mapping (JSON, YAML); raises :class:`WorkflowInputError` naming the field."""
        return parse(cls, mapping, source=source, error=WorkflowInputError)

    @classmethod
    def from_form(cls, pixel_size_nm: str = "", override_pixel_size: str = "", threshold: str = "",
                  elements: str = "", multimer_nm: str = str(MULTIMER_NM), device: str = "cpu") -> AppSettings:
        """Settings from the strings of the HTML form (decimal commas accepted); raises
        :class:`WorkflowInputError` naming the bad field."""

        def num(text: str, name: str) -> float:
            return check_value(str(text).strip().replace(",", "."), float, name=name, source="settings",
                               error=WorkflowInputError)

        px = str(pixel_size_nm or "").strip()
        els = [e.strip().capitalize() for e in str(elements or "").replace(";", ",").split(",") if e.strip()]
        return cls.parse({
            "pixel_size_nm": num(px, "pixel_size_nm") if px else None,
            "override_pixel_size": str(override_pixel_size).lower() in ("1", "true", "on", "yes"),
            "threshold": num(threshold, "threshold") if str(threshold or "").strip() else None,
            "elements": els,
            "multimer_nm": num(multimer_nm or str(MULTIMER_NM), "multimer_nm"),
            "device": device,
        })

    def to_dict(self) -> dict:
        return dump(self)


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


def warm_up() -> None:
    """Import the detection and statistics packages (torch included) ahead of the first image."""
    import sacmap.analysis.spatial.descriptors  # noqa: F401
    import sacmap.detection.model  # noqa: F401  (torch)
    import sacmap.detection.pipeline  # noqa: F401


def read_image(path: Path, settings: AppSettings, pixel_size_nm: float | None = None):
    """Read an image with ``sacmap.detection.io.read_image`` applying the app's pixel-size rule.

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
            img, px, meta = det_read(path, pixel_size_nm=settings.pixel_size_nm or 1.0, check_range=False)
        except DetectionInputError:
            raise first from None
        if settings.pixel_size_nm is None:
            raise PixelSizeMissing(
                f"{path}: the file records no pixel size; enter one (nm/px) for this image"
            ) from None
        return img, px, meta, "user"


def detect(path: Path, pixel_size_nm: float | None, settings: AppSettings, name: str | None = None):
    """Atoms in an image file via ``sacmap.detection.pipeline.detect_image`` (the function behind ``sacmap detect``).

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


def observation(det):
    """The :class:`~sacmap.analysis.spatial.observation.Observation` of a detection result: its atoms in nm, its
    support mask as the window (atoms over vacuum excluded and counted), as for ``sacmap stats``."""
    from sacmap.analysis.spatial.observation import Observation

    return Observation.from_detection(det)


def statistics(obs, settings: AppSettings) -> tuple[dict, dict]:
    """Descriptors of an observation via :func:`~sacmap.analysis.spatial.describe.describe` (the function
    behind ``sacmap stats`` and ``sacmap run``: the same window, random reference of 40 runs with seed 0); returns
    the descriptor dict and the per-atom arrays (``nnd_nm``, ``cluster``, ``random_nnd_nm``, ...).

    With fewer than two atoms in the window there are no nearest-neighbour statistics: only the counts, support
    area and density are returned, with a ``note`` saying why.
    """
    if obs.n_atoms < 2:
        counts = {k: v for k, v in obs.summary().items() if k not in ("window", "pixel_size_nm")}
        return {**counts, "multimer_nm": settings.multimer_nm,
                "note": "nearest-neighbour statistics need at least 2 atoms on the support"}, {}
    from sacmap.analysis.spatial.describe import describe

    return describe(obs, multimer_nm=settings.multimer_nm, gr_rmax_nm=None)


ENVELOPE_SEED = 0
ENVELOPE_MIN_ATOMS = 3


def envelope_tests(obs) -> list:
    """Global envelope tests of the observation's atoms (nm) against complete spatial randomness in its window,
    for :data:`ENVELOPE_FUNCTIONS` (199 simulations, seed :data:`ENVELOPE_SEED`), through
    :func:`sacmap.analysis.spatial.envelopes.envelope_test`; empty with fewer than
    :data:`ENVELOPE_MIN_ATOMS` atoms in the window (about 1 s per image of 100 atoms)."""
    if obs.n_atoms < ENVELOPE_MIN_ATOMS:
        return []
    from sacmap.analysis.spatial.envelopes import NSIM, envelope_test

    return [envelope_test(obs.xy_nm, obs.window, null="csr", function=fn, nsim=NSIM, seed=ENVELOPE_SEED)
            for fn in ENVELOPE_FUNCTIONS]


def envelope_summary(test) -> dict:
    """What the page shows of one envelope test: function, edge correction, null model, simulations, seed,
    window, α, the three p-values, where the observed curve leaves the envelope, and a one-sentence caption."""
    from sacmap.analysis.spatial.plots import envelope_caption

    d = test.as_dict(curves=False)
    return {**{k: d[k] for k in ("function", "correction", "null_model", "nsim", "n_points", "window", "alpha",
                                 "p_rank_erl", "p_mad", "p_dclf", "r_range_nm", "leaves_envelope", "seed")},
            "caption": envelope_caption(test)}


def multimer_bonds(xy_nm: np.ndarray, multimer_nm: float) -> np.ndarray:
    """Index pairs of atoms at most ``multimer_nm`` apart (the bonds the overlay draws; the multimer share and
    nuclearity themselves come from ``sacmap.analysis.spatial``, which uses the same ≤ rule)."""
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
    ``n_off_window``.

    Returns a JSON-serialisable summary: ``pixel_size_nm``, ``pixel_size_source``, ``shape``, ``n_atoms``,
    ``support_area_nm2``, ``descriptors``, ``envelopes`` (:func:`envelope_summary` of each global envelope test;
    empty, with ``envelope_note`` saying why, below 3 atoms), ``element_counts``, ``detection_settings``,
    ``warnings``, ``files`` (names relative to ``out_dir``).
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

    progress("spatial statistics", 0.65)
    obs = observation(det)
    desc, arrays = statistics(obs, settings)
    progress("global envelope tests (199 simulations)", 0.75)
    tests = envelope_tests(obs)

    progress("drawing figures", 0.85)
    from sacmap.workflows.app import figures

    files = {"csv": f"{stem}.csv", "json": f"{stem}.json", "support": f"{stem}_support.png",
             "descriptors": f"{stem}_descriptors.json", "overlay": f"{stem}_overlay.png", "nnd": f"{stem}_nnd.png"}
    bonds = multimer_bonds(xy_nm, settings.multimer_nm)
    atomic_write(out_dir / files["overlay"], figures.overlay_png(
        det.image, xy_px, det.pixel_size_nm, elements=labels, element_order=settings.elements or None,
        bonds=bonds, support_mask=det.support, multimer_nm=settings.multimer_nm))
    atomic_write(out_dir / files["nnd"], nnd_histogram_png(arrays.get("nnd_nm"), desc,
                                                              arrays.get("random_nnd_nm")))
    envelopes = [envelope_summary(t) for t in tests]
    if tests:
        files.update(envelopes=f"{stem}_envelopes.json", envelopes_png=f"{stem}_envelopes.png")
        atomic_write(out_dir / files["envelopes_png"], figures.envelopes_png(tests))
        write_json(out_dir / files["envelopes"], [t.as_dict(curves=True) for t in tests])

    progress("writing files", 0.95)
    det.write(out_dir, stem, overlay=False)  # <stem>.csv, <stem>.json, <stem>_support.png as `sacmap detect`
    write_json(out_dir / files["descriptors"], desc)
    record = det.summary()
    warnings = [w for w in (det.meta.get("warning"),) if w]
    if desc.get("n_off_window"):
        warnings.append(f"{desc['n_off_window']} detection(s) lie over vacuum (outside the support mask); they "
                        "are in the coordinate table but not in the statistics")
    progress("done", 1.0)
    return jsonable({
        "pixel_size_nm": det.pixel_size_nm, "pixel_size_y_nm": det.pixel_size_y_nm, "pixel_size_source": source,
        "shape": list(det.image.shape), "n_atoms": int(len(table)), "support_area_nm2": det.support_area_nm2,
        "support_fraction": float(np.mean(det.support)),
        "descriptors": {k: v for k, v in desc.items() if k not in ("arrays", "region", "warnings")},
        "element_counts": record.get("element_counts", {}), "detection_settings": record.get("settings"),
        "elements_method": (det.meta.get("elements") or {}).get("method"),
        "envelopes": envelopes,
        "envelope_note": "" if tests else (f"global envelope tests need at least {ENVELOPE_MIN_ATOMS} atoms on the "
                                           f"support ({obs.n_atoms} here)"),
        "warnings": warnings, "files": files, "file_format": meta.get("format"),
    })
