"""Figures of the web app: the detection overlay, the NND histogram and the global envelope tests (PNG). Presentation only: every number drawn comes from
``detection`` (positions, elements, support mask) and ``analysis`` (multimer bonds at the multimer distance).
"""

from __future__ import annotations

import io
from collections.abc import Sequence

import numpy as np

from sacmap.core.constants import MULTIMER_NM

#: element colours in label order (Okabe–Ito, colour-blind safe); multimers in vermillion
ELEMENT_COLOURS = ["#56B4E9", "#F0E442", "#009E73", "#CC79A7", "#0072B2", "#E69F00"]
MULTIMER_COLOUR = "#D55E00"
SUPPORT_COLOUR = "#FFD166"
TRUTH_COLOUR = "#F0E442"


def _nice_length(target_nm: float) -> float:
    """A round scale-bar length (1, 2 or 5 × 10^k nm) not larger than ``target_nm``."""
    k = np.floor(np.log10(target_nm))
    for m in (5, 2, 1):
        if m * 10**k <= target_nm:
            return float(m * 10**k)
    return float(10**k)


def display_range(image: np.ndarray, lo: float = 0.5, hi: float = 99.8) -> tuple[float, float]:
    """Grey-level range for display: the ``lo``–``hi`` percentiles of the image."""
    vmin, vmax = np.percentile(image, [lo, hi])
    if vmax <= vmin:
        vmin, vmax = float(image.min()), float(image.max())
    return float(vmin), float(vmax)


def overlay_png(image: np.ndarray, xy_px: np.ndarray, pixel_size_nm: float, *,
                elements: Sequence[str] | None = None, element_order: Sequence[str] | None = None,
                bonds: np.ndarray | None = None, support_mask: np.ndarray | None = None,
                multimer_nm: float = MULTIMER_NM, max_side_px: int = 1100,
                truth_xy_px: np.ndarray | None = None) -> bytes:
    """The image with detected atoms as PNG bytes.

    Parameters
    ----------
    image : 2-D raw intensities. xy_px : (n, 2) atom positions, x = column, y = row (px).
    pixel_size_nm : nm/px (scale bar, marker size). elements : per-atom labels (colours by element).
    element_order : label order for the colours/legend (default: sorted order of appearance).
    bonds : (m, 2) index pairs of atoms closer than ``multimer_nm`` (drawn as bonds; their atoms ringed).
    support_mask : True = support; its boundary is drawn dashed when the image contains vacuum.
    truth_xy_px : (k, 2) true positions of a simulated image (px), drawn as small crosses.
    """
    import matplotlib

    matplotlib.use("Agg")
    from matplotlib.figure import Figure
    from matplotlib.lines import Line2D

    h, w = image.shape
    scale = min(2.0, max_side_px / max(h, w))
    dpi = 100
    fig = Figure(figsize=(w * scale / dpi, h * scale / dpi), dpi=dpi)
    ax = fig.add_axes([0, 0, 1, 1])
    ax.set_axis_off()
    vmin, vmax = display_range(image)
    ax.imshow(image, cmap="gray", vmin=vmin, vmax=vmax, interpolation="nearest")
    ax.set_xlim(-0.5, w - 0.5)
    ax.set_ylim(h - 0.5, -0.5)

    if support_mask is not None and not np.all(support_mask) and np.any(support_mask):
        ax.contour(support_mask.astype(float), levels=[0.5], colors=[SUPPORT_COLOUR], linewidths=1.6,
                   linestyles="--")

    xy = np.asarray(xy_px, dtype=float).reshape(-1, 2)
    n = len(xy)
    labels = list(elements) if elements is not None and len(elements) == n else [""] * n
    order = list(element_order) if element_order else list(dict.fromkeys(lb for lb in labels if lb))
    in_multimer = np.zeros(n, bool)
    bonds = np.asarray(bonds if bonds is not None else np.empty((0, 2)), dtype=int).reshape(-1, 2)
    if len(bonds):
        in_multimer[bonds.ravel()] = True
        segs = np.stack([xy[bonds[:, 0]], xy[bonds[:, 1]]], axis=1)
        from matplotlib.collections import LineCollection

        ax.add_collection(LineCollection(segs, colors=MULTIMER_COLOUR, linewidths=2.2, zorder=3))

    radius_px = max(3.0, 0.11 / pixel_size_nm)
    ms = 2 * radius_px * scale * 72 / dpi  # marker diameter in points
    handles = []
    groups = order if len(order) > 1 else [None]
    for k, el in enumerate(groups):
        sel = np.ones(n, bool) if el is None else np.array([lb == el for lb in labels])
        colour = ELEMENT_COLOURS[k % len(ELEMENT_COLOURS)]
        if sel.any():
            ax.plot(xy[sel, 0], xy[sel, 1], "o", ms=ms, mfc="none", mec=colour, mew=1.8, zorder=4)
        label = f"{el} ({int(sel.sum())})" if el is not None else f"atoms ({n})"
        handles.append(Line2D([], [], ls="none", marker="o", mfc="none", mec=colour, mew=2, ms=11, label=label))
    if in_multimer.any():
        ax.plot(xy[in_multimer, 0], xy[in_multimer, 1], "o", ms=ms * 1.55, mfc="none", mec=MULTIMER_COLOUR,
                mew=2.0, zorder=5)
    handles.append(Line2D([0, 1], [0, 0], color=MULTIMER_COLOUR, lw=2.2, marker="o", mfc="none", ms=11, mew=2,
                          label=f"multimer ≤ {multimer_nm:g} nm ({int(in_multimer.sum())} atoms)"))
    if truth_xy_px is not None:
        txy = np.asarray(truth_xy_px, dtype=float).reshape(-1, 2)
        ax.plot(txy[:, 0], txy[:, 1], "+", ms=ms * 0.4, mec=TRUTH_COLOUR, mew=0.9, zorder=6)
        handles.append(Line2D([], [], ls="none", marker="+", mec=TRUTH_COLOUR, mew=2, ms=11,
                              label=f"true position, simulated ({len(txy)})"))
    if support_mask is not None and not np.all(support_mask) and np.any(support_mask):
        handles.append(Line2D([], [], color=SUPPORT_COLOUR, ls="--", lw=2, label="support edge"))
    leg = ax.legend(handles=handles, loc="upper right", fontsize=13, framealpha=0.6, facecolor="#111111",
                    edgecolor="#555555", labelcolor="#eeeeee", borderpad=0.5, handletextpad=0.5)
    leg.set_zorder(10)

    # scale bar, bottom left
    bar_nm = _nice_length(0.2 * w * pixel_size_nm)
    bar_px = bar_nm / pixel_size_nm
    x0, y0 = 0.04 * w, 0.95 * h
    ax.plot([x0, x0 + bar_px], [y0, y0], color="white", lw=6, solid_capstyle="butt", zorder=6)
    ax.text(x0 + bar_px / 2, y0 - 0.02 * h, f"{bar_nm:g} nm", color="white", ha="center", va="bottom",
            fontsize=16, fontweight="bold", zorder=6)

    buf = io.BytesIO()
    fig.savefig(buf, format="png", dpi=dpi)
    return buf.getvalue()


def nnd_histogram_png(nnd_nm, desc: dict, random_nnd_nm=None, *, width_in: float = 6.0, height_in: float = 4.6,
                      dpi: int = 130) -> bytes:
    """Histogram of nearest-neighbour distances (nm, probability density) against the random model, drawn by
    ``sacmap.analysis.spatial.plots.plot_nnd_histogram``: uniform random points in the same support window at the same
    density (``random_nnd_nm``, pooled over runs) and the Poisson density 2πρ r exp(−πρ r²). The multimer
    distance and both means are marked.
    """
    import matplotlib

    matplotlib.use("Agg")
    from matplotlib.figure import Figure

    fig = Figure(figsize=(width_in, height_in), dpi=dpi)
    ax = fig.add_axes([0.12, 0.13, 0.84, 0.80])
    for side in ("top", "right"):
        ax.spines[side].set_visible(False)
    nnd = np.asarray(nnd_nm if nnd_nm is not None else [], dtype=float)
    rho = desc.get("density_nm2")
    if nnd.size < 2 or not rho:
        ax.text(0.5, 0.5, desc.get("note") or "not enough atoms for NND statistics", ha="center", va="center",
                transform=ax.transAxes, color="#5b6776")
        ax.set_xticks([])
        ax.set_yticks([])
    else:
        from sacmap.analysis.spatial.plots import plot_nnd_histogram

        pooled = np.concatenate([nnd, np.asarray(random_nnd_nm if random_nnd_nm is not None else [], float)])
        hi = 1.1 * float(np.percentile(pooled, 99.5))
        n_bins = int(np.clip(1.5 * np.sqrt(nnd.size), 10, 40))  # fewer bins for few atoms
        plot_nnd_histogram(nnd, density_nm2=rho, random_nnd_nm=random_nnd_nm, ax=ax,
                           bins=np.linspace(0, max(hi, 1e-3), n_bins + 1), multimer_nm=desc.get("multimer_nm"))
        ax.axvline(float(nnd.mean()), color="C0", ls="-.", lw=1.2, label=f"mean observed {nnd.mean():.3f} nm")
        if random_nnd_nm is not None and len(random_nnd_nm):
            ax.axvline(float(np.mean(random_nnd_nm)), color="C1", ls="-.", lw=1.2,
                       label=f"mean random {np.mean(random_nnd_nm):.3f} nm")
        ax.set_xlim(left=0)
        ax.legend(fontsize=8, frameon=False, loc="upper right")
    buf = io.BytesIO()
    fig.savefig(buf, format="png", dpi=dpi)
    return buf.getvalue()


def envelopes_png(tests, dpi: int = 110) -> bytes:
    """Global envelope tests side by side (G and L against CSR), drawn by
    ``sacmap.analysis.spatial.plots.plot_envelopes`` (the figure of ``sacmap stats`` and the job's report), PNG."""
    from sacmap.analysis.spatial.plots import FUNCTION_NAMES, plot_envelopes

    fig = plot_envelopes(tests, titles=[f"{FUNCTION_NAMES.get(t.function, t.function)} vs {t.null_model.upper()}"
                                        for t in tests])
    buf = io.BytesIO()
    fig.savefig(buf, format="png", dpi=dpi)
    return buf.getvalue()
