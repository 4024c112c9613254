"""Main-job steps 4–5: detect atoms in the spec's images (or read given detector CSVs) and compute the spatial
descriptors of each image over its support area. Coordinates in px and nm, densities in atoms/nm²."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pandas as pd
from tqdm import tqdm

from sacmap.core.atomic import atomic_write
from sacmap.workflows.errors import WorkflowInputError
from sacmap.workflows.job.html import atomic_write_text, write_csv
from sacmap.workflows.job.steps import StepRecord, fingerprint

COORD_COLUMNS = ["x_px", "y_px", "x_nm", "y_nm", "score", "component_size", "element"]


def _detect_one(path: Path, det: dict, ddir: Path) -> dict:
    """Run the detector on one image; write ``<stem>.csv``, ``<stem>.json``, overlay PNG and the support mask
    (``<stem>_support.npy``, bool, the image's pixel grid) that the statistics use as the observed region."""
    import io

    from sacmap.detection.pipeline import detect_image

    result = detect_image(path, pixel_size_nm=det["pixel_size_nm"], threshold=det["threshold"],
                          elements=det["elements"], weights=det["weights"], device=det["device"])
    files = {k: str(v) for k, v in result.write(ddir, path.stem).items()}
    mask_path = ddir / f"{path.stem}_support.npy"
    buf = io.BytesIO()
    np.save(buf, np.asarray(result.support, dtype=bool), allow_pickle=False)
    atomic_write(mask_path, buf.getvalue())
    files["mask"] = str(mask_path)
    return files


def _given_csv(path: Path, ddir: Path) -> dict:
    """A detector CSV given instead of an image: its JSON (pixel size, support area) must sit beside it."""
    meta_path = path.with_suffix(".json")
    df = pd.read_csv(path)
    missing = [c for c in ("x_nm", "y_nm") if c not in df.columns]
    if missing:
        raise WorkflowInputError(f"{path}: detector CSV lacks column(s) {', '.join(missing)}")
    meta = json.loads(meta_path.read_text()) if meta_path.is_file() else {}
    ddir.mkdir(parents=True, exist_ok=True)
    csv_out = write_csv(df, ddir / f"{path.stem}.csv")
    atomic_write_text(ddir / f"{path.stem}.json", json.dumps(meta, indent=1))
    return {"csv": str(csv_out), "json": str(ddir / f"{path.stem}.json")}


def detect(settings: dict, out: Path, progress: bool = True) -> dict:
    """Detection for every image; each image is its own resumable unit (a rerun skips finished images)."""
    det = settings["detection"]
    ddir = out / "detection"
    ddir.mkdir(parents=True, exist_ok=True)
    weights = Path(det["weights"]) if det["weights"] else None
    images = []
    for path in tqdm(settings["images"], desc="detecting atoms", unit="image", disable=not progress):
        rec = StepRecord(out, f"detection-{path.stem}")
        key = fingerprint(path, {k: v for k, v in det.items() if k != "device"}, weights)
        if not rec.is_current(key):
            files = _given_csv(path, ddir) if path.suffix.lower() == ".csv" else _detect_one(path, det, ddir)
            rec.mark_done(key, [Path(p) for p in files.values()], files)
        files = rec.result()
        meta = json.loads(Path(files["json"]).read_text()) if files.get("json") else {}
        n = len(pd.read_csv(files["csv"]))
        images.append({"image": path.stem, "source": str(path), **files, "n_atoms": n,
                       "pixel_size_nm": meta.get("pixel_size_nm", float("nan")),
                       "overlay_png": files.get("overlay"), "meta": meta})
    return {"images": images, "settings": {k: (str(v) if isinstance(v, Path) else v) for k, v in det.items()}}


def _region_for(im: dict):
    """Support region of an image: its saved mask if any, else the field of view from the JSON."""
    from sacmap.analysis.spatial.window import Region

    meta = im.get("meta") or {}
    px = float(meta.get("pixel_size_nm", im.get("pixel_size_nm", float("nan"))))
    mask_path = im.get("mask")
    if mask_path and Path(mask_path).is_file():
        mask = np.load(mask_path, allow_pickle=False)
        return Region.from_mask(mask.astype(bool), px), px, mask.shape
    shape = meta.get("shape")
    if shape and np.isfinite(px):
        h, w = shape[:2]
        return Region.rectangle(w * px, h * px), px, tuple(shape[:2])
    return None, px, None


def statistics(detection: dict, settings: dict, out: Path) -> dict:
    """Descriptors per image over its support region: ``statistics/descriptors.csv`` and ``.json``, per-atom
    coordinates with their NND (``statistics/<stem>_coords.csv``), and per-species NND pairs when labelled."""
    from sacmap.analysis.spatial.descriptors import descriptors, flatten_descriptors

    mm = settings["statistics"]["multimer_nm"]
    sdir = out / "statistics"
    sdir.mkdir(parents=True, exist_ok=True)
    rec = StepRecord(out, "statistics")
    key = fingerprint(mm, [(Path(im["csv"]), Path(im["mask"]) if im.get("mask") else None, im.get("meta"))
                           for im in detection["images"]])
    if rec.is_current(key):
        return rec.result()
    rows, full, pairs, images = [], {}, [], []
    for im in detection["images"]:
        df = pd.read_csv(im["csv"])
        if len(df) < 2:
            continue
        region, px, shape = _region_for(im)
        xy = df[["x_nm", "y_nm"]].to_numpy(float)
        elements = df["element"].fillna("").astype(str).tolist() if "element" in df and df["element"].notna().any() \
            else None
        d = descriptors(xy, region, elements=elements, multimer_nm=mm, return_arrays=True)
        arrays = d.pop("arrays")
        coords = df.copy()
        coords["nnd_nm"] = arrays["nnd_nm"]
        coords["cluster"] = arrays["cluster"]
        coords_csv = write_csv(coords, sdir / f"{im['image']}_coords.csv")
        mask_npy = None
        if im.get("mask") and Path(im["mask"]).is_file():
            mask_npy = im["mask"]
        full[im["image"]] = d
        rows.append({"image": im["image"], **flatten_descriptors(d)})
        for pair, st in (d.get("nnd_by_pair") or {}).items():
            pairs.append({"image": im["image"], "pair": pair, "nnd_mean_nm": st.get("mean_nm"), "n": st.get("n")})
        w = shape[1] * px if shape else float(np.ptp(xy[:, 0]))
        h = shape[0] * px if shape else float(np.ptp(xy[:, 1]))
        images.append({"image": im["image"], "coords_csv": str(coords_csv), "n_atoms": int(d["n_atoms"]),
                       "density_nm2": d["density_nm2"], "pixel_size_nm": px, "mask_npy": mask_npy,
                       "width_nm": w, "height_nm": h})
    if not rows:
        raise WorkflowInputError("no image has at least two detected atoms: nothing to describe")
    desc = pd.DataFrame(rows)
    desc_csv = write_csv(desc, sdir / "descriptors.csv")
    atomic_write_text(sdir / "descriptors.json", json.dumps(full, indent=1, default=float))
    species_csv = None
    if pairs:
        species_csv = str(write_csv(pd.DataFrame(pairs), sdir / "species_pairs.csv"))
    result = {"descriptors_csv": str(desc_csv), "descriptors_json": str(sdir / "descriptors.json"),
              "images": images, "species_pairs_csv": species_csv}
    rec.mark_done(key, [desc_csv, sdir / "descriptors.json"] + [Path(im["coords_csv"]) for im in images], result)
    return result
