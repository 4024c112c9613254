"""Figures of the main job's report: the paper's Figure 3 analogues (observations with samplers), Figure 4
analogues drawn from the energetics CSVs (markers only where points are unrelated configurations), the detection
overlays (through the web app's overlay, so both carry the same scale bar) and the simulated-image control.
Densities in atoms/nm², distances in nm (images) and Å (structures), energies in eV. Each function writes a PNG
(and an SVG beside it, except the overlays) and returns the PNG path."""

from __future__ import annotations

from pathlib import Path

import matplotlib

matplotlib.use("Agg")
import matplotlib.pyplot as plt  # noqa: E402
import numpy as np  # noqa: E402
import pandas as pd  # noqa: E402

from sacmap.core.atomic import save_figure  # noqa: E402

COLOURS = {"random": "#7f7f7f", "repulsive": "#1f77b4", "dft": "#d62728", "observed": "#111111"}
LABELS = {"random": "random", "repulsive": "repulsive (C = 0.2)", "dft": "DFT-biased (fitted)"}
SIM_COLOUR = "#0072B2"
plt.rcParams.update({"font.size": 9, "axes.titlesize": 9, "legend.fontsize": 7.5})


def _save(fig, path: Path) -> Path:
    """The figure as PNG (130 dpi) at ``path`` and as SVG beside it, each written atomically; then closed."""
    path = Path(path)
    fig.tight_layout()
    save_figure(fig, path, close=False, dpi=130)
    save_figure(fig, path.with_suffix(".svg"))
    return path


def plot_vs_density(sweep: pd.DataFrame, observed: pd.DataFrame, column: str, ylabel: str, path: Path,
                    theory=None, simulated: pd.DataFrame | None = None) -> Path:
    """Descriptor ``column`` (``multimer_share`` or ``nnd_mean_nm``) against density: sampler means (lines: one
    sampler over the density sweep) with a 10–90 % band over runs, the real images as filled circles and, when
    ``simulated`` (the detected-vs-true table) is given, the simulated images as detected (open squares, at the
    detected density) and as simulated (crosses, at the true density). A share is drawn in %."""
    scale = 100.0 if column == "multimer_share" else 1.0
    fig, ax = plt.subplots(figsize=(5.4, 3.8))
    for name in ("random", "repulsive", "dft"):
        s = sweep[sweep["sampler"] == name].sort_values("density_nm2")
        if s.empty:
            continue
        ax.plot(s["density_nm2"], scale * s[f"{column}_mean"], "-", color=COLOURS[name], label=f"sampler: {LABELS[name]}")
        ax.fill_between(s["density_nm2"], scale * s[f"{column}_p10"], scale * s[f"{column}_p90"],
                        color=COLOURS[name], alpha=0.16, lw=0)
    if theory is not None and not sweep.empty:
        d = np.linspace(sweep["density_nm2"].min(), sweep["density_nm2"].max(), 100)
        ax.plot(d, scale * theory(d), ":", color="#444", lw=1, label="Poisson theory")
    if simulated is not None and not simulated.empty:
        short = {"multimer_share": "multimer_share", "nnd_mean_nm": "nnd_mean"}[column]
        suffix = "_nm" if column == "nnd_mean_nm" else ""
        ax.plot(simulated["density_true_nm2"], scale * simulated[f"{short}_true{suffix}"], "x", color=SIM_COLOUR,
                ms=6, mew=1.5, label="simulated image: true positions")
        ax.plot(simulated["density_detected_nm2"], scale * simulated[f"{short}_detected{suffix}"], "s",
                color=SIM_COLOUR, mfc="none", ms=6, mew=1.3, label="simulated image: detected")
    real = observed[~observed["simulated"].astype(bool)] if "simulated" in observed else observed
    if not real.empty:
        ax.plot(real["density_nm2"], scale * real[column], "o", color=COLOURS["observed"], ms=7, mfc="#ffd23f",
                label="real image (Pt$_1$/NC): detected")
    _log_density_axis(ax)
    ax.set_xlabel("surface density (atoms nm$^{-2}$, log scale)")
    ax.set_ylabel(ylabel)
    ax.grid(alpha=0.25, which="both")
    ax.legend(frameon=False, fontsize=7, loc="best")
    return _save(fig, path)


def _log_density_axis(ax) -> None:
    """Log-scaled density axis with plain tick labels at 0.1, 0.25, 0.5, 1, 2, 4, 8 (no minor labels)."""
    from matplotlib.ticker import FixedLocator, FuncFormatter, NullFormatter, NullLocator

    ax.set_xscale("log")
    lo, hi = ax.get_xlim()
    ticks = [t for t in (0.05, 0.1, 0.25, 0.5, 1, 2, 4, 8, 16) if lo <= t <= hi]
    ax.xaxis.set_major_locator(FixedLocator(ticks))
    ax.xaxis.set_major_formatter(FuncFormatter(lambda v, _: f"{v:g}"))
    ax.xaxis.set_minor_locator(NullLocator())
    ax.xaxis.set_minor_formatter(NullFormatter())


def plot_nuclearity(desc: pd.DataFrame, path: Path) -> Path:
    """Share of atoms per nuclearity (1 = isolated, 2 = dimer, ...), one group of bars per image."""
    cols = sorted((c for c in desc.columns if c.startswith("atoms_by_nuclearity_")),
                  key=lambda c: int(c.rsplit("_", 1)[1]))
    fig, ax = plt.subplots(figsize=(5.0, 3.4))
    if cols:
        sizes = [int(c.rsplit("_", 1)[1]) for c in cols]
        width = 0.8 / max(len(desc), 1)
        for i, (_, row) in enumerate(desc.iterrows()):
            counts = np.array([row[c] if pd.notna(row[c]) else 0 for c in cols], float)
            share = counts / max(counts.sum(), 1)
            ax.bar(np.arange(len(sizes)) + i * width, 100 * share, width, label=short_image_name(row["image"]))
        ax.set_xticks(np.arange(len(sizes)) + 0.4 - width / 2, [str(s) for s in sizes])
        ax.legend(frameon=False, fontsize=6)
    ax.set_xlabel("nuclearity (atoms per centre)")
    ax.set_ylabel("share of atoms (%)")
    return _save(fig, path)


def plot_nnd_distributions(observed: dict[str, np.ndarray], sampler_nnd: pd.DataFrame, path: Path,
                           multimer_nm: float) -> Path:
    """Observed NND histograms per image (bars) against the pooled NND of each sampler at the same density in
    the same window (step lines), drawn by :func:`sacmap.analysis.spatial.plots.plot_nnd_histogram`; two
    panels per row."""
    from sacmap.analysis.spatial.plots import plot_nnd_histogram

    n = max(len(observed), 1)
    ncol = min(n, 2)
    nrow = int(np.ceil(n / ncol))
    fig, axes = plt.subplots(nrow, ncol, figsize=(5.6 * ncol, 3.9 * nrow), squeeze=False)
    colours = {"observed": COLOURS["observed"], **{LABELS[k]: COLOURS[k] for k in LABELS}}
    for ax, (image, nnd) in zip(axes.ravel(), observed.items()):
        hi = max(float(np.percentile(nnd, 99)) if len(nnd) else 1.0, 0.5) * 1.3
        sub = sampler_nnd[sampler_nnd["image"] == image]
        refs = {LABELS[name]: sub.loc[sub["sampler"] == name, "nnd_nm"].to_numpy(float)
                for name in ("random", "repulsive", "dft")}
        plot_nnd_histogram(nnd, ax=ax, bins=np.linspace(0, hi, 30), references=refs, colours=colours,
                           multimer_nm=multimer_nm)
        ax.set_title(short_image_name(image))
        ax.set_xlabel("nearest-neighbour distance (nm)")
        ax.set_ylabel("probability density (nm$^{-1}$)")
        ax.legend(frameon=False, fontsize=7)
    for ax in axes.ravel()[len(observed):]:
        ax.set_axis_off()
    return _save(fig, path)


def plot_envelope_panels(tests, path: Path, titles=None, notes=None) -> Path:
    """Global envelope tests side by side (G and L of one image, or its naive and detector-aware tests), drawn by
    :func:`sacmap.analysis.spatial.plots.plot_envelopes` (``titles``/``notes`` per panel)."""
    from sacmap.analysis.spatial.plots import plot_envelopes

    return _save(plot_envelopes(tests, titles=titles, notes=notes), path)


def short_image_name(image: str) -> str:
    """A readable image name: the bundled ``053_HAADF_15nm_Sample_PtNC_21Oct20`` → ``053 (Pt1/NC)``; a simulated
    image ``simulated_2_per_nm2`` → ``simulated, 2 atoms/nm²``; others unchanged (cut at 32 characters)."""
    image = str(image)
    if image.startswith("simulated_") and image.endswith("_per_nm2"):
        return f"simulated, {image[len('simulated_'):-len('_per_nm2')]} atoms/nm²"
    if "_HAADF_" in image and "PtNC" in image:
        return f"{image.split('_', 1)[0]} (Pt1/NC, real)"
    return image[:32]


def plot_species_nnd(pairs: pd.DataFrame, path: Path) -> Path:
    """Mean per-species NND (A→B) per image (paper Figure 5c)."""
    fig, ax = plt.subplots(figsize=(5.0, 3.4))
    for image, sub in pairs.groupby("image"):
        ax.plot(sub["pair"], sub["nnd_mean_nm"], "o-", label=str(image)[:24])
    ax.set_xlabel("species pair (from → to)")
    ax.set_ylabel("mean NND (nm)")
    ax.legend(frameon=False, fontsize=6)
    return _save(fig, path)


def _labelled(fig, ax, xlabel: str, ylabel: str, path: Path) -> Path:
    """Axis labels, a light grid and the legend; then :func:`_save`."""
    ax.set_xlabel(xlabel)
    ax.set_ylabel(ylabel)
    ax.grid(alpha=0.25)
    ax.legend(frameon=False, fontsize=7)
    return _save(fig, path)


def _zero_line(ax, label: str | None = None) -> None:
    ax.axhline(0.0, color="#888", lw=0.8, ls="--", label=label, zorder=0)


def plot_site_site(ssp: pd.DataFrame, path: Path) -> Path:
    """Site–site potential (eV, relative to the furthest pair) against the site separation (Å), one marker per
    relaxed pair configuration (no lines: configurations at one separation differ in arrangement); filled red:
    the two sites share an N–N bond, open blue: they do not; the dashed line is the furthest pair (0)."""
    fig, ax = plt.subplots(figsize=(5.4, 3.8))
    share = ssp["shares_NN_bond"].astype(str).str.lower().isin(["true", "1"])
    for mask, style in ((share, dict(color="#d62728", marker="o", ls="none", ms=7, label="sites share an N–N bond")),
                        (~share, dict(color="#1f77b4", marker="o", ls="none", mfc="none", ms=7, mew=1.4,
                                      label="no shared N–N bond"))):
        ax.plot(ssp.loc[mask, "separation_A"], ssp.loc[mask, "energy_eV"], **style)
    _zero_line(ax, "furthest pair (reference, 0 eV)")
    if len(ssp):
        i = ssp["energy_eV"].idxmin()
        ax.annotate(f"minimum {ssp.loc[i, 'energy_eV']:.3f} eV\nat {ssp.loc[i, 'separation_A']:.2f} Å",
                    (ssp.loc[i, "separation_A"], ssp.loc[i, "energy_eV"]), xytext=(-10, 48),
                    textcoords="offset points", fontsize=7.5, arrowprops=dict(arrowstyle="->", lw=0.7))
    return _labelled(fig, ax, "separation between the two coordination sites (Å)",
                     "energy relative to the furthest pair (eV)", path)


def plot_n_carbon(ssp: pd.DataFrame, path: Path) -> Path:
    """Site–site potential (eV) against the number of C atoms separating the two sites' N atoms: one marker per
    configuration (spread sideways a little so that equal values stay visible), the median per count as a bar."""
    fig, ax = plt.subplots(figsize=(5.4, 3.8))
    d = ssp[ssp["n_C_between"] >= 0]
    rng = np.random.default_rng(0)
    for k, sub in d.groupby("n_C_between"):
        x = k + rng.uniform(-0.12, 0.12, len(sub))
        ax.plot(x, sub["energy_eV"], "o", color="#1f77b4", mfc="none", ms=6, mew=1.2,
                label="one pair configuration" if k == d["n_C_between"].min() else None)
        ax.plot([k - 0.3, k + 0.3], [sub["energy_eV"].median()] * 2, "-", color="#d62728", lw=2,
                label="median" if k == d["n_C_between"].min() else None)
    _zero_line(ax, "furthest pair (0 eV)")
    ax.set_xticks(sorted(d["n_C_between"].unique()))
    ax.set_xlabel("C atoms between the N atoms of the two sites (0 = they share an N–N bond)")
    ax.set_ylabel("energy relative to the furthest pair (eV)")
    ax.grid(alpha=0.25, axis="y")
    ax.legend(frameon=False, fontsize=7)
    return _save(fig, path)


DIMER_TERMS = {"E_dimer_from_isolated_eV": "from two isolated adsorbed atoms",
               "E_dimer_from_gas_eV": "from two gas-phase atoms",
               "E_dimer_from_gas_dimer_eV": "from the gas-phase dimer"}


def plot_dimers(dim: pd.DataFrame, path: Path) -> Path:
    """Dimer formation energies (eV) per metal and site kind: one bar per formation route (legend), the value
    written on each bar; > 0 means the dimer is less favourable than its reference state."""
    terms = [c for c in DIMER_TERMS if c in dim.columns]
    labels = [f"{r['metal']}$_2$ in {r['site_kind']}" for _, r in dim.iterrows()]
    fig, ax = plt.subplots(figsize=(5.4, 3.8))
    width = 0.8 / max(len(terms), 1)
    x = np.arange(len(dim))
    for k, col in enumerate(terms):
        vals = dim[col].to_numpy(float)
        bars = ax.bar(x + (k - (len(terms) - 1) / 2) * width, vals, width, label=DIMER_TERMS[col])
        for b, v in zip(bars, vals):
            if np.isfinite(v):
                ax.annotate(f"{v:.2f}", (b.get_x() + b.get_width() / 2, v), ha="center",
                            va="bottom" if v >= 0 else "top", fontsize=7, xytext=(0, 2 if v >= 0 else -2),
                            textcoords="offset points")
    _zero_line(ax)
    ax.set_xticks(x, labels)
    ax.set_ylabel("dimer formation energy (eV)")
    ax.legend(frameon=False, fontsize=7)
    ax.grid(alpha=0.25, axis="y")
    return _save(fig, path)


def plot_e_int(e_int: pd.DataFrame, path: Path) -> Path:
    """Interaction energy E_int (eq. 1; eV) of two metal atoms on two sites against the site separation (Å):
    one marker per pair configuration, colour by metal pair, filled when the sites share an N–N bond; no
    lines (each point is its own arrangement)."""
    fig, ax = plt.subplots(figsize=(5.4, 3.8))
    share = e_int["shares_NN_bond"].astype(str).str.lower().isin(["true", "1"])
    pairs = (e_int["metal_A"].astype(str) + "–" + e_int["metal_B"].astype(str)).to_numpy()
    for k, pair in enumerate(dict.fromkeys(pairs)):
        for mask, filled in ((share.to_numpy() & (pairs == pair), True), (~share.to_numpy() & (pairs == pair), False)):
            if mask.any():
                ax.plot(e_int.loc[mask, "separation_A"], e_int.loc[mask, "E_int_eV"], "o", color=f"C{k}", ms=7,
                        mfc=f"C{k}" if filled else "none", mew=1.4,
                        label=f"{pair}, {'sites share an N–N bond' if filled else 'no shared N–N bond'}")
    _zero_line(ax, "no interaction (0 eV)")
    return _labelled(fig, ax, "separation between the two sites (Å)", "E$_{int}$ (eV; > 0 repulsive)", path)


def plot_simulated(table: pd.DataFrame, path: Path) -> Path:
    """The simulated-image control in three panels against the true density (atoms/nm²): (a) detected density
    with the identity line and the recall; (b) ⟨NND⟩ (nm) true, detected and the Poisson value at the true density;
    (c) multimer share (%) true and detected. No lines join the images (each is its own pattern)."""
    t = table.sort_values("density_true_nm2")
    x = t["density_true_nm2"]
    fig, axes = plt.subplots(1, 3, figsize=(11.0, 3.5))
    ax = axes[0]
    ax.plot(x, x, ":", color="#444", lw=1, label="detected = true")
    ax.plot(x, t["density_detected_nm2"], "s", color=SIM_COLOUR, mfc="none", ms=6, mew=1.3, label="detected")
    for xi, yi, r in zip(x, t["density_detected_nm2"], t["recall"]):
        ax.annotate(f"{100 * r:.0f} %", (xi, yi), xytext=(4, -10), textcoords="offset points", fontsize=6.5)
    ax.set_title("(a) density; labels: recall")
    ax.set_ylabel("atoms nm$^{-2}$")
    ax = axes[1]
    ax.plot(x, t["nnd_mean_true_nm"], "x", color=SIM_COLOUR, ms=7, mew=1.5, label="true positions")
    ax.plot(x, t["nnd_mean_detected_nm"], "s", color=SIM_COLOUR, mfc="none", ms=6, mew=1.3, label="detected")
    d = np.linspace(x.min(), x.max(), 100)
    ax.plot(d, 0.5 / np.sqrt(d), ":", color=COLOURS["random"], lw=1.2, label="random at the true density (0.5/√ρ)")
    ax.set_title("(b) mean NND")
    ax.set_ylabel("⟨NND⟩ (nm)")
    ax = axes[2]
    ax.plot(x, 100 * t["multimer_share_true"], "x", color=SIM_COLOUR, ms=7, mew=1.5, label="true positions")
    ax.plot(x, 100 * t["multimer_share_detected"], "s", color=SIM_COLOUR, mfc="none", ms=6, mew=1.3,
            label="detected")
    ax.set_title("(c) share of atoms in multimers")
    ax.set_ylabel("share (%)")
    for ax in axes:
        ax.set_xlabel("true density of the simulated image (atoms nm$^{-2}$)")
        ax.grid(alpha=0.25)
        ax.legend(frameon=False, fontsize=7)
    return _save(fig, path)


def overlay(image_path: Path, detection_csv: Path, path: Path, *, multimer_nm: float, truth_csv: Path | None = None,
            support_png: Path | None = None, max_side_px: int = 620) -> Path:
    """The image with its detections as the web app draws it (same markers, multimer bonds and scale bar:
    :func:`sacmap.workflows.app.figures.overlay_png`), the true positions of a simulated image as small
    crosses; written to ``path`` as PNG, or as JPEG when it ends in ``.jpg``."""
    from PIL import Image
    from scipy.spatial import cKDTree

    from sacmap.core.atomic import atomic_write
    from sacmap.detection.io import read_image
    from sacmap.workflows.app.figures import overlay_png

    image, px, _ = read_image(image_path, check_range=False)
    det = pd.read_csv(detection_csv)
    xy = det[["x_px", "y_px"]].to_numpy(float) if len(det) else np.empty((0, 2))
    bonds = np.array(sorted(cKDTree(xy).query_pairs(multimer_nm / px)), int).reshape(-1, 2) if len(xy) > 1 else None
    support = None
    if support_png is not None and Path(support_png).is_file():
        support = np.asarray(Image.open(support_png)) > 127
        if support.shape != image.shape:
            support = None
    truth = None
    if truth_csv is not None:
        truth = pd.read_csv(truth_csv)[["x_px", "y_px"]].to_numpy(float)
    elements = det["element"].astype(str).tolist() if "element" in det and det["element"].notna().any() else None
    png = overlay_png(image, xy, px, elements=elements, bonds=bonds, support_mask=support, multimer_nm=multimer_nm,
                      max_side_px=max_side_px, truth_xy_px=truth)
    if Path(path).suffix.lower() in (".jpg", ".jpeg"):  # noisy micrographs: JPEG is ~4x smaller in the report
        import io

        buf = io.BytesIO()
        Image.open(io.BytesIO(png)).convert("RGB").save(buf, format="JPEG", quality=88)
        png = buf.getvalue()
    return atomic_write(path, png)
