"""Main-job steps 3 and 6: energetics from the results database, and the point samplers (random, repulsive and
the DFT-biased sampler fitted to the detected coordinates) at the observed densities. Coordinates in nm."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pandas as pd

from sacmap.core.atomic import write_csv, write_json
from sacmap.workflows.job.steps import StepRecord, fingerprint

SAMPLERS = ("random", "repulsive", "dft")
MIN_POINTS = 100  # points per sampler run in the density sweep (fewer make the bands meaningless)


def energetics(db_url: str, out: Path) -> dict:
    """E_int, dimer formation, site–site potential and Bader descriptor from the results database."""
    from sacmap.analysis.energetics.equations import compute_energetics
    from sacmap.analysis.energetics.readers import load_records

    edir = out / "energetics"
    rec = StepRecord(out, "energetics")
    db_path = Path(db_url)
    key = fingerprint(db_path if db_path.is_file() else db_url)
    if rec.is_current(key):
        return rec.result()
    records = load_records([db_url])
    res = compute_energetics(records, edir)
    paths = {k: str(v) for k, v in res["paths"].items()}
    result = {"paths": paths, "counts": res["counts"], "warnings": res["warnings"][:50],
              "site_site_potential": paths.get("site_site_potential")}
    rec.mark_done(key, [Path(p) for p in paths.values()], result)
    return result


def _density_grid(observed: list[float], given: list[float] | None) -> list[float]:
    if given:
        return sorted(float(d) for d in given)
    obs = [d for d in observed if d > 0] or [1.0]
    lo, hi = max(min(obs) / 2, 0.05), min(max(max(obs) * 2, 1.0), 8.0)
    if hi <= lo * 1.5:
        hi = lo * 4
    return [float(v) for v in np.round(np.geomspace(lo, hi, 6), 4)]


def _run_stats(runs_xy: np.ndarray, region, multimer_nm: float) -> pd.DataFrame:
    """Per run: multimer share, ⟨NND⟩ (nm), Clark–Evans ratio."""
    from sacmap.analysis.spatial.descriptors import descriptors

    rows = []
    for xy in runs_xy:
        d = descriptors(xy, region, multimer_nm=multimer_nm)
        rows.append({"multimer_share": d["multimer_share"], "nnd_mean_nm": d["nnd_mean_nm"],
                     "clark_evans": d["clark_evans"]})
    return pd.DataFrame(rows)


def _potential_curve(potential: str | None, site_kinds: str | None) -> tuple[str | None, str | None]:
    """Pick the site-kinds curve of the potential table (the requested one, else the one with most points)."""
    if not potential or not Path(potential).is_file():
        return None, None
    table = pd.read_csv(potential)
    if table.empty or "site_kinds" not in table:
        return None, None
    if site_kinds:
        return potential, site_kinds
    counts = table.groupby("site_kinds").size()
    counts = counts[counts >= 2]
    if counts.empty:
        return None, None
    return potential, str(counts.idxmax())


def sampling(stats: dict, settings: dict, out: Path, *, potential: str | None = None, progress: bool = True) -> dict:
    """Fit the DFT-biased sampler to the largest observed pattern, then run random, repulsive and DFT-biased
    samplers (a) over a density sweep in a ``field_nm`` square and (b) at each image's density in its own window
    (the same :class:`Observation` window as the statistics step: the support mask). Writes ``sampling/sweep.csv``, ``sampling/per_image.csv``, ``sampling/dft_fit.json``."""
    from tqdm import tqdm

    from sacmap.analysis.spatial.descriptors import pooled_nnd
    from sacmap.analysis.spatial.observation import Observation
    from sacmap.analysis.spatial.samplers.registry import make_sampler
    from sacmap.analysis.spatial.window import Region

    cfg, multimer_nm = settings["sampling"], settings["statistics"]["multimer_nm"]
    sdir = out / "sampling"
    sdir.mkdir(parents=True, exist_ok=True)
    pot_path, site_kinds = _potential_curve(potential, cfg["site_kinds"])
    images = stats["images"]
    rec = StepRecord(out, "sampling")
    key = fingerprint(cfg, multimer_nm, Path(pot_path) if pot_path else None, site_kinds,
                      [(Path(im["coords_csv"]), im.get("window")) for im in images])
    if rec.is_current(key):
        return rec.result()

    # --- fit on the richest image -----------------------------------------------------------------------
    # real images only: the simulated ones are a detection control whose pattern the spec chose
    usable = [im for im in images if im["n_atoms"] >= 3 and not im.get("simulated")]
    observed = {im["image"]: Observation.from_detection(im["detection_csv"]) for im in usable}
    sampler = make_sampler("dft", potential=pot_path, site_kinds=site_kinds, n_boot=cfg["n_boot"], seed=cfg["seed"])
    samplers = {"random": make_sampler("random"), "repulsive": make_sampler("repulsive", c_nm=cfg["repulsive_c_nm"]),
                "dft": sampler}
    fit = None
    if cfg["fit"] and usable:
        best = max(usable, key=lambda im: im["n_atoms"])
        sampler.fit(observed[best["image"]], progress=progress)
        fit = {k: v for k, v in sampler.fit_result_.items() if k != "grid"}
        fit.update({"image": best["image"], "potential": pot_path, "site_kinds": site_kinds})
    write_json(sdir / "dft_fit.json", fit or {"fitted": False})

    # --- density sweep ----------------------------------------------------------------------------------
    field = Region.rectangle(cfg["field_nm"])
    densities = _density_grid([im["density_nm2"] for im in images], cfg["densities_nm2"])
    rows = []
    jobs = [(d, s) for d in densities for s in SAMPLERS]
    for i, (dens, name) in enumerate(tqdm(jobs, desc="samplers (density sweep)", disable=not progress)):
        # the paper's 10 × 10 nm field, enlarged at low density so each run has at least MIN_POINTS points
        box = field if dens * field.area_nm2 >= MIN_POINTS else Region.rectangle(float(np.sqrt(MIN_POINTS / dens)))
        n = max(int(round(dens * box.area_nm2)), 2)
        xy = samplers[name].sample(n, box, cfg["runs"], cfg["seed"] + i)
        st = _run_stats(xy, box, multimer_nm)
        rows.append(_summarise(st, sampler=name, density_nm2=n / box.area_nm2, n_points=n, runs=cfg["runs"],
                               field_nm=round(box.width_nm, 3)))
    sweep = pd.DataFrame(rows)
    write_csv(sdir / "sweep.csv", sweep)

    # --- at each image's density, in its own support region ---------------------------------------------
    rows, nnd_rows = [], []
    for j, im in enumerate(tqdm(usable, desc="samplers (per image)", disable=not progress)):
        obs = observed[im["image"]]
        for k, name in enumerate(SAMPLERS):
            xy = samplers[name].sample(obs.n_atoms, obs.window, cfg["runs"], cfg["seed"] + 1000 + 10 * j + k)
            st = _run_stats(xy, obs.window, multimer_nm)
            rows.append(_summarise(st, image=im["image"], sampler=name, density_nm2=im["density_nm2"],
                                   n_points=obs.n_atoms, runs=cfg["runs"]))
            nnd = pooled_nnd(xy)
            nnd_rows.append(pd.DataFrame({"image": im["image"], "sampler": name, "nnd_nm": nnd}))
    per_image = pd.DataFrame(rows)
    write_csv(sdir / "per_image.csv", per_image)
    nnd_path = sdir / "sampler_nnd.csv"
    write_csv(nnd_path, pd.concat(nnd_rows) if nnd_rows else pd.DataFrame(columns=["image", "sampler", "nnd_nm"]))
    result = {"sweep": str(sdir / "sweep.csv"), "per_image": str(sdir / "per_image.csv"),
              "sampler_nnd": str(nnd_path), "fit": fit, "fit_json": str(sdir / "dft_fit.json"),
              "densities_nm2": densities}
    rec.mark_done(key, [sdir / "sweep.csv", sdir / "per_image.csv", nnd_path, sdir / "dft_fit.json"], result)
    return result


def _summarise(st: pd.DataFrame, **fields) -> dict:
    row = dict(fields)
    for col in ("multimer_share", "nnd_mean_nm", "clark_evans"):
        v = st[col].to_numpy(float)
        row[f"{col}_mean"] = float(np.mean(v))
        row[f"{col}_p10"] = float(np.percentile(v, 10))
        row[f"{col}_p90"] = float(np.percentile(v, 90))
    return row
