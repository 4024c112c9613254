"""Plots of spatial descriptors (matplotlib, Agg backend; lengths in nm).

* :func:`plot_nnd_histogram` — observed NND histogram against the random model (sampled in the same window
  at the same density, and the Poisson Rayleigh density ``2πρ d exp(−πρd²)``);
* :func:`plot_nuclearity` — share of atoms in monomers, dimers, trimers, ...;
* :func:`plot_pair_correlation` — g(r) with the Poisson reference g = 1.

Each returns the matplotlib Figure; save it with :func:`analysis.spatial_io.save_figure`.
"""

from __future__ import annotations

import numpy as np


def _axes(ax):
    if ax is not None:
        return ax.figure, ax
    import matplotlib

    matplotlib.use("Agg", force=False)
    import matplotlib.pyplot as plt

    fig, ax = plt.subplots(figsize=(5, 3.6))
    return fig, ax


def plot_nnd_histogram(nnd_nm, density_nm2: float | None = None, random_nnd_nm=None, ax=None, bins=None,
                       label: str = "observed", multimer_nm: float | None = 0.22):
    """Histogram (probability density) of NNDs (nm) against the random model."""
    fig, ax = _axes(ax)
    nnd = np.asarray(nnd_nm, dtype=float)
    hi = float(np.percentile(np.concatenate([nnd, np.asarray(random_nnd_nm if random_nnd_nm is not None
                                                              else [], dtype=float)]), 99.5)) * 1.1
    bins = bins if bins is not None else np.linspace(0, max(hi, 1e-3), 40)
    ax.hist(nnd, bins=bins, density=True, alpha=0.6, color="C0", label=f"{label} (n={nnd.size})")
    if random_nnd_nm is not None:
        ax.hist(np.asarray(random_nnd_nm), bins=bins, density=True, histtype="step", color="C1", lw=1.5,
                label="random, same window")
    if density_nm2:
        d = np.linspace(0, bins[-1], 200)
        ax.plot(d, 2 * np.pi * density_nm2 * d * np.exp(-np.pi * density_nm2 * d**2), "k--", lw=1,
                label="Poisson (infinite plane)")
    if multimer_nm:
        ax.axvline(multimer_nm, color="grey", lw=0.8, ls=":", label=f"multimer ≤ {multimer_nm:g} nm")
    ax.set_xlabel("nearest-neighbour distance (nm)")
    ax.set_ylabel("probability density (1/nm)")
    ax.legend(fontsize=8)
    return fig


def plot_nuclearity(nuclearity: dict, ax=None, as_share: bool = True):
    """Bars of atoms per nuclearity (1 = isolated) from ``descriptors()['nuclearity']`` ({size: count})."""
    fig, ax = _axes(ax)
    sizes = np.array(sorted(int(s) for s in nuclearity))
    counts = np.array([int(nuclearity[s] if s in nuclearity else nuclearity[str(s)]) for s in sizes])
    atoms = sizes * counts
    vals = 100.0 * atoms / max(atoms.sum(), 1) if as_share else counts
    pos = np.arange(len(sizes))
    ax.bar(pos, vals, color="C2")
    ax.set_xticks(pos, [str(s) for s in sizes])
    ax.set_xlabel("nuclearity (atoms per cluster)")
    ax.set_ylabel("share of atoms (%)" if as_share else "clusters")
    return fig


def plot_pair_correlation(r_nm, g, ax=None):
    """g(r) (translation edge correction) with the Poisson reference."""
    fig, ax = _axes(ax)
    ax.plot(r_nm, g, "-", color="C3")
    ax.axhline(1.0, color="k", lw=0.8, ls="--")
    ax.set_xlabel("r (nm)")
    ax.set_ylabel("g(r)")
    ax.set_ylim(bottom=0)
    return fig
