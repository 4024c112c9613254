"""Main-job steps 4–5: detect atoms in the spec's images (or read given detector CSVs) and compute the spatial
descriptors of each image over its support area. Coordinates in px and nm, densities in atoms/nm²."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pandas as pd
from tqdm import tqdm

from sacmap.core.atomic import atomic_write, write_csv, write_json
from sacmap.core.errors import InputError
from sacmap.core.records import detection_paths
from sacmap.workflows.errors import WorkflowInputError
from sacmap.workflows.job.steps import StepRecord, fingerprint


def _detect_one(path: Path, det: dict, ddir: Path) -> dict:
    """Run the detector on one image; write its detection record (``<stem>.csv``, ``<stem>.json``,
    ``<stem>_support.png`` — the window of the statistics — and the overlay ``<stem>.png``)."""
    from sacmap.detection.pipeline import detect_image

    kw = {} if det["threshold"] is None else {"threshold": det["threshold"]}  # None: the detector's own default
    result = detect_image(path, pixel_size_nm=det["pixel_size_nm"], elements=det["elements"],
                          weights=det["weights"], device=det["device"], **kw)
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


SIMULATED_PREFIX = "simulated"
MATCH_NM = 0.15  # a detection within this distance of a true atom finds it (recall, precision)


def simulated_stem(density_nm2: float) -> str:
    """File stem of the simulated image at ``density_nm2`` atoms/nm² (``simulated_0.5_per_nm2``): the word
    "simulated" is in every file, table row and caption that comes from it."""
    return f"{SIMULATED_PREFIX}_{density_nm2:g}_per_nm2"


def simulate(settings: dict, out: Path) -> dict:
    """Write the ``simulated_images`` block's synthetic HAADF-STEM images (:func:`sacmap.detection.simulate.
    simulate_sample`, image i with seed ``[seed, i]``) as calibrated TIFFs with their true positions
    (``simulated/<stem>.tif`` and ``<stem>_truth.csv``, px and nm). Skipped when current."""
    from sacmap.detection.simulate import save_tiff, simulate_sample, write_truth_csv

    cfg = settings["simulated_images"]
    sdir = out / "simulated"
    rec = StepRecord(out, "simulated")
    key = fingerprint(cfg)
    if rec.is_current(key):
        return rec.result()
    images, outputs = [], []
    for i, dens in enumerate(cfg["densities_nm2"]):
        image, truth, _ = simulate_sample(
            float(dens), shape=(cfg["size_px"], cfg["size_px"]), pixel_size_nm=cfg["pixel_size_nm"],
            elements=cfg["element"], seed=np.random.default_rng([int(cfg["seed"]), i]),
            min_dist_nm=cfg["min_dist_nm"], dimer_fraction=cfg["dimer_fraction"])
        stem = simulated_stem(float(dens))
        tif = save_tiff(sdir / f"{stem}.tif", image, cfg["pixel_size_nm"])
        truth_csv = write_truth_csv(sdir / f"{stem}_truth.csv", truth)
        images.append({"image": stem, "tif": str(tif), "truth_csv": str(truth_csv), "density_nm2": float(dens),
                       "n_true": int(len(truth))})
        outputs += [tif, truth_csv]
    result = {"images": images, "settings": cfg}
    rec.mark_done(key, outputs, result)
    return result


def _weights_files(weights: str | None) -> list[Path]:
    """The detector weights files a detection uses: the spec's, else every file of the detection package's
    default model (both networks of a combination)."""
    if weights:
        return [Path(weights)]
    from sacmap.detection.detector import model_files

    return model_files(None, None)


def detect(settings: dict, out: Path, progress: bool = True, simulated: dict | None = None) -> dict:
    """Detection for every image (the spec's and, with ``simulated`` (:func:`simulate`'s result), the simulated
    ones); each image is its own resumable unit (a rerun skips finished images).

    The batch goes on past a bad image (:class:`sacmap.core.batch.BatchReport`): it is named with its reason,
    ``detection/batch_summary.csv`` lists every image's status, and the result's ``"failed"`` holds
    ``[{"image", "reason"}]`` (``sacmap run`` then exits 3 after the report is written). When no image at all
    can be used the step stops with one line naming them (:class:`WorkflowInputError`).
    """
    from sacmap.core.batch import BatchReport

    det = settings["detection"]
    ddir = out / "detection"
    ddir.mkdir(parents=True, exist_ok=True)
    weights = _weights_files(det["weights"])  # hashed by content: new bundled weights redo the detection
    images = []
    truths = {Path(s["tif"]): s for s in (simulated or {}).get("images", [])}
    paths = list(settings["images"]) + list(truths)
    report = BatchReport("sacmap run: detection")
    for path in tqdm(paths, desc="detecting atoms", unit="image", disable=not progress):
        with report.item(path):
            rec = StepRecord(out, f"detection-{path.stem}")
            key = fingerprint(path, {k: v for k, v in det.items() if k != "device"}, weights)
            if not rec.is_current(key):
                files = _given_csv(path, ddir) if path.suffix.lower() == ".csv" else _detect_one(path, det, ddir)
                rec.mark_done(key, [Path(p) for p in files.values()], files)
            files = rec.result()
            meta = json.loads(Path(files["json"]).read_text()) if files.get("json") else {}
            n = len(pd.read_csv(files["csv"]))
            sim = truths.get(path)
            images.append({"image": path.stem, "source": str(path), **files, "n_atoms": n,
                           "pixel_size_nm": meta.get("pixel_size_nm", float("nan")),
                           "overlay_png": files.get("overlay"), "meta": meta, "simulated": sim is not None,
                           "truth_csv": sim["truth_csv"] if sim else None})
    report.write(ddir)
    failed = [{"image": it.file, "reason": it.reason} for it in report.failures]
    if paths and not images:
        raise WorkflowInputError("no image could be used: " + "; ".join(f"{f['image']}: {f['reason']}"
                                                                        for f in failed))
    return {"images": images, "failed": failed,
            "settings": {k: (str(v) if isinstance(v, Path) else v) for k, v in det.items()}}


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
    key = fingerprint(mm, [(Path(im["csv"]), sup if sup.is_file() else None, im.get("meta"),
                            Path(im["truth_csv"]) if im.get("truth_csv") else None)
                           for im, sup in zip(detection["images"], supports)])
    if rec.is_current(key):
        return rec.result()
    rows, full, pairs, images, truth_rows = [], {}, [], [], []
    for im in detection["images"]:
        obs = Observation.from_detection(im["csv"])
        if obs.n_atoms < 2:
            continue
        d, arrays = describe(obs, multimer_nm=mm, gr_rmax_nm=None)
        src = Path(str(d.get("source", "")))
        if src.is_absolute() and src.is_relative_to(out):  # relocatable tables: paths inside OUTDIR relative to it
            d["source"] = src.relative_to(out).as_posix()
        if im.get("truth_csv"):
            truth_rows.append(_truth_row(im, obs, d, mm))
        coords = pd.read_csv(im["csv"]).iloc[obs.rows].reset_index(drop=True)
        coords["nnd_nm"] = arrays["nnd_nm"]
        coords["cluster"] = arrays["cluster"]
        coords_csv = write_csv(sdir / f"{im['image']}_coords.csv", coords)
        full[im["image"]] = d
        rows.append({"image": im["image"], "simulated": bool(im.get("simulated")), **flatten_descriptors(d)})
        for pair, st in (d.get("nnd_by_pair") or {}).items():
            pairs.append({"image": im["image"], "pair": pair, "nnd_mean_nm": st.get("mean_nm"), "n": st.get("n")})
        images.append({"image": im["image"], "coords_csv": str(coords_csv), "detection_csv": str(im["csv"]),
                       "n_atoms": int(d["n_atoms"]), "n_detected": obs.n_detected, "n_off_window": obs.n_off_window,
                       "density_nm2": d["density_nm2"], "pixel_size_nm": obs.pixel_size_nm,
                       "window": obs.window_source, "simulated": bool(im.get("simulated"))})
    if not rows:
        raise WorkflowInputError("no image has at least two detected atoms in its window: nothing to describe")
    desc = pd.DataFrame(rows)
    desc_csv = write_csv(sdir / "descriptors.csv", desc)
    write_json(sdir / "descriptors.json", full)
    species_csv = None
    if pairs:
        species_csv = str(write_csv(sdir / "species_pairs.csv", pd.DataFrame(pairs)))
    truth_csv = None
    if truth_rows:
        truth_csv = str(write_csv(sdir / "simulated_detected_vs_true.csv", pd.DataFrame(truth_rows)))
    result = {"descriptors_csv": str(desc_csv), "descriptors_json": str(sdir / "descriptors.json"),
              "images": images, "species_pairs_csv": species_csv, "simulated_vs_true_csv": truth_csv}
    outputs = [desc_csv, sdir / "descriptors.json"] + [Path(im["coords_csv"]) for im in images]
    rec.mark_done(key, outputs + ([Path(truth_csv)] if truth_csv else []), result)
    return result


def _truth_row(im: dict, obs, detected: dict, multimer_nm: float) -> dict:
    """Detected against true descriptors of one simulated image, both in the detection's window (nm), with the
    detector's recall and precision (matches within :data:`MATCH_NM`)."""
    from sacmap.analysis.spatial.descriptors import descriptors
    from sacmap.analysis.spatial.observation import Observation
    from sacmap.detection.evaluate import evaluate_xy

    truth = pd.read_csv(im["truth_csv"])
    true_obs = Observation.from_points(truth[["x_nm", "y_nm"]].to_numpy(float), obs.window,
                                       source=im["truth_csv"], window_source=obs.window_source)
    t = descriptors(true_obs.xy_nm, true_obs.window, multimer_nm=multimer_nm)
    det = pd.read_csv(im["csv"])
    ev = evaluate_xy(det[["x_px", "y_px"]].to_numpy(float), truth[["x_px", "y_px"]].to_numpy(float),
                     radius_px=MATCH_NM / float(obs.pixel_size_nm))
    return {"image": im["image"], "density_true_nm2": t["density_nm2"], "density_detected_nm2": detected["density_nm2"],
            "n_true": true_obs.n_atoms, "n_detected": obs.n_atoms,
            "multimer_share_true": t["multimer_share"], "multimer_share_detected": detected["multimer_share"],
            "nnd_mean_true_nm": t["nnd_mean_nm"], "nnd_mean_detected_nm": detected["nnd_mean_nm"],
            "nnd_mean_random_nm": detected.get("nnd_mean_random_same_window_nm"),
            "recall": ev["recall"], "precision": ev["precision"], "f1": ev["f1"]}


ENVELOPE_FUNCTIONS = ("G", "L")  # NND distribution; Besag's L (all scales)
ENVELOPE_NSIM = 199
#: the ``test`` column of ``envelope_curves.csv``: the naive test of the whole window, the detector-aware test,
#: and the naive test it is compared with (same window less its edge band, same r values and simulations count)
NAIVE, AWARE, AWARE_NAIVE = "naive", "detector-aware", "naive, detector-aware window"
_CURVE_META = ("image", "test", "function", "null_model", "correction", "nsim", "n_points", "alpha", "p_rank",
               "p_mad", "p_dclf", "leaves_envelope", "window_kind", "window_area_nm2", "window_width_nm",
               "window_height_nm", "window_pixel_size_nm", "window_shape", "valid", "note")
_CURVES = ("r_nm", "observed", "central", "lo", "hi", "theo")


def envelope_curves(test, image: str, kind: str = NAIVE, note: str = "") -> pd.DataFrame:
    """The curves of one envelope test (r in nm; observed, simulations' mean, global envelope ``lo``–``hi``,
    Poisson ``theo``) as rows of ``envelope_curves.csv``, each carrying the test's identity, p-values and window
    (kind, area in nm², extent in nm, pixel size in nm/px and shape of a mask), so a figure and its caption can be
    drawn from the file alone (:func:`read_envelope_curves`).
    ``note``: why the test is not valid (then ``valid`` is False)."""
    df = test.table()
    if "theo" not in df:
        df["theo"] = np.nan
    meta = {"image": image, "test": kind, "function": test.function, "null_model": test.null_model,
            "correction": test.correction, "nsim": test.nsim, "n_points": test.n_points, "alpha": test.alpha,
            "p_rank": test.p_rank, "p_mad": test.p_mad, "p_dclf": test.p_dclf, "leaves_envelope": test.direction(),
            **_window_columns(test.window), "valid": not note, "note": note}
    return df.assign(**meta)[list(_CURVE_META + _CURVES)]


def _window_columns(window: dict) -> dict:
    w = window or {}
    return {"window_kind": w.get("kind", ""), "window_area_nm2": w.get("area_nm2"),
            "window_width_nm": w["x1_nm"] - w["x0_nm"] if "x1_nm" in w else None,
            "window_height_nm": w["y1_nm"] - w["y0_nm"] if "y1_nm" in w else None,
            "window_pixel_size_nm": w.get("pixel_size_nm"), "window_shape": "x".join(str(v) for v in w.get("shape", []))}


def _window_dict(m) -> dict:
    """The window of a row of ``envelope_curves.csv`` in ``Region.describe()`` terms (origin at 0)."""
    out = {"kind": m["window_kind"], "area_nm2": float(m["window_area_nm2"]), "x0_nm": 0.0, "y0_nm": 0.0,
           "x1_nm": float(m["window_width_nm"]), "y1_nm": float(m["window_height_nm"])}
    if m["window_kind"] == "mask":
        out.update(pixel_size_nm=float(m["window_pixel_size_nm"]),
                   shape=[int(v) for v in str(m["window_shape"]).split("x") if v])
    return out


def read_envelope_curves(path) -> list[tuple[dict, object]]:
    """``envelope_curves.csv`` back as ``[(meta, EnvelopeTest)]`` in file order (meta: image, test, valid,
    note); an empty list when the file is missing or empty."""
    from sacmap.analysis.spatial.envelopes import EnvelopeTest

    p = Path(path) if path else None
    if p is None or not p.is_file() or p.stat().st_size == 0:
        return []
    df = pd.read_csv(p, dtype={"image": str, "note": str, "window_kind": str, "window_shape": str},
                     keep_default_na=False, na_values=[""])
    out = []
    for _, g in df.groupby(["image", "test", "function"], sort=False):
        m = g.iloc[0]
        theo = g["theo"].to_numpy(float)
        t = EnvelopeTest(str(m["function"]), str(m["correction"]), str(m["null_model"]), {}, int(m["nsim"]),
                         int(m["n_points"]), _window_dict(m),
                         g["r_nm"].to_numpy(float), g["observed"].to_numpy(float), g["central"].to_numpy(float),
                         g["lo"].to_numpy(float), g["hi"].to_numpy(float), float(m["alpha"]), float(m["p_rank"]),
                         float(m["p_mad"]), float(m["p_dclf"]), None if np.isnan(theo).all() else theo)
        note = m["note"] if isinstance(m["note"], str) else ""
        out.append(({"image": str(m["image"]), "test": str(m["test"]), "valid": str(m["valid"]) == "True",
                     "note": note}, t))
    return out


def _detector_aware_row(im: dict, nsim: int, seed: int) -> tuple[dict, list[pd.DataFrame]]:
    """The detector-aware envelope test of G against CSR (:func:`sacmap.workflows.job.detector_null.
    detector_aware_test`: null patterns rendered by the simulator like the image and detected like it) of one
    real image, as a row of ``envelope_tests.csv``, with the curves of it and of its naive counterpart."""
    from sacmap.analysis.spatial.observation import Observation
    from sacmap.detection.io import read_image
    from sacmap.workflows.job.detector_null import detector_aware_test

    obs = Observation.from_detection(im["detection_csv"])
    meta_path = detection_paths(Path(im["detection_csv"]).parent, Path(im["detection_csv"]).stem)["json"]
    meta = json.loads(meta_path.read_text()) if meta_path.is_file() else {}
    settings = meta.get("settings") if isinstance(meta.get("settings"), dict) else None
    image, _, _ = read_image(meta.get("path") or im["detection_csv"], obs.pixel_size_nm, check_range=False)
    res = detector_aware_test(obs, image, null="csr", function="G", nsim=nsim, seed=seed, settings=settings)
    t = res.aware
    why = "" if res.valid else "not valid: " + "; ".join(res.warnings)
    curves = [envelope_curves(res.naive, im["image"], AWARE_NAIVE), envelope_curves(t, im["image"], AWARE, why)]
    if not res.valid:  # the simulated images do not reproduce the observation: no p-value
        return {"image": im["image"], "function": "G", "null_model": "csr, detector-aware", "nsim": t.nsim,
                "n_points": t.n_points, "leaves_envelope": why}, curves
    return {"image": im["image"], "function": "G", "null_model": "csr, detector-aware", "nsim": t.nsim,
            "n_points": t.n_points, "correction": t.correction, "p_rank": t.p_rank, "p_mad": t.p_mad,
            "p_dclf": t.p_dclf, "leaves_envelope": t.direction(), "r_min_nm": float(t.r_nm[0]),
            "r_max_nm": float(t.r_nm[-1])}, curves


def envelope_tests(stats: dict, settings: dict, out: Path) -> dict:
    """Global envelope tests (:func:`sacmap.analysis.spatial.envelopes.envelope_test`, 199 simulations) of each
    real image's in-window atoms against complete spatial randomness in the same window, for G (the NND
    distribution) and L, and, with ``statistics.detector_aware_nsim`` > 0, the detector-aware test of G for the
    richest real image: ``statistics/envelope_tests.csv`` (one row per image and function: p-values, where the
    observed curve leaves the envelope) and ``statistics/envelope_curves.csv`` (:func:`envelope_curves`: every
    test's curves and global envelope, the detector-aware test's naive counterpart included, for the report's
    figures). Simulated images are not tested (their pattern is the spec's choice)."""
    from sacmap.analysis.spatial.envelopes import envelope_test
    from sacmap.analysis.spatial.observation import Observation

    sdir = out / "statistics"
    rec = StepRecord(out, "envelopes")
    images = [im for im in stats["images"] if not im.get("simulated") and im["n_atoms"] >= 3]
    seed = settings["sampling"]["seed"]
    aware_nsim = settings["statistics"].get("detector_aware_nsim") or 0
    key = fingerprint(ENVELOPE_FUNCTIONS, ENVELOPE_NSIM, seed, aware_nsim, "curves",
                      [Path(im["detection_csv"]) for im in images])
    if rec.is_current(key):
        return rec.result()
    rows, curves = [], []
    for im in images:
        obs = Observation.from_detection(im["detection_csv"])
        for fn in ENVELOPE_FUNCTIONS:
            t = envelope_test(obs.xy_nm, obs.window, null="csr", function=fn, nsim=ENVELOPE_NSIM, seed=seed)
            rows.append({"image": im["image"], "function": fn, "null_model": t.null_model, "nsim": t.nsim,
                         "n_points": t.n_points, "correction": t.correction, "p_rank": t.p_rank, "p_mad": t.p_mad,
                         "p_dclf": t.p_dclf, "leaves_envelope": t.direction(),
                         "r_min_nm": float(t.r_nm[0]), "r_max_nm": float(t.r_nm[-1])})
            curves.append(envelope_curves(t, im["image"], NAIVE))
    if aware_nsim and images:
        best = max(images, key=lambda im: im["n_atoms"])
        try:
            row, aware_curves = _detector_aware_row(best, aware_nsim, seed)
            rows.append(row)
            curves += aware_curves
        except InputError as exc:  # the Findings fall back to the naive test and the table says why
            rows.append({"image": best["image"], "function": "G", "null_model": "csr, detector-aware",
                         "nsim": aware_nsim, "leaves_envelope": f"not run: {exc}"})
    if not rows:
        return {}
    path = write_csv(sdir / "envelope_tests.csv", pd.DataFrame(rows))
    curves_path = write_csv(sdir / "envelope_curves.csv", pd.concat(curves, ignore_index=True))
    result = {"csv": str(path), "curves_csv": str(curves_path)}
    rec.mark_done(key, [path, curves_path], result)
    return result
