"""Top-view drawing of a configuration with its coordination sites highlighted (matplotlib, no display needed)."""

from __future__ import annotations

from pathlib import Path

import numpy as np
from ase import Atoms

from sacmap.core.atomic import save_figure

from .lattice import plane_axes
from .sites import BOND_CUTOFF, sites_of

_COLOURS = {"C": "#555555", "N": "#2f6fdf", "H": "#dddddd"}
_SITE_COLOURS = ("#e4572e", "#17bebb", "#ffc914", "#76b041")


def draw_configuration(atoms: Atoms, path, title: str | None = None, dpi: int = 150) -> Path:
    """Draw ``atoms`` seen along the sheet normal into ``path`` (format from the suffix); returns the path.

    C grey, N blue, H light grey, metals large and labelled; each site's removed atoms as dashed circles, its
    centre as a cross, its N atoms ringed in the site's colour. Lengths on the axes in Å.
    """
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt
    from ase.data import covalent_radii
    from ase.data.colors import jmol_colors
    from ase.neighborlist import neighbor_list

    path = Path(path)
    u, v, n = plane_axes(atoms)
    pos = atoms.get_positions()
    sym = atoms.get_chemical_symbols()
    cell = atoms.cell.array
    fig, ax = plt.subplots(figsize=(7, 7 * max(0.5, min(2.0, cell[v, v] / max(cell[u, u], 1e-9)))))
    if atoms.pbc[u] and atoms.pbc[v] and cell[u, u] > 0:
        corners = np.array([[0, 0], [cell[u, u], 0], [cell[u, u], cell[v, v]], [0, cell[v, v]], [0, 0]])
        ax.plot(corners[:, 0], corners[:, 1], color="#999999", lw=0.8, ls=":")
    light = [k for k, s in enumerate(sym) if s in ("C", "N", "H")]
    if light:
        i, j = neighbor_list("ij", atoms[light], BOND_CUTOFF)
        for a, b in zip(i, j):
            if a < b:
                pa, pb = pos[light[a]], pos[light[b]]
                if np.linalg.norm(pa - pb) < BOND_CUTOFF + 1e-6:  # skip bonds through the cell edge
                    ax.plot([pa[u], pb[u]], [pa[v], pb[v]], color="#bbbbbb", lw=0.8, zorder=1)
    for s in ("C", "N", "H"):
        idx = [k for k, x in enumerate(sym) if x == s]
        if idx:
            ax.scatter(pos[idx, u], pos[idx, v], s=18 if s != "H" else 10, c=_COLOURS[s], zorder=2,
                       edgecolors="none", label=s)
    metals = [k for k, s in enumerate(sym) if s not in ("C", "N", "H")]
    order = np.argsort(pos[metals, n]) if metals else []
    for k in np.asarray(metals)[order] if metals else []:
        z = atoms.numbers[k]
        ax.scatter(pos[k, u], pos[k, v], s=40 * (covalent_radii[z] / 0.7) ** 2, color=jmol_colors[z],
                   edgecolors="black", linewidths=0.8, zorder=4)
        ax.annotate(sym[k], (pos[k, u], pos[k, v]), textcoords="offset points", xytext=(6, 6), fontsize=8, zorder=5)
    for si, site in enumerate(sites_of(atoms)):
        col = _SITE_COLOURS[si % len(_SITE_COLOURS)]
        rp = np.asarray(site.removed_positions, float).reshape(-1, 3)
        ax.scatter(rp[:, u], rp[:, v], s=60, facecolors="none", edgecolors=col, linestyle="--", zorder=3)
        npos = pos[site.n_indices]
        ax.scatter(npos[:, u], npos[:, v], s=90, facecolors="none", edgecolors=col, linewidths=1.5, zorder=3)
        c = site.centre
        ax.scatter([c[u]], [c[v]], marker="x", color=col, s=50, zorder=3)
        ax.annotate(site.label, (c[u], c[v]), textcoords="offset points", xytext=(-12, -26), color=col, fontsize=9,
                    fontweight="bold")
    ax.set_aspect("equal")
    ax.set_xlabel("Å")
    ax.set_ylabel("Å")
    ax.set_title(title or str(atoms.info.get("id", atoms.get_chemical_formula())), fontsize=10)
    fig.tight_layout()
    return save_figure(fig, path, dpi=dpi)
