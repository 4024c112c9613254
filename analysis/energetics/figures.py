"""Figures in the style of the paper's Figure 4a–c and of E_int versus separation (matplotlib, Agg; eV, Å, e).

Every function takes the tables of :func:`sacmap.analysis.energetics.equations.compute_energetics` and writes a PNG atomically;
an empty table gives a figure that says "no data" (so the set of files is always the same).
"""

from __future__ import annotations

import os
from pathlib import Path

import pandas as pd

from sacmap.core.atomic import save_figure

KIND_COLOURS = {"3N-3N": "#1f77b4", "4N-4N": "#d62728", "3N-4N": "#2ca02c", "6N-6N": "#9467bd"}
METAL_COLOURS = {"Ni": "#2ca02c", "Pd": "#1f77b4", "Pt": "#7f7f7f", "Ru": "#d62728"}


def _fig(figsize=(4.2, 3.4)):
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    return plt.subplots(figsize=figsize, dpi=150)


def _no_data(ax, what: str) -> None:
    ax.text(0.5, 0.5, f"no {what}", ha="center", va="center", transform=ax.transAxes, color="0.4")


def plot_dimers(dimers: pd.DataFrame, path: str | os.PathLike) -> Path:
    """Figure 4a: dimer formation energy from two isolated adsorbed centres (bars) per site kind and metal."""
    fig, ax = _fig((4.8, 3.4))
    d = dimers.dropna(subset=["E_dimer_from_isolated_eV"]) if len(dimers) else dimers
    if d is None or d.empty:
        _no_data(ax, "dimer formation energies")
    else:
        kinds = sorted(d["site_kind"].unique())
        metals = sorted(d["metal"].unique())
        w = 0.8 / max(len(metals), 1)
        for j, m in enumerate(metals):
            sub = d[d["metal"] == m].groupby("site_kind")["E_dimer_from_isolated_eV"].min()
            x = [kinds.index(k) + (j - (len(metals) - 1) / 2) * w for k in sub.index]
            ax.bar(x, sub.values, width=w, label=m, color=METAL_COLOURS.get(m))
        ax.axhline(0, color="k", lw=0.8)
        ax.set_xticks(range(len(kinds)), kinds)
        ax.legend(frameon=False, fontsize=8)
    ax.set_xlabel("coordination site")
    ax.set_ylabel(r"$E_\mathrm{dimer}$ from isolated centres (eV)")
    fig.tight_layout()
    return save_figure(fig, path, format="png")


def plot_site_site_potential(ssp: pd.DataFrame, path: str | os.PathLike) -> Path:
    """Figure 4b: relative energy of two bare sites versus centre-to-centre separation (open: shared N–N)."""
    fig, ax = _fig()
    if ssp.empty:
        _no_data(ax, "bare two-site energies")
    else:
        for kinds, g in ssp.groupby("site_kinds"):
            g = g.sort_values("separation_A")
            c = KIND_COLOURS.get(kinds)
            nn = g["shares_NN_bond"].astype(bool)
            ax.plot(g.loc[~nn, "separation_A"], g.loc[~nn, "energy_eV"], "o", color=c, label=kinds, ms=4)
            if nn.any():
                ax.plot(g.loc[nn, "separation_A"], g.loc[nn, "energy_eV"], "o", mfc="none", color=c, ms=5)
        ax.axhline(0, color="k", lw=0.6, ls=":")
        ax.legend(frameon=False, fontsize=8)
    ax.set_xlabel("site separation (Å)")
    ax.set_ylabel("relative energy (eV)")
    fig.tight_layout()
    return save_figure(fig, path, format="png")


def plot_nc_bader(ssp: pd.DataFrame, bader: pd.DataFrame, path: str | os.PathLike, site_kinds: str = "4N-4N") -> Path:
    """Figure 4c: relative energy (left) and ⟨B⟩ (right) versus the number of C atoms between the sites."""
    fig, ax = _fig()
    g = ssp[ssp["site_kinds"] == site_kinds] if len(ssp) else ssp
    if g is None or g.empty:
        _no_data(ax, f"{site_kinds} energies")
    else:
        e = g.groupby("n_C_between")["energy_eV"].min()
        ax.plot(e.index, e.values, "o-", color="k", label="energy")
        ax.set_xticks(e.index)
    ax.set_xlabel("C atoms between the sites")
    ax.set_ylabel("relative energy (eV)")
    b = bader[bader["site_kinds"] == site_kinds] if len(bader) else bader
    if b is not None and not b.empty:
        col = "B_rel_e" if b["B_rel_e"].notna().any() else "B_mean_e"
        bb = b.groupby("n_C_between")[col].mean()
        ax2 = ax.twinx()
        ax2.plot(bb.index, bb.values, "s--", color="#1f77b4")
        ax2.set_ylabel(r"$\langle B\rangle$" + (" − N ref" if col == "B_rel_e" else "") + " (e)", color="#1f77b4")
    ax.set_title(site_kinds, fontsize=9)
    fig.tight_layout()
    return save_figure(fig, path, format="png")


def plot_e_int(e_int: pd.DataFrame, path: str | os.PathLike) -> Path:
    """E_int (eqs. 1–5) versus separation, one series per equation label and metals."""
    fig, ax = _fig((4.8, 3.4))
    if e_int.empty:
        _no_data(ax, "interaction energies")
    else:
        for (label, occ_metals), g in e_int.groupby(["label", e_int["metal_A"] + "/" + e_int["metal_B"]]):
            g = g.sort_values("separation_A")
            ax.plot(g["separation_A"], g["E_int_eV"], "o-", ms=4, lw=0.8, label=f"{label} {occ_metals}")
        ax.axhline(0, color="k", lw=0.6, ls=":")
        ax.legend(frameon=False, fontsize=7)
    ax.set_xlabel("site separation (Å)")
    ax.set_ylabel(r"$E_\mathrm{int}$ (eV)")
    fig.tight_layout()
    return save_figure(fig, path, format="png")


def write_figures(res: dict, outdir: str | os.PathLike) -> dict:
    """All figures for the result dict of ``compute_energetics``; returns name → path."""
    out = Path(outdir)
    paths = {
        "fig4a": plot_dimers(res["dimers"], out / "fig4a_dimer_formation.png"),
        "fig4b": plot_site_site_potential(res["site_site_potential"], out / "fig4b_site_site_potential.png"),
        "fig4c": plot_nc_bader(res["site_site_potential"], res["bader"], out / "fig4c_nC_bader.png"),
        "e_int_plot": plot_e_int(res["e_int"], out / "e_int.png"),
    }
    return paths
