"""Assemble ``report.html`` from the outputs of the main job's steps. Every table shown is read back from the
CSV it was written to, so the numbers in the HTML are the numbers in the files."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pandas as pd

from sacmap.core.atomic import write_csv
from sacmap.workflows.job import figures
from sacmap.workflows.job.html import Figure, Section, Table, write_report


def _csv(path) -> pd.DataFrame:
    p = Path(path) if path else None
    if p is None or not p.is_file() or p.stat().st_size == 0:
        return pd.DataFrame()
    try:
        return pd.read_csv(p, dtype={"image": str, "site_kinds": str, "id": str})
    except pd.errors.EmptyDataError:
        return pd.DataFrame()


def _written(frame: pd.DataFrame, path: Path) -> tuple[pd.DataFrame, Path]:
    """Write ``frame`` as CSV and read it back, so the report shows exactly what the file holds."""
    path = write_csv(path, frame)
    return _csv(path), path


def _fig(path, caption) -> list[Figure]:
    return [Figure(Path(path), caption)] if path and Path(path).is_file() else []


def _structures_section(state: dict) -> Section | None:
    st = state.get("structures")
    if not st:
        return None
    sec = Section("Structures", [f"{st['n_configurations']} configurations built (extxyz + POSCAR each)."])
    if st.get("per_set"):
        per = pd.DataFrame([{"set": k, "configurations": v} for k, v in st["per_set"].items()])
        sec.tables.append(Table(*_written(per, Path(st["index"]).parent / "per_set.csv"), "Configurations per set"))
    idx = _csv(st["index"])
    if not idx.empty:
        sec.tables.append(Table(idx, Path(st["index"]), "Configurations (index.csv)", max_rows=60))
    return sec


def _energetics_section(state: dict) -> Section | None:
    en = state.get("energetics")
    if not en:
        return None
    p = en["paths"]
    c = en.get("counts", {})
    sec = Section("Energetics", [
        f"Calculations read {c.get('read', 0)}, recognised {c.get('recognised', 0)}, flagged {c.get('flagged', 0)}, "
        f"used {c.get('used', 0)}. Energies from the campaign's calculator "
        f"({_calculator_note(state)}); the embedded calculator gives trends, not VASP magnitudes.",
    ])
    sec.figures += _fig(p.get("fig4a"), "Dimer formation energies (Fig. 4a analogue)")
    sec.figures += _fig(p.get("fig4b"), "Site–site potential of the bare sheet vs separation (Fig. 4b analogue)")
    sec.figures += _fig(p.get("fig4c"), "Potential per C atoms between sites and Bader descriptor (Fig. 4c analogue)")
    sec.figures += _fig(p.get("e_int_plot"), "Interaction energies E_int vs separation (eqs. 1–5)")
    for key, caption in [("e_int", "Interaction energies E_int (eV)"), ("dimers", "Dimer formation energies (eV)"),
                         ("site_site_potential", "Site–site potential (eV, relative to the furthest pair)"),
                         ("bader", "Bader descriptor ⟨B⟩ (e)"), ("e_int_missing", "E_int not computable: missing partners")]:
        df = _csv(p.get(key))
        if not df.empty:
            sec.tables.append(Table(df, Path(p[key]), caption, max_rows=80))
    if en.get("warnings"):
        sec.text.append(f"{len(en['warnings'])} warning(s), e.g.: {en['warnings'][0]}")
    return sec


def _calculator_note(state: dict) -> str:
    st = (state.get("campaign") or {}).get("status") or {}
    counts = st.get("counts") or {}
    done = counts.get("COMPLETED", 0)
    fizz = counts.get("FIZZLED", 0)
    return f"{done} Fireworks completed, {fizz} failed"


def _detection_section(state: dict) -> Section | None:
    det = state.get("detection")
    if not det:
        return None
    sec = Section("Detected atoms", [
        f"{len(det['images'])} image(s); threshold {det['settings'].get('threshold')}; "
        f"weights {det['settings'].get('weights') or 'bundled'}."])
    for im in det["images"]:
        sec.figures += _fig(im.get("overlay_png"),
                            f"{im['image']}: {im['n_atoms']} atoms, {im['pixel_size_nm']:.4g} nm/px")
    return sec


def _organisation_section(state: dict, settings: dict, out: Path) -> tuple[Section | None, list[str]]:
    stats = state.get("statistics")
    if not stats:
        return None, []
    desc = _csv(stats["descriptors_csv"])
    samp = state.get("sampling") or {}
    sweep = _csv(samp.get("sweep"))
    per_image = _csv(samp.get("per_image"))
    mm = settings["statistics"]["multimer_nm"]
    fdir = out / "figures"
    sec = Section("Organisation of metal centres", [
        f"Multimer: an atom with a neighbour within {mm} nm. Densities over the support area only. Samplers: "
        f"{settings['sampling']['runs']} runs per density; bands are the 10–90 % range over runs."])
    obs = desc.rename(columns={})
    if not sweep.empty:
        sec.figures.append(Figure(figures.plot_vs_density(
            sweep, obs, "multimer_share", "share of atoms in multimers", fdir / "fig3a_multimer_share.png",
            theory=lambda d: 1 - np.exp(-np.pi * d * mm**2)), "Multimer share vs density (Fig. 3a analogue)"))
        sec.figures.append(Figure(figures.plot_vs_density(
            sweep, obs, "nnd_mean_nm", "mean NND (nm)", fdir / "fig3b_nnd_mean.png",
            theory=lambda d: 0.5 / np.sqrt(d)), "Mean nearest-neighbour distance vs density (Fig. 3b analogue)"))
    if not desc.empty:
        sec.figures.append(Figure(figures.plot_nuclearity(desc, fdir / "fig3c_nuclearity.png"),
                                  "Nuclearity: share of atoms per cluster size (Fig. 3c analogue)"))
    nnd_obs = {im["image"]: _csv(im["coords_csv"])["nnd_nm"].to_numpy(float)
               for im in stats["images"] if im["n_atoms"] >= 2}
    if nnd_obs:
        sec.figures.append(Figure(figures.plot_nnd_distributions(nnd_obs, _csv(samp.get("sampler_nnd")),
                                                                 fdir / "fig3d_nnd_distributions.png", mm),
                                  "NND distributions: observed vs samplers at the same density (Fig. 3d analogue)"))
    pairs = _csv(stats.get("species_pairs_csv"))
    if not pairs.empty:
        sec.figures.append(Figure(figures.plot_species_nnd(pairs, fdir / "fig5c_species_nnd.png"),
                                  "Per-species NND (Fig. 5c analogue)"))
        sec.tables.append(Table(pairs, Path(stats["species_pairs_csv"]), "Per-species NND (nm)"))
    if not desc.empty:
        sec.tables.append(Table(desc, Path(stats["descriptors_csv"]), "Descriptors per image"))
    if not per_image.empty:
        sec.tables.append(Table(per_image, Path(samp["per_image"]), "Samplers at each image's density"))
    if not sweep.empty:
        sec.tables.append(Table(sweep, Path(samp["sweep"]), "Density sweep of the samplers"))
    fit = samp.get("fit")
    if fit:
        ft = pd.DataFrame([{k: v for k, v in fit.items() if not isinstance(v, (list, dict))}])
        sec.tables.append(Table(*_written(ft, out / "sampling" / "dft_fit.csv"),
                                "DFT-biased sampler: fitted parameters (bootstrap uncertainty)"))
    return sec, _summary_lines(desc, fit)


def _summary_lines(desc: pd.DataFrame, fit: dict | None) -> list[str]:
    lines = []
    for _, row in desc.iterrows():
        # the random reference of describe() (same window, same runs and seed as `sacmap stats`), so the report
        # and `sacmap stats` print the same number for the same detection
        rnd = row.get("nnd_mean_random_same_window_nm")
        rnd_nnd = f" vs {rnd:.3g} nm random (same window)" if rnd is not None and pd.notna(rnd) else ""
        lines.append(
            f"{row['image']}: {int(row['n_atoms'])} atoms; observed ⟨NND⟩ {row['nnd_mean_nm']:.3g} nm{rnd_nnd} at "
            f"{row['density_nm2']:.3g} atoms/nm²; multimer share {100 * row['multimer_share']:.3g} %; "
            f"Clark–Evans {row['clark_evans']:.3g}, z = {row['z']:.3g}.")
    if fit:
        kt = fit.get("kT_eV")
        kt_txt = f"kT = {kt:.3g} eV" if isinstance(kt, (int, float)) and kt else "no energy term preferred"
        lines.append(
            f"DFT-biased sampler fitted to {fit.get('image')}: σ/σ₀ = {fit.get('sigma_factor', float('nan')):.3g} "
            f"± {fit.get('sigma_factor_sd', float('nan')):.2g}, {kt_txt}; Wasserstein distance "
            f"{fit.get('wasserstein_nm', float('nan')):.3g} nm (random: {fit.get('wasserstein_random_nm', float('nan')):.3g} nm).")
    return lines


def _energetics_summary(state: dict) -> list[str]:
    en = state.get("energetics")
    if not en:
        return []
    lines = []
    ssp = _csv(en["paths"].get("site_site_potential"))
    if not ssp.empty and "energy_eV" in ssp:
        i = ssp["energy_eV"].idxmin()
        lines.append(f"Site–site potential minimum {ssp.loc[i, 'energy_eV']:.3g} eV at "
                     f"{ssp.loc[i, 'separation_A']:.3g} Å ({ssp.loc[i, 'site_kinds']}).")
    dim = _csv(en["paths"].get("dimers"))
    for col in [c for c in dim.columns if c.startswith("E_form")][:2]:
        for _, r in dim.iterrows():
            lines.append(f"Dimer {r.get('metal', '')} in {r.get('site_kind', '')}: {col} = {r[col]:.3g} eV.")
    return lines


def build_report(state: dict, settings: dict, out: Path) -> Path:
    sections, summary = [], []
    for sec in (_structures_section(state), _energetics_section(state), _detection_section(state)):
        if sec:
            sections.append(sec)
    org, lines = _organisation_section(state, settings, out)
    if org:
        sections.insert(min(len(sections), 3), org)
    summary += lines + _energetics_summary(state)
    timings = pd.DataFrame([{"step": k, "seconds": v} for k, v in state.get("timings_s", {}).items()])
    if not timings.empty:
        sections.append(Section("Run", [f"Spec: {state['spec_path']}",
                                        "Settings: " + json.dumps({k: v for k, v in settings.items() if k != 'images'},
                                                                  default=str)],
                                tables=[Table(*_written(timings, out / "timings.csv"), "Step timings (s)")]))
    return write_report(out / "report.html", f"sacmap report — {state.get('name')}",
                        "Metal-centre organisation: energetics, detected atoms and samplers", summary, sections)
