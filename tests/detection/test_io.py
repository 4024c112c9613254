"""Image reader: bit depths, pixel-size tags, bad inputs."""

from __future__ import annotations

import numpy as np
import pytest
import tifffile

from sacmap.detection.errors import DetectionInputError
from sacmap.detection.io import read_image, write_tiff


def _img(dtype, seed=0):
    rng = np.random.default_rng(seed)
    a = rng.random((64, 48)) * 200 + 10
    return a.astype(dtype)


@pytest.mark.parametrize("dtype", [np.uint8, np.uint16, np.float32])
def test_imagej_tiff_bit_depths_and_pixel_size(tmp_path, dtype):
    a = _img(dtype)
    p = write_tiff(tmp_path / "a.tif", a, 0.05)
    img, px, meta = read_image(p)
    assert img.shape == (64, 48)  # rows, columns preserved
    np.testing.assert_allclose(img, a.astype(float))
    assert px == pytest.approx(0.05, rel=1e-6)
    assert meta["pixel_size_y_nm"] == pytest.approx(0.05, rel=1e-6)


def test_uint32_and_micron_unit(tmp_path):
    a = (_img(np.float64) * 1e4).astype(np.uint32)
    p = tmp_path / "b.tif"
    # 0.00002 µm/px = 0.02 nm/px
    tifffile.imwrite(p, a, imagej=False, resolution=(1 / 0.00002, 1 / 0.00002),
                     description="ImageJ=1.11a\nunit=micron\n")
    img, px, _ = read_image(p)
    assert img.dtype == np.float64 and img.max() == a.max()
    assert px == pytest.approx(0.02, rel=1e-6)


def test_hyperspy_private_tags(tmp_path):
    a = _img(np.uint16)
    p = tmp_path / "hs.tif"
    tifffile.imwrite(p, a, extratags=[(65003, "s", 0, "nm", False), (65004, "s", 0, "nm", False),
                                      (65009, "d", 1, 0.029296875, False), (65010, "d", 1, 0.031, False)])
    _, px, meta = read_image(p)
    assert px == pytest.approx(0.029296875)
    assert meta["pixel_size_y_nm"] == pytest.approx(0.031)


def test_shared_image_pixel_size(shared_dir):
    f = sorted((shared_dir / "data/ptnc-stem/images").glob("*.tif"))[0]
    img, px, meta = read_image(f)
    assert img.shape == (512, 512)
    assert px == pytest.approx(15 / 512)


def test_72dpi_is_not_nm(tmp_path):
    a = _img(np.uint8)
    p = tmp_path / "dpi.tif"
    tifffile.imwrite(p, a, resolution=(72, 72), resolutionunit="INCH")
    with pytest.raises(DetectionInputError, match="pixel size"):
        read_image(p)
    _, px, meta = read_image(p, pixel_size_nm=0.03)  # user value accepted
    assert px == 0.03 and meta["pixel_size_source"] == "user"


def test_png_needs_pixel_size(tmp_path):
    from PIL import Image

    p = tmp_path / "x.png"
    Image.fromarray(_img(np.uint8)).save(p)
    with pytest.raises(DetectionInputError, match="x.png"):
        read_image(p)
    img, px, _ = read_image(p, 0.02)
    assert img.shape == (64, 48) and px == 0.02


@pytest.mark.parametrize("case", ["nan", "inf", "constant", "3d", "garbage", "suffix", "tiny", "neg_px"])
def test_bad_inputs_name_the_file(tmp_path, case):
    p = tmp_path / f"bad_{case}.tif"
    a = _img(np.float32)
    if case == "nan":
        a[3, 4] = np.nan
    elif case == "inf":
        a[0, 0] = np.inf
    elif case == "constant":
        a[:] = 7
    elif case == "3d":
        a = np.stack([a, a, a, a, a])
    elif case == "tiny":
        a = a[:10, :10]
    if case == "garbage":
        p.write_bytes(b"this is not a tiff at all")
    elif case == "suffix":
        p = tmp_path / "bad_suffix.xyz"
        p.write_bytes(b"123")
    else:
        tifffile.imwrite(p, a, imagej=True, resolution=(20, 20), metadata={"unit": "nm"})
    with pytest.raises(DetectionInputError) as err:
        read_image(p, pixel_size_nm=-1 if case == "neg_px" else None)
    assert p.name in str(err.value)


def test_missing_file():
    with pytest.raises(FileNotFoundError):
        read_image("/nonexistent/image.tif")


def test_folders_keep_every_image_suffix_of_the_core(tmp_path):
    """A folder gives the files with a suffix of sacmap.core.records.IMAGE_SUFFIXES (.bmp included), sorted."""
    from PIL import Image

    from sacmap.detection.pipeline import find_images

    for name in ("b.BMP", "a.png", "c.tif"):
        Image.fromarray(np.zeros((32, 32), np.uint8)).save(tmp_path / name)
    (tmp_path / "notes.txt").write_text("x")
    assert [p.name for p in find_images([tmp_path])] == ["a.png", "b.BMP", "c.tif"]


def test_write_tiff_is_atomic_and_creates_folders(tmp_path):
    """write_tiff goes through sacmap.core.atomic: parent folders created, no temporary file left."""
    path = write_tiff(tmp_path / "sub" / "x.tif", np.arange(64 * 64, dtype=np.uint16).reshape(64, 64), 0.05)
    assert [p.name for p in path.parent.iterdir()] == ["x.tif"]
    img, px, _ = read_image(path)
    assert px == pytest.approx(0.05) and img.shape == (64, 64)


@pytest.mark.parametrize("value, source, hint", [
    (2.93e-5, "tag", "µm read as nm"),         # a µm calibration written as nm
    (2.93e-11, "flag", "m read as nm"),         # metres typed as nm
    (0.293, "flag", "Å read as nm"),            # Ångström typed as nm
    (0.3, "flag", "Å read as nm"),
    (1.5, "flag", "under-sampled"),             # a real but far too coarse pixel
    (1e-9, "flag", "another unit"),
])
def test_out_of_range_pixel_size_is_refused_before_the_pixels_are_loaded(tmp_path, monkeypatch, value, source, hint):
    """One line naming the file, the value, where it came from and the likely unit mistake; the pixel data is
    never loaded (asarray would raise here)."""
    p = tmp_path / "frame.tif"
    if source == "tag":
        tifffile.imwrite(p, _img(np.uint16), imagej=True, resolution=(1 / value, 1 / value), metadata={"unit": "nm"})
    else:
        tifffile.imwrite(p, _img(np.uint16))

    def boom(*a, **k):
        raise AssertionError("pixels loaded before the pixel size was checked")

    monkeypatch.setattr(tifffile.TiffPageSeries, "asarray", boom)
    monkeypatch.setattr(tifffile.TiffPage, "asarray", boom)
    with pytest.raises(DetectionInputError) as err:
        read_image(p, pixel_size_nm=None if source == "tag" else value)
    msg = str(err.value)
    assert len(msg.splitlines()) == 1 and "frame.tif" in msg and f"{value:.4g}" in msg and hint in msg, msg
    assert ("resolution tags" if source == "tag" else "--pixel-size") in msg


def test_png_pixel_size_is_bounded_too(tmp_path):
    from PIL import Image

    p = tmp_path / "x.png"
    Image.fromarray(_img(np.uint8)).save(p)
    with pytest.raises(DetectionInputError, match=r"x.png: pixel size 29.3 nm/px .*pm read as nm"):
        read_image(p, 29.3)


def test_pixel_cap_holds_for_the_resampled_size():
    """4096² px at 0.08 nm/px is 16.8 Mpx as stored but 11185² = 125 Mpx at the model's 0.0293 nm/px."""
    from sacmap.detection.io import MAX_PIXELS, check_pixel_size

    check_pixel_size("a.tif", 0.0293, None, (4096, 4096))  # fine as stored and resampled
    assert 4096 * 4096 < MAX_PIXELS
    with pytest.raises(DetectionInputError, match=r"a.tif: 4096x4096 px at 0.08 nm/px becomes 11185x11185 px"):
        check_pixel_size("a.tif", 0.08, None, (4096, 4096))


def test_missing_optional_reader_names_the_package(tmp_path, monkeypatch):
    """A missing optional dependency is named as the package to install (h5py for .emd, rosettasciio for the
    reader itself), with the extra that brings it."""
    import builtins

    p = tmp_path / "a.emd"
    p.write_bytes(b"\x89HDF\r\n")
    real_import = builtins.__import__

    def fake_import(name, *args, **kw):
        if name == "h5py" or name.startswith("rsciio"):
            raise ModuleNotFoundError(f"No module named {name!r}", name=name)
        return real_import(name, *args, **kw)

    monkeypatch.setattr(builtins, "__import__", fake_import)
    with pytest.raises(DetectionInputError, match=r"a.emd: reading .emd files needs the optional package rosettasciio"
                                                  r".*sacmap\[io\]"):
        read_image(p, 0.03)

    def no_h5py(name, *args, **kw):
        if name == "h5py":
            raise ModuleNotFoundError("No module named 'h5py'", name="h5py")
        if name.startswith("rsciio"):
            import types
            return types.SimpleNamespace(file_reader=lambda f: [])
        return real_import(name, *args, **kw)

    monkeypatch.setattr(builtins, "__import__", no_h5py)
    with pytest.raises(DetectionInputError, match=r"needs the optional package h5py, which is not installed"):
        read_image(p, 0.03)


def test_a_folder_never_gives_back_its_own_outputs(tmp_path):
    """`detect DIR -o DIR`: the support masks and overlays a record lists are outputs, not images, on the next run;
    an input PNG listed as the record's image stays an input; a file named explicitly is always taken."""
    import json

    from PIL import Image

    from sacmap.detection.io import discover_images, find_images

    for name in ("frame.png", "frame_support.png", "frame_overlay.png", "old.tif", "old.png", "other_support.png"):
        Image.fromarray(np.zeros((32, 32), np.uint8)).save(tmp_path / name)
    (tmp_path / "frame.json").write_text(json.dumps({"image": "frame.png", "files": {
        "csv": "frame.csv", "json": "frame.json", "support": "frame_support.png", "overlay": "frame_overlay.png"}}))
    # a record of the old naming (overlay <stem>.png) is recognised as well
    (tmp_path / "old.json").write_text(json.dumps({"image": "old.tif", "files": {"overlay": "old.png"}}))
    (tmp_path / "broken.json").write_text("{not json")
    names = [p.name for p in find_images([tmp_path])]
    assert names == ["frame.png", "old.tif", "other_support.png"]
    assert [p.name for p in find_images([tmp_path / "frame_support.png"])] == ["frame_support.png"]
    images, problems = discover_images([tmp_path / "missing.tif", tmp_path, tmp_path / "frame.png"])
    assert [p.name for p in images] == names  # frame.png once
    assert problems == [(tmp_path / "missing.tif", "no such file or folder")]


def test_output_stems_never_collide():
    """Two inputs never share output files: same stem in two folders, twice in one folder, or both."""
    from pathlib import Path

    from sacmap.detection.pipeline import _stems

    files = [Path("x/imgs/a.tif"), Path("y/imgs/a.tif"), Path("x/imgs/a.png"), Path("x/b.tif"), Path("y/c.tif")]
    stems = _stems(files)
    assert len(set(stems)) == len(files)
    assert stems[3:] == ["b", "c"]  # unique stems are kept as they are


def test_array_inputs_are_bounded_like_files():
    """detect_image on an array: the pixel size is checked before the image is resampled (one line, unit hint)."""
    from sacmap.detection.pipeline import detect_image

    img = _img(np.float32)
    with pytest.raises(DetectionInputError, match=r"image array: pixel size 0.3 nm/px .* Å read as nm"):
        detect_image(img, pixel_size_nm=0.3)
    with pytest.raises(DetectionInputError, match="image array: pixel size must be a positive number"):
        detect_image(img, pixel_size_nm=-1)
