"""The blocks of a campaign spec that the main job owns: ``images``, ``detection``, ``statistics`` and
``sampling`` (``structures`` is validated by :mod:`sacmap.structures`, ``calculation`` by the campaign settings).

Each block is a dataclass parsed by :func:`sacmap.core.validation.parse`, so an unknown key, a wrong type or a
value out of range is refused with ``<spec file>: <block>.<field>: <problem>``. Relative paths in ``images``
resolve against the spec file's folder (so a bundled spec's ``images: [../stem]`` works from a wheel too).
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

from sacmap.core.constants import MULTIMER_NM
from sacmap.core.records import is_image
from sacmap.core.validation import dump, non_empty, option, parse
from sacmap.detection.simulate import REFERENCE_PIXEL_NM
from sacmap.workflows.errors import WorkflowInputError


def _element_list(values: list[str]) -> list[str]:
    """``[Pt, Pd]`` or ``"Pt,Pd"`` → ``["Pt", "Pd"]``."""
    out = [e.strip() for v in values for e in v.split(",") if e.strip()]
    if not out:
        raise ValueError("expected at least one element symbol")
    return out


@dataclass(frozen=True)
class DetectionBlock:
    """``detection``: how atoms are found in the images (see ``sacmap detect``)."""

    threshold: float | None = option(None, lo=0.0, lo_open=True, hi=1.0, hi_open=True,
                                     doc="detector probability threshold (default: the weights' own)")
    pixel_size_nm: float | None = option(None, lo=0.0, lo_open=True, unit="nm/px",
                                         doc="override the file's calibration")
    elements: list[str] | None = option(None, check=_element_list, doc="element labels by intensity (Z contrast)")
    weights: str | None = option(None, doc="detector weights file (default: the bundled model)")
    device: str = option("cpu", doc="torch device")


def _aware_nsim(value: int) -> int:
    if 0 < value < 19:
        raise ValueError(f"{value} simulations are too few for an envelope test (0 = off, or at least 19)")
    return value


@dataclass(frozen=True)
class StatisticsBlock:
    """``statistics``: descriptors of the detected patterns."""

    multimer_nm: float = option(MULTIMER_NM, lo=0.0, lo_open=True, unit="nm",
                                doc="an atom with a neighbour this close belongs to a multimer")
    detector_aware_nsim: int = option(0, lo=0, check=lambda v: _aware_nsim(v),
                                      doc="simulations of the detector-aware envelope test of the richest real "
                                          "image (0 = off; ≥ 19; about 1–2 s each)")


@dataclass(frozen=True)
class SamplingBlock:
    """``sampling``: the random, repulsive and DFT-biased samplers compared with the observations."""

    runs: int = option(40, lo=1, doc="independent runs per density and sampler (the paper: >= 40)")
    seed: int = option(0, doc="random seed of the first run")
    field_nm: float = option(10.0, lo=0.0, lo_open=True, unit="nm",
                             doc="side of the square sampling area of the density sweep (the paper: 10 x 10 nm)")
    densities_nm2: list[float] | None = option(None, lo=0.0, lo_open=True, check=non_empty, unit="nm^-2",
                                               doc="densities of the sweep (default: spread over the observed)")
    repulsive_c_nm: float = option(0.2, lo=0.0, unit="nm", doc="exclusion distance of the repulsive sampler")
    fit: bool = option(True, doc="fit the DFT-biased sampler to the detected coordinates")
    n_boot: int = option(50, lo=1, doc="bootstrap resamples of the fit")
    site_kinds: str | None = option(None, doc="site-site potential curve of the DFT-biased sampler "
                                              "(default: the one with most points)")


#: Densities of the demo's simulated images (atoms/nm²): the paper's range, 0.5 to 8.
SIMULATED_DENSITIES_NM2 = (0.5, 1.0, 2.0, 4.0, 6.0, 8.0)


@dataclass(frozen=True)
class SimulatedImagesBlock:
    """``simulated_images``: synthetic HAADF-STEM images made by :mod:`sacmap.detection.simulate` at known
    positions (fixed seeds), detected like the real images and described twice, from the detections and from the
    true positions. Marked "simulated" wherever they appear in the outputs."""

    densities_nm2: list[float] = option(factory=lambda: list(SIMULATED_DENSITIES_NM2), lo=0.0, lo_open=True,
                                        check=non_empty, unit="nm^-2", doc="one image per density")
    seed: int = option(0, doc="seed of the first image (image i uses [seed, i])")
    size_px: int = option(512, lo=64, hi=2048, unit="px", doc="side of each square image")
    pixel_size_nm: float = option(REFERENCE_PIXEL_NM, lo=0.0, lo_open=True, hi=1.0, unit="nm/px",
                                  doc="pixel size (default: the bundled Pt1/NC images')")
    element: str = option("Pt", doc="metal drawn (contrast by Z)")
    min_dist_nm: float = option(0.25, lo=0.0, unit="nm",
                                doc="no two atoms of different units closer than this (a hard core)")
    dimer_fraction: float = option(0.0, lo=0.0, hi=1.0, doc="fraction of the atoms placed in dimers (0.22 nm)")


@dataclass(frozen=True)
class JobSpec:
    """The job-owned blocks of a campaign spec, parsed (the other top-level blocks are not looked at)."""

    images: list[str] = option(factory=list, doc="image files, detector CSVs or folders (relative to the spec)")
    detection: DetectionBlock = option(factory=DetectionBlock)
    statistics: StatisticsBlock = option(factory=StatisticsBlock)
    sampling: SamplingBlock = option(factory=SamplingBlock)
    simulated_images: SimulatedImagesBlock | None = option(None, doc="synthetic images at known positions")


_JOB_KEYS = tuple(JobSpec.__dataclass_fields__)


def parse_job_spec(spec: dict, spec_path: Path) -> JobSpec:
    """The job-owned blocks of ``spec`` (a :func:`sacmap.structures.load_spec` result) as a :class:`JobSpec`."""
    blocks = {k: spec[k] for k in _JOB_KEYS if spec.get(k) is not None}
    return parse(JobSpec, blocks, source=str(spec_path), error=WorkflowInputError)


def resolve_images(entries: list[str], spec_path: Path) -> list[Path]:
    """Image files and detector-output CSVs named by ``images:`` (paths relative to the spec file; folders are
    expanded to the images they contain, else to their CSVs, sorted). Image suffixes:
    :data:`sacmap.core.records.IMAGE_SUFFIXES`, the ones ``sacmap detect`` reads, less the outputs a detection wrote into
    that folder (:func:`sacmap.detection.io.own_outputs`)."""
    out: list[Path] = []
    for entry in entries:
        p = Path(str(entry)).expanduser()
        if not p.is_absolute():
            p = (spec_path.parent / p).resolve()
        if p.is_dir():
            from sacmap.detection.io import own_outputs

            skip = own_outputs(p)  # overlays / support masks a `sacmap detect DIR -o DIR` left there
            found = sorted(q for q in p.iterdir() if q.is_file() and is_image(q) and q.name not in skip)
            if not found:
                found = sorted(q for q in p.iterdir() if q.is_file() and q.suffix.lower() == ".csv")
            if not found:
                raise WorkflowInputError(f"{spec_path}: images: folder {p} holds no image or CSV")
            out.extend(found)
        elif p.is_file():
            if not (is_image(p) or p.suffix.lower() == ".csv"):
                raise WorkflowInputError(f"{spec_path}: images: {p.name} is neither an image nor a detector CSV")
            out.append(p)
        else:
            raise WorkflowInputError(f"{spec_path}: images: {entry} does not exist")
    return out


def job_settings(spec: dict, spec_path: Path) -> dict:
    """Validated settings of the job-owned blocks as plain mappings (defaults filled in) plus ``images``, the
    resolved input files: ``{"detection": {...}, "statistics": {...}, "sampling": {...}, "images": [Path],
    "simulated_images": {...} or None}``."""
    job = parse_job_spec(spec, Path(spec_path))
    sim = dump(job.simulated_images) if job.simulated_images is not None else None
    return {"detection": dump(job.detection), "statistics": dump(job.statistics), "sampling": dump(job.sampling),
            "images": resolve_images(job.images, Path(spec_path)), "simulated_images": sim}
