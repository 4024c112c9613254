"""Plots of spatial descriptors (matplotlib, Agg backend; lengths in nm).

* :func:`plot_nnd_histogram` — observed NND histogram against the random model (sampled in the same window
  at the same density, and the Poisson Rayleigh density ``2πρ d exp(−πρd²)``);
* :func:`plot_nuclearity` — share of atoms in monomers, dimers, trimers, ...;
* :func:`plot_pair_correlation` — g(r) with the Poisson reference g = 1;
* :func:`plot_envelope` / :func:`plot_envelopes` — a global envelope test (the 95 % global rank envelope, not
  pointwise bands) with its p-values; several tests side by side (naive and detector-aware).

Each returns the matplotlib Figure; save it with :func:`sacmap.core.atomic.save_figure`.
"""

from __future__ import annotations

import numpy as np

from sacmap.core.constants import MULTIMER_NM


def _axes(ax):
    if ax is not None:
        return ax.figure, ax
    import matplotlib

    matplotlib.use("Agg", force=False)
    import matplotlib.pyplot as plt

    fig, ax = plt.subplots(figsize=(5, 3.6))
    return fig, ax


def plot_nnd_histogram(nnd_nm, density_nm2: float | None = None, random_nnd_nm=None, ax=None, bins=None,
                       label: str = "observed", multimer_nm: float | None = MULTIMER_NM, references=None,
                       colours=None):
    """Histogram (probability density) of NNDs (nm) against the random model — the one NND-histogram plot of
    sacmap (``sacmap stats``, the job's report and the web app draw theirs here).

    ``random_nnd_nm``: pooled NNDs of random patterns in the same window at the same density; ``references``:
    more reference NND sets {label: NNDs (nm)} (e.g. samplers), drawn as step lines in ``colours`` {label: colour};
    ``density_nm2``: adds the Poisson density ``2πρ d exp(−πρd²)``; ``multimer_nm``: marks the multimer distance.
    """
    fig, ax = _axes(ax)
    nnd = np.asarray(nnd_nm, dtype=float)
    refs = {} if references is None else {k: np.asarray(v, dtype=float) for k, v in references.items()}
    if random_nnd_nm is not None:
        refs = {"random, same window": np.asarray(random_nnd_nm, dtype=float), **refs}
    colours = colours or {}
    if bins is None:
        hi = float(np.percentile(np.concatenate([nnd, *refs.values()]), 99.5)) * 1.1
        bins = np.linspace(0, max(hi, 1e-3), 40)
    ax.hist(nnd, bins=bins, density=True, alpha=0.6, color=colours.get(label, "C0"), label=f"{label} (n={nnd.size})")
    for k, (name, values) in enumerate(refs.items()):
        if values.size:
            ax.hist(values, bins=bins, density=True, histtype="step", color=colours.get(name, f"C{k + 1}"), lw=1.5,
                    label=name)
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


_YLABEL = {"L": "L(r) − r (nm)", "K": "K(r) − πr² (nm²)", "pcf": "g(r)", "G": "G(r)", "F": "F(r)", "J": "J(r)",
           "Lcross": "L_ij(r) − r (nm)", "Kcross": "K_ij(r) − πr² (nm²)", "Gcross": "G_ij(r)"}


def plot_envelope(test, ax=None, title: str | None = None):
    """One :class:`~sacmap.analysis.spatial.envelopes.EnvelopeTest`: the global envelope (grey), the mean of the
    simulations (dashed) and the observed curve, L and K centred on their Poisson value; p-values in the title."""
    fig, ax = _axes(ax)
    r = test.r_nm
    shift = r if test.function in ("L", "Lcross") else np.pi * r**2 if test.function in ("K", "Kcross") else 0.0
    ax.fill_between(r, test.lo - shift, test.hi - shift, color="0.8", lw=0,
                    label=f"{100 * (1 - test.alpha):.0f} % global envelope")
    ax.plot(r, test.central - shift, "k--", lw=1, label=f"mean of {test.nsim} sims")
    ax.plot(r, test.observed - shift, color="C3", lw=1.5, label="observed")
    ax.set_xlabel("r (nm)")
    ax.set_ylabel(_YLABEL.get(test.function, test.function))
    ax.set_title(title or f"{test.function} ({test.correction}) vs {test.null_model}\n"
                 f"rank p = {test.p_rank:.3g}, MAD p = {test.p_mad:.3g}, DCLF p = {test.p_dclf:.3g}", fontsize=9)
    ax.legend(fontsize=7, frameon=False)
    return fig


def plot_envelopes(tests, titles=None):
    """Several envelope tests side by side (e.g. naive and detector-aware null); returns the Figure."""
    import matplotlib

    matplotlib.use("Agg", force=False)
    import matplotlib.pyplot as plt

    tests = list(tests)
    fig, axes = plt.subplots(1, len(tests), figsize=(4.6 * len(tests), 3.6), squeeze=False)
    for k, (t, ax) in enumerate(zip(tests, axes[0])):
        plot_envelope(t, ax=ax, title=None if titles is None else
                      f"{titles[k]}\nrank p = {t.p_rank:.3g}, MAD p = {t.p_mad:.3g}, DCLF p = {t.p_dclf:.3g}")
    fig.tight_layout()
    return fig
