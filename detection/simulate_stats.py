"""Image statistics used to calibrate the simulator against real HAADF-STEM images (same code for both).

Definitions (lengths in nm, converted with the pixel size; the support is found by Otsu on a σ = 0.23 nm
smoothed image, and disks of 0.29 nm around the atoms are excluded from the support statistics):

* ``peak_ratio``: per atom, the image smoothed with a Gaussian of σ = 0.03 nm, read at the atom position,
  divided by the median of the same smoothed image in an annulus 0.26–0.41 nm around it (local background).
* ``noise``: the sd of horizontal neighbour differences / √2 on the support, over the support mean
  (white pixel noise; slow structure cancels in the difference).
* ``texture``: the sd of a band-pass (Gaussian σ 0.06 nm minus Gaussian σ 0.47 nm) on the support, over the
  support mean (mid-scale carbon texture; the residual pixel noise in it is ≈ 0.14 × ``noise``).
* ``line_noise``: the sd over rows of the row mean of image / local mean (σ 0.18 nm) − 1 on the support.
* ``thickness``: the sd of the σ 0.47 nm smoothed image on the support over the support mean (large scale).
* ``atom_fwhm_nm``: FWHM of a Gaussian + constant fitted to the mean crop around the atoms.

Run ``python -m sacmap.detection.simulate_stats [SHARED_DIR]`` to print real vs simulated values.
"""

from __future__ import annotations

import numpy as np
import pandas as pd
from scipy import ndimage as ndi

from sacmap.detection.errors import DetectionInputError
from sacmap.detection.gaussfit import robust_sd


def _otsu(values: np.ndarray) -> float:
    from skimage.filters import threshold_otsu

    return float(threshold_otsu(values))


def support_from_image(image: np.ndarray, pixel_size_nm: float) -> np.ndarray:
    """Boolean support mask (True = carbon): Otsu threshold of the σ = 0.23 nm smoothed image when the image
    holds a vacuum region (the two Otsu classes differ by more than 25 % of the brighter one), else all
    True."""
    big = ndi.gaussian_filter(np.asarray(image, float), 0.23 / pixel_size_nm)
    t = _otsu(big)
    lo, hi = big[big <= t], big[big > t]
    if lo.size == 0 or hi.size == 0 or (hi.mean() - lo.mean()) < 0.25 * hi.mean():
        return np.ones(big.shape, bool)
    return big > t


def image_statistics(image, xy_px, pixel_size_nm: float, support=None) -> dict:
    """Calibration statistics of one image with atoms at ``xy_px`` ((N, 2) of x = column, y = row, px).

    ``support`` (optional boolean array of the image's shape, True = carbon) replaces the Otsu support of
    :func:`support_from_image` (e.g. a detection record's mask, so that an image and its simulation are measured
    on the same pixels).

    Returns a dict: ``peak_ratio_median``, ``peak_ratio_p10``, ``peak_ratio_p90`` (over atoms), ``noise``,
    ``texture``, ``line_noise``, ``thickness`` (fractions of the support mean), ``vacuum_texture`` (band-pass
    sd / mean in the vacuum ≥ 0.6 nm from the support, NaN when small), ``atom_signal_median`` and
    ``atom_signal_p90_over_p10`` (difference-of-Gaussians peak at the atoms, support units, and its spread),
    ``atom_snr`` (median atom signal / robust sd of the same filter on the support), ``atom_fwhm_nm``,
    ``support_fraction``, ``vacuum_over_support`` (NaN without vacuum), ``n_atoms``, ``support_mean`` (the
    support's mean, image units).
    """
    a = np.asarray(image, dtype=float)
    if a.ndim != 2:
        raise DetectionInputError(f"image must be 2-D, got shape {a.shape}")
    xy = np.asarray(xy_px, float).reshape(-1, 2)
    px = float(pixel_size_nm)
    if support is None:
        sup = support_from_image(a, px)
    else:
        sup = _support_like(a, support)
        if sup.sum() < 100:
            raise DetectionInputError(f"support: {int(sup.sum())} pixels; the statistics need at least 100")
    yy, xx = np.indices(a.shape)
    excl = np.zeros(a.shape, bool)
    r_ex = 0.29 / px
    for x, y in xy:
        r0, r1 = max(int(y - r_ex) - 1, 0), int(y + r_ex) + 2
        c0, c1 = max(int(x - r_ex) - 1, 0), int(x + r_ex) + 2
        excl[r0:r1, c0:c1] |= (xx[r0:r1, c0:c1] - x) ** 2 + (yy[r0:r1, c0:c1] - y) ** 2 < r_ex**2
    m = sup & ~excl
    sup_mean = a[sup].mean()

    s1 = ndi.gaussian_filter(a, 0.03 / px)
    ratios = []
    r_in, r_out = 0.26 / px, 0.41 / px
    for x, y in xy:
        ri, ci = int(round(y)), int(round(x))
        r0, r1 = max(int(y - r_out) - 1, 0), int(y + r_out) + 2
        c0, c1 = max(int(x - r_out) - 1, 0), int(x + r_out) + 2
        d2 = (xx[r0:r1, c0:c1] - x) ** 2 + (yy[r0:r1, c0:c1] - y) ** 2
        ann = (d2 >= r_in**2) & (d2 <= r_out**2)
        if not (0 <= ri < a.shape[0] and 0 <= ci < a.shape[1]) or ann.sum() < 10:
            continue
        ratios.append(s1[ri, ci] / np.median(s1[r0:r1, c0:c1][ann]))
    ratios = np.array(ratios)

    dh = a[:, 1:] - a[:, :-1]
    noise = dh[m[:, 1:] & m[:, :-1]].std() / np.sqrt(2) / sup_mean
    bp = ndi.gaussian_filter(a, 0.06 / px) - ndi.gaussian_filter(a, 0.47 / px)
    texture = bp[m].std() / sup_mean
    hp = a / ndi.gaussian_filter(a, 0.18 / px) - 1.0
    rows = [hp[i, m[i]].mean() for i in range(a.shape[0]) if m[i].sum() > 0.2 * a.shape[1]]
    line = float(np.std(rows)) if len(rows) > 2 else float("nan")

    thickness = ndi.gaussian_filter(a, 0.47 / px)[m].std() / sup_mean
    vac = a[~sup].mean() / sup_mean if (~sup).any() else float("nan")
    deep_vac = ndi.binary_erosion(~sup, iterations=max(int(round(0.6 / px)), 1))
    vac_tex = bp[deep_vac].std() / a[deep_vac].mean() if deep_vac.sum() > 2000 else float("nan")
    # atom signal: maximum within 0.1 nm of a difference of Gaussians (σ 0.073 − 0.23 nm), support units
    dog = ndi.gaussian_filter(a, 0.073 / px) - ndi.gaussian_filter(a, 0.23 / px)
    dmax = ndi.maximum_filter(dog, size=2 * int(round(0.1 / px)) + 1)
    ij = np.rint(xy).astype(int)
    ok = (ij[:, 1] >= 0) & (ij[:, 1] < a.shape[0]) & (ij[:, 0] >= 0) & (ij[:, 0] < a.shape[1])
    sig = dmax[ij[ok, 1], ij[ok, 0]] / sup_mean
    dog_sd = robust_sd(dog[m]) / sup_mean
    p10, p50, p90 = np.percentile(sig, [10, 50, 90]) if sig.size else (np.nan,) * 3
    return {
        "n_atoms": int(len(xy)),
        "peak_ratio_median": float(np.median(ratios)) if ratios.size else float("nan"),
        "peak_ratio_p10": float(np.percentile(ratios, 10)) if ratios.size else float("nan"),
        "peak_ratio_p90": float(np.percentile(ratios, 90)) if ratios.size else float("nan"),
        "noise": float(noise),
        "texture": float(texture),
        "line_noise": line,
        "thickness": float(thickness),
        "vacuum_texture": float(vac_tex),
        "atom_signal_median": float(p50),
        "atom_signal_p90_over_p10": float(p90 / p10) if sig.size else float("nan"),
        "atom_snr": float(p50 / dog_sd) if sig.size else float("nan"),
        "atom_fwhm_nm": atom_fwhm_nm(a, xy, px),
        "support_fraction": float(sup.mean()),
        "vacuum_over_support": float(vac),
        "support_mean": float(sup_mean),
    }


def atom_fwhm_nm(image, xy_px, pixel_size_nm: float, half_px: int | None = None) -> float:
    """FWHM (nm) of a Gaussian + constant fitted to the mean of crops centred on the atoms, each crop divided
    by its median; each position is first moved to the maximum of the σ = 0.045 nm smoothed image within
    0.06 nm (expert clicks are off by a pixel or two, which would widen the mean crop). NaN with no usable
    atom."""
    from scipy import optimize

    from sacmap.detection.simulate import FWHM_TO_SIGMA

    a = np.asarray(image, float)
    h = half_px or int(round(0.35 / pixel_size_nm))
    sm = ndi.gaussian_filter(a, 0.045 / pixel_size_nm)
    w = max(int(round(0.06 / pixel_size_nm)), 0)
    crops = []
    for x, y in np.asarray(xy_px, float).reshape(-1, 2):
        ri, ci = int(round(y)), int(round(x))
        if w and w <= ri < a.shape[0] - w and w <= ci < a.shape[1] - w:
            win = sm[ri - w : ri + w + 1, ci - w : ci + w + 1]
            dr, dc = np.unravel_index(np.argmax(win), win.shape)
            ri, ci = ri - w + dr, ci - w + dc
        if h <= ri < a.shape[0] - h and h <= ci < a.shape[1] - h:
            c = a[ri - h : ri + h + 1, ci - h : ci + h + 1]
            med = np.median(c)
            if med > 0:
                crops.append(c / med)
    if not crops:
        return float("nan")
    mc = np.mean(crops, 0)
    yy, xx = np.mgrid[-h : h + 1, -h : h + 1]

    def resid(p):
        amp, s, b, x0, y0 = p
        return (b + amp * np.exp(-((xx - x0) ** 2 + (yy - y0) ** 2) / (2 * s * s)) - mc).ravel()

    fit = optimize.least_squares(
        resid,
        [mc.max() - np.median(mc), 2.0, np.median(mc), 0, 0],
        bounds=([0, 0.3, 0, -h, -h], [np.inf, h, np.inf, h, h]),
    )
    return float(fit.x[1] * pixel_size_nm / FWHM_TO_SIGMA)


def real_image_statistics(shared_dir, pixel_size_nm: float | None = None) -> pd.DataFrame:
    """Statistics of every image of ``shared_dir/data/ptnc-stem`` with its expert labels (one row per image).

    The pixel size is read from the HyperSpy tags 65009 of each TIFF unless given."""
    from pathlib import Path

    import tifffile

    root = Path(shared_dir) / "data" / "ptnc-stem"
    split = pd.read_csv(root / "split.csv")
    rows = []
    for _, r in split.iterrows():
        with tifffile.TiffFile(root / "images" / r["image"]) as t:
            a = t.pages[0].asarray().astype(float)
            tag = t.pages[0].tags.get(65009)
            px = pixel_size_nm or (float(tag.value) if tag is not None else None)
        if px is None:
            raise DetectionInputError(f"{r['image']}: no pixel size in tag 65009; pass pixel_size_nm")
        lab = pd.read_csv(root / "labels" / r["labels"])
        st = image_statistics(a, lab[["X", "Y"]].to_numpy(float), px)
        rows.append({"image": r["image"][:3], "split": r["split"], **st})
    return pd.DataFrame(rows)


def simulated_statistics(
    n_images: int = 8, *, seed: int = 0, density_nm2: float = 0.3, vacuum_fraction: float = 0.35, **kw
) -> pd.DataFrame:
    """Statistics of ``n_images`` default simulated 512² images (Pt at ``density_nm2``, a vacuum region)."""
    from sacmap.detection.simulate import simulate_sample

    rows = []
    for i in range(n_images):
        img, truth, _ = simulate_sample(
            density_nm2,
            seed=np.random.default_rng([seed, i]),
            vacuum_fraction=vacuum_fraction,
            margin_nm=0.3,
            **kw,
        )
        st = image_statistics(img, truth[["x_px", "y_px"]].to_numpy(), truth.attrs["pixel_size_nm"])
        rows.append({"image": f"sim{i}", "split": "sim", **st})
    return pd.DataFrame(rows)


def _support_like(image: np.ndarray, support) -> np.ndarray:
    """``support`` as a boolean mask (True = carbon), refused unless it has the image's shape."""
    sup = np.asarray(support, bool)
    if sup.shape != image.shape:
        raise DetectionInputError(f"support: shape {sup.shape} differs from image shape {image.shape}")
    return sup


def _finite_mean(values) -> float:
    v = np.asarray(values, float)
    v = v[np.isfinite(v)]
    return float(v.mean()) if v.size else float("nan")


#: Simulator keywords :func:`fit_imaging` adjusts, each matched to one statistic of :func:`image_statistics`.
FIT_STATISTICS = {
    "dose_per_nm2": "noise",
    "peak_pt": "atom_signal_median",
    "texture_sd": "texture",
    "thickness_sd": "thickness",
    "spread_fwhm_nm": "atom_fwhm_nm",
    "vacuum_level": "vacuum_over_support",
}


def film_map(image, xy_px, pixel_size_nm: float, support, sigma_nm: float = 0.5) -> np.ndarray:
    """The observed film's large-scale signal as a soft support map for the simulator (0 = vacuum, 1 = the
    thickest film): the image smoothed by a Gaussian of ``sigma_nm`` with the atoms (disks of 0.29 nm) left
    out, less the median of the vacuum (``support`` False), over its 99.5th percentile on the support, clipped
    to [0, 1]. Rendered with it (``simulate_image(support=...)``, ``thickness_sd=0``, ``vacuum_taper=0``), a
    simulated image has the observed film's thinning towards the vacuum and its thickness gradients instead of
    a sharp edge and a random thickness field (a sharp edge makes the detectors' background subtraction leave
    a bright rim, which sets their intensity normalisation and adds false atoms on the edge)."""
    a = np.asarray(image, float)
    sup = _support_like(a, support)
    if sup.all() or not sup.any():
        raise DetectionInputError("film_map: the support needs both film and vacuum pixels")
    px = float(pixel_size_nm)
    w = np.ones(a.shape)
    yy, xx = np.indices(a.shape)
    r_ex = 0.29 / px
    for x, y in np.asarray(xy_px, float).reshape(-1, 2):
        r0, r1 = max(int(y - r_ex) - 1, 0), int(y + r_ex) + 2
        c0, c1 = max(int(x - r_ex) - 1, 0), int(x + r_ex) + 2
        w[r0:r1, c0:c1][(xx[r0:r1, c0:c1] - x) ** 2 + (yy[r0:r1, c0:c1] - y) ** 2 < r_ex**2] = 0.0
    s = sigma_nm / px
    big = ndi.gaussian_filter(a * w, s) / np.maximum(ndi.gaussian_filter(w, s), 1e-6)
    vac = float(np.median(big[~sup]))
    top = float(np.percentile(big[sup], 99.5))
    if not top > vac:
        raise DetectionInputError("film_map: the film is not brighter than the vacuum")
    return np.clip((big - vac) / (top - vac), 0.0, 1.0)


def fit_imaging(image, xy_px, pixel_size_nm: float, *, support=None, elements=None, n_images: int = 2,
                iterations: int = 4, seed=0, fit=tuple(FIT_STATISTICS), render_support=None, **kw) -> dict:
    """Simulator settings whose images have the statistics of an observed one (same function on both).

    The observed ``image`` (atoms at ``xy_px``, px; ``support`` the boolean carbon mask, None: Otsu) is measured
    by :func:`image_statistics`; ``n_images`` simulated images with atoms at the same positions on the same
    support (fixed seeds, so successive iterations differ only by the settings) are measured the same way, and
    each keyword of ``fit`` is updated from its statistic (:data:`FIT_STATISTICS`) for ``iterations`` rounds:
    the dose from the pixel noise (noise ∝ dose^-1/2), the Pt peak from the atoms' difference-of-Gaussians
    signal (∝ peak), the texture sd from the band-pass texture less its pixel-noise part (0.14 × noise) — the
    film texture (``vacuum_texture_sd``, which the simulator adds on the support too) by the same factor (fitted
    to the vacuum's own texture it ran away: with the dark level fixed the vacuum's statistics cannot all be
    met, and the film texture then inflated the support's) —, the thickness sd from the large-scale thickness (only
    without vacuum: next to a vacuum region that statistic is dominated by the film thinning towards the edge, a
    gradient, which the simulator's random thickness field cannot mimic and its taper already models), the atom
    spread from the fitted atom FWHM (added in quadrature), the vacuum level from vacuum / support (solved for
    with the film's contribution of the last round; only with ≥ 5 % vacuum). ``elements`` (one per atom) set the simulated atoms' contrast (default Pt); ``kw`` other
    simulator keywords, kept fixed. Each value is clipped to 0.05–20 × the calibrated default (spread
    0.02–0.6 nm, thickness sd ≤ 0.6: beyond it the simulator's thickness field is mostly clipped).

    Returns ``{"params": {keyword: value}, "observed": stats, "simulated": the mean stats of the simulated images
    at ``params``, "scale": observed / simulated support mean (image units per simulator unit), "iterations",
    "fitted": the keywords fitted, "history": params and fitted statistics of each round}`` (the last round is
    measured, not updated).
    """
    from sacmap.detection.simulate import DEFAULTS, simulate_image

    a = np.asarray(image, dtype=float)
    xy = np.asarray(xy_px, float).reshape(-1, 2)
    px = float(pixel_size_nm)
    if len(xy) < 3:
        raise DetectionInputError(f"fit_imaging: {len(xy)} atom(s); the atom statistics need at least 3")
    unknown = set(fit) - set(FIT_STATISTICS)
    if unknown:
        raise DetectionInputError(f"fit_imaging: cannot fit {sorted(unknown)}; known: {sorted(FIT_STATISTICS)}")
    sup = support_from_image(a, px) if support is None else np.asarray(support, bool)
    obs = image_statistics(a, xy, px, support=sup)
    fit = [k for k in fit if np.isfinite(obs[FIT_STATISTICS[k]])]
    if sup.mean() > 0.95 and "vacuum_level" in fit:
        fit.remove("vacuum_level")
    if sup.mean() <= 0.95 and "thickness_sd" in fit:  # next to vacuum the film's thinning dominates 'thickness'
        fit.remove("thickness_sd")
    keys = (*FIT_STATISTICS, "vacuum_texture_sd")  # the film texture follows the carbon texture's factor
    params = {k: kw.pop(k, DEFAULTS[k]) for k in keys}
    lo = {k: 0.05 * DEFAULTS[k] for k in keys} | {"spread_fwhm_nm": 0.02}
    hi = {k: 20 * DEFAULTS[k] for k in keys} | {"spread_fwhm_nm": 0.6, "thickness_sd": 0.6}
    seeds = [np.random.SeedSequence([int(seed), 7, i]) for i in range(int(n_images))]
    xy_nm = xy * px
    render = sup.astype(float) if render_support is None else np.asarray(render_support, float)
    sim: dict = {}
    history = []
    for it in range(max(int(iterations), 1)):
        rows = []
        for ss in seeds:
            img, _ = simulate_image(xy_nm, shape=a.shape, pixel_size_nm=px, elements=elements,
                                    seed=np.random.default_rng(ss), support=render, **params, **kw)
            rows.append(image_statistics(img, xy, px, support=sup))
        sim = {k: _finite_mean([r[k] for r in rows]) for k in rows[0]}
        history.append({"params": dict(params), **{FIT_STATISTICS[k]: sim[FIT_STATISTICS[k]] for k in fit}})
        if it == int(iterations) - 1:
            break
        new = dict(params)
        for k in fit:
            o, m = obs[FIT_STATISTICS[k]], sim[FIT_STATISTICS[k]]
            if not (np.isfinite(m) and m > 0 and o > 0):
                continue
            if k == "dose_per_nm2":
                new[k] = params[k] * (m / o) ** 2
            elif k == "texture_sd":  # the band-pass holds ~0.14 × the pixel noise as well
                po, pm = 0.14 * obs["noise"], 0.14 * sim["noise"]
                f = np.sqrt(max(o * o - po * po, 1e-8) / max(m * m - pm * pm, 1e-8))
                new[k] = params[k] * f
                # the film's texture, which the simulator adds on the support too, by the same factor
                new["vacuum_texture_sd"] = float(np.clip(params["vacuum_texture_sd"] * f, lo["vacuum_texture_sd"],
                                                         hi["vacuum_texture_sd"]))
            elif k == "vacuum_level":  # vacuum / support = (dark + v) / (dark + v + C): solve for v at this C
                d = kw.get("dark_level", DEFAULTS["dark_level"])
                c = (d + params[k]) * (1.0 - m) / m if m < 1 else np.inf
                new[k] = o * c / (1.0 - o) - d if o < 1 and np.isfinite(c) else params[k]
            elif k == "spread_fwhm_nm":
                new[k] = np.sqrt(max(params[k] ** 2 + o * o - m * m, 0.0))
            else:
                new[k] = params[k] * o / m
            new[k] = float(np.clip(new[k], lo[k], hi[k]))
        params = new
    return {"params": {k: float(v) for k, v in params.items()}, "observed": obs, "simulated": sim,
            "scale": obs["support_mean"] / sim["support_mean"], "iterations": len(history), "fitted": list(fit),
            "history": history}


def main(argv=None) -> int:
    """Print per-image and median statistics for the real images and for simulated ones."""
    import sys
    from pathlib import Path

    args = sys.argv[1:] if argv is None else argv
    shared = Path(args[0]) if args else Path(__file__).resolve().parents[2] / "shared"
    cols = [
        "peak_ratio_median",
        "peak_ratio_p10",
        "peak_ratio_p90",
        "noise",
        "texture",
        "line_noise",
        "vacuum_texture",
        "atom_signal_p90_over_p10",
        "atom_snr",
        "thickness",
        "atom_fwhm_nm",
        "vacuum_over_support",
    ]
    pd.set_option("display.width", 200)
    real = real_image_statistics(shared)
    sim = simulated_statistics()
    for name, d in (("real", real), ("simulated", sim)):
        print(f"== {name} ==")
        print(d[["image", "n_atoms", *cols]].round(4).to_string(index=False))
        print("median:", d[cols].median().round(4).to_dict())
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
