"""Figures of the main job's report that combine observations with samplers (the paper's Figure 3 analogues).
Densities in atoms/nm², distances in nm. Each function writes a PNG (and an SVG beside it) and returns the PNG."""

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


def _save(fig, path: Path) -> Path:
    """The figure as PNG (130 dpi) at ``path`` and as SVG beside it, each written atomically; then closed."""
    path = Path(path)
    fig.tight_layout()
    save_figure(fig, path, close=False, dpi=130)
    save_figure(fig, path.with_suffix(".svg"))
    return path


def plot_vs_density(sweep: pd.DataFrame, observed: pd.DataFrame, column: str, ylabel: str, path: Path,
                    theory=None) -> Path:
    """Descriptor ``column`` (``multimer_share`` or ``nnd_mean_nm``) against density: sampler means with a
    10–90 % band over runs, observed images as points."""
    fig, ax = plt.subplots(figsize=(5.0, 3.6))
    for name in ("random", "repulsive", "dft"):
        s = sweep[sweep["sampler"] == name].sort_values("density_nm2")
        if s.empty:
            continue
        ax.plot(s["density_nm2"], s[f"{column}_mean"], "-", color=COLOURS[name], label=LABELS[name])
        ax.fill_between(s["density_nm2"], s[f"{column}_p10"], s[f"{column}_p90"], color=COLOURS[name], alpha=0.18,
                        lw=0)
    if theory is not None and not sweep.empty:
        d = np.linspace(sweep["density_nm2"].min(), sweep["density_nm2"].max(), 100)
        ax.plot(d, theory(d), ":", color="#444", lw=1, label="Poisson theory")
    if not observed.empty:
        ax.plot(observed["density_nm2"], observed[column], "o", color=COLOURS["observed"], ms=6, mfc="#ffd23f",
                label="observed (images)")
    ax.set_xlabel("surface density (atoms nm$^{-2}$)")
    ax.set_ylabel(ylabel)
    ax.legend(frameon=False, fontsize=7)
    return _save(fig, path)


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
            ax.bar(np.arange(len(sizes)) + i * width, 100 * share, width, label=str(row["image"])[:24])
        ax.set_xticks(np.arange(len(sizes)) + 0.4 - width / 2, [str(s) for s in sizes])
        ax.legend(frameon=False, fontsize=6)
    ax.set_xlabel("nuclearity (atoms per centre)")
    ax.set_ylabel("share of atoms (%)")
    return _save(fig, path)


def plot_nnd_distributions(observed: dict[str, np.ndarray], sampler_nnd: pd.DataFrame, path: Path,
                           multimer_nm: float) -> Path:
    """Observed NND histograms per image against the pooled NND of each sampler at the same density, drawn by
    :func:`sacmap.analysis.spatial.plots.plot_nnd_histogram`."""
    from sacmap.analysis.spatial.plots import plot_nnd_histogram

    n = max(len(observed), 1)
    fig, axes = plt.subplots(1, n, figsize=(4.2 * n, 3.2), squeeze=False)
    colours = {"observed": COLOURS["observed"], **{LABELS[k]: COLOURS[k] for k in LABELS}}
    for ax, (image, nnd) in zip(axes[0], observed.items()):
        hi = max(float(np.percentile(nnd, 99)) if len(nnd) else 1.0, 0.5) * 1.3
        sub = sampler_nnd[sampler_nnd["image"] == image]
        refs = {LABELS[name]: sub.loc[sub["sampler"] == name, "nnd_nm"].to_numpy(float)
                for name in ("random", "repulsive", "dft")}
        plot_nnd_histogram(nnd, ax=ax, bins=np.linspace(0, hi, 30), references=refs, colours=colours,
                           multimer_nm=multimer_nm)
        ax.set_title(str(image)[:32], fontsize=8)
        ax.legend(frameon=False, fontsize=6)
    return _save(fig, path)


def plot_species_nnd(pairs: pd.DataFrame, path: Path) -> Path:
    """Mean per-species NND (A→B) per image (paper Figure 5c)."""
    fig, ax = plt.subplots(figsize=(5.0, 3.4))
    for image, sub in pairs.groupby("image"):
        ax.plot(sub["pair"], sub["nnd_mean_nm"], "o-", label=str(image)[:24])
    ax.set_xlabel("species pair (from → to)")
    ax.set_ylabel("mean NND (nm)")
    ax.legend(frameon=False, fontsize=6)
    return _save(fig, path)
