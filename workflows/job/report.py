"""Assemble ``report.html`` from the outputs of the main job's steps. Every table shown is read back from the
CSV it was written to, so the numbers in the HTML are the numbers in the files (rounded as each column says:
relative energies to 3 decimals of eV, totals to 4, distances to 2 (Å) or 3 (nm), shares in %).

Layout: a run header (sacmap version, date, spec, calculator, detector weights, workers), the Findings (the
paper's findings with this run's numbers and tests), a summary, then one section per step; a step that did not run
says why instead of disappearing.
"""

from __future__ import annotations

import datetime as _dt
import json
from pathlib import Path

import numpy as np
import pandas as pd

from sacmap.core.atomic import write_csv
from sacmap.workflows.job import figures
from sacmap.workflows.job.findings import build_findings
from sacmap.workflows.job.html import (
    Column,
    Figure,
    Section,
    Table,
    count,
    fixed,
    percent,
    write_report,
    yes_no,
)

E_REL = fixed(3)  # relative energies, eV (1 meV)
E_TOT = fixed(4)  # total energies, eV
D_A = fixed(2)  # Å
D_NM = fixed(3)  # nm
DENS = fixed(3)  # atoms/nm²
P = fixed(3)
INT = fixed(0)

CALCULATOR_LABELS = {
    "chgnet-d3": "CHGNet {model} + D3 (zero damping, PBE)", "chgnet": "CHGNet {model}",
    "sevennet-d3": "SevenNet 7net-0 + D3", "tblite": "GFN2-xTB (tblite)", "gpaw": "GPAW LCAO PBE + D3",
    "emt": "EMT (toy potential: machinery tests only)", "vasp": "VASP ({preset})",
}


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


def _fig(path, caption, wide: bool = False) -> list[Figure]:
    return [Figure(Path(path), caption, wide)] if path and Path(path).is_file() else []


def calculator_label(state: dict) -> str | None:
    """Readable name of the campaign's calculator and relaxation settings, e.g. ``CHGNet 0.3.0 + D3 (zero
    damping, PBE); PreconLBFGS to fmax 0.05 eV/Å``; None when no calculation ran."""
    variants = (state.get("campaign") or {}).get("variants") or []
    if not variants:
        return None
    out = []
    for v in variants:
        s = v.get("settings") or {}
        name = CALCULATOR_LABELS.get(v.get("calculator"), v.get("calculator") or "?")
        name = name.format(model=s.get("model", ""), preset=s.get("preset", s.get("name", "preset")))
        if "fmax_eV_A" in s:
            name += f"; {s.get('optimizer', '?')} to fmax {s['fmax_eV_A']:g} eV/Å (cell fixed)"
        if s.get("hubbard"):
            name += f"; U = {s['hubbard'].get('u_eV')} eV"
        out.append(name)
    return " | ".join(dict.fromkeys(out))


def _thresholds(det: dict) -> str:
    """The detection threshold(s) used, from the records (the spec's, or the weights' own when it gave none)."""
    used = sorted({str((im.get("meta") or {}).get("threshold")) for im in det.get("images", [])
                   if (im.get("meta") or {}).get("threshold") is not None})
    given = det.get("settings", {}).get("threshold")
    return ", ".join(used) if used else ("the weights' own" if given is None else str(given))


def _run_header(state: dict, settings: dict) -> list[tuple[str, str]]:
    import sacmap

    det = state.get("detection") or {}
    digests = sorted({str((im.get("meta") or {}).get("weights")) for im in det.get("images", [])
                      if (im.get("meta") or {}).get("weights")})
    weights = det.get("settings", {}).get("weights") or "bundled"
    camp = state.get("campaign") or {}
    rows = [("sacmap", sacmap.__version__),
            ("date (UTC)", _dt.datetime.now(_dt.timezone.utc).strftime("%Y-%m-%d %H:%M")),
            ("spec", f"{state.get('name')} — {state.get('spec_path')}"),
            ("calculator", calculator_label(state) or "none (no calculations in this run)")]
    if camp:
        rows.append(("relaxations", f"{camp.get('workers', 1)} parallel worker process(es)"))
    if det:
        rows.append(("detector", f"{weights} weights, digest {', '.join(digests) or '?'}; threshold "
                                 f"{_thresholds(det)}"))
    if state.get("total_s") is not None:
        rows.append(("run time", f"{state['total_s']:.0f} s (this invocation; finished steps are reused)"))
    return rows


def _structures_section(state: dict) -> Section:
    st = state.get("structures")
    if not st:
        return Section("Structures", skipped="the spec has no structures block")
    sec = Section("Structures", [f"{st['n_configurations']} configurations built (extxyz + POSCAR each)."])
    if st.get("per_set"):
        per = pd.DataFrame([{"set": k, "configurations": v} for k, v in st["per_set"].items()])
        sec.tables.append(Table(*_written(per, Path(st["index"]).parent / "per_set.csv"), "Configurations per set"))
    idx = _csv(st["index"])
    if not idx.empty:
        cols = [Column("id", "configuration"), Column("kind", "kind"), Column("site_kinds", "sites"),
                Column("separation_A", "separation (Å)", D_A), Column("shares_NN_bond", "share an N–N bond", yes_no),
                Column("n_C_between", "C atoms between", count), Column("metals", "metals"),
                Column("n_atoms", "atoms", INT), Column("formula", "formula")]
        sec.tables.append(Table(idx, Path(st["index"]), "Configurations", max_rows=80, columns=cols))
    return sec


def _energetics_section(state: dict, out: Path, skipped: str | None) -> Section:
    en = state.get("energetics")
    if skipped or not en:
        return Section("Energetics", skipped=skipped or "no calculations in this run")
    p = en["paths"]
    c = en.get("counts", {})
    calc = calculator_label(state) or "?"
    sec = Section("Energetics", [
        f"Calculations read {c.get('read', 0)}, recognised {c.get('recognised', 0)}, flagged {c.get('flagged', 0)}, "
        f"used {c.get('used', 0)} ({_calculator_note(state)}). Energies from {calc}: an embedded machine-learned "
        "calculator gives trends, not the paper's DFT magnitudes."])
    fdir = out / "figures"
    ssp, dim, e_int = _csv(p.get("site_site_potential")), _csv(p.get("dimers")), _csv(p.get("e_int"))
    if not dim.empty:
        sec.figures.append(Figure(figures.plot_dimers(dim, fdir / "fig4a_dimer_formation.png"),
                                  "Fig. 4a analogue: dimer formation energies per metal in the 4×N6 site, one bar per "
                                  "route (legend); the value is written on each bar; > 0: the dimer is less "
                                  "favourable than its reference."))
    if not ssp.empty:
        sec.figures.append(Figure(figures.plot_site_site(ssp, fdir / "fig4b_site_site_potential.png"),
                                  "Fig. 4b analogue: energy of the bare sheet with two coordination sites against "
                                  "their separation, relative to the furthest pair (dashed line). One marker per "
                                  "relaxed pair; filled red: the sites share an N–N bond; open blue: they do not."))
        if "n_C_between" in ssp:
            sec.figures.append(Figure(figures.plot_n_carbon(ssp, fdir / "fig4c_n_carbon.png"),
                                      "Fig. 4c analogue (left panel): the same energies against the number of C "
                                      "atoms between the two sites' N atoms; open circles: pairs, red bar: median."))
    if not e_int.empty:
        sec.figures.append(Figure(figures.plot_e_int(e_int, fdir / "e_int.png"),
                                  "Interaction energy E_int (eq. 1) of two metal atoms on the closest site pairs; "
                                  "one marker per pair arrangement (filled: sites share an N–N bond)."))
    bader = _csv(p.get("bader"))
    if bader.empty:
        sec.text.append("Bader descriptor ⟨B⟩ (Fig. 4c, right panel): not computed — the calculator gives no atomic "
                        "charges (VASP + Bader does).")
    if not ssp.empty:
        cols = [Column("site_kinds", "sites"), Column("separation_A", "separation (Å)", D_A),
                Column("energy_eV", "E − E(furthest) (eV)", E_REL), Column("shares_NN_bond", "share an N–N bond", yes_no),
                Column("n_C_between", "C atoms between", count), Column("total_energy_eV", "total energy (eV)", E_TOT)]
        sec.tables.append(Table(ssp, Path(p["site_site_potential"]), "Site–site potential", max_rows=80, columns=cols))
    if not dim.empty:
        cols = [Column("metal", "metal"), Column("site_kind", "site"),
                Column("E_dimer_from_isolated_eV", "from 2 isolated atoms (eV)", E_REL),
                Column("E_dimer_from_gas_eV", "from 2 gas atoms (eV)", E_REL),
                Column("E_dimer_from_gas_dimer_eV", "from the gas dimer (eV)", E_REL),
                Column("E_ads_single_eV", "single-atom adsorption (eV)", E_REL),
                Column("E_dimer_eV", "E(dimer in site) (eV)", E_TOT), Column("E_single_eV", "E(atom in site) (eV)", E_TOT),
                Column("E_site_eV", "E(empty site) (eV)", E_TOT)]
        sec.tables.append(Table(dim, Path(p["dimers"]), "Dimer formation energies", columns=cols))
    if not e_int.empty:
        cols = [Column("equation", "eq.", INT), Column("occupants", "occupants"),
                Column("separation_A", "separation (Å)", D_A), Column("shares_NN_bond", "share an N–N bond", yes_no),
                Column("E_int_eV", "E_int (eV)", E_REL), Column("E_both_eV", "E(both) (eV)", E_TOT),
                Column("E_first_only_eV", "E(first only) (eV)", E_TOT),
                Column("E_second_only_eV", "E(second only) (eV)", E_TOT), Column("E_bare_eV", "E(bare) (eV)", E_TOT)]
        sec.tables.append(Table(e_int, Path(p["e_int"]), "Interaction energies E_int", max_rows=80, columns=cols))
    if not bader.empty:
        cols = [Column("separation_A", "separation (Å)", D_A), Column("n_C_between", "C atoms between", count),
                Column("B_mean_e", "⟨B⟩ (e)", P), Column("B_rel_e", "⟨B⟩ − ⟨B⟩(furthest) (e)", P)]
        sec.tables.append(Table(bader, Path(p["bader"]), "Bader descriptor ⟨B⟩", columns=cols))
    missing = _csv(p.get("e_int_missing"))
    if not missing.empty:
        cols = [Column("occupants", "occupants"), Column("separation_A", "separation (Å)", D_A),
                Column("needed", "missing partner"), Column("reason", "why")]
        sec.tables.append(Table(missing, Path(p["e_int_missing"]), "E_int not computable", columns=cols))
    if en.get("warnings"):
        sec.text.append(f"{len(en['warnings'])} warning(s), e.g.: {en['warnings'][0]}")
    return sec


def _calculator_note(state: dict) -> str:
    st = (state.get("campaign") or {}).get("status") or {}
    counts = st.get("counts") or {}
    return f"{counts.get('COMPLETED', 0)} Fireworks completed, {counts.get('FIZZLED', 0)} failed"


def _overlays(state: dict, settings: dict, out: Path, simulated: bool) -> list[Figure]:
    det = state.get("detection") or {}
    mm = settings["statistics"]["multimer_nm"]
    figs = []
    for im in det.get("images", []):
        if bool(im.get("simulated")) != simulated:
            continue
        png = out / "figures" / f"overlay_{im['image']}.jpg"
        try:
            figures.overlay(Path(im["source"]), Path(im["csv"]), png, multimer_nm=mm,
                            truth_csv=Path(im["truth_csv"]) if im.get("truth_csv") else None,
                            support_png=Path(im["support"]) if im.get("support") else None,
                            max_side_px=520 if simulated else 620)
        except Exception as exc:  # an overlay is presentation only; say so instead of failing the report
            figs.append(None)
            im["overlay_error"] = str(exc)
            continue
        what = ("simulated image (synthetic, known positions: crosses)" if simulated else "real image")
        figs.append(Figure(png, f"{figures.short_image_name(im['image'])}: {what}; circles: {im['n_atoms']} detected "
                                f"atoms; ringed and joined: atoms within {mm:g} nm (multimers); dashed: support edge "
                                f"(statistics window); {im['pixel_size_nm']:.4g} nm/px, scale bar bottom left."))
    return [f for f in figs if f is not None]


def _detection_section(state: dict, settings: dict, out: Path) -> Section:
    det = state.get("detection")
    if not det:
        return Section("Detected atoms", skipped="the spec names no images")
    real = [im for im in det["images"] if not im.get("simulated")]
    sec = Section("Detected atoms", [
        f"{len(real)} real image(s); threshold {_thresholds(det)}; weights "
        f"{det['settings'].get('weights') or 'bundled'}."])
    sec.figures += _overlays(state, settings, out, simulated=False)
    for bad in det.get("failed", []):
        sec.text.append(f"Not detected: {bad.get('image')} — {bad.get('reason')}")
    errs = [f"{im['image']}: {im['overlay_error']}" for im in det["images"] if im.get("overlay_error")]
    if errs:
        sec.text.append("Overlay not drawn for " + "; ".join(errs))
    return sec


def _simulated_section(state: dict, settings: dict, out: Path) -> Section | None:
    sim_cfg = settings.get("simulated_images")
    stats = state.get("statistics") or {}
    if not sim_cfg:
        return None
    sec = Section("Simulated images: detected against true (control)", [
        f"Synthetic HAADF-STEM images (sacmap.detection.simulate, seed {sim_cfg['seed']}, {sim_cfg['size_px']} px at "
        f"{sim_cfg['pixel_size_nm']:.4g} nm/px, {sim_cfg['element']}) at {', '.join(f'{d:g}' for d in sim_cfg['densities_nm2'])} "
        f"atoms/nm²: atoms at random with no two closer than {sim_cfg['min_dist_nm']:g} nm, "
        f"{100 * sim_cfg['dimer_fraction']:g} % of them in dimers. They are detected like the real images and "
        "described from the detections and from the true positions in the same window. They test the pipeline, not "
        "the chemistry: their arrangement is this spec's choice."])
    table = _csv(stats.get("simulated_vs_true_csv"))
    if not table.empty:
        sec.figures.append(Figure(figures.plot_simulated(table, out / "figures" / "simulated_detected_vs_true.png"),
                                  "Simulated images, against their true density: (a) detected density (squares; "
                                  "dotted: detected = true; labels: recall); (b) ⟨NND⟩ of the true positions "
                                  "(crosses) and of the detections (squares); dotted: random points at the true "
                                  "density, 0.5/√ρ; (c) share of atoms in multimers.", wide=True))
        cols = [Column("image", "simulated image", figures.short_image_name), Column("density_true_nm2", "true density (nm⁻²)", DENS),
                Column("density_detected_nm2", "detected density (nm⁻²)", DENS), Column("recall", "recall", P),
                Column("precision", "precision", P), Column("nnd_mean_true_nm", "⟨NND⟩ true (nm)", D_NM),
                Column("nnd_mean_detected_nm", "⟨NND⟩ detected (nm)", D_NM),
                Column("nnd_mean_random_nm", "⟨NND⟩ random (nm)", D_NM),
                Column("multimer_share_true", "multimers true (%)", percent),
                Column("multimer_share_detected", "multimers detected (%)", percent)]
        sec.tables.append(Table(table, Path(stats["simulated_vs_true_csv"]), "Detected against true descriptors",
                                columns=cols))
    sec.figures += _overlays(state, settings, out, simulated=True)
    return sec


def _organisation_section(state: dict, settings: dict, out: Path) -> tuple[Section, list[str]]:
    stats = state.get("statistics")
    if not stats:
        return Section("Organisation of metal centres", skipped="no images, so no descriptors"), []
    desc = _csv(stats["descriptors_csv"])
    samp = state.get("sampling") or {}
    sweep = _csv(samp.get("sweep"))
    per_image = _csv(samp.get("per_image"))
    sim = _csv(stats.get("simulated_vs_true_csv"))
    mm = settings["statistics"]["multimer_nm"]
    fdir = out / "figures"
    sec = Section("Organisation of metal centres", [
        f"Multimer: an atom with a neighbour within {mm} nm. Densities over the support area only. Samplers: "
        f"{settings['sampling']['runs']} runs per density in a {settings['sampling']['field_nm']:g}-nm square "
        "(larger at low density, ≥ 100 points per run); bands: 10–90 % of the runs."])
    if not sweep.empty:
        sec.figures.append(Figure(figures.plot_vs_density(
            sweep, desc, "multimer_share", "share of atoms in multimers (%)", fdir / "fig3a_multimer_share.png",
            theory=lambda d: 1 - np.exp(-np.pi * d * mm**2), simulated=sim),
            "Fig. 3a analogue: share of atoms in multimers against density. Lines and bands: samplers (legend); "
            "dotted: Poisson theory 1 − exp(−πρd²); filled circles: real images; crosses / open squares: simulated "
            "images, true positions / detections."))
        sec.figures.append(Figure(figures.plot_vs_density(
            sweep, desc, "nnd_mean_nm", "mean NND (nm)", fdir / "fig3b_nnd_mean.png",
            theory=lambda d: 0.5 / np.sqrt(d), simulated=sim),
            "Fig. 3b analogue: mean nearest-neighbour distance against density; markers as in Fig. 3a; dotted: "
            "Poisson theory 0.5/√ρ."))
    real = desc[~desc["simulated"].astype(str).str.lower().isin(["true", "1"])] if "simulated" in desc else desc
    if not real.empty:
        sec.figures.append(Figure(figures.plot_nuclearity(real, fdir / "fig3c_nuclearity.png"),
                                  "Fig. 3c analogue: share of the atoms of each real image in centres of each size "
                                  "(1 = isolated, 2 = dimer, ...)."))
    nnd_obs = {im["image"]: _csv(im["coords_csv"])["nnd_nm"].to_numpy(float)
               for im in stats["images"] if im["n_atoms"] >= 2 and not im.get("simulated")}
    if nnd_obs:
        sec.figures.append(Figure(figures.plot_nnd_distributions(nnd_obs, _csv(samp.get("sampler_nnd")),
                                                                 fdir / "fig3d_nnd_distributions.png", mm),
                                  "Fig. 3d analogue: NND distribution of each real image (bars) against the three "
                                  "samplers at the same density in the same window (lines, pooled over runs); "
                                  "dashed: the multimer distance.", wide=True))
    pairs = _csv(stats.get("species_pairs_csv"))
    if not pairs.empty:
        sec.figures.append(Figure(figures.plot_species_nnd(pairs, fdir / "fig5c_species_nnd.png"),
                                  "Fig. 5c analogue: mean NND from each species to the nearest atom of each species."))
        sec.tables.append(Table(pairs, Path(stats["species_pairs_csv"]), "Per-species NND (nm)"))
    if not desc.empty:
        cols = [Column("image", "image", figures.short_image_name), Column("simulated", "simulated", yes_no), Column("n_atoms", "atoms", INT),
                Column("support_area_nm2", "support (nm²)", fixed(1)), Column("density_nm2", "density (nm⁻²)", DENS),
                Column("nnd_mean_nm", "⟨NND⟩ (nm)", D_NM),
                Column("nnd_mean_random_same_window_nm", "⟨NND⟩ random (nm)", D_NM),
                Column("multimer_share", "multimers (%)", percent),
                Column("multimer_share_random_same_window", "multimers random (%)", percent),
                Column("clark_evans", "Clark–Evans R", P), Column("z", "z", fixed(2))]
        sec.tables.append(Table(desc, Path(stats["descriptors_csv"]), "Descriptors per image", columns=cols))
    if not per_image.empty:
        cols = [Column("image", "image", figures.short_image_name), Column("sampler", "sampler"), Column("density_nm2", "density (nm⁻²)", DENS),
                Column("n_points", "points", INT), Column("nnd_mean_nm_mean", "⟨NND⟩ (nm)", D_NM),
                Column("nnd_mean_nm_p10", "p10", D_NM), Column("nnd_mean_nm_p90", "p90", D_NM),
                Column("multimer_share_mean", "multimers (%)", percent)]
        sec.tables.append(Table(per_image, Path(samp["per_image"]), "Samplers at each real image's density",
                                columns=cols))
    if not sweep.empty:
        cols = [Column("sampler", "sampler"), Column("density_nm2", "density (nm⁻²)", DENS),
                Column("n_points", "points", INT), Column("field_nm", "field (nm)", fixed(1)),
                Column("nnd_mean_nm_mean", "⟨NND⟩ (nm)", D_NM), Column("nnd_mean_nm_p10", "p10", D_NM),
                Column("nnd_mean_nm_p90", "p90", D_NM), Column("multimer_share_mean", "multimers (%)", percent),
                Column("multimer_share_p10", "p10 (%)", percent), Column("multimer_share_p90", "p90 (%)", percent)]
        sec.tables.append(Table(sweep, Path(samp["sweep"]), "Density sweep of the samplers", columns=cols))
    fit = samp.get("fit")
    if not fit:
        why = ("sampling.fit is false" if not settings["sampling"].get("fit") else
               "no real image with at least 3 atoms to fit to")
        sec.text.append(f"DFT-biased sampler fit: skipped ({why}); the DFT-biased sampler ran with its defaults.")
    if fit:
        cols = [Column("parameter", "parameter"), Column("unit", "unit"), Column("value", "value"),
                Column("interval_95", "95 % bootstrap interval"), Column("sd", "sd", fixed(3))]
        sec.tables.append(Table(*_written(_fit_table(fit), out / "sampling" / "dft_fit.csv"),
                                "DFT-biased sampler: fitted parameters (95 % bootstrap intervals)", columns=cols))
    return sec, _summary_lines(desc, fit)


ENVELOPE_TITLE = "Global envelope tests against complete spatial randomness (real images)"


def _envelope_section(state: dict, out: Path) -> Section:
    """Figures of every global envelope test (from ``statistics/envelope_curves.csv``): per real image G and L
    against CSR side by side, and for the image with the detector-aware test its naive and detector-aware tests
    side by side; then the table of p-values (``statistics/envelope_tests.csv``)."""
    from sacmap.analysis.spatial.plots import FUNCTION_NAMES, envelope_caption
    from sacmap.workflows.job.steps_images import (
        AWARE,
        AWARE_NAIVE,
        ENVELOPE_NSIM,
        NAIVE,
        read_envelope_curves,
    )

    env = state.get("envelopes") or {}
    table = _csv(env.get("csv"))
    if table.empty:
        why = "no real image" if not state.get("statistics") else "no real image with at least 3 atoms in its window"
        return Section(ENVELOPE_TITLE, skipped=why)
    sec = Section(ENVELOPE_TITLE, [
        f"The atoms of each real image in its window against complete spatial randomness (CSR): {ENVELOPE_NSIM} "
        "patterns of as many uniform random points in the same support window, the same summary function (same "
        "edge correction, same r values) on each. Grey band: the 95 % global rank envelope (extreme rank length, "
        "Myllymäki et al. 2017) — the observed curve (red) leaves it somewhere exactly when the rank p ≤ 0.05, so "
        "unlike pointwise bands it is read as a test; dashed: the mean of the simulations; dotted: the Poisson "
        "theory; L is drawn as L(r) − r. MAD and DCLF: deviation tests against the same simulations."])
    tests = read_envelope_curves(env.get("curves_csv"))
    if not tests:
        sec.text.append("Envelope curves not recorded (statistics/envelope_curves.csv is missing): only the "
                        "p-values are shown.")
    fdir = out / "figures"
    by_image: dict[str, dict[str, list]] = {}
    for meta, t in tests:
        by_image.setdefault(meta["image"], {}).setdefault(meta["test"], []).append((meta, t))
    for image, kinds in by_image.items():
        name = figures.short_image_name(image)
        naive = [t for _, t in kinds.get(NAIVE, [])]
        if naive:
            png = figures.plot_envelope_panels(naive, fdir / f"envelopes_{image}.png",
                                               titles=[f"{name}: {FUNCTION_NAMES.get(t.function, t.function)}"
                                                       for t in naive])
            sec.figures.append(Figure(png, f"{name}, naive null (random points as drawn): " + " ".join(
                f"({chr(97 + k)}) {envelope_caption(t)}" for k, t in enumerate(naive)), wide=True))
        pair = kinds.get(AWARE_NAIVE, []) + kinds.get(AWARE, [])
        if len(pair) == 2:
            (_, t_naive), (m_aware, t_aware) = pair
            note = m_aware["note"] if not m_aware["valid"] else None
            png = figures.plot_envelope_panels(
                [t_naive, t_aware], fdir / f"envelopes_detector_aware_{image}.png",
                titles=[f"{name}: naive null (as drawn)", f"{name}: detector-aware null (rendered + detected)"],
                notes=[None, "not valid (see caption)" if note else None])
            aware_text = (f"not valid: the simulated images do not reproduce the observation "
                          f"({note.removeprefix('not valid: ')}); no p-value is used from it" if note else
                          envelope_caption(t_aware, "simulated images of random patterns, rendered and detected like "
                                                    "the image, compared in the same window"))
            sec.figures.append(Figure(png, (
                f"{name}: the naive and the detector-aware test side by side, in the same window (the support less "
                "a band along its edge) with the same r values. Detector-aware: "
                "each random pattern is rendered by the HAADF-STEM simulator like this image and detected by the same "
                f"detector, so the null has the detector's losses. (a) Naive: {envelope_caption(t_naive)} "
                f"(b) Detector-aware: {aware_text}"), wide=True))
    cols = [Column("image", "image", figures.short_image_name), Column("function", "function"),
            Column("null_model", "null model"), Column("nsim", "simulations", INT), Column("n_points", "atoms", INT),
            Column("p_rank", "p (rank)", P), Column("p_mad", "p (MAD)", P),
            Column("p_dclf", "p (DCLF)", P), Column("leaves_envelope", "leaves the envelope")]
    sec.tables.append(Table(table, Path(env["csv"]), "Global envelope tests: p-values", columns=cols))
    return sec


def _interval(lo, hi, digits: int = 3) -> str:
    def f(v, inf):
        return inf if v is None or (isinstance(v, float) and not np.isfinite(v)) else f"{v:.{digits}g}"
    return f"[{f(lo, '0')}, {f(hi, '∞')})" if hi is None else f"[{f(lo, '0')}, {f(hi, '∞')}]"


def _fit_table(fit: dict) -> pd.DataFrame:
    """The fitted parameters of the DFT-biased sampler with their 95 % bootstrap intervals, one row each."""
    rows = []
    for key, label, unit in (("sigma_factor", "σ/σ₀ (spread of the attractive term)", ""),
                             ("sigma_nm", "σ", "nm"), ("beta_per_eV", "β = 1/kT", "1/eV"), ("kT_eV", "kT", "eV")):
        if key not in fit:
            continue
        ci = fit.get(f"{key}_ci95") or [None, None]
        v = fit.get(key)
        rows.append({"parameter": label, "unit": unit, "value": "none" if v is None else f"{v:.3g}",
                     "interval_95": "" if v is None and ci[0] is None else _interval(*ci),
                     "sd": fit.get(f"{key}_sd")})
    for key, label in (("wasserstein_nm", "Wasserstein distance to the observed NND (nm)"),
                       ("wasserstein_random_nm", "same for random points (nm)"), ("ks_pvalue", "KS p (fitted)"),
                       ("ks_pvalue_random", "KS p (random)"),
                       ("share_of_bootstraps_without_energy_term", "bootstraps preferring no energy term")):
        if fit.get(key) is not None:
            rows.append({"parameter": label, "unit": "", "value": f"{fit[key]:.3g}", "interval_95": "", "sd": None})
    return pd.DataFrame(rows)


def _summary_lines(desc: pd.DataFrame, fit: dict | None) -> list[str]:
    lines = []
    real = desc[~desc["simulated"].astype(str).str.lower().isin(["true", "1"])] if "simulated" in desc else desc
    for _, row in real.iterrows():
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
        ci = fit.get("kT_eV_ci95") or [None, None]
        kt_txt = (f"kT = {kt:.3g} eV {_interval(*ci)}" if isinstance(kt, (int, float)) and kt else
                  f"no energy term preferred ({100 * (fit.get('share_of_bootstraps_without_energy_term') or 0):.0f} % "
                  "of the bootstraps)")
        sci = fit.get("sigma_factor_ci95") or [None, None]
        lines.append(
            f"DFT-biased sampler fitted to {fit.get('image')}: σ/σ₀ = {fit.get('sigma_factor', float('nan')):.3g} "
            f"{_interval(*sci)} (95 % bootstrap), {kt_txt}; Wasserstein distance "
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
        lines.append(f"Site–site potential minimum {ssp.loc[i, 'energy_eV']:.3f} eV at "
                     f"{ssp.loc[i, 'separation_A']:.2f} Å ({ssp.loc[i, 'site_kinds']}), relative to the furthest pair.")
    dim = _csv(en["paths"].get("dimers"))
    for _, r in dim.iterrows():
        if "E_dimer_from_isolated_eV" in r:
            lines.append(f"Dimer {r.get('metal', '')}₂ in {r.get('site_kind', '')}: {r['E_dimer_from_isolated_eV']:.3f} eV "
                         "from two isolated adsorbed atoms.")
    return lines


def _run_section(state: dict, settings: dict, out: Path) -> Section:
    timings = pd.DataFrame([{"step": k, "seconds": v} for k, v in state.get("timings_s", {}).items()])
    shown = {k: v for k, v in settings.items() if k != "images"}
    text = [f"Spec: {state['spec_path']}"]
    for block, values in shown.items():
        if isinstance(values, dict):
            text.append(f"{block}: " + ", ".join(
                f"{k} = {'default' if v is None else json.dumps(v, default=str)}" for k, v in values.items()))
    sec = Section("Run", text)
    if not timings.empty:
        sec.tables.append(Table(*_written(timings, out / "timings.csv"), "Step timings",
                                columns=[Column("step", "step"), Column("seconds", "seconds", fixed(1))]))
    return sec


def build_report(state: dict, settings: dict, out: Path, *, skipped: dict | None = None) -> Path:
    """Write ``out/report.html`` from ``state`` (the steps' results) and ``settings`` (the job blocks);
    ``skipped``: {section: why} for steps that were not run (e.g. ``{"energetics": "--skip-calculations"}``)."""
    skipped = skipped or {}
    out = Path(out)
    en_skip = skipped.get("energetics")
    if not en_skip and not state.get("energetics"):
        en_skip = "the spec has no structures block" if not state.get("structures") else "no calculations ran"
    sections = [_energetics_section(state, out, en_skip), _detection_section(state, settings, out)]
    sim = _simulated_section(state, settings, out)
    if sim:
        sections.append(sim)
    org, lines = _organisation_section(state, settings, out)
    sections += [org, _envelope_section(state, out), _structures_section(state), _run_section(state, settings, out)]
    en = state.get("energetics") or {}
    stats = state.get("statistics") or {}
    findings = build_findings(_csv((en.get("paths") or {}).get("site_site_potential")),
                              _csv((en.get("paths") or {}).get("dimers")), _csv(stats.get("descriptors_csv")),
                              _csv((state.get("envelopes") or {}).get("csv")), _csv(stats.get("simulated_vs_true_csv")),
                              calculator=calculator_label(state), energetics_skipped=en_skip)
    calc = calculator_label(state)
    note = ("Each finding of Mitchell et al. (Adv. Mater. 2024) with the number this run measured and the test behind "
            f"it. Energies{f' from {calc}' if calc else ''}: an embedded calculator gives trends, not compared with the "
            "paper's DFT numbers. The simulated images test the pipeline, not the chemistry.")
    return write_report(out / "report.html", f"sacmap report — {state.get('name')}",
                        "Metal-centre organisation: energetics, detected atoms and samplers",
                        lines + _energetics_summary(state), sections, header=_run_header(state, settings),
                        findings=findings, findings_note=note)
