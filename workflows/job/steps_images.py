"""Main-job steps 4–5: detect atoms in the spec's images (or read given detector CSVs) and compute the spatial
descriptors of each image over its support area. Coordinates in px and nm, densities in atoms/nm²."""

from __future__ import annotations

import json
from pathlib import Path

import pandas as pd
from tqdm import tqdm

from sacmap.core.atomic import atomic_write, write_csv, write_json
from sacmap.core.records import detection_paths
from sacmap.workflows.errors import WorkflowInputError
from sacmap.workflows.job.steps import StepRecord, fingerprint


def _detect_one(path: Path, det: dict, ddir: Path) -> dict:
    """Run the detector on one image; write its detection record (``<stem>.csv``, ``<stem>.json``,
    ``<stem>_support.png`` — the window of the statistics — and the overlay ``<stem>.png``)."""
    from sacmap.detection.pipeline import detect_image

    result = detect_image(path, pixel_size_nm=det["pixel_size_nm"], threshold=det["threshold"],
                          elements=det["elements"], weights=det["weights"], device=det["device"])
    return {k: str(v) for k, v in result.write(ddir, path.stem).items()}


def _given_csv(path: Path, ddir: Path) -> dict:
    """A detector CSV given instead of an image: copied with the rest of its record (``<stem>.json`` with the
    pixel size and shape, ``<stem>_support.png``) when they sit beside it."""
    src = detection_paths(path.parent, path.stem)
    df = pd.read_csv(path)
    missing = [c for c in ("x_nm", "y_nm") if c not in df.columns]
    if missing:
        raise WorkflowInputError(f"{path}: detector CSV lacks column(s) {', '.join(missing)}")
    meta = json.loads(src["json"].read_text()) if src["json"].is_file() else {}
    dst = detection_paths(ddir, path.stem)
    ddir.mkdir(parents=True, exist_ok=True)
    files = {"csv": str(write_csv(dst["csv"], df))}
    write_json(dst["json"], meta)
    files["json"] = str(dst["json"])
    if src["support"].is_file():
        atomic_write(dst["support"], src["support"].read_bytes())
        files["support"] = str(dst["support"])
    return files


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


def statistics(detection: dict, settings: dict, out: Path) -> dict:
    """Descriptors per image over its window (:meth:`Observation.from_detection`: the support mask of the
    detection record) with the random reference in the same window (:func:`describe`):
    ``statistics/descriptors.csv`` and ``.json``, the in-window atoms with their NND and cluster
    (``statistics/<stem>_coords.csv``), and per-species NND pairs when labelled."""
    from sacmap.analysis.spatial.describe import describe
    from sacmap.analysis.spatial.descriptors import flatten_descriptors
    from sacmap.analysis.spatial.observation import Observation

    mm = settings["statistics"]["multimer_nm"]
    sdir = out / "statistics"
    sdir.mkdir(parents=True, exist_ok=True)
    rec = StepRecord(out, "statistics")
    supports = [detection_paths(Path(im["csv"]).parent, Path(im["csv"]).stem)["support"]
                for im in detection["images"]]
    key = fingerprint(mm, [(Path(im["csv"]), sup if sup.is_file() else None, im.get("meta"))
                           for im, sup in zip(detection["images"], supports)])
    if rec.is_current(key):
        return rec.result()
    rows, full, pairs, images = [], {}, [], []
    for im in detection["images"]:
        obs = Observation.from_detection(im["csv"])
        if obs.n_atoms < 2:
            continue
        d, arrays = describe(obs, multimer_nm=mm, gr_rmax_nm=None)
        coords = pd.read_csv(im["csv"]).iloc[obs.rows].reset_index(drop=True)
        coords["nnd_nm"] = arrays["nnd_nm"]
        coords["cluster"] = arrays["cluster"]
        coords_csv = write_csv(sdir / f"{im['image']}_coords.csv", coords)
        full[im["image"]] = d
        rows.append({"image": im["image"], **flatten_descriptors(d)})
        for pair, st in (d.get("nnd_by_pair") or {}).items():
            pairs.append({"image": im["image"], "pair": pair, "nnd_mean_nm": st.get("mean_nm"), "n": st.get("n")})
        images.append({"image": im["image"], "coords_csv": str(coords_csv), "detection_csv": str(im["csv"]),
                       "n_atoms": int(d["n_atoms"]), "n_detected": obs.n_detected, "n_off_window": obs.n_off_window,
                       "density_nm2": d["density_nm2"], "pixel_size_nm": obs.pixel_size_nm,
                       "window": obs.window_source})
    if not rows:
        raise WorkflowInputError("no image has at least two detected atoms in its window: nothing to describe")
    desc = pd.DataFrame(rows)
    desc_csv = write_csv(sdir / "descriptors.csv", desc)
    write_json(sdir / "descriptors.json", full)
    species_csv = None
    if pairs:
        species_csv = str(write_csv(sdir / "species_pairs.csv", pd.DataFrame(pairs)))
    result = {"descriptors_csv": str(desc_csv), "descriptors_json": str(sdir / "descriptors.json"),
              "images": images, "species_pairs_csv": species_csv}
    rec.mark_done(key, [desc_csv, sdir / "descriptors.json"] + [Path(im["coords_csv"]) for im in images], result)
    return result
