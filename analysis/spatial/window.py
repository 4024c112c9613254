"""Observation windows for spatial statistics and samplers (all lengths in nm).

A :class:`Region` is either an axis-aligned rectangle or a boolean support mask with its pixel size. The mask
follows the image convention of ``conventions.md``: ``x`` = column, ``y`` = row, pixel ``(row i, col j)`` is
centred at ``(x, y) = (j, i) * pixel_size_nm``, so it covers ``[(j - 1/2) p, (j + 1/2) p]`` in x.
Densities always use the *support* area (mask pixels that are True), never the whole image.

Every edge correction in :mod:`sacmap.analysis.spatial` asks the region three questions: its area and perimeter, the
distance from a point to the boundary, and the set covariance ``|W ∩ (W + v)|`` (area shared by the window
and its copy shifted by ``v``). Rectangles answer them analytically, masks through a Euclidean distance
transform and an FFT autocorrelation.
"""

from __future__ import annotations

from dataclasses import dataclass, field

import numpy as np

from sacmap.analysis.errors import AnalysisInputError


@dataclass
class Region:
    """A rectangle ``[x0, x1] × [y0, y1]`` (nm) or a boolean support mask with ``pixel_size_nm``.

    Build one with :meth:`rectangle` or :meth:`from_mask`.
    """

    x0: float = 0.0
    y0: float = 0.0
    x1: float = 10.0
    y1: float = 10.0
    mask: np.ndarray | None = None
    pixel_size_nm: float | None = None
    _cache: dict = field(default_factory=dict, repr=False, compare=False)

    # ------------------------------------------------------------------ constructors
    @classmethod
    def rectangle(cls, width_nm: float = 10.0, height_nm: float | None = None, x0: float = 0.0,
                  y0: float = 0.0) -> Region:
        """Rectangle of ``width_nm × height_nm`` (square when height is omitted) with lower corner (x0, y0)."""
        height_nm = width_nm if height_nm is None else height_nm
        for name, v in (("width_nm", width_nm), ("height_nm", height_nm)):
            if not np.isfinite(v) or v <= 0:
                raise AnalysisInputError(f"region: {name} must be a positive number of nm, got {v!r}")
        return cls(float(x0), float(y0), float(x0 + width_nm), float(y0 + height_nm))

    @classmethod
    def from_mask(cls, mask: np.ndarray, pixel_size_nm: float) -> Region:
        """Support mask (2-D, True = support) with square pixels of ``pixel_size_nm`` nm."""
        mask = np.asarray(mask)
        if mask.ndim != 2 or mask.size == 0:
            raise AnalysisInputError(f"region mask must be a non-empty 2-D array, got shape {mask.shape}")
        if not (np.isfinite(pixel_size_nm) and pixel_size_nm > 0):
            raise AnalysisInputError(f"region: pixel_size_nm must be positive, got {pixel_size_nm!r}")
        mask = mask.astype(bool)
        if not mask.any():
            raise AnalysisInputError("region mask has no support pixels (all False)")
        p = float(pixel_size_nm)
        ny, nx = mask.shape
        return cls(-0.5 * p, -0.5 * p, (nx - 0.5) * p, (ny - 0.5) * p, mask=mask, pixel_size_nm=p)

    @classmethod
    def coerce(cls, region, xy_nm: np.ndarray | None = None) -> Region:
        """Accept a Region, ``(width, height)``, ``(x0, y0, x1, y1)`` or None (bounding box of ``xy_nm``)."""
        if isinstance(region, Region):
            return region
        if region is None:
            if xy_nm is None or len(xy_nm) == 0:
                raise AnalysisInputError("region: none given and no points to take a bounding box from")
            lo, hi = np.min(xy_nm, axis=0), np.max(xy_nm, axis=0)
            span = np.maximum(hi - lo, 1e-9)
            return cls.rectangle(float(span[0]), float(span[1]), float(lo[0]), float(lo[1]))
        vals = [float(v) for v in region]
        if len(vals) == 2:
            return cls.rectangle(vals[0], vals[1])
        if len(vals) == 4:
            return cls.rectangle(vals[2] - vals[0], vals[3] - vals[1], vals[0], vals[1])
        raise AnalysisInputError(f"region: expected (width, height) or (x0, y0, x1, y1) in nm, got {region!r}")

    # ------------------------------------------------------------------ geometry
    @property
    def is_mask(self) -> bool:
        return self.mask is not None

    @property
    def width_nm(self) -> float:
        return self.x1 - self.x0

    @property
    def height_nm(self) -> float:
        return self.y1 - self.y0

    @property
    def area_nm2(self) -> float:
        """Support area (nm²): the mask's support pixels, or the rectangle; densities and edge corrections use it."""
        if self.is_mask:
            return float(self.mask.sum()) * self.pixel_size_nm**2
        return self.width_nm * self.height_nm

    @property
    def perimeter_nm(self) -> float:
        """Boundary length (nm); for masks the 4-connected pixel-edge count corrected by π/4 for staircases."""
        if not self.is_mask:
            return 2.0 * (self.width_nm + self.height_nm)
        if "perimeter" not in self._cache:
            from skimage.measure import perimeter

            self._cache["perimeter"] = float(perimeter(self.mask)) * self.pixel_size_nm
        return self._cache["perimeter"]

    def _pixel_index(self, xy_nm: np.ndarray) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
        p = self.pixel_size_nm
        j = np.rint(xy_nm[:, 0] / p).astype(np.int64)
        i = np.rint(xy_nm[:, 1] / p).astype(np.int64)
        ny, nx = self.mask.shape
        ok = (i >= 0) & (i < ny) & (j >= 0) & (j < nx)
        return np.clip(i, 0, ny - 1), np.clip(j, 0, nx - 1), ok

    def contains(self, xy_nm: np.ndarray) -> np.ndarray:
        """Boolean per point: inside the rectangle / on a support pixel."""
        xy_nm = np.asarray(xy_nm, dtype=float).reshape(-1, 2)
        inside = (xy_nm[:, 0] >= self.x0) & (xy_nm[:, 0] <= self.x1) & (xy_nm[:, 1] >= self.y0) & (
            xy_nm[:, 1] <= self.y1)
        if self.is_mask:
            i, j, ok = self._pixel_index(xy_nm)
            inside &= ok & self.mask[i, j]
        return inside

    def _edt(self) -> np.ndarray:
        if "edt" not in self._cache:
            from scipy.ndimage import distance_transform_edt

            pad = np.pad(self.mask, 1, constant_values=False)
            # distance from a support pixel centre to the nearest non-support pixel centre, minus half a pixel
            d = distance_transform_edt(pad)[1:-1, 1:-1] - 0.5
            self._cache["edt"] = np.clip(d, 0.0, None) * self.pixel_size_nm
        return self._cache["edt"]

    def distance_to_boundary(self, xy_nm: np.ndarray) -> np.ndarray:
        """Distance (nm) from each point to the window boundary (0 outside)."""
        xy_nm = np.asarray(xy_nm, dtype=float).reshape(-1, 2)
        b = np.minimum.reduce([xy_nm[:, 0] - self.x0, self.x1 - xy_nm[:, 0], xy_nm[:, 1] - self.y0,
                               self.y1 - xy_nm[:, 1]])
        b = np.clip(b, 0.0, None)
        if self.is_mask:
            i, j, ok = self._pixel_index(xy_nm)
            b = np.minimum(b, np.where(ok, self._edt()[i, j], 0.0))
        return b

    def eroded_area_nm2(self, r_nm: np.ndarray) -> np.ndarray:
        """Area (nm²) of the window eroded by ``r_nm`` (points at least r from the boundary)."""
        r = np.asarray(r_nm, dtype=float)
        if not self.is_mask:
            return np.clip(self.width_nm - 2 * r, 0, None) * np.clip(self.height_nm - 2 * r, 0, None)
        if "edt_sorted" not in self._cache:
            self._cache["edt_sorted"] = np.sort(self._edt()[self.mask])
        s = self._cache["edt_sorted"]
        return (s.size - np.searchsorted(s, r, side="left")) * self.pixel_size_nm**2

    def set_covariance_nm2(self, dxy_nm: np.ndarray) -> np.ndarray:
        """``|W ∩ (W + v)|`` (nm²) for displacement vectors ``v`` (rows of ``dxy_nm``)."""
        d = np.abs(np.asarray(dxy_nm, dtype=float).reshape(-1, 2))
        if not self.is_mask:
            return np.clip(self.width_nm - d[:, 0], 0, None) * np.clip(self.height_nm - d[:, 1], 0, None)
        if "cov" not in self._cache:
            m = self.mask.astype(float)
            ny, nx = m.shape
            f = np.fft.rfft2(m, s=(2 * ny, 2 * nx))
            cov = np.fft.irfft2(f * np.conj(f), s=(2 * ny, 2 * nx))
            self._cache["cov"] = np.rint(cov) * self.pixel_size_nm**2
        cov = self._cache["cov"]
        p = self.pixel_size_nm
        sv = np.asarray(dxy_nm, dtype=float).reshape(-1, 2)
        j = np.rint(sv[:, 0] / p).astype(np.int64)
        i = np.rint(sv[:, 1] / p).astype(np.int64)
        ny2, nx2 = cov.shape
        out = cov[i % ny2, j % nx2]
        out[(np.abs(i) >= ny2 // 2) | (np.abs(j) >= nx2 // 2)] = 0.0
        return out

    def circle_inside_fraction(self, centres_nm: np.ndarray, radii_nm: np.ndarray, n_angles: int = 128) -> np.ndarray:
        """Share of the circle of radius ``radii_nm`` around each centre that lies in the window (Ripley's
        isotropic correction). Rectangles: exact (arcs cut by the four sides, corner overlaps removed); masks:
        from ``n_angles`` points on each circle."""
        c = np.asarray(centres_nm, dtype=float).reshape(-1, 2)
        r = np.asarray(radii_nm, dtype=float).ravel()
        if not self.is_mask:
            out_angle = np.zeros(len(r))
            with np.errstate(invalid="ignore", divide="ignore"):
                e = [c[:, 0] - self.x0, self.x1 - c[:, 0], c[:, 1] - self.y0, self.y1 - c[:, 1]]
                a = [np.where(r > ek, np.arccos(np.clip(ek / np.where(r > 0, r, 1.0), -1, 1)), 0.0) for ek in e]
            for k in range(4):
                out_angle += 2 * a[k]
            for p, q in ((0, 2), (0, 3), (1, 2), (1, 3)):  # adjacent sides: arcs overlap past the corner
                out_angle -= np.clip(a[p] + a[q] - 0.5 * np.pi, 0.0, None)
            return np.clip(1.0 - out_angle / (2 * np.pi), 0.0, 1.0)
        th = 2 * np.pi * (np.arange(n_angles) + 0.5) / n_angles
        out = np.empty(len(r))
        step = max(1, 200_000 // n_angles)
        for s in range(0, len(r), step):
            cc, rr = c[s:s + step], r[s:s + step]
            pts = np.stack([cc[:, None, 0] + rr[:, None] * np.cos(th), cc[:, None, 1] + rr[:, None] * np.sin(th)],
                           axis=-1)
            out[s:s + step] = self.contains(pts.reshape(-1, 2)).reshape(len(rr), n_angles).mean(axis=1)
        return out

    def eroded(self, edge_nm: float) -> Region:
        """The window less a band of ``edge_nm`` (nm) along its boundary (points at least that far inside)."""
        e = float(edge_nm)
        if e <= 0:
            return self
        if not self.is_mask:
            if 2 * e >= min(self.width_nm, self.height_nm):
                raise AnalysisInputError(f"region: an edge band of {e} nm leaves nothing of the window")
            return Region.rectangle(self.width_nm - 2 * e, self.height_nm - 2 * e, self.x0 + e, self.y0 + e)
        inner = self.mask & (self._edt() >= e)
        if not inner.any():
            raise AnalysisInputError(f"region: an edge band of {e} nm leaves nothing of the support mask")
        return Region.from_mask(inner, self.pixel_size_nm)

    @property
    def has_holes(self) -> bool:
        """True for a mask whose support encloses non-support pixels (holes): Donnelly's Clark–Evans correction,
        made for convex windows, is then not used."""
        if not self.is_mask:
            return False
        if "holes" not in self._cache:
            from scipy.ndimage import binary_fill_holes

            self._cache["holes"] = bool((binary_fill_holes(self.mask) & ~self.mask).any())
        return self._cache["holes"]

    # ------------------------------------------------------------------ sampling
    def map_unit(self, u: np.ndarray) -> np.ndarray:
        """Map uniform ``u`` in [0, 1)² (shape (..., 2)) to uniform points in the support (nm)."""
        u = np.asarray(u, dtype=float)
        if not self.is_mask:
            return np.stack([self.x0 + u[..., 0] * self.width_nm, self.y0 + u[..., 1] * self.height_nm], axis=-1)
        if "support_ij" not in self._cache:
            self._cache["support_ij"] = np.argwhere(self.mask)
        ij = self._cache["support_ij"]
        s = u[..., 0] * len(ij)
        k = np.minimum(s.astype(np.int64), len(ij) - 1)
        frac = s - k
        p = self.pixel_size_nm
        x = (ij[k, 1] - 0.5 + frac) * p
        y = (ij[k, 0] - 0.5 + u[..., 1]) * p
        return np.stack([x, y], axis=-1)

    def sample_uniform(self, n: int, rng: np.random.Generator) -> np.ndarray:
        """``n`` uniform points in the support (nm), consuming ``rng.random((n, 2))``."""
        return self.map_unit(rng.random((int(n), 2)))

    def describe(self) -> dict:
        """JSON-friendly summary."""
        out = {"kind": "mask" if self.is_mask else "rectangle", "x0_nm": self.x0, "y0_nm": self.y0,
               "x1_nm": self.x1, "y1_nm": self.y1, "area_nm2": self.area_nm2, "perimeter_nm": self.perimeter_nm}
        if self.is_mask:
            out.update(pixel_size_nm=self.pixel_size_nm, shape=list(self.mask.shape))
        return out
