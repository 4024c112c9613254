"""Reading HAADF-STEM images: TIFF (any bit depth, float), PNG/JPEG, and dm3/dm4/emd/ser via rosettasciio.

The pixel size (nm/px) is taken from the file where it is recorded:

* HyperSpy private TIFF tags 65009/65010 (x/y scale) with units in 65003/65004;
* TIFF ``XResolution``/``YResolution`` (pixels per unit) **only** when the unit is known from the ImageJ
  description (``unit=nm``, ``µm``, ``Å``, ...) or the resolution unit is centimetre; a bare 72-dpi inch tag says
  nothing about the sample and is ignored;
* the axes calibration of formats read by rosettasciio.

A user-given ``pixel_size_nm`` overrides the file. A missing pixel size is an error unless given.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np

from sacmap.core.atomic import atomic_write_with
from sacmap.core.records import IMAGE_SUFFIXES, RASTER_SUFFIXES, RSCIIO_SUFFIXES, TIFF_SUFFIXES
from sacmap.detection.errors import DetectionInputError

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


def _read_tiff(path: Path):
    import tifffile

    try:
        with tifffile.TiffFile(path) as tif:
            page = tif.pages[0]
            series = tif.series[0] if tif.series else page
            shape = series.shape
            if int(np.prod(shape)) > MAX_PIXELS:
                raise DetectionInputError(f"{path}: image of shape {shape} exceeds the {MAX_PIXELS}-pixel limit")
            arr = series.asarray()
            px, py, source = _tiff_pixel_size(tif, page)
            meta = {"format": "tiff", "dtype": str(arr.dtype), "pixel_size_source": source}
    except DetectionInputError:
        raise
    except Exception as exc:  # tifffile raises many types on corrupt files
        raise DetectionInputError(f"{path}: unreadable TIFF ({exc})") from exc
    return arr, px, py, meta


def _read_raster(path: Path):
    from PIL import Image

    try:
        Image.MAX_IMAGE_PIXELS = MAX_PIXELS
        with Image.open(path) as im:
            if im.width * im.height > MAX_PIXELS:
                raise DetectionInputError(f"{path}: image of {im.width}x{im.height} exceeds the pixel limit")
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


def _read_rsciio(path: Path):
    suffix = path.suffix.lower()
    try:
        if suffix in (".dm3", ".dm4"):
            from rsciio.digitalmicrograph import file_reader
        elif suffix == ".emd":
            from rsciio.emd import file_reader
        else:
            from rsciio.tia import file_reader
    except ImportError as exc:
        raise DetectionInputError(
            f"{path}: reading {suffix} files needs the optional package rosettasciio (pip install rosettasciio)"
        ) from exc
    try:
        items = file_reader(str(path))
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
    return arr, px, py, {"format": suffix.lstrip("."), "dtype": str(arr.dtype), "pixel_size_source": "axes"}


def read_image(path, pixel_size_nm: float | None = None) -> tuple[np.ndarray, float, dict]:
    """Read a 2-D STEM image and its pixel size.

    Parameters
    ----------
    path : str or Path
        TIFF (8/16/32-bit integer, float), PNG/JPEG/BMP (needs ``pixel_size_nm``), dm3/dm4/emd/ser (rosettasciio).
    pixel_size_nm : float, optional
        Pixel size (nm/px); overrides the file's calibration.

    Returns
    -------
    image : float64 array (rows, columns), raw intensities (colour images are converted to grey).
    pixel_size_nm : float, nm/px (x; ``meta["pixel_size_y_nm"]`` holds y when it differs).
    meta : dict with ``path``, ``format``, ``dtype``, ``shape``, ``pixel_size_source``, ``pixel_size_y_nm``.

    Raises
    ------
    DetectionInputError
        unreadable or oversized file, non-2-D data, NaN/inf values, constant image, missing pixel size.
    """
    path = Path(path)
    if not path.exists():
        raise FileNotFoundError(f"{path}: no such file")
    if path.is_dir():
        raise DetectionInputError(f"{path}: is a directory, not an image")
    if path.stat().st_size > MAX_FILE_BYTES:
        raise DetectionInputError(f"{path}: file larger than {MAX_FILE_BYTES >> 20} MiB")
    suffix = path.suffix.lower()
    if suffix in TIFF_SUFFIXES:
        arr, px, py, meta = _read_tiff(path)
    elif suffix in RASTER_SUFFIXES:
        arr, px, py, meta = _read_raster(path)
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
        pixel_size_nm = float(pixel_size_nm)
        if not (np.isfinite(pixel_size_nm) and pixel_size_nm > 0):
            raise DetectionInputError(f"{path}: pixel size must be a positive number of nm, got {pixel_size_nm}")
        px = py = pixel_size_nm
        meta["pixel_size_source"] = "user"
    if px is None:
        raise DetectionInputError(
            f"{path}: no pixel size (nm/px) found in the file; give it with --pixel-size / pixel_size_nm"
        )
    py = px if py is None else py
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
