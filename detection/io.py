"""Reading HAADF-STEM images: TIFF (any bit depth, float), PNG/JPEG, and dm3/dm4/emd/ser via rosettasciio.

The pixel size (nm/px) is taken from the file where it is recorded:

* HyperSpy private TIFF tags 65009/65010 (x/y scale) with units in 65003/65004;
* TIFF ``XResolution``/``YResolution`` (pixels per unit) **only** when the unit is known from the ImageJ
  description (``unit=nm``, ``µm``, ``Å``, ...) or the resolution unit is centimetre; a bare 72-dpi inch tag says
  nothing about the sample and is ignored;
* the axes calibration of formats read by rosettasciio.

A user-given ``pixel_size_nm`` overrides the file. A missing pixel size is an error unless given.

The pixel size is bounded BEFORE the pixels are loaded (:func:`check_pixel_size`): outside the detector's
supported range (:data:`sacmap.detection.preprocess.SUPPORTED_PIXEL_NM`, 0.010–0.080 nm/px) the read stops with one
line naming the file, the value, where it came from (TIFF tag, file metadata, ``--pixel-size``) and the likely unit
mistake (µm, m or Å read as nm); the pixel-count cap (:data:`MAX_PIXELS`) holds for the image as stored AND as
resampled to the model's pixel size.

:func:`find_images` expands files and folders into image paths; in a folder it skips the files sacmap itself wrote
there (the support masks and overlays a detection record lists), so ``sacmap detect DIR -o DIR`` run twice does
not take its own outputs for inputs.
"""

from __future__ import annotations

import json
import os
from pathlib import Path

import numpy as np

from sacmap.core.atomic import atomic_write_with
from sacmap.core.records import IMAGE_SUFFIXES, RASTER_SUFFIXES, RSCIIO_SUFFIXES, TIFF_SUFFIXES, is_image
from sacmap.detection.errors import DetectionInputError
from sacmap.detection.preprocess import SUPPORTED_PIXEL_NM, TRAIN_PIXEL_NM

#: largest image accepted (pixels), guards against decompression bombs and memory exhaustion
MAX_PIXELS = 8192 * 8192
#: largest file accepted (bytes)
MAX_FILE_BYTES = 1 << 30

_UNIT_TO_NM = {
    "nm": 1.0, "nanometer": 1.0, "nanometers": 1.0, "nanometre": 1.0,
    "um": 1e3, "µm": 1e3, "μm": 1e3, "micron": 1e3, "microns": 1e3, "micrometer": 1e3, "\\u00b5m": 1e3,
    "a": 0.1, "å": 0.1, "angstrom": 0.1, "Å": 0.1, "\\u00c5": 0.1,
    "pm": 1e-3, "mm": 1e6, "m": 1e9, "cm": 1e7,
}


#: unit mistakes recognised in an out-of-range pixel size: (factor, what was probably given) — the value times the
#: factor is in range when a number in that unit was read as nm
_UNIT_MISTAKES = ((1e3, "a value in µm read as nm"), (1e9, "a value in m read as nm"),
                  (0.1, "a value in Å read as nm"), (1e-3, "a value in pm read as nm (or nm read as µm)"),
                  (1e6, "a value in mm read as nm"))

#: how each ``pixel_size_source`` is named in messages
_SOURCE_NAMES = {"user": "given with --pixel-size / pixel_size_nm", "axes": "from the file's axes calibration"}


def _source_text(source: str) -> str:
    if not source:
        return "source unknown"
    return _SOURCE_NAMES.get(source, f"from the TIFF {source}" if "tag" in source else f"from {source}")


def unit_hint(pixel_size_nm: float) -> str:
    """The likely unit mistake behind an out-of-range pixel size (nm/px), as text ('' when none fits)."""
    lo, hi = SUPPORTED_PIXEL_NM
    for factor, what in _UNIT_MISTAKES:
        v = pixel_size_nm * factor
        if lo <= v <= hi:
            return f"{what}? (that would be {v:.4g} nm/px)"
    if pixel_size_nm > hi:
        return "atoms are under-sampled at this magnification; image at 0.010-0.080 nm/px"
    return "is the value in another unit?"


def pixel_size_problem(pixel_size_nm: float) -> str | None:
    """Why the detector cannot use ``pixel_size_nm`` (nm/px) — ``is outside the detector's 0.01-0.08 nm/px range:
    <likely unit mistake>`` — or None when it is in range."""
    lo, hi = SUPPORTED_PIXEL_NM
    if lo <= pixel_size_nm <= hi:
        return None
    return f"is outside the detector's {lo:g}-{hi:g} nm/px range: {unit_hint(pixel_size_nm)}"


def check_pixel_size(name, pixel_size_nm: float, pixel_size_y_nm: float | None = None, shape=None,
                     source: str = "", *, target_nm: float = TRAIN_PIXEL_NM) -> None:
    """Refuse (:class:`DetectionInputError`, one line naming ``name``, the value, its ``source`` and the likely
    unit mistake) a pixel size (nm/px; x, and y when given) outside
    :data:`~sacmap.detection.preprocess.SUPPORTED_PIXEL_NM`, and an image of ``shape`` (rows, columns) whose
    size resampled to ``target_nm`` nm/px (the model frame) exceeds :data:`MAX_PIXELS`.

    Called before any pixel is loaded or resampled, so a wrong unit costs nothing.
    """
    lo, hi = SUPPORTED_PIXEL_NM
    for axis, v in (("", pixel_size_nm), (" (y)", pixel_size_y_nm)):
        if v is None:
            continue
        v = float(v)
        if not (np.isfinite(v) and v > 0):
            raise DetectionInputError(f"{name}: pixel size{axis} must be a positive number of nm, got {v:g} "
                                      f"({_source_text(source)})")
        if not lo <= v <= hi:
            raise DetectionInputError(f"{name}: pixel size{axis} {v:.4g} nm/px ({_source_text(source)}) "
                                      f"{pixel_size_problem(v)}")
    if shape is not None and len(shape) >= 2:
        rows, cols = int(shape[-2]), int(shape[-1])
        py = float(pixel_size_y_nm or pixel_size_nm)
        out = (int(round(rows * py / target_nm)), int(round(cols * float(pixel_size_nm) / target_nm)))
        if out[0] * out[1] > MAX_PIXELS:
            raise DetectionInputError(
                f"{name}: {rows}x{cols} px at {float(pixel_size_nm):.4g} nm/px becomes {out[0]}x{out[1]} px at the "
                f"model's {target_nm:.4g} nm/px, above the {MAX_PIXELS}-pixel limit; crop or bin the image")


def _unit_factor(unit) -> float | None:
    if unit is None:
        return None
    if isinstance(unit, bytes):
        unit = unit.decode("utf-8", "ignore")
    u = str(unit).strip().strip("\x00").strip()
    if u in _UNIT_TO_NM:
        return _UNIT_TO_NM[u]
    return _UNIT_TO_NM.get(u.lower())


def _tiff_pixel_size(tif, page) -> tuple[float | None, float | None, str]:
    """(x, y) pixel size in nm from a TiffFile page, and which tags gave it ('' when none)."""
    tags = page.tags
    # 1. HyperSpy private tags: 65009/65010 scale, 65003/65004 units
    if 65009 in tags and 65010 in tags:
        fx = _unit_factor(tags[65003].value) if 65003 in tags else None
        fy = _unit_factor(tags[65004].value) if 65004 in tags else fx
        try:
            sx, sy = float(tags[65009].value), float(tags[65010].value)
        except (TypeError, ValueError):
            sx = sy = float("nan")
        if fx and fy and np.isfinite(sx) and np.isfinite(sy) and sx > 0 and sy > 0:
            return sx * fx, sy * fy, "hyperspy tags 65009/65010"
    # 2. Resolution tags with the unit from the ImageJ description (or centimetre resolution unit)
    if "XResolution" in tags:
        unit_factor = None
        source = ""
        ij = tif.imagej_metadata if tif.is_imagej else None
        if ij and "unit" in ij:
            unit_factor = _unit_factor(ij["unit"])
            source = f"resolution tags, ImageJ unit {ij['unit']!r}"
        elif "ResolutionUnit" in tags and int(tags["ResolutionUnit"].value) == 3:
            unit_factor = 1e7  # pixels per cm
            source = "resolution tags in cm"
        if unit_factor:
            def res(name):
                val = tags[name].value
                num, den = (val if isinstance(val, tuple) else (val, 1))
                return float(num) / float(den) if den else float("nan")

            rx = res("XResolution")
            ry = res("YResolution") if "YResolution" in tags else rx
            if rx > 0 and ry > 0 and np.isfinite(rx) and np.isfinite(ry):
                return unit_factor / rx, unit_factor / ry, source
    return None, None, ""


def _read_tiff(path: Path, user_px: float | None = None, check: bool = True):
    import tifffile

    try:
        with tifffile.TiffFile(path) as tif:
            page = tif.pages[0]
            series = tif.series[0] if tif.series else page
            shape = series.shape
            if int(np.prod(shape)) > MAX_PIXELS:
                raise DetectionInputError(f"{path}: image of shape {shape} exceeds the {MAX_PIXELS}-pixel limit")
            px, py, source = _tiff_pixel_size(tif, page)
            if user_px is not None:
                px, py, source = user_px, user_px, "user"
            if check and px is not None:
                plane = shape[:2] if len(shape) == 3 and shape[-1] in (3, 4) else shape[-2:]
                check_pixel_size(path, px, py, plane, source)
            arr = series.asarray()
            meta = {"format": "tiff", "dtype": str(arr.dtype), "pixel_size_source": source}
    except DetectionInputError:
        raise
    except Exception as exc:  # tifffile raises many types on corrupt files
        raise DetectionInputError(f"{path}: unreadable TIFF ({exc})") from exc
    return arr, px, py, meta


def _read_raster(path: Path, user_px: float | None = None, check: bool = True):
    from PIL import Image

    try:
        Image.MAX_IMAGE_PIXELS = MAX_PIXELS
        with Image.open(path) as im:
            if im.width * im.height > MAX_PIXELS:
                raise DetectionInputError(f"{path}: image of {im.width}x{im.height} exceeds the pixel limit")
            if check and user_px is not None:
                check_pixel_size(path, user_px, None, (im.height, im.width), "user")
            mode = im.mode
            if mode in ("RGB", "RGBA", "P", "LA", "CMYK", "YCbCr"):
                im = im.convert("L")
            arr = np.asarray(im)
    except DetectionInputError:
        raise
    except Exception as exc:
        raise DetectionInputError(f"{path}: unreadable image ({exc})") from exc
    return arr, None, None, {"format": path.suffix.lower().lstrip("."), "dtype": str(arr.dtype),
                             "mode": mode, "pixel_size_source": ""}


#: what each rosettasciio format needs beyond rosettasciio itself (all in the ``io`` extra)
_RSCIIO_NEEDS = {".emd": ("h5py",)}


def _missing_module(exc: ImportError) -> str:
    """The top-level name of the module an ImportError failed on ('' when unknown)."""
    name = getattr(exc, "name", None) or ""
    return name.split(".")[0]


def _read_rsciio(path: Path):
    suffix = path.suffix.lower()
    try:
        if suffix in (".dm3", ".dm4"):
            from rsciio.digitalmicrograph import file_reader
        elif suffix == ".emd":
            from rsciio.emd import file_reader
        else:
            from rsciio.tia import file_reader
        for dep in _RSCIIO_NEEDS.get(suffix, ()):
            __import__(dep)
    except ImportError as exc:
        missing = _missing_module(exc)
        package = {"rsciio": "rosettasciio", "": "rosettasciio"}.get(missing, missing)
        raise DetectionInputError(
            f"{path}: reading {suffix} files needs the optional package {package}, which is not installed "
            f"(pip install 'sacmap[io]')"
        ) from None
    try:
        items = file_reader(str(path))
    except ImportError as exc:  # a dependency imported lazily by the reader
        raise DetectionInputError(
            f"{path}: reading {suffix} files needs the optional package {_missing_module(exc) or exc}, which is not "
            f"installed (pip install 'sacmap[io]')") from None
    except Exception as exc:
        raise DetectionInputError(f"{path}: unreadable {suffix} file ({exc})") from exc
    items = [it for it in items if np.ndim(it.get("data")) == 2] or items
    if not items:
        raise DetectionInputError(f"{path}: no image data found")
    item = items[0]
    arr = np.asarray(item["data"])
    axes = item.get("axes", [])
    px = py = None
    if len(axes) >= 2:
        scales = []
        for ax in axes[-2:]:
            f = _unit_factor(ax.get("units"))
            s = ax.get("scale")
            scales.append(float(s) * f if (f and s) else None)
        py, px = scales  # axes are (row, column)
        units = axes[-1].get("units")
    source = f"{suffix} axes calibration (unit {units!r})" if px is not None else ""
    return arr, px, py, {"format": suffix.lstrip("."), "dtype": str(arr.dtype), "pixel_size_source": source or "axes"}


def read_image(path, pixel_size_nm: float | None = None, *, check_range: bool = True
               ) -> tuple[np.ndarray, float, dict]:
    """Read a 2-D STEM image and its pixel size.

    Parameters
    ----------
    path : str or Path
        TIFF (8/16/32-bit integer, float), PNG/JPEG/BMP (needs ``pixel_size_nm``), dm3/dm4/emd/ser (rosettasciio).
    pixel_size_nm : float, optional
        Pixel size (nm/px); overrides the file's calibration.
    check_range : bool
        Refuse pixel sizes outside the detector's range and images too large once resampled
        (:func:`check_pixel_size`), before the pixels are loaded. False only for readers that do not detect.

    Returns
    -------
    image : float64 array (rows, columns), raw intensities (colour images are converted to grey).
    pixel_size_nm : float, nm/px (x; ``meta["pixel_size_y_nm"]`` holds y when it differs).
    meta : dict with ``path``, ``format``, ``dtype``, ``shape``, ``pixel_size_source``, ``pixel_size_y_nm``.

    Raises
    ------
    DetectionInputError
        unreadable or oversized file, non-2-D data, NaN/inf values, constant image, missing pixel size, pixel
        size outside the supported range (``check_range``).
    """
    path = Path(path)
    if not path.exists():
        raise FileNotFoundError(f"{path}: no such file")
    if path.is_dir():
        raise DetectionInputError(f"{path}: is a directory, not an image")
    if path.stat().st_size > MAX_FILE_BYTES:
        raise DetectionInputError(f"{path}: file larger than {MAX_FILE_BYTES >> 20} MiB")
    suffix = path.suffix.lower()
    if pixel_size_nm is not None:
        pixel_size_nm = float(pixel_size_nm)
        if not (np.isfinite(pixel_size_nm) and pixel_size_nm > 0):
            raise DetectionInputError(f"{path}: pixel size must be a positive number of nm, got {pixel_size_nm}")
    if suffix in TIFF_SUFFIXES:
        arr, px, py, meta = _read_tiff(path, pixel_size_nm, check_range)
    elif suffix in RASTER_SUFFIXES:
        arr, px, py, meta = _read_raster(path, pixel_size_nm, check_range)
    elif suffix in RSCIIO_SUFFIXES:
        arr, px, py, meta = _read_rsciio(path)
    else:
        raise DetectionInputError(
            f"{path}: unsupported image format {suffix!r} (use one of {', '.join(sorted(IMAGE_SUFFIXES))})"
        )
    arr = np.squeeze(np.asarray(arr))
    if arr.ndim == 3 and arr.shape[-1] in (3, 4) and meta["format"] == "tiff":
        arr = arr[..., :3].astype(np.float64) @ np.array([0.299, 0.587, 0.114])  # RGB TIFF -> grey
    if arr.ndim != 2:
        raise DetectionInputError(f"{path}: expected a 2-D image, got data of shape {arr.shape}")
    if min(arr.shape) < 21:
        raise DetectionInputError(f"{path}: image of shape {arr.shape} is smaller than the 21x21 crop")
    if np.iscomplexobj(arr):
        raise DetectionInputError(f"{path}: complex-valued data is not an intensity image")
    img = arr.astype(np.float64)
    if not np.all(np.isfinite(img)):
        n_bad = int(np.size(img) - np.count_nonzero(np.isfinite(img)))
        raise DetectionInputError(f"{path}: image contains {n_bad} NaN/inf pixels")
    if float(img.max()) == float(img.min()):
        raise DetectionInputError(f"{path}: image is constant (value {img.flat[0]:g})")
    if pixel_size_nm is not None:
        px = py = pixel_size_nm
        meta["pixel_size_source"] = "user"
    if px is None:
        raise DetectionInputError(
            f"{path}: no pixel size (nm/px) found in the file; give it with --pixel-size / pixel_size_nm"
        )
    py = px if py is None else py
    if check_range and suffix in RSCIIO_SUFFIXES:  # rosettasciio gives the calibration with the data
        check_pixel_size(path, px, py, img.shape, meta["pixel_size_source"])
    meta.update(path=str(path), shape=list(img.shape), pixel_size_y_nm=float(py))
    return img, float(px), meta


def parse_unit(unit: str) -> float | None:
    """nm per ``unit`` (``'nm'`` → 1, ``'µm'`` → 1000, ``'Å'`` → 0.1); None when unknown."""
    return _unit_factor(unit)


def write_tiff(path, image: np.ndarray, pixel_size_nm: float, pixel_size_y_nm: float | None = None) -> Path:
    """Write a 2-D image as an ImageJ TIFF whose resolution tags give ``pixel_size_nm`` (nm/px, unit nm),
    atomically (:func:`sacmap.core.atomic.atomic_write_with`; parent folders are created).

    uint8/uint16/float32 are kept; other dtypes are written as float32 (ImageJ's limits).
    """
    import tifffile

    arr = np.asarray(image)
    if arr.dtype not in (np.uint8, np.uint16, np.float32):
        arr = arr.astype(np.float32)
    py = pixel_size_y_nm or pixel_size_nm
    return atomic_write_with(path, lambda tmp: tifffile.imwrite(
        tmp, arr, imagej=True, resolution=(1.0 / pixel_size_nm, 1.0 / py), metadata={"unit": "nm"}))


#: detection JSON files larger than this are not read while looking for a folder's own outputs
_RECORD_JSON_MAX_BYTES = 1 << 20


def own_outputs(folder: str | os.PathLike) -> set[str]:
    """Names of the files in ``folder`` that sacmap wrote there as outputs of a detection: every file a detection
    record ``<stem>.json`` lists under ``"files"`` (support mask, overlay, ...), except the record's own input
    image. These are never taken as input images (see :func:`find_images`)."""
    names: set[str] = set()
    for js in Path(folder).glob("*.json"):
        try:
            if js.stat().st_size > _RECORD_JSON_MAX_BYTES:
                continue
            rec = json.loads(js.read_text(encoding="utf-8"))
        except (OSError, ValueError):
            continue
        files = rec.get("files") if isinstance(rec, dict) else None
        if not isinstance(files, dict):
            continue
        image = Path(str(rec.get("image", ""))).name
        names |= {Path(str(v)).name for v in files.values() if isinstance(v, str)} - {image}
    return names


def discover_images(inputs) -> tuple[list[Path], list[tuple[Path, str]]]:
    """Expand files and folders (non-recursive) into image paths, keeping the bad ones apart.

    Returns ``(images, problems)``: the image paths in input order (each folder's sorted), and ``(path, reason)``
    for every input that gives none (missing path, folder without images). A folder gives its files with a
    suffix of :data:`sacmap.core.records.IMAGE_SUFFIXES`, except the outputs a detection wrote there
    (:func:`own_outputs`); a file given by name is always taken.
    """
    images: list[Path] = []
    problems: list[tuple[Path, str]] = []
    seen: set[Path] = set()
    for item in inputs:
        p = Path(item)
        if p.is_dir():
            skip = own_outputs(p)
            found = sorted(q for q in p.iterdir() if is_image(q) and q.is_file() and q.name not in skip)
            if not found:
                problems.append((p, "folder contains no images" + (" (only sacmap's own outputs)" if skip else "")))
            new = [q for q in found if q.resolve() not in seen]
        elif p.exists():
            new = [p] if p.resolve() not in seen else []
        else:
            problems.append((p, "no such file or folder"))
            continue
        seen |= {q.resolve() for q in new}
        images += new
    return images, problems


def find_images(inputs) -> list[Path]:
    """Image paths of files and folders (see :func:`discover_images`); the first input that gives none is an
    error (``FileNotFoundError`` for a missing path, :class:`DetectionInputError` for a folder without images)."""
    images, problems = discover_images(inputs)
    for p, reason in problems:
        if reason == "no such file or folder":
            raise FileNotFoundError(f"{p}: no such file or folder")
        raise DetectionInputError(f"{p}: {reason}")
    return images
