"""DFT-biased point sampler (coordinates in nm, energies in eV).

The paper's model: after two uniform points, each next point is drawn from a probability field on a fine grid,
the product of a term that biases the nearest-neighbour-distance (NND) distribution toward a Rayleigh
distribution of scale ``σ`` and a population term ``exp(-ΔE/kT)`` from the DFT site–site potential; the field
is updated after every accepted point. Concretely, for a grid cell ``g`` whose distance to the nearest accepted
point is ``d(g)`` and whose pair energy with the accepted points is ``E(g) = Σ_p ΔE(|g - p|)``:

    w(g) = exp( d̃² (1/(2σ₀²) − 1/(2σ²)) ) · exp( −E(g) / kT ),      d̃ = min(d(g), d_cap)

The first factor is the ratio of the target Rayleigh(σ) density to the Rayleigh(σ₀) NND density of a Poisson
pattern at the target density, ``σ₀ = 1/√(2πρ)``: a uniform proposal has NND density ≈ Rayleigh(σ₀), so
weighting by the ratio turns the new point's NND distribution into Rayleigh(σ). ``σ = σ₀`` and ``kT = ∞``
give back the random sampler; ``σ > σ₀`` is repulsive, ``σ < σ₀`` attractive. ``d_cap = tail · max(σ, σ₀)``
(3.5 by default, where both Rayleigh tails are below 0.3 %) keeps the field bounded and the updates local.
``ΔE(r)`` is the site–site potential (relative to the furthest pair) interpolated linearly, clamped to its
value at the shortest tabulated separation below it and 0 beyond the longest one.

Speed: the grid holds ``d(g)``, ``E(g)`` and ``w(g)`` with row sums; an accepted point only changes cells within
``max(d_cap, r_cut)`` of it, so each step costs a window update plus two cumulative sums (a row, then a cell in
it) instead of a rescan of all points over all cells (:func:`dft_run_naive`, kept for tests and benchmarks).
"""

from __future__ import annotations

import re
from pathlib import Path

import numpy as np

from sacmap.analysis.errors import AnalysisInputError
from sacmap.analysis.spatial.observation import Observation
from sacmap.analysis.spatial.samplers.fit import fit_dft_sampler
from sacmap.analysis.spatial.samplers.point import _check_counts, default_region, run_rngs
from sacmap.analysis.spatial.window import Region


def normalise_site_kinds(s: str) -> str:
    """``3xN6-4N`` / ``3×N6-4N`` → ``3N-4N`` (the conventions' spelling)."""
    return re.sub(r"(\d)\s*[x×]\s*N\d*", r"\1N", str(s).strip())


class SiteSitePotential:
    """``ΔE(r)`` (eV) against centre–centre separation (nm), from ``site_site_potential.csv`` (Å on disk)."""

    def __init__(self, separation_nm, energy_eV, label: str = ""):
        r = np.asarray(separation_nm, dtype=float)
        e = np.asarray(energy_eV, dtype=float)
        if r.shape != e.shape or r.ndim != 1 or r.size < 2:
            raise AnalysisInputError("site-site potential: need at least two (separation, energy) rows")
        if not (np.all(np.isfinite(r)) and np.all(np.isfinite(e))):
            raise AnalysisInputError("site-site potential: NaN or infinite separation/energy")
        if np.any(r <= 0):
            raise AnalysisInputError("site-site potential: separations must be positive")
        ur, inv = np.unique(np.round(r, 9), return_inverse=True)
        if ur.size < 2:
            raise AnalysisInputError("site-site potential: need at least two distinct separations")
        ue = np.bincount(inv, weights=e) / np.bincount(inv)
        self.separation_nm, self.energy_eV, self.label = ur, ue - ue[-1], label
        self.r_cut_nm = float(ur[-1])

    LUT_STEP_NM = 1e-4

    def __call__(self, r_nm: np.ndarray) -> np.ndarray:
        r = np.asarray(r_nm, dtype=float)
        return np.where(r < self.r_cut_nm, np.interp(r, self.separation_nm, self.energy_eV), 0.0)

    def lookup(self, r_nm: np.ndarray) -> np.ndarray:
        """``ΔE(r)`` from a table at 0.1 pm spacing (nearest entry): what the samplers use, ~3x faster than
        interpolating, and within 0.05 pm × the steepest slope of :meth:`__call__`."""
        if not hasattr(self, "_lut"):
            grid = np.arange(0.0, self.r_cut_nm + 2 * self.LUT_STEP_NM, self.LUT_STEP_NM)
            self._lut = self(grid)
        idx = np.minimum((np.asarray(r_nm) * (1.0 / self.LUT_STEP_NM) + 0.5).astype(np.int64), self._lut.size - 1)
        return self._lut[idx]

    @classmethod
    def from_table(cls, table, site_kinds: str | None = None, source: str = "table",
                   settings: str | None = None) -> SiteSitePotential:
        """From a DataFrame with ``site_kinds, separation_A, energy_eV``.

        ``site_kinds``: which curve; None with one kind in the table takes it, None or ``"envelope"`` with
        several takes, at each separation, the lowest energy of any kind (the most favourable site pair).
        Tables from several calculation set-ups (``settings`` / ``n_sheet_points`` columns, each relative to its
        own furthest pair) are never mixed: ``settings`` picks one, otherwise the set-up with most rows is used.
        """
        missing = [c for c in ("separation_A", "energy_eV") if c not in table.columns]
        if missing:
            raise AnalysisInputError(f"{source}: missing column(s) {', '.join(missing)}")
        if len(table) == 0:
            raise AnalysisInputError(f"{source}: no rows")
        import pandas as pd

        t = table.copy()
        setup_cols = [c for c in ("settings", "n_sheet_points") if c in t.columns]
        setup_note = ""
        if settings is not None:
            if "settings" not in t.columns:
                raise AnalysisInputError(f"{source}: no settings column to choose {settings!r} from")
            t = t[t["settings"].astype(str) == str(settings)]
            if len(t) == 0:
                raise AnalysisInputError(f"{source}: no rows with settings {settings!r}")
        for c in ("separation_A", "energy_eV"):
            t[c] = pd.to_numeric(t[c], errors="coerce")
            if t[c].isna().any():
                raise AnalysisInputError(f"{source}: column {c} has empty or non-numeric values "
                                         f"(row {int(np.flatnonzero(t[c].isna().to_numpy())[0])})")
        kinds = t["site_kinds"].astype(str).map(normalise_site_kinds) if "site_kinds" in t.columns else \
            pd.Series([""] * len(t))
        t["site_kinds"] = kinds.to_numpy()
        available = sorted(set(t["site_kinds"]))
        if site_kinds not in (None, "envelope"):
            want = normalise_site_kinds(site_kinds)
            t = t[t["site_kinds"] == want]
            if len(t) == 0:
                raise AnalysisInputError(f"{source}: no rows with site_kinds {want!r} (have {', '.join(available)})")
            label = want
        if setup_cols:  # one calculation set-up only (after choosing the kind, so the kind is kept)
            keys = t[setup_cols].astype(str).agg("|".join, axis=1)
            if keys.nunique() > 1:
                counts = keys.value_counts()
                best = sorted(counts[counts == counts.max()].index)[0]
                t = t[keys == best]
                setup_note = f" [{best}]"
                available = sorted(set(t["site_kinds"]))
        if site_kinds not in (None, "envelope"):
            pass  # label set above
        elif len(available) == 1:
            label = available[0]
        else:
            t = t.assign(_r=t["separation_A"].round(6)).groupby("_r", as_index=False)["energy_eV"].min()
            t = t.rename(columns={"_r": "separation_A"})
            label = "envelope(" + ",".join(available) + ")"
        return cls(t["separation_A"].to_numpy() / 10.0, t["energy_eV"].to_numpy(), label=label + setup_note)

    @classmethod
    def read_csv(cls, path, site_kinds: str | None = None, settings: str | None = None) -> SiteSitePotential:
        import pandas as pd

        path = Path(path)
        if not path.is_file():
            raise FileNotFoundError(f"site-site potential file not found: {path}")
        try:
            table = pd.read_csv(path)
        except pd.errors.EmptyDataError as exc:
            raise AnalysisInputError(f"{path}: empty file") from exc
        return cls.from_table(table, site_kinds, source=str(path), settings=settings)

    def describe(self) -> dict:
        return {"label": self.label, "r_cut_nm": self.r_cut_nm, "n_separations": int(self.separation_nm.size),
                "min_energy_eV": float(self.energy_eV.min()), "max_energy_eV": float(self.energy_eV.max())}


def _coerce_potential(potential, site_kinds=None, settings=None) -> SiteSitePotential | None:
    if potential is None or isinstance(potential, SiteSitePotential):
        return potential
    if isinstance(potential, (str, Path)):
        return SiteSitePotential.read_csv(potential, site_kinds, settings)
    return SiteSitePotential.from_table(potential, site_kinds, settings=settings)


class _Grid:
    """Cell centres of a fine grid covering the region (cells tile the bounding rectangle exactly)."""

    def __init__(self, region: Region, grid_nm: float):
        if not (np.isfinite(grid_nm) and grid_nm > 0):
            raise AnalysisInputError(f"grid spacing must be positive (nm), got {grid_nm!r}")
        self.nx = max(1, int(np.ceil(region.width_nm / grid_nm)))
        self.ny = max(1, int(np.ceil(region.height_nm / grid_nm)))
        if self.nx * self.ny > 200_000_000:
            raise AnalysisInputError(f"grid of {self.nx} × {self.ny} cells is too large; use a coarser grid_nm")
        self.hx, self.hy = region.width_nm / self.nx, region.height_nm / self.ny
        self.x0, self.y0 = region.x0, region.y0
        self.xc = region.x0 + (np.arange(self.nx) + 0.5) * self.hx
        self.yc = region.y0 + (np.arange(self.ny) + 0.5) * self.hy
        if region.is_mask:
            xx, yy = np.meshgrid(self.xc, self.yc)
            self.support = region.contains(np.column_stack([xx.ravel(), yy.ravel()])).reshape(self.ny, self.nx)
        else:
            self.support = None

    def draw(self, F: np.ndarray, rowsum: np.ndarray, u: np.ndarray) -> np.ndarray:
        cs = np.cumsum(rowsum)
        if not cs[-1] > 0:
            raise AnalysisInputError("DFT-biased sampler: the probability field vanished everywhere "
                                     "(kT too small or σ far from the density's NND scale)")
        i = min(int(np.searchsorted(cs, u[0] * cs[-1], side="right")), self.ny - 1)
        row = np.cumsum(F[i])
        j = min(int(np.searchsorted(row, u[1] * row[-1], side="right")), self.nx - 1)
        return np.array([self.xc[j] + (u[2] - 0.5) * self.hx, self.yc[i] + (u[3] - 0.5) * self.hy])


def auto_grid_nm(n_points: int, region: Region) -> float:
    """Default field grid spacing (nm): σ₀/10 clipped to [0.01, 0.05] nm (0.02 nm at 4 atoms/nm²)."""
    sigma0 = 1.0 / np.sqrt(2.0 * np.pi * n_points / region.area_nm2)
    return float(np.clip(sigma0 / 10.0, 0.01, 0.05))


def _field_params(n_points: int, region: Region, sigma_nm: float | None, tail: float):
    sigma0 = 1.0 / np.sqrt(2.0 * np.pi * n_points / region.area_nm2)
    sigma = sigma0 if sigma_nm is None else float(sigma_nm)
    if not (np.isfinite(sigma) and sigma > 0):
        raise AnalysisInputError(f"σ must be a positive distance in nm, got {sigma_nm!r}")
    if not (np.isfinite(tail) and tail > 0):
        raise AnalysisInputError(f"tail must be positive, got {tail!r}")
    a = 0.5 / sigma0**2 - 0.5 / sigma**2
    d_cap = tail * max(sigma, sigma0)
    return a, d_cap


def dft_run(n_points: int, region: Region, rng: np.random.Generator, sigma_nm: float | None = None,
            beta_per_eV: float = 0.0, potential: SiteSitePotential | None = None, grid_nm: float | None = None,
            tail: float = 3.5) -> np.ndarray:
    """One run of the DFT-biased sampler with local field updates: ``(n_points, 2)`` in nm.

    ``grid_nm`` None: :func:`auto_grid_nm`."""
    a, d_cap = _field_params(n_points, region, sigma_nm, tail)
    beta = float(beta_per_eV) if potential is not None else 0.0
    g = _Grid(region, auto_grid_nm(n_points, region) if grid_nm is None else grid_nm)
    r_cut = potential.r_cut_nm if beta > 0 else 0.0
    reach = max(d_cap, r_cut)
    wi, wj = int(np.ceil(reach / g.hy)) + 1, int(np.ceil(reach / g.hx)) + 1
    D = np.full((g.ny, g.nx), d_cap)
    E = np.zeros((g.ny, g.nx)) if beta > 0 else None
    F = np.ones((g.ny, g.nx)) if g.support is None else g.support.astype(float)
    rowsum = F.sum(axis=1)
    pts = np.empty((n_points, 2))
    k0 = min(2, n_points)
    pts[:k0] = region.sample_uniform(k0, rng)
    u_all = rng.random((max(n_points - k0, 0), 4))
    for k in range(n_points):
        if k >= k0:
            pts[k] = g.draw(F, rowsum, u_all[k - k0])
        if k == n_points - 1:
            break
        px, py = pts[k]
        ic, jc = int((py - g.y0) / g.hy), int((px - g.x0) / g.hx)
        i0, i1 = max(ic - wi, 0), min(ic + wi + 1, g.ny)
        j0, j1 = max(jc - wj, 0), min(jc + wj + 1, g.nx)
        dx = g.xc[j0:j1] - px
        dy = g.yc[i0:i1] - py
        dist = np.sqrt(dy[:, None] ** 2 + dx[None, :] ** 2)
        Dw = D[i0:i1, j0:j1]
        np.minimum(Dw, dist, out=Dw)
        logw = a * (Dw * Dw - d_cap * d_cap)
        if E is not None:
            Ew = E[i0:i1, j0:j1]
            Ew += potential.lookup(dist)
            logw -= beta * Ew
        np.clip(logw, -700.0, 700.0, out=logw)
        Fw = np.exp(logw)
        if g.support is not None:
            Fw *= g.support[i0:i1, j0:j1]
        rowsum[i0:i1] += Fw.sum(axis=1) - F[i0:i1, j0:j1].sum(axis=1)
        F[i0:i1, j0:j1] = Fw
        if k % 256 == 255:  # wipe accumulated rounding in the incremental row sums
            rowsum = F.sum(axis=1)
    return pts


def dft_field_naive(points_nm: np.ndarray, grid: _Grid, a: float, d_cap: float, beta: float,
                    potential: SiteSitePotential | None) -> np.ndarray:
    """The whole field ``w`` on the grid, rebuilt by scanning every accepted point for every cell."""
    xx, yy = np.meshgrid(grid.xc, grid.yc)
    D = np.full((grid.ny, grid.nx), d_cap)
    E = np.zeros((grid.ny, grid.nx))
    for p in points_nm:
        dist = np.sqrt((yy - p[1]) ** 2 + (xx - p[0]) ** 2)
        np.minimum(D, dist, out=D)
        if beta > 0:
            E += potential.lookup(dist)
    F = np.exp(np.clip(a * (D * D - d_cap * d_cap) - beta * E, -700.0, 700.0))
    if grid.support is not None:
        F *= grid.support
    return F


def dft_run_naive(n_points: int, region: Region, rng: np.random.Generator, sigma_nm: float | None = None,
                  beta_per_eV: float = 0.0, potential: SiteSitePotential | None = None,
                  grid_nm: float | None = None, tail: float = 3.5) -> np.ndarray:
    """Straightforward implementation of the same rule: every step rebuilds the whole field by scanning all
    accepted points for every grid cell. Same random stream as :func:`dft_run`. For tests and benchmarks."""
    a, d_cap = _field_params(n_points, region, sigma_nm, tail)
    beta = float(beta_per_eV) if potential is not None else 0.0
    g = _Grid(region, auto_grid_nm(n_points, region) if grid_nm is None else grid_nm)
    pts = np.empty((n_points, 2))
    k0 = min(2, n_points)
    pts[:k0] = region.sample_uniform(k0, rng)
    u_all = rng.random((max(n_points - k0, 0), 4))
    for k in range(k0, n_points):
        F = dft_field_naive(pts[:k], g, a, d_cap, beta, potential)
        pts[k] = g.draw(F, F.sum(axis=1), u_all[k - k0])
    return pts


class DFTBiasedSampler:
    """The DFT-biased sampler as a scikit-learn-style estimator.

    Parameters (set in ``__init__``): ``potential`` (:class:`SiteSitePotential`, path to
    ``site_site_potential.csv`` or a DataFrame; None = no energy term), ``sigma_nm`` (Rayleigh scale, nm; None =
    the Poisson value ``σ₀ = 1/√(2πρ)`` at the sampled density), ``sigma_factor`` (σ/σ₀ instead of σ, so the scale
    follows the density sampled; e.g. from a fit), ``kT_eV`` (None or ∞ = no energy term), ``grid_nm`` (field grid
    spacing, nm; None = σ₀/10 clipped to [0.01, 0.05] nm), ``tail`` (d_cap in units of max(σ, σ₀)),
    ``site_kinds`` (which potential curve), ``settings`` (which calculation set-up of the potential table), the
    fit settings ``sigma_factors`` (σ/σ₀ grid), ``beta_grid`` (1/kT grid, eV⁻¹; 0 = no energy term),
    ``runs_per_point``, ``n_boot``, ``seed`` (also the default seed of :meth:`sample`), ``progress`` (a progress bar
    over the runs of :meth:`sample`).

    :meth:`fit` sets ``sigma_nm_``, ``sigma_factor_``, ``kT_eV_``, ``beta_per_eV_`` and ``fit_result_`` (see
    :func:`~sacmap.analysis.spatial.samplers.fit.fit_dft_sampler`); :meth:`sample` uses fitted values when present.
    """

    name = "dft"

    def __init__(self, potential=None, sigma_nm: float | None = None, kT_eV: float | None = None,
                 grid_nm: float | None = None, tail: float = 3.5, site_kinds: str | None = None,
                 sigma_factors=None, beta_grid=None, runs_per_point: int = 8, n_boot: int = 200, seed=0,
                 settings: str | None = None, sigma_factor: float | None = None, progress: bool = False):
        if sigma_nm is not None and sigma_factor is not None:
            raise AnalysisInputError("DFT-biased sampler: give σ (sigma_nm) or σ/σ₀ (sigma_factor), not both")
        if kT_eV is not None and np.isfinite(kT_eV):
            if kT_eV <= 0:
                raise AnalysisInputError(f"kT must be positive (eV), got {kT_eV!r}")
            if potential is None:
                raise AnalysisInputError("a kT needs a site-site potential (--potential, the site-site potential CSV)")
        self.potential = potential
        self.sigma_nm = sigma_nm
        self.sigma_factor = sigma_factor
        self.kT_eV = kT_eV
        self.grid_nm = grid_nm
        self.tail = tail
        self.site_kinds = site_kinds
        self.sigma_factors = sigma_factors
        self.beta_grid = beta_grid
        self.runs_per_point = runs_per_point
        self.n_boot = n_boot
        self.seed = seed
        self.settings = settings
        self.progress = progress

    @classmethod
    def from_fit(cls, fit, **params) -> DFTBiasedSampler:
        """A sampler with the σ/σ₀ ratio and kT of a fit (``fit.json`` of ``sacmap sample fit``, a path or its
        dict); ``params`` are the other ``__init__`` parameters (the potential the fit used, ...)."""
        import json

        source = fit
        try:
            if isinstance(fit, (str, Path)):
                fit = json.loads(Path(fit).read_text())
            factor, kT = float(fit["sigma_factor"]), fit.get("kT_eV")
        except (OSError, ValueError, KeyError, TypeError) as exc:
            raise AnalysisInputError(f"{source}: not a fit.json with sigma_factor/kT_eV ({exc})") from exc
        return cls(sigma_factor=factor, kT_eV=None if kT is None else float(kT), **params)

    def describe(self, n_points: int, window=None) -> dict:
        """The parameters in effect for ``n_points`` in ``window`` (JSON-friendly; σ None = the Poisson σ₀)."""
        beta = self._beta()
        return {"sigma_nm": self.sigma_for(n_points, window), "kT_eV": 1.0 / beta if beta > 0 else None,
                "grid_nm": self.grid_nm,
                "potential": self.potential_.describe() if self.potential_ is not None else None}

    @property
    def potential_(self) -> SiteSitePotential | None:
        if not hasattr(self, "_potential"):
            self._potential = _coerce_potential(self.potential, self.site_kinds, self.settings)
        return self._potential

    def _beta(self) -> float:
        if hasattr(self, "beta_per_eV_"):
            return self.beta_per_eV_
        if self.kT_eV is None or not np.isfinite(self.kT_eV):
            return 0.0
        return 1.0 / float(self.kT_eV)

    def sigma_for(self, n_points: int, window) -> float | None:
        """σ (nm) used for ``n_points`` in ``window``: fitted σ/σ₀, else ``sigma_factor`` × σ₀, else ``sigma_nm``
        (None = σ₀)."""
        factor = getattr(self, "sigma_factor_", self.sigma_factor)
        if factor is not None:
            return factor / np.sqrt(2.0 * np.pi * n_points / default_region(window).area_nm2)
        return self.sigma_nm

    def grid_nm_for(self, n_points: int, window) -> float:
        """Field grid spacing (nm) used for ``n_points`` in ``window``."""
        return float(self.grid_nm) if self.grid_nm is not None else auto_grid_nm(n_points, default_region(window))

    def sample(self, n_points: int, window=None, runs: int = 1, seed=None, *, sigma_nm: float | None = None,
               beta_per_eV: float | None = None) -> np.ndarray:
        """``(runs, n_points, 2)`` points (nm). ``seed`` None uses the estimator's ``seed``.

        A fitted sampler keeps its fitted σ/σ₀ ratio (so it transfers to other densities) and its 1/kT;
        ``sigma_nm`` / ``beta_per_eV`` override both for one call (the fit's grid search).
        """
        n_points, runs = _check_counts(n_points, runs)
        region = default_region(window)
        sigma = self.sigma_for(n_points, region) if sigma_nm is None else sigma_nm
        beta = self._beta() if beta_per_eV is None else beta_per_eV
        rngs = run_rngs(self.seed if seed is None else seed, runs)
        it = range(runs)
        if self.progress:
            from tqdm import tqdm

            it = tqdm(it, desc="dft sampler", unit="run")
        return np.stack([dft_run(n_points, region, rngs[r], sigma, beta, self.potential_, self.grid_nm, self.tail)
                         for r in it])

    def fit(self, observed, window=None, progress: bool = False) -> DFTBiasedSampler:
        """Fit σ and kT so the sampler's NND distribution matches the observed one at the same density.

        ``observed``: an :class:`~sacmap.analysis.spatial.observation.Observation` (its points and window) or
        ``(n, 2)`` coordinates in nm with ``window`` (None: their bounding box).
        """
        if isinstance(observed, Observation):
            if window is not None:
                raise AnalysisInputError("fit: an Observation carries its window; do not pass another")
            if observed.n_atoms < 3:
                raise AnalysisInputError(f"{observed.source}: {observed.n_atoms} atom(s) in the window; fitting needs "
                                         "at least 3")
            observed, window = observed.xy_nm, observed.window
        for attr in ("sigma_factor_", "beta_per_eV_"):
            if hasattr(self, attr):
                delattr(self, attr)
        res = fit_dft_sampler(self, observed, window, progress=progress)
        self.fit_result_ = res
        self.sigma_nm_ = res["sigma_nm"]
        self.sigma_factor_ = res["sigma_factor"]
        self.beta_per_eV_ = res["beta_per_eV"]
        self.kT_eV_ = res["kT_eV"]
        return self
