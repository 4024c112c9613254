"""Plots of spatial descriptors (matplotlib, Agg backend; lengths in nm).

* :func:`plot_nnd_histogram` — observed NND histogram against the random model (sampled in the same window
  at the same density, and the Poisson Rayleigh density ``2πρ d exp(−πρd²)``);
* :func:`plot_nuclearity` — share of atoms in monomers, dimers, trimers, ...;
* :func:`plot_pair_correlation` — g(r) with the Poisson reference g = 1;
* :func:`plot_envelope` / :func:`plot_envelopes` — a global envelope test (the 95 % global rank envelope, not
  pointwise bands), the simulations' mean and the Poisson theory, with its p-values; several tests side by side
  (G and L, or the naive and the detector-aware null); :func:`envelope_caption` says in one sentence what was
  tested (function, edge correction, null, simulations, window) and the p-values.

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
#: readable names of the summary functions and edge corrections (captions)
FUNCTION_NAMES = {"L": "Besag's L", "K": "Ripley's K", "pcf": "pair correlation g", "G": "G (NND distribution)",
                  "F": "F (empty space)", "J": "J", "Lcross": "cross-type L", "Kcross": "cross-type K",
                  "Gcross": "cross-type G"}
CORRECTION_NAMES = {"km": "Kaplan–Meier", "translate": "translation", "border": "border (reduced sample)",
                    "isotropic": "isotropic", "hanisch": "Hanisch"}
NULL_NAMES = {"csr": "complete spatial randomness (CSR)"}


def envelope_p_text(test) -> str:
    """``rank p = …, MAD p = …, DCLF p = …`` of an envelope test."""
    return f"rank p = {test.p_rank:.3g}, MAD p = {test.p_mad:.3g}, DCLF p = {test.p_dclf:.3g}"


def window_text(window: dict | None) -> str:
    """The window of a test in words from ``Region.describe()``: ``support mask, 186.9 nm² (512×512 px at
    0.0293 nm/px)`` or ``rectangle 15 × 15 nm``."""
    w = window or {}
    if w.get("kind") == "mask":
        shape = "×".join(str(s) for s in w.get("shape", []))
        return (f"support mask, {w.get('area_nm2', float('nan')):.1f} nm² ({shape} px at "
                f"{w.get('pixel_size_nm', float('nan')):.4g} nm/px)")
    if w.get("kind") == "rectangle":
        return (f"rectangle {w['x1_nm'] - w['x0_nm']:.3g} × {w['y1_nm'] - w['y0_nm']:.3g} nm "
                f"({w.get('area_nm2', float('nan')):.1f} nm²)")
    return "window not recorded"


def envelope_caption(test, simulations: str = "simulations with the same number of points in the same window") -> str:
    """One sentence saying what an envelope test tested and found: function, edge correction, null model, number
    of simulations (``simulations`` says what they are), window, the three p-values and where the observed curve
    leaves the global envelope."""
    where = test.direction()
    fn = FUNCTION_NAMES.get(test.function, test.function)
    corr = CORRECTION_NAMES.get(test.correction, test.correction)
    null = NULL_NAMES.get(test.null_model, test.null_model)
    env = f"the {100 * (1 - test.alpha):.0f} % global envelope"
    found = (f"stays inside {env}" if where == "inside" else
             f"leaves {env} ({'above and below' if where == 'both' else where})")
    return (f"{fn} with the {corr} edge correction, {test.n_points} atoms, against {null}: {test.nsim} {simulations} "
            f"({window_text(test.window)}); global rank envelope (extreme rank length) {envelope_p_text(test)}; the "
            f"observed curve {found}.")


def plot_envelope(test, ax=None, title: str | None = None, note: str | None = None):
    """One :class:`~sacmap.analysis.spatial.envelopes.EnvelopeTest`: the 100(1 − α) % global envelope (grey band:
    a test, unlike pointwise bands), the mean of the simulations (dashed), the Poisson theory ``theo`` (dotted,
    when known) and the observed curve; L and K centred on their Poisson value. ``title``: first title line
    (default ``function (correction) vs null``); the second line gives the p-values, or ``note`` instead (e.g.
    why a test is not valid)."""
    fig, ax = _axes(ax)
    r = test.r_nm
    shift = r if test.function in ("L", "Lcross") else np.pi * r**2 if test.function in ("K", "Kcross") else 0.0
    ax.fill_between(r, test.lo - shift, test.hi - shift, color="0.8", lw=0,
                    label=f"{100 * (1 - test.alpha):.0f} % global envelope")
    ax.plot(r, test.central - shift, "k--", lw=1, label=f"mean of {test.nsim} sims")
    if test.theo is not None:
        ax.plot(r, test.theo - shift, ":", color="C0", lw=1.2, label="Poisson theory")
    ax.plot(r, test.observed - shift, color="C3", lw=1.5, label="observed")
    ax.set_xlabel("r (nm)")
    ax.set_ylabel(_YLABEL.get(test.function, test.function))
    head = title or f"{test.function} ({test.correction}) vs {test.null_model}"
    ax.set_title(f"{head}\n{note or envelope_p_text(test)}", fontsize=9)
    ax.legend(fontsize=7, frameon=False)
    return fig


def plot_envelopes(tests, titles=None, notes=None):
    """Several envelope tests side by side (e.g. G and L, or the naive and the detector-aware null), each drawn
    by :func:`plot_envelope` (``titles``/``notes``: per test, as its ``title``/``note``); returns the Figure."""
    from matplotlib.figure import Figure  # not pyplot: safe in the web app's worker thread

    tests = list(tests)
    fig = Figure(figsize=(4.6 * len(tests), 3.6))
    axes = fig.subplots(1, len(tests), squeeze=False)
    for k, (t, ax) in enumerate(zip(tests, axes[0])):
        plot_envelope(t, ax=ax, title=None if titles is None else titles[k], note=None if notes is None else notes[k])
    fig.tight_layout()
    return fig
