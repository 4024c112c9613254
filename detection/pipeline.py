"""The detection pipeline: image → model frame → network map → atoms → refinement → support area → files.

``detect_image`` runs one image (array or path) and returns a :class:`DetectionResult`; ``detect_files`` runs many
(CNN maps batched over images) and writes, per image, the detection record of :mod:`sacmap.core.records`:
``<stem>.csv`` (columns ``DETECTION_COLUMNS``: ``x_px, y_px, x_nm, y_nm, score, component_size, element``),
``<stem>.json`` (settings, pixel size nm/px, support area nm², counts), ``<stem>.png`` (overlay) and
``<stem>_support.png`` (support mask, white = support), every file written atomically.

Everything between pre-processing and localisation runs in the *model frame*: the image resampled to the training
pixel size (0.0293 nm/px), so every pixel-valued setting (crop, component areas, spacings) keeps its physical
meaning; positions are mapped back to the image's own pixels at the end.
"""

from __future__ import annotations

from pathlib import Path

from sacmap.detection.errors import DetectionInputError  # noqa: F401  (re-exported for callers)
from sacmap.detection.result import (  # noqa: F401  (re-exported: the pipeline's public names)
    DetectionResult,
    Prepared,
    Settings,
    finish,
    prepare,
    write_overlay,
)


def detect_images(images, *, pixel_size_nm=None, threshold: float | None = None, elements=None, weights=None,
                  model: str = "bundled", device: str = "cpu", settings: Settings | None = None,
                  batch: int | None = None, pixel_size_y_nm: float | None = None) -> list[DetectionResult]:
    """Run the pipeline on several images (arrays or paths) with one
    :class:`~sacmap.detection.detector.AtomDetector`; the network maps are computed image by image (heat map) or
    with the tiles of equal size batched (CNN; ``batch`` tiles per pass, None: the device's default,
    :func:`sacmap.detection.model.tiling`). ``threshold`` None = ``settings.threshold``, else the weights' own;
    ``settings`` is never modified."""
    from sacmap.detection.detector import AtomDetector

    det = AtomDetector(model, weights=weights, threshold=threshold, device=device, settings=settings)
    return det.detect_many(images, pixel_size_nm, pixel_size_y_nm, elements=elements, batch=batch)


def detect_image(image_or_path, *, pixel_size_nm: float | None = None, threshold: float | None = None,
                 elements=None, weights=None, model: str = "bundled", device: str = "cpu",
                 settings: Settings | None = None, pixel_size_y_nm: float | None = None) -> DetectionResult:
    """Detect atoms in one image.

    Parameters
    ----------
    image_or_path : 2-D array of raw intensities or an image path (see :func:`sacmap.detection.io.read_image`).
    pixel_size_nm : nm/px; required for arrays and files without calibration, overrides the file otherwise.
    pixel_size_y_nm : nm/px of the rows where it differs from ``pixel_size_nm`` (non-square pixels; None: square,
        or a file's own calibration).
    threshold : operating threshold in (0, 1); None = ``settings.threshold``, else the one stored with the weights.
    elements : element symbols in increasing Z (``["Ni", "Pd"]``) to label atoms by species (one symbol: all).
    model : ``"bundled"`` (the default detector, today ``"combined"``: the paper CNN's atoms plus the heat-map peaks
        0.15 nm from all of them), ``"heatmap"`` (heat-map network) or ``"paper"`` (the paper's CNN), see
        :mod:`sacmap.detection.detector`; ``weights`` (a file) overrides it.
    device : ``"cpu"`` or ``"cuda"``.

    Returns
    -------
    DetectionResult with ``atoms`` (DataFrame: ``DETECTION_COLUMNS``), ``support`` mask, ``support_area_nm2``,
    ``probability`` (the model's map, model frame) and ``summary()``.
    """
    return detect_images([image_or_path], pixel_size_nm=pixel_size_nm, threshold=threshold, elements=elements,
                         weights=weights, model=model, device=device, settings=settings,
                         pixel_size_y_nm=pixel_size_y_nm)[0]


def find_images(inputs) -> list[Path]:
    """Expand files and folders (non-recursive) into image paths: :func:`sacmap.detection.io.find_images` (folders
    keep the files with an image suffix of :data:`sacmap.core.records.IMAGE_SUFFIXES`, sorted, less the outputs
    a detection wrote there)."""
    from sacmap.detection.io import find_images as _find

    return _find(inputs)


def _stems(files: list[Path]) -> list[str]:
    """Output stems, unique: the file stem, prefixed by the folder's name when two folders hold the same stem,
    suffixed by the format when one folder holds it twice (``a.tif`` and ``a.png``), numbered when still equal."""
    stems = [f.stem for f in files]
    dup = {s for s in stems if stems.count(s) > 1}
    out = [f"{f.parent.name}_{f.stem}" if f.stem in dup else f.stem for f in files]
    out = [f"{o}_{f.suffix.lstrip('.').lower()}" if out.count(o) > 1 else o for o, f in zip(out, files)]
    seen: dict[str, int] = {}
    for i, o in enumerate(out):  # still equal (x/imgs/a.tif, y/imgs/a.tif): number them
        seen[o] = seen.get(o, 0) + 1
        if seen[o] > 1:
            out[i] = f"{o}_{seen[o]}"
    return out


def detect_files(paths, outdir, *, pixel_size_nm=None, threshold: float | None = None, elements=None, weights=None,
                 model: str = "bundled", device: str = "cpu", settings: Settings | None = None, overlay: bool = True, batch: int = 4,
                 threads: int | None = None, progress: bool = False, report=None) -> list[dict]:
    """Detect atoms in image files/folders and write the per-image records into ``outdir``.

    Images are processed in groups of ``batch`` (read, detected and written together); files already written are kept
    when a later image fails. ``threads``: torch CPU threads (None: torch's default). Returns the JSON summaries
    (with ``files``) in input order; :func:`summary_line` gives one line of text per summary.

    ``report`` (a :class:`sacmap.core.batch.BatchReport`): the batch goes on past bad inputs — each missing path,
    empty folder, unreadable image or out-of-range pixel size is recorded there with its reason and the other
    images are still detected. Without it the first bad input raises. The input images are never overwritten
    (:func:`sacmap.core.atomic.protect_inputs`; outputs carry suffixes, see :mod:`sacmap.core.records`).
    """
    from sacmap.core.atomic import output_dir, protect_inputs
    from sacmap.core.batch import ITEM_ERRORS
    from sacmap.detection.io import discover_images

    if report is None:
        files = find_images(paths)
    else:
        files, problems = discover_images(paths)
        for p, reason in problems:
            report.failed(p, reason)
    outdir = output_dir(outdir)
    if threads is not None:
        import torch

        torch.set_num_threads(max(1, int(threads)))
    stems = dict(zip(files, _stems(files)))
    summaries = []
    done: set[Path] = set()
    bar = None
    if progress:
        from tqdm import tqdm

        bar = tqdm(total=len(files), desc="detect", unit="image")

    def run(group):
        results = detect_images(group, pixel_size_nm=pixel_size_nm, threshold=threshold, elements=elements,
                                weights=weights, model=model, device=device, settings=settings)
        for f, res in zip(group, results):
            written = res.write(outdir, stems[f], overlay=overlay)
            summ = res.summary()
            summ["files"] = {k: str(v) for k, v in written.items()}
            summaries.append(summ)
            done.add(f)
            if report is not None:
                report.ok(f, summ.get("warning") or "")
            if bar is not None:
                bar.update(1)

    with protect_inputs(files):
        for g in range(0, len(files), batch):
            group = files[g:g + batch]
            if report is None:
                run(group)
                continue
            try:
                run(group)
            except ITEM_ERRORS:
                for f in group:  # find the bad one(s): the rest of the group one by one
                    if f in done:
                        continue
                    with report.item(f):
                        run([f])
                    if bar is not None and report.items[-1].status == "failed":
                        bar.update(1)
    if bar is not None:
        bar.close()
    return summaries


def summary_line(summary: dict) -> str:
    """One line of text for a JSON summary of :func:`detect_files`: atoms, support area (nm²), density (/nm²) and
    the pixel-size warning, if any."""
    dens = f"{summary['density_nm2']:.3f}/nm²" if summary["density_nm2"] is not None else "n/a"
    warn = f"  WARNING: {summary['warning']}" if summary.get("warning") else ""
    return (f"{summary['image']}: {summary['n_atoms']} atoms, support {summary['support_area_nm2']:.1f} nm², "
            f"density {dens}{warn}")
