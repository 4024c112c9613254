"""Synthetic HAADF-STEM images of single metal atoms on amorphous carbon, calibrated on the Pt1/NC images.

Image formation (all lengths in nm, converted with ``pixel_size_nm``; intensities relative to the mean
support signal = 1):

    signal(x, y) = vacuum_level · (1 + vacuum texture)
                 + support(x, y) · thickness(x, y) · (1 + texture(x, y))
                 + Σ_atoms peak_Pt · (Z / 78)^1.7 · PSF(x − x_i, y − y_i)
    counts       = Poisson(dose_px · signal)              (shot noise)
    image        = dark_level + counts / dose_px · (1 + line_gain(row))   (scan-line noise)

* ``support`` is 1 on the carbon and 0 in an optional vacuum region bounded by a smooth random edge, the film
  thinning by up to ``vacuum_taper`` over ~``vacuum_taper_nm`` towards it;
* ``thickness`` is a smooth random field (correlation ~``thickness_scale_nm``) of relative sd
  ``thickness_sd``, normalised to mean 1 over the support;
* ``texture`` is band-limited Gaussian noise (amorphous carbon, scales ``texture_scales_nm``) of sd
  ``texture_sd``;
* the PSF is a Gaussian whose variance is the sum of the probe's (``probe_fwhm_nm``, ~0.1 nm), an
  effective spread (``spread_fwhm_nm``: beam broadening in the support, thermal vibration, drift; calibrated
  so that atoms are as wide as in the real images, effective FWHM ≈ 0.25 nm) and the pixel box (p²/12); the
  peak height is scaled so that the integrated intensity of an atom does not depend on the pixel size;
* ``dose_px`` = ``dose_per_nm2`` · pixel area, so smaller pixels are noisier at the same dose;
* each atom's peak varies by a log-normal factor of sd ``peak_sd`` (height in the support, defocus), as the
  real atoms of one image do.

The defaults reproduce the statistics of the shared real images (see ``sacmap.detection.simulate_stats`` and
``docs/simulator.md``): atom peak / local background median ≈ 1.15 (per-image 1.07–1.24), pixel noise ≈ 9 %
and mid-scale support texture ≈ 3.5–3.7 % of the support mean.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

import numpy as np
import pandas as pd
from scipy import ndimage as ndi

from sacmap.core.atomic import atomic_write, atomic_write_with
from sacmap.detection.errors import DetectionInputError

REFERENCE_PIXEL_NM = 0.029296875
PT_Z = 78
FWHM_TO_SIGMA = 1.0 / (2.0 * np.sqrt(2.0 * np.log(2.0)))

# Calibrated defaults (see docs/simulator.md for the measurement).
DEFAULTS = dict(
    probe_fwhm_nm=0.10,
    spread_fwhm_nm=0.26,
    peak_pt=0.36,
    peak_sd=0.18,
    dose_per_nm2=6.3e4,
    dark_level=0.30,
    vacuum_level=0.75,
    thickness_sd=0.32,
    thickness_scale_nm=3.0,
    texture_sd=0.065,
    texture_scales_nm=(0.07, 0.2, 0.5),
    line_noise=0.011,
    line_jitter_px=0.0,
    vacuum_fraction=0.0,
    vacuum_edge_nm=1.5,
    vacuum_taper=0.4,
    vacuum_taper_nm=3.0,
    vacuum_texture_sd=0.105,
)


def atomic_number(symbol: str) -> int:
    """Atomic number of an element symbol (``'Pt'`` → 78); DetectionInputError when unknown."""
    from ase.data import atomic_numbers

    s = str(symbol).strip()
    z = atomic_numbers.get(s[:1].upper() + s[1:].lower()) if s else None
    if not z or z < 1:
        raise DetectionInputError(f"elements: unknown element symbol {symbol!r}")
    return int(z)


def relative_contrast(symbol: str, exponent: float = 1.7) -> float:
    """HAADF peak height of an element relative to Pt, (Z / 78)^exponent."""
    return (atomic_number(symbol) / PT_Z) ** exponent


#: Geometry of ``simulate_sample`` when no arrangement is named (the calibrated sparse sample).
GEOMETRY_DEFAULTS = dict(min_dist_nm=0.25, dimer_fraction=0.0, dimer_nm=0.22, trimer_fraction=0.0,
                         trimer_angle_deg=60.0)

#: Named arrangements (keywords of :func:`random_positions`). ``random``: complete spatial randomness (Poisson;
#: at > ~2 atoms/nm² it holds pairs closer than any probe resolves); ``hardcore``: no two atoms closer than
#: 0.25 nm; ``multimer``: 30 % of the atoms in dimers and 30 % in trimers (compact to linear), bonds 0.20–0.26 nm
#: (metal–metal), units ≥ 0.25 nm apart.
ARRANGEMENTS: dict[str, dict] = {
    "random": dict(min_dist_nm=0.0, dimer_fraction=0.0, trimer_fraction=0.0),
    "hardcore": dict(min_dist_nm=0.25, dimer_fraction=0.0, trimer_fraction=0.0),
    "multimer": dict(min_dist_nm=0.25, dimer_fraction=0.3, trimer_fraction=0.3, dimer_nm=(0.20, 0.26),
                     trimer_angle_deg=(60.0, 180.0)),
}


def _rng(seed) -> np.random.Generator:
    return seed if isinstance(seed, np.random.Generator) else np.random.default_rng(seed)


def _gaussian_field(shape, sigma_px: float, rng: np.random.Generator) -> np.ndarray:
    """Zero-mean, unit-sd random field with Gaussian correlation of ``sigma_px`` (white noise, filtered)."""
    f = ndi.gaussian_filter(rng.standard_normal(shape), sigma_px, mode="wrap")
    sd = f.std()
    return (f - f.mean()) / (sd if sd > 0 else 1.0)


def _smooth_field(shape, scale_px: float, rng: np.random.Generator) -> np.ndarray:
    """Large-scale unit-sd random field, generated on a coarse grid and zoomed (cheap for big scales)."""
    step = max(1, int(scale_px / 4))
    small = (shape[0] // step + 3, shape[1] // step + 3)
    f = ndi.gaussian_filter(rng.standard_normal(small), scale_px / step, mode="wrap")
    f = ndi.zoom(f, step, order=1)[: shape[0], : shape[1]]
    sd = f.std()
    return (f - f.mean()) / (sd if sd > 0 else 1.0)


def support_mask(
    shape=(512, 512),
    *,
    pixel_size_nm: float = REFERENCE_PIXEL_NM,
    vacuum_fraction: float = 0.0,
    edge_nm: float = 0.4,
    seed=0,
) -> np.ndarray:
    """Soft support map (1 = carbon, 0 = vacuum), float32 of ``shape``.

    The vacuum (about ``vacuum_fraction`` of the field) lies along one random side of the image behind an edge
    that wanders on the scale of a few nm (plus 0.12 nm roughness at 0.5 nm); ``edge_nm`` is the width of the
    soft transition. Same seed, same mask.
    """
    shape = tuple(int(s) for s in shape)
    if not 0.0 <= vacuum_fraction < 1.0:
        raise DetectionInputError(f"vacuum_fraction must be in [0, 1), got {vacuum_fraction}")
    if vacuum_fraction == 0.0:
        return np.ones(shape, np.float32)
    rng = _rng(seed)
    side = int(rng.integers(4))
    h, w = shape if side in (0, 1) else shape[::-1]  # h: depth direction, w: along the edge
    n = w
    wander = ndi.gaussian_filter1d(rng.standard_normal(n + 64), 1.5 / pixel_size_nm, mode="wrap")[32 : 32 + n]
    wander = wander / (wander.std() or 1.0) * (0.06 * h)
    fine = ndi.gaussian_filter1d(rng.standard_normal(n + 64), 0.5 / pixel_size_nm, mode="wrap")[32 : 32 + n]
    wander = wander + fine / (fine.std() or 1.0) * (0.12 / pixel_size_nm)
    edge = vacuum_fraction * h + wander - wander.mean()
    depth = np.arange(h, dtype=float)[:, None]
    width_px = max(edge_nm / pixel_size_nm, 0.5)
    m = 1.0 / (1.0 + np.exp(-(depth - edge[None, :]) / (width_px / 4.0)))  # 0 before edge (vacuum)
    if side == 1:
        m = m[::-1]
    if side in (2, 3):
        m = m.T
        if side == 3:
            m = m[:, ::-1]
    return np.ascontiguousarray(m, dtype=np.float32)


def random_positions(
    density_nm2: float,
    field_nm,
    *,
    seed=0,
    min_dist_nm: float = 0.25,
    dimer_fraction: float = 0.0,
    dimer_nm=0.22,
    trimer_fraction: float = 0.0,
    margin_nm: float = 0.0,
    mask=None,
    pixel_size_nm: float | None = None,
    return_groups: bool = False,
    trimer_angle_deg=60.0,
    area_nm2: float | None = None,
):
    """Random atom positions (nm) at ``density_nm2`` atoms/nm² over a field of ``field_nm`` (x, y) nm.

    Units (singles, dimers at ``dimer_nm`` centre-to-centre, trimers of two bonds ``dimer_nm`` long meeting at
    ``trimer_angle_deg``) are placed by random sequential addition with every pair of atoms from *different* units at least
    ``min_dist_nm`` apart. ``dimer_fraction`` / ``trimer_fraction`` are fractions of the atoms (not of the units) in dimers /
    trimers. ``dimer_nm`` is one bond length (nm) or a range ``(lo, hi)`` drawn uniformly per bond;
    ``trimer_angle_deg`` one angle (60 = equilateral with a fixed bond) or a range drawn uniformly per trimer
    (e.g. ``(60, 180)``: compact to linear), the third side then kept ≥ the shortest bond allowed. ``mask`` (optional 2-D array, > 0.5 = allowed, with ``pixel_size_nm``) restricts atoms to the
    support; the number of atoms is then density × allowed area (``area_nm2``, when given, replaces the
    field's area in that product: atoms placed in a slightly smaller field than the one their density refers
    to). Returns an (N, 2) float array of (x, y) nm
    (and an (N,) int array of unit ids when ``return_groups``). Same seed, same positions.
    """
    rng = _rng(seed)
    fx, fy = (float(field_nm), float(field_nm)) if np.isscalar(field_nm) else map(float, field_nm)
    if not (np.isfinite(density_nm2) and density_nm2 >= 0):
        raise DetectionInputError(f"density_nm2 must be a finite number >= 0, got {density_nm2}")
    if fx <= 2 * margin_nm or fy <= 2 * margin_nm:
        raise DetectionInputError(f"field {fx}×{fy} nm is too small for margin {margin_nm} nm")
    if not (0 <= dimer_fraction and 0 <= trimer_fraction and dimer_fraction + trimer_fraction <= 1):
        raise DetectionInputError("dimer_fraction and trimer_fraction must be >= 0 and sum to <= 1")
    bond_lo, bond_hi = _range(dimer_nm, "dimer_nm")
    ang_lo, ang_hi = _range(trimer_angle_deg, "trimer_angle_deg")
    if bond_lo <= 0 or not (0 < ang_lo and ang_hi <= 180):
        raise DetectionInputError(f"dimer_nm must be > 0 and trimer_angle_deg in (0, 180], got {dimer_nm}, "
                                  f"{trimer_angle_deg}")
    area = (fx - 2 * margin_nm) * (fy - 2 * margin_nm) if area_nm2 is None else float(area_nm2)
    allowed = None
    if mask is not None:
        if pixel_size_nm is None:
            raise DetectionInputError("random_positions: a mask needs pixel_size_nm")
        allowed = np.asarray(mask) > 0.5
        area *= float(allowed.mean())
    n_atoms = int(round(density_nm2 * area))
    n3 = int(round(n_atoms * trimer_fraction / 3.0))
    n2 = int(round((n_atoms - 3 * n3) * min(dimer_fraction / max(1 - trimer_fraction, 1e-9), 1.0) / 2.0))
    n1 = max(n_atoms - 3 * n3 - 2 * n2, 0)
    sizes = [3] * n3 + [2] * n2 + [1] * n1
    # random sequential addition of hard disks jams at a covered fraction of 0.547: refuse beyond it
    if n_atoms and density_nm2 * np.pi * min_dist_nm**2 / 4 > 0.547:
        raise DetectionInputError(
            f"cannot place {n_atoms} atoms at min_dist_nm={min_dist_nm} in {fx}×{fy} nm: density "
            f"{density_nm2}/nm² exceeds the random-packing limit "
            f"{0.547 * 4 / (np.pi * min_dist_nm**2):.1f}/nm²"
        )
    pts: list[tuple[float, float]] = []
    groups: list[int] = []
    d2min = min_dist_nm**2
    cell = min_dist_nm if min_dist_nm > 0 else None
    grid: dict[tuple[int, int], list[tuple[float, float]]] = {}  # cell list: neighbours in the 3×3 cells

    def too_close(unit) -> bool:
        if cell is None:
            return False
        for x, y in unit:
            cx, cy = int(x // cell), int(y // cell)
            for i in (cx - 1, cx, cx + 1):
                for j in (cy - 1, cy, cy + 1):
                    for qx, qy in grid.get((i, j), ()):
                        if (qx - x) ** 2 + (qy - y) ** 2 < d2min:
                            return True
        return False

    for gid, size in enumerate(sizes):
        tries = 0
        while True:
            tries += 1
            if tries > 20000:
                raise DetectionInputError(
                    f"cannot place {n_atoms} atoms at min_dist_nm={min_dist_nm} in {fx}×{fy} nm "
                    f"(density {density_nm2}/nm² is too high for that spacing)"
                )
            c = rng.uniform([margin_nm, margin_nm], [fx - margin_nm, fy - margin_nm])
            phi = rng.uniform(0, 2 * np.pi)
            if size == 1:
                unit = c[None, :]
            elif size == 2:
                d = rng.uniform(bond_lo, bond_hi) if bond_hi > bond_lo else bond_lo
                u = 0.5 * d * np.array([np.cos(phi), np.sin(phi)])
                unit = np.stack([c - u, c + u])
            else:  # apex atom, two bonds of its own lengths at an angle; third side >= the shortest bond
                while True:
                    d1, d2 = rng.uniform(bond_lo, bond_hi, 2) if bond_hi > bond_lo else (bond_lo, bond_lo)
                    th = np.radians(rng.uniform(ang_lo, ang_hi) if ang_hi > ang_lo else ang_lo)
                    if d1 * d1 + d2 * d2 - 2 * d1 * d2 * np.cos(th) >= bond_lo**2 * (1 - 1e-9):
                        break
                tri = np.array([[0.0, 0.0], [d1, 0.0], [d2 * np.cos(th), d2 * np.sin(th)]])
                rot = np.array([[np.cos(phi), -np.sin(phi)], [np.sin(phi), np.cos(phi)]])
                unit = c + (tri - tri.mean(0)) @ rot.T
            if np.any(unit < 0) or np.any(unit[:, 0] > fx) or np.any(unit[:, 1] > fy):
                continue
            if allowed is not None:
                ij = np.round(unit / pixel_size_nm).astype(int)
                ok = (
                    (ij[:, 1] >= 0)
                    & (ij[:, 1] < allowed.shape[0])
                    & (ij[:, 0] >= 0)
                    & (ij[:, 0] < allowed.shape[1])
                )
                if not ok.all() or not allowed[ij[:, 1], ij[:, 0]].all():
                    continue
            unit_l = [(float(x), float(y)) for x, y in unit]
            if too_close(unit_l):
                continue
            for x, y in unit_l:
                pts.append((x, y))
                groups.append(gid)
                if cell is not None:
                    grid.setdefault((int(x // cell), int(y // cell)), []).append((x, y))
            break
    pts = np.array(pts, dtype=float).reshape(-1, 2)
    groups = np.array(groups, dtype=int)
    return (pts, groups) if return_groups else pts


def pair_grid(sep_nm: float, *, spacing_nm: float = 1.6, start_nm: float = 1.0, stop_nm: float = 14.5,
              seed=0) -> np.ndarray:
    """Isolated pairs ``sep_nm`` apart (nm), centred on a square grid ``start_nm, start_nm + spacing_nm, ...``
    (below ``stop_nm``) in both directions, each pair at a random orientation: ``(2 · pairs, 2)`` positions in nm
    (x, y), partners next to each other. The test pattern for close-pair splitting and pair-distance bias."""
    rng = _rng(seed)
    centres = np.arange(start_nm, stop_nm, spacing_nm)
    xy = []
    for cx in centres:
        for cy in centres:
            t = rng.uniform(0, np.pi)
            d = sep_nm / 2 * np.array([np.cos(t), np.sin(t)])
            xy += [np.array([cx, cy]) + d, np.array([cx, cy]) - d]
    return np.asarray(xy, float).reshape(-1, 2)


def _range(value, name: str) -> tuple[float, float]:
    """``value`` as a (lo, hi) range: one number gives (v, v); DetectionInputError on anything else."""
    try:
        lo, hi = (float(value), float(value)) if np.isscalar(value) else map(float, value)
    except (TypeError, ValueError):
        raise DetectionInputError(f"{name}: expected a number or a (lo, hi) pair, got {value!r}") from None
    if not (np.isfinite(lo) and np.isfinite(hi) and lo <= hi):
        raise DetectionInputError(f"{name}: expected finite lo <= hi, got {value!r}")
    return lo, hi


def _element_list(elements, n: int) -> list[str]:
    if elements is None:
        return ["Pt"] * n
    if isinstance(elements, str):
        return [elements] * n
    els = [str(e) for e in elements]
    if len(els) != n:
        raise DetectionInputError(f"elements: {len(els)} symbols for {n} atoms")
    return els


def _background_signal(p: dict, shape, px: float, support, rng_support, rng_thick, rng_tex):
    """The noiseless signal without atoms (vacuum level + support · thickness · (1 + texture) + film texture) and
    the boolean support, drawn from the three field streams of :func:`simulate_image`."""
    if support is None:
        sup = support_mask(
            shape,
            pixel_size_nm=px,
            vacuum_fraction=p["vacuum_fraction"],
            edge_nm=p["vacuum_edge_nm"],
            seed=rng_support,
        )
    else:
        sup = np.clip(np.asarray(support, dtype=float), 0.0, 1.0)
        if sup.shape != shape:
            raise DetectionInputError(f"support: shape {sup.shape} differs from image shape {shape}")
    on_support = sup > 0.5
    if sup.min() < 0.5 and p["vacuum_taper"] > 0:  # the film thins towards the vacuum edge
        wide = ndi.gaussian_filter(sup, p["vacuum_taper_nm"] / px, mode="nearest")
        sup = sup * (1.0 - p["vacuum_taper"] * (1.0 - wide))
    thick = 1.0 + p["thickness_sd"] * _smooth_field(shape, p["thickness_scale_nm"] / px, rng_thick)
    thick = np.clip(thick, 0.2, None)
    tex = np.zeros(shape)
    for s_nm in p["texture_scales_nm"]:
        tex += _gaussian_field(shape, max(s_nm / px, 0.5), rng_tex)
    tex *= p["texture_sd"] / max(tex.std(), 1e-12)
    carbon = sup * thick * (1.0 + tex)
    carbon /= carbon[on_support].mean() if on_support.any() else 1.0
    signal = p["vacuum_level"] + carbon
    if p["vacuum_texture_sd"] > 0:  # the 'vacuum' film (thin carbon, contamination) has texture of its own
        vt = np.zeros(shape)
        for s_nm in p["texture_scales_nm"]:
            vt += _gaussian_field(shape, max(s_nm / px, 0.5), rng_tex)
        signal += p["vacuum_level"] * p["vacuum_texture_sd"] / max(vt.std(), 1e-12) * vt

    return signal, on_support


#: Keywords of ``DEFAULTS`` that the background fields depend on (a :class:`Background` holds their values).
BACKGROUND_KEYS: tuple[str, ...] = ("vacuum_fraction", "vacuum_edge_nm", "vacuum_taper", "vacuum_taper_nm",
                                    "thickness_sd", "thickness_scale_nm", "texture_sd", "texture_scales_nm",
                                    "vacuum_level", "vacuum_texture_sd")


@dataclass(frozen=True)
class Background:
    """The atom-free, noise-free part of a simulated image (:func:`simulate_background`): ``signal`` (float64,
    simulator units, before the dark level), ``on_support`` (True = carbon) and the pixel size (nm) and
    ``params`` (:data:`BACKGROUND_KEYS`) it was drawn with."""

    signal: np.ndarray
    on_support: np.ndarray
    pixel_size_nm: float
    params: dict

    def check(self, shape, pixel_size_nm: float, p: dict) -> None:
        """DetectionInputError unless this background was drawn for ``shape``, ``pixel_size_nm`` and the field
        parameters of ``p``."""
        if self.signal.shape != tuple(shape):
            raise DetectionInputError(f"background: shape {self.signal.shape} differs from image shape {tuple(shape)}")
        if not np.isclose(self.pixel_size_nm, pixel_size_nm, rtol=1e-9, atol=0):
            raise DetectionInputError(f"background: drawn at {self.pixel_size_nm} nm/px, image at {pixel_size_nm}")
        diff = [k for k in BACKGROUND_KEYS if np.any(np.asarray(self.params[k]) != np.asarray(p[k]))]
        if diff:
            raise DetectionInputError(f"background: drawn with other {', '.join(diff)} than the image's")


def _checked_options(caller: str, kw: dict, shape, pixel_size_nm: float) -> tuple[dict, tuple[int, int]]:
    """``(DEFAULTS updated by kw, shape as ints)``, or :class:`DetectionInputError` naming an unknown option, a
    shape that is not two sizes >= 8 px or a pixel size (nm/px) that is not a positive number."""
    unknown = set(kw) - set(DEFAULTS)
    if unknown:
        raise DetectionInputError(f"{caller}: unknown option(s) {sorted(unknown)}")
    shape = tuple(int(s) for s in shape)
    if len(shape) != 2 or min(shape) < 8:
        raise DetectionInputError(f"shape must be two sizes >= 8 px, got {shape}")
    if not (np.isfinite(pixel_size_nm) and pixel_size_nm > 0):
        raise DetectionInputError(f"pixel_size_nm must be > 0, got {pixel_size_nm}")
    return {**DEFAULTS, **kw}, shape


def simulate_background(*, shape=(512, 512), pixel_size_nm: float = REFERENCE_PIXEL_NM, seed=0, support=None,
                        **kw) -> Background:
    """The support, thickness and texture fields of ``simulate_image(..., seed=seed, support=support, **kw)``,
    drawn once (they are most of the simulator's cost: ~0.15 s of a 512² image's ~0.2 s).

    ``simulate_image(xy, seed=s, background=simulate_background(seed=s, ...), ...)`` with the same seed, shape,
    pixel size and keywords returns exactly ``simulate_image(xy, seed=s, ...)``; with another seed ``t`` it
    returns the image of seed ``t`` on the background of seed ``s`` (atoms' peak spread and all noise from
    ``t``): many images on one background, e.g. null patterns rendered at a fixed imaging. Keywords as
    :func:`simulate_image` (those outside :data:`BACKGROUND_KEYS` are checked and ignored)."""
    p, shape = _checked_options("simulate_background", kw, shape, pixel_size_nm)
    rng = _rng(seed)
    rng_support, rng_thick, rng_tex = (np.random.default_rng(s) for s in rng.integers(0, 2**63, 5)[:3])
    signal, on_support = _background_signal(p, shape, float(pixel_size_nm), support, rng_support, rng_thick,
                                            rng_tex)
    return Background(signal, on_support, float(pixel_size_nm), {k: p[k] for k in BACKGROUND_KEYS})


def simulate_image(
    xy_nm,
    *,
    shape=(512, 512),
    pixel_size_nm: float = REFERENCE_PIXEL_NM,
    elements=None,
    seed=0,
    z_exponent: float = 1.7,
    noise: bool = True,
    support=None,
    background=None,
    **kw,
):
    """Simulate a HAADF-STEM image with metal atoms at ``xy_nm`` ((N, 2) array of x = column, y = row, nm).

    ``elements``: None (all Pt), one symbol, or one symbol per atom (contrast ∝ Z^``z_exponent``).
    ``kw`` overrides the calibrated defaults in ``DEFAULTS`` (probe_fwhm_nm, spread_fwhm_nm, peak_pt,
    peak_sd, dose_per_nm2, dark_level, vacuum_level, thickness_sd, thickness_scale_nm, texture_sd,
    texture_scales_nm, line_noise, line_jitter_px, vacuum_fraction, vacuum_edge_nm, vacuum_taper,
    vacuum_taper_nm, vacuum_texture_sd); ``noise=False`` gives the noiseless expectation (no shot, scan-line or jitter noise). ``support`` (optional array of ``shape``, 1 = carbon,
    0 = vacuum) replaces the random vacuum region of ``vacuum_fraction``. ``background`` (optional, a
    :class:`Background` from :func:`simulate_background` with this shape, pixel size and field keywords) replaces
    the support, thickness and texture fields (``support`` is then ignored); the atoms and the noise still come
    from ``seed``.

    Returns ``(image, truth)``: a float32 array of ``shape`` (rows, columns) and a DataFrame with one row per
    atom inside the field: ``x_px, y_px, x_nm, y_nm, element, intensity`` (``x_px = x_nm / pixel_size_nm``;
    ``intensity`` = the atom's integrated signal above the background, image units · px², i.e. its Gaussian's
    peak · 2πσ²). Atoms are drawn wherever they are given (also over vacuum). ``truth.attrs`` holds the pixel
    size, seed, the support fraction and the atoms' Gaussian width ``sigma_px``. Same seed, same image.
    """
    p, shape = _checked_options("simulate_image", kw, shape, pixel_size_nm)
    xy = np.asarray(xy_nm, dtype=float).reshape(-1, 2) if np.size(xy_nm) else np.empty((0, 2))
    if not np.all(np.isfinite(xy)):
        raise DetectionInputError("xy_nm: coordinates must be finite")
    els = _element_list(elements, len(xy))
    amp = np.array([relative_contrast(e, z_exponent) for e in els]) * p["peak_pt"]

    rng = _rng(seed)
    rng_support, rng_thick, rng_tex, rng_noise, rng_amp = (
        np.random.default_rng(s) for s in rng.integers(0, 2**63, 5)
    )
    if p["peak_sd"] > 0 and len(amp):
        amp = amp * rng_amp.lognormal(-0.5 * p["peak_sd"] ** 2, p["peak_sd"], len(amp))
    px = pixel_size_nm
    if background is None:
        signal, on_support = _background_signal(p, shape, px, support, rng_support, rng_thick, rng_tex)
    else:
        if not isinstance(background, Background):
            raise DetectionInputError("background: expected a Background from simulate_background, got "
                                      f"{type(background).__name__}")
        background.check(shape, px, p)
        signal, on_support = background.signal.astype(float), background.on_support

    # atoms: Gaussian PSF, peak normalised to the continuous probe+spread profile, pixel box added
    s2_nm = (p["probe_fwhm_nm"] ** 2 + p["spread_fwhm_nm"] ** 2) * FWHM_TO_SIGMA**2
    s2_px = s2_nm / px**2 + 1.0 / 12.0
    height_scale = (s2_nm / px**2) / s2_px
    sig = np.sqrt(s2_px)
    half = int(np.ceil(4.5 * sig))
    xy_px = xy / px
    for (x, y), a in zip(xy_px, amp):
        c0, r0 = int(round(x)), int(round(y))
        r_lo, r_hi = max(r0 - half, 0), min(r0 + half + 1, shape[0])
        c_lo, c_hi = max(c0 - half, 0), min(c0 + half + 1, shape[1])
        if r_lo >= r_hi or c_lo >= c_hi:
            continue
        gy = np.exp(-((np.arange(r_lo, r_hi) - y) ** 2) / (2 * s2_px))
        gx = np.exp(-((np.arange(c_lo, c_hi) - x) ** 2) / (2 * s2_px))
        signal[r_lo:r_hi, c_lo:c_hi] += a * height_scale * gy[:, None] * gx[None, :]

    if p["line_jitter_px"] > 0 and noise:
        shifts = rng_noise.normal(0.0, p["line_jitter_px"], shape[0])
        cols = np.arange(shape[1], dtype=float)
        signal = np.stack([np.interp(cols + s, cols, row) for s, row in zip(shifts, signal)])
    if noise:
        dose_px = p["dose_per_nm2"] * px * px
        counts = rng_noise.poisson(np.clip(signal, 0, None) * dose_px)
        image = counts / dose_px
        image *= 1.0 + p["line_noise"] * rng_noise.standard_normal(shape[0])[:, None]
    else:
        image = signal
    image = (image + p["dark_level"]).astype(np.float32)

    inside = (
        (xy_px[:, 0] >= -0.5)
        & (xy_px[:, 0] < shape[1] - 0.5)
        & (xy_px[:, 1] >= -0.5)
        & (xy_px[:, 1] < shape[0] - 0.5)
    )
    truth = pd.DataFrame(
        {
            "x_px": xy_px[inside, 0],
            "y_px": xy_px[inside, 1],
            "x_nm": xy[inside, 0],
            "y_nm": xy[inside, 1],
            "element": np.array(els, dtype=object)[inside],
            "intensity": (amp * height_scale * 2 * np.pi * s2_px)[inside] if len(amp) else np.empty(0),
        }
    )
    truth.attrs.update(
        sigma_px=float(sig),
        pixel_size_nm=px,
        seed=None if isinstance(seed, np.random.Generator) else seed,
        support_fraction=float(on_support.mean()),
    )
    return image, truth


def simulate_sample(
    density_nm2: float,
    *,
    shape=(512, 512),
    pixel_size_nm: float = REFERENCE_PIXEL_NM,
    elements=None,
    seed=0,
    min_dist_nm: float | None = None,
    dimer_fraction: float | None = None,
    dimer_nm=None,
    trimer_fraction: float | None = None,
    trimer_angle_deg=None,
    margin_nm: float = 0.0,
    arrangement: str | None = None,
    **kw,
):
    """Random sample: atoms at ``density_nm2`` per nm² of *support* (none over vacuum), then
    ``simulate_image``.

    ``arrangement`` (one of :data:`ARRANGEMENTS`: ``random`` = complete spatial randomness, ``hardcore``,
    ``multimer``) sets the geometry keywords; an explicit ``min_dist_nm``, ``dimer_fraction``, ``dimer_nm``,
    ``trimer_fraction`` or ``trimer_angle_deg`` overrides it; without an arrangement the defaults are a
    0.25-nm hard core, no multimers, 0.22-nm bonds, equilateral trimers. ``elements``: None (Pt), a symbol,
    or a dict ``{symbol: fraction}`` (fractions normalised; each atom drawn independently). Other keywords
    as ``random_positions`` and ``simulate_image``. Returns ``(image, truth, support)`` with ``support`` the
    boolean support mask (True = carbon) used to place the atoms; ``truth`` has a ``unit`` column (atoms of one
    dimer / trimer share it).
    """
    if arrangement is not None and arrangement not in ARRANGEMENTS:
        raise DetectionInputError(f"arrangement: {arrangement!r} is not one of {sorted(ARRANGEMENTS)}")
    geo = {**GEOMETRY_DEFAULTS, **(ARRANGEMENTS[arrangement] if arrangement else {})}
    given = dict(min_dist_nm=min_dist_nm, dimer_fraction=dimer_fraction, dimer_nm=dimer_nm,
                 trimer_fraction=trimer_fraction, trimer_angle_deg=trimer_angle_deg)
    geo.update({k: v for k, v in given.items() if v is not None})
    rng = _rng(seed)
    s_mask, s_pos, s_el, s_img = rng.integers(0, 2**63, 4)
    p = {**DEFAULTS, **kw}
    soft = support_mask(
        shape,
        pixel_size_nm=pixel_size_nm,
        vacuum_fraction=p["vacuum_fraction"],
        edge_nm=p["vacuum_edge_nm"],
        seed=s_mask,
    )
    sup = soft > 0.5
    # atoms go where pixel centres are, [0, size - 1] px; their number is density × the image's own area
    field = ((shape[1] - 1) * pixel_size_nm, (shape[0] - 1) * pixel_size_nm)
    area = shape[0] * shape[1] * pixel_size_nm**2
    xy, unit = random_positions(
        density_nm2,
        field,
        seed=s_pos,
        margin_nm=margin_nm,
        mask=None if sup.all() else sup,
        pixel_size_nm=pixel_size_nm,
        return_groups=True,
        area_nm2=area - 2 * margin_nm * (shape[0] + shape[1]) * pixel_size_nm + 4 * margin_nm**2,
        **geo,
    )
    if isinstance(elements, dict):
        syms = list(elements)
        w = np.array([float(elements[s]) for s in syms])
        if np.any(w < 0) or w.sum() <= 0:
            raise DetectionInputError(f"elements: fractions must be >= 0 and not all 0, got {elements}")
        els = list(np.random.default_rng(s_el).choice(syms, size=len(xy), p=w / w.sum()))
    else:
        els = elements
    image, truth = simulate_image(
        xy,
        shape=shape,
        pixel_size_nm=pixel_size_nm,
        elements=els,
        seed=np.random.default_rng(s_img),
        support=soft,
        **kw,
    )
    # simulate_image keeps the atoms inside the field: all of them here (clipped above)
    truth.insert(len(truth.columns), "unit", unit[: len(truth)])
    truth.attrs["seed"] = seed if not isinstance(seed, np.random.Generator) else None
    truth.attrs["arrangement"] = arrangement
    truth.attrs.update({k: (list(v) if isinstance(v, tuple) else v) for k, v in geo.items()})
    return image, truth, sup


def save_tiff(path, image, pixel_size_nm: float) -> Path:
    """Write ``image`` as a float32 TIFF that carries its pixel size like the shared images.

    Resolution tags hold pixels per nm with ``unit=nm`` in the ImageJ description (ImageJ convention), and the
    HyperSpy private tags 65009/65010 (scale) and 65003/65004 (unit ``nm``) hold the pixel size directly, so
    ``sacmap.detection.io.read_image`` reads it back. Written atomically (:mod:`sacmap.core.atomic`).
    """
    import tifffile

    path = Path(path)
    img = np.asarray(image, dtype=np.float32)
    if img.ndim != 2:
        raise DetectionInputError(f"{path}: image must be 2-D, got shape {img.shape}")
    if not (np.isfinite(pixel_size_nm) and pixel_size_nm > 0):
        raise DetectionInputError(f"{path}: pixel_size_nm must be > 0, got {pixel_size_nm}")
    extratags = [
        (65003, "s", 0, "nm", False),
        (65004, "s", 0, "nm", False),
        (65009, "d", 1, float(pixel_size_nm), False),
        (65010, "d", 1, float(pixel_size_nm), False),
    ]
    return atomic_write_with(path, lambda tmp: tifffile.imwrite(
        tmp,
        img,
        imagej=True,
        resolution=(1.0 / pixel_size_nm, 1.0 / pixel_size_nm),
        metadata={"unit": "nm", "axes": "YX"},
        extratags=extratags,
    ))


#: Columns of a simulator truth CSV (positions in px and nm, x = column, y = row).
TRUTH_COLUMNS: tuple[str, ...] = ("x_px", "y_px", "x_nm", "y_nm", "element", "intensity", "unit")


def write_truth_csv(path, truth: pd.DataFrame) -> Path:
    """Write a truth table (:data:`TRUTH_COLUMNS` that it has, 4 decimals) atomically; returns the path."""
    cols = [c for c in TRUTH_COLUMNS if c in truth.columns]
    return atomic_write(path, truth[cols].to_csv(index=False, float_format="%.4f"))


#: Metals of the randomised sets (HAADF contrast ∝ Z^1.7: Ni 28, Ru 44, Rh 45, Pd 46, Pt 78).
METALS: tuple[str, ...] = ("Ni", "Ru", "Rh", "Pd", "Pt")

#: Ranges of :func:`draw_conditions` (issue 14 item 1). Densities log-uniform, ``dose_factor`` and
#: ``contrast_factor`` log-uniform multiples of the calibrated dose / Pt peak; lengths in nm.
CONDITION_RANGES = dict(
    density_nm2=(0.3, 8.0),
    pixel_size_nm=(0.015, 0.05),
    spread_fwhm_nm=(0.08, 0.30),
    probe_fwhm_nm=(0.07, 0.12),
    dose_factor=(0.3, 4.0),
    contrast_factor=(0.8, 2.0),
    peak_sd=(0.05, 0.25),
    thickness_sd=(0.05, 0.4),
    texture_sd=(0.01, 0.09),
    line_noise=(0.0, 0.02),
    line_jitter_px=(0.0, 0.3),
)


def draw_conditions(seed=0, *, arrangements=tuple(ARRANGEMENTS), metals=METALS, ranges=None) -> dict:
    """One random imaging condition and sample (keywords of :func:`simulate_sample`, JSON-able).

    Drawn from :data:`CONDITION_RANGES` (``ranges`` overrides entries): density (atoms/nm², log-uniform),
    arrangement, pixel size (nm/px), atom width (``spread_fwhm_nm`` added to the probe), probe FWHM, dose
    (× the calibrated 6.3·10⁴ counts/nm²), Pt peak (× the calibrated 0.36), per-atom peak spread, carbon
    thickness and texture (sd and scales), scan-line noise and jitter, a vacuum region (in 30 % of the draws),
    and the elements: one of ``metals`` (half the draws) or an equal-share mixture of two or three. Same seed,
    same draw. A domain-randomised training or test set is ``[simulate_sample(**draw_conditions(s)) ...]``.
    """
    rng = _rng(seed)
    r = {**CONDITION_RANGES, **(ranges or {})}

    def uni(k):
        lo, hi = _range(r[k], k)
        return float(rng.uniform(lo, hi))

    def logu(k):
        lo, hi = _range(r[k], k)
        return float(np.exp(rng.uniform(np.log(lo), np.log(hi))))

    arrangements = list(arrangements)
    metals = [str(m) for m in metals]
    n_el = 1 if rng.random() < 0.5 or len(metals) == 1 else int(rng.integers(2, min(3, len(metals)) + 1))
    els = sorted(rng.choice(metals, size=n_el, replace=False).tolist(), key=atomic_number)
    scale = rng.uniform(0.7, 1.4)
    c = dict(
        density_nm2=logu("density_nm2"),
        arrangement=str(arrangements[int(rng.integers(len(arrangements)))]),
        pixel_size_nm=uni("pixel_size_nm"),
        spread_fwhm_nm=uni("spread_fwhm_nm"),
        probe_fwhm_nm=uni("probe_fwhm_nm"),
        dose_per_nm2=DEFAULTS["dose_per_nm2"] * logu("dose_factor"),
        peak_pt=DEFAULTS["peak_pt"] * logu("contrast_factor"),
        peak_sd=uni("peak_sd"),
        thickness_sd=uni("thickness_sd"),
        texture_sd=uni("texture_sd"),
        texture_scales_nm=[round(s * scale, 4) for s in DEFAULTS["texture_scales_nm"]],
        line_noise=uni("line_noise"),
        line_jitter_px=uni("line_jitter_px"),
        vacuum_fraction=float(rng.uniform(0.1, 0.4)) if rng.random() < 0.3 else 0.0,
        elements={e: 1.0 for e in els} if len(els) > 1 else els[0],
    )
    return c


#: Suffix of the JSON written beside each simulated image: the conditions it was made with.
CONDITIONS_SUFFIX = "_sim.json"


def simulate_dataset(
    outdir,
    n_images: int = 1,
    *,
    seed=0,
    prefix: str = "sim",
    shape=(512, 512),
    pixel_size_nm: float = REFERENCE_PIXEL_NM,
    density_nm2: float = 1.0,
    randomise: bool = False,
    progress: bool = False,
    **kw,
) -> list[Path]:
    """Write ``n_images`` simulated samples to ``outdir``: ``<prefix>_NNN.tif`` + ``<prefix>_NNN.csv``
    (truth, :data:`TRUTH_COLUMNS`) + ``<prefix>_NNN_sim.json`` (the conditions, :data:`CONDITIONS_SUFFIX`).

    Image i uses seed ``[seed, i]``; other keywords as ``simulate_sample`` (density per nm² of support,
    arrangement, elements, dimer/trimer fractions, vacuum_fraction, the ``DEFAULTS`` such as ``spread_fwhm_nm``
    or ``peak_pt``, ...); a keyword given as None keeps its default, and ``elements`` may also be a list of
    symbols drawn in equal shares. ``randomise``: each image's conditions are drawn by :func:`draw_conditions`
    (density, arrangement, pixel size, widths, dose, contrast, texture, metals); keywords given here override
    the draw (``density_nm2`` and ``pixel_size_nm`` only when ``randomise`` is False, elements when given).
    The JSON's ``seed`` and conditions reproduce the image: ``simulate_sample(shape=..., seed=
    np.random.default_rng(seed), **conditions)``. Returns the TIFF paths.
    """
    from sacmap.core.atomic import write_json

    kw = {k: v for k, v in kw.items() if v is not None}
    if isinstance(kw.get("elements"), (list, tuple)):
        kw["elements"] = {str(e): 1.0 for e in kw["elements"]}
    outdir = Path(outdir)
    out = []
    it = range(int(n_images))
    if progress:
        from tqdm import tqdm

        it = tqdm(it, desc="simulate", unit="image")
    for i in it:
        rng = np.random.default_rng([int(seed), i])  # the sample; the conditions from their own stream
        if randomise:
            cond = {**draw_conditions(np.random.default_rng([int(seed), i, 1])), **kw}
        else:
            cond = dict(density_nm2=density_nm2, pixel_size_nm=pixel_size_nm, **kw)
        image, truth, _ = simulate_sample(shape=shape, seed=rng, **cond)
        stem = f"{prefix}_{i:03d}"
        out.append(save_tiff(outdir / f"{stem}.tif", image, cond["pixel_size_nm"]))
        write_truth_csv(outdir / f"{stem}.csv", truth)
        meta = {**cond, "seed": [int(seed), i], "shape": list(shape), "n_atoms": len(truth),
                "sigma_px": truth.attrs.get("sigma_px")}
        meta.update({k: truth.attrs.get(k) for k in GEOMETRY_DEFAULTS})
        write_json(outdir / f"{stem}{CONDITIONS_SUFFIX}", meta, indent=1)
    return out
