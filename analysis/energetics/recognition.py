"""Recognise N-doped graphene configurations from geometry alone (Å).

The sheet's C and N atoms are mapped onto the ideal honeycomb lattice that tiles the periodic cell (lattice
vectors derived from the cell and the bond directions, so the mapping survives relaxation). Lattice points with
no atom are the removed atoms; connected groups of them are the coordination sites. A site's kind is the number
of N atoms lining it (``3N``, ``4N``, ``6N``), its centre the centroid of its removed lattice points (the builder's
convention), separations are minimum-image distances between centres. Metal atoms are assigned to the nearest
site centre. Structures without a sheet are gas references (``gas_atom``, ``gas_dimer``) only when isolated
(:func:`periodicity`: at least :data:`GAS_MIN_VACUUM_A` of vacuum along every cell vector): a periodic bulk cell
or a metal slab of one or two atoms is recognised as ``bulk`` / ``slab`` / ``wire`` (kept apart, never used in
an equation, reported); pure nitrogen is the N reference phase (``reference``).

:func:`recognise` returns the metadata keys of docs/contracts.md (``kind, site_kinds, separation_A,
shares_NN_bond, n_C_between, occupants, metals``) plus ``pair_geometry`` (a relaxation-invariant key of the
placement of the two sites, built from ideal-lattice distances) and ``sites`` (list of dicts: kind, centre_A,
n_indices, removed_A, metals).

Site order (``site_kinds``/``occupants``): by kind (3N < 4N < 6N); for equal kinds the occupied site first,
then the site whose metals sort first; ties between two bare sites of one kind keep lattice order.
"""

from __future__ import annotations

import math
from collections import deque

import numpy as np
from ase import Atoms

from sacmap.analysis.errors import AnalysisInputError
from sacmap.core.constants import NON_METALS
from sacmap.structures import (
    StructureInputError,
    canonical_key,
    enumerate_pairs,
    grid_site,
    lattice_to_grid,
    sublattice,
)

SHEET_ELEMENTS = ("C", "N")
KIND_ORDER = {"3N": 0, "4N": 1, "6N": 2}
BOND_MAX_A = 1.75  # C–C / C–N bonds in the sheet
SNAP_TOL_A = 0.75  # max distance of an atom from its ideal lattice point
METAL_SITE_MAX_A = 3.0  # in-plane distance metal–site centre to count as occupying the site


_POINTS_CACHE: dict = {}  # lattice points per (supercell, lattice vectors, sublattice offset, cell)
_NBR_CACHE: dict = {}


class RecognitionError(AnalysisInputError):
    """The geometry is not an N-doped graphene sheet this module understands (message says why)."""


# ---------------------------------------------------------------------------------------------- lattice
def _mic(vectors: np.ndarray, cell: np.ndarray, pbc) -> np.ndarray:
    """Minimum-image vectors (Å) for a cell whose periodic vectors may be skewed (checks the 27 images)."""
    inv = np.linalg.inv(cell)
    frac = vectors @ inv
    frac = frac - np.where(pbc, np.round(frac), 0.0)
    v = frac @ cell
    shifts = np.array(
        [[i, j, k] for i in (-1, 0, 1) for j in (-1, 0, 1) for k in (-1, 0, 1)], dtype=float
    ) * np.asarray(pbc, dtype=float)
    shifts = np.unique(shifts, axis=0) @ cell
    cand = v[..., None, :] + shifts
    d = np.linalg.norm(cand, axis=-1)
    idx = d.argmin(axis=-1)
    return np.take_along_axis(cand, idx[..., None, None], axis=-2)[..., 0, :]


def _pair_mic(a: np.ndarray, b: np.ndarray, cell: np.ndarray, pbc) -> tuple[np.ndarray, np.ndarray]:
    vec = _mic(b[None, :, :] - a[:, None, :], cell, pbc)
    return vec, np.linalg.norm(vec, axis=-1)


class Lattice:
    """Ideal honeycomb lattice commensurate with the periodic cell of a sheet (Å)."""

    def __init__(self, atoms: Atoms, sheet_idx: np.ndarray):
        cell = np.array(atoms.cell)
        pbc = np.array(atoms.pbc)
        if np.linalg.matrix_rank(cell) < 3:
            raise RecognitionError("sheet structure needs a full 3D periodic cell")
        pos = atoms.positions[sheet_idx]
        frac = pos @ np.linalg.inv(cell)
        # vacuum axis: the cell vector along which the sheet is flattest (circular spread of fractions)
        spread = []
        for k in range(3):
            ang = 2 * np.pi * frac[:, k]
            r = np.hypot(np.cos(ang).mean(), np.sin(ang).mean())
            spread.append(r)
        vac = int(np.argmax(spread))
        inplane = [k for k in range(3) if k != vac]
        normal = np.cross(cell[inplane[0]], cell[inplane[1]])
        normal /= np.linalg.norm(normal)
        self.cell, self.pbc, self.normal, self.vac, self.inplane = cell, pbc, normal, vac, inplane
        # plane basis
        e1 = cell[inplane[0]] - normal * (cell[inplane[0]] @ normal)
        e1 /= np.linalg.norm(e1)
        e2 = np.cross(normal, e1)
        self.basis = np.array([e1, e2])
        from ase.neighborlist import neighbor_list

        sheet = Atoms(["C"] * len(pos), positions=pos, cell=cell, pbc=pbc)
        ii, jj, bonds = neighbor_list("ijD", sheet, BOND_MAX_A)
        keep = (ii < jj) & (np.linalg.norm(bonds, axis=1) > 1.0)
        if keep.sum() < 3:
            raise RecognitionError("no C/N bonds found: not a graphene sheet")
        bonds = bonds[keep]
        b2 = bonds @ self.basis.T
        phi = np.arctan2(b2[:, 1], b2[:, 0])
        theta = np.angle(np.exp(6j * phi).mean()) / 6  # bond direction modulo 60°
        blen = float(np.median(np.linalg.norm(b2, axis=1)))
        a = math.sqrt(3) * blen
        a1 = a * np.array([math.cos(theta + math.pi / 6), math.sin(theta + math.pi / 6)])
        a2 = a * np.array([math.cos(theta + math.pi / 2), math.sin(theta + math.pi / 2)])
        L = np.array([a1, a2])
        A = np.array([cell[k] @ self.basis.T for k in inplane])  # in-plane cell vectors, 2D
        coef = A @ np.linalg.inv(L)
        M = np.round(coef)
        if np.abs(coef - M).max() > 0.15 or abs(np.linalg.det(M)) < 1:
            raise RecognitionError(
                f"cell is not commensurate with a honeycomb lattice (coefficients {np.round(coef, 2).tolist()})"
            )
        self.M = M
        self.L = np.linalg.inv(M) @ A  # exact lattice vectors that tile the cell
        self.a = float(np.linalg.norm(self.L[0]))
        self.bond_A = float(np.linalg.norm(self.L[0] + self.L[1]) / 3)
        self.n_points = int(round(2 * abs(np.linalg.det(M))))
        # origin: least-distorted atom (closest bond length to the median), then refine by the mean residual
        self.z0 = float(np.median(pos @ normal))
        # the B sublattice sits at +delta or -delta from the A atom chosen as origin: keep the one that fits
        best = None
        for sign in (1.0, -1.0):
            self.delta = sign * (self.L[0] + self.L[1]) / 3
            self.origin2d = pos[0] @ self.basis.T
            self._build_points()
            _, d = self.snap(pos)
            if best is None or d.max() < best[0]:
                best = (d.max(), sign, self.origin2d.copy(), self.points2d, self.key_to_index)
            if d.max() < 0.5 * self.bond_A:
                break
        _, sign, self.origin2d, self.points2d, self.key_to_index = best
        self.delta = sign * (self.L[0] + self.L[1]) / 3

    def _to2d(self, xyz: np.ndarray) -> np.ndarray:
        return xyz @ self.basis.T

    def _to3d(self, xy: np.ndarray) -> np.ndarray:
        return xy @ self.basis + self.z0 * self.normal

    def _key(self, ij: np.ndarray, sub: np.ndarray) -> list[tuple[int, int, int]]:
        f = ij @ np.linalg.inv(self.M)
        f = np.round((f - np.floor(f + 1e-6)) * 1e4).astype(int) % 10000
        return list(zip(f[:, 0].tolist(), f[:, 1].tolist(), np.asarray(sub).astype(int).tolist(), strict=True))

    def _cache_key(self) -> tuple:
        return (self.M.tobytes(), np.round(self.L, 8).tobytes(), np.round(self.delta, 8).tobytes(),
                np.round(self.cell, 6).tobytes(), self.pbc.tobytes())

    def _build_points(self) -> None:
        key = self._cache_key()
        if key in _POINTS_CACHE:
            self.points2d, self.key_to_index = _POINTS_CACHE[key]
            return
        self._build_points_uncached()
        if len(_POINTS_CACHE) > 32:
            _POINTS_CACHE.clear()
        _POINTS_CACHE[key] = (self.points2d, self.key_to_index)

    def neighbours(self) -> np.ndarray:
        """Boolean adjacency (nearest neighbours, periodic) of the lattice points (independent of the origin)."""
        key = self._cache_key()
        if key in _NBR_CACHE:
            return _NBR_CACHE[key]
        from ase.neighborlist import neighbor_list

        pts = self.points3d()
        li, lj = neighbor_list("ij", Atoms(["C"] * len(pts), positions=pts, cell=self.cell, pbc=self.pbc),
                               1.2 * self.bond_A)
        nbr = np.zeros((len(pts), len(pts)), dtype=bool)
        nbr[li, lj] = True
        if len(_NBR_CACHE) > 32:
            _NBR_CACHE.clear()
        _NBR_CACHE[key] = nbr
        return nbr

    def _build_points_uncached(self) -> None:
        n = int(np.abs(self.M).sum()) + 2
        g = np.arange(-n, n + 1)
        ij = np.stack(np.meshgrid(g, g, indexing="ij"), axis=-1).reshape(-1, 2).astype(float)
        fr = ij @ np.linalg.inv(self.M)
        fr = fr - np.floor(fr + 1e-6)
        keys = np.round(fr * 1e4).astype(np.int64) % 10000
        _, first = np.unique(keys[:, 0] * 10000 + keys[:, 1], return_index=True)
        first = np.sort(first)
        A = self.M @ self.L
        self.key_to_index = {}
        pts = []
        for s in (0, 1):
            for k in first:
                self.key_to_index[(int(keys[k, 0]), int(keys[k, 1]), s)] = len(pts)
                pts.append(fr[k] @ A + s * self.delta)
        if len(pts) != self.n_points:
            raise RecognitionError(f"lattice enumeration gave {len(pts)} points, expected {self.n_points}")
        self.points2d = np.array(pts)

    def snap(self, pos3d: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        """Index of the lattice point nearest each position and the in-plane distance (Å); refines the origin."""
        Linv = np.linalg.inv(self.L)
        xy0 = self._to2d(pos3d)
        for _ in range(4):
            xy = xy0 - self.origin2d
            cands = []
            for s in (0, 1):
                r = np.round((xy - s * self.delta) @ Linv)
                res = xy - (r @ self.L + s * self.delta)
                cands.append((r, res, np.linalg.norm(res, axis=1)))
            pick = cands[1][2] < cands[0][2]
            r = np.where(pick[:, None], cands[1][0], cands[0][0])
            res = np.where(pick[:, None], cands[1][1], cands[0][1])
            d = np.linalg.norm(res, axis=1)
            shift = res.mean(axis=0)
            self.origin2d = self.origin2d + shift
            if np.linalg.norm(shift) < 1e-5:
                break
        idx = np.array([self.key_to_index[k] for k in self._key(r, pick.astype(int))])
        return idx, d

    def points3d(self) -> np.ndarray:
        return self._to3d(self.points2d + self.origin2d)


# ------------------------------------------------------------------------------------------ recognition
def _canonical_kind(n_lining: int) -> str:
    return f"{n_lining}N"


def _metal_label(symbols: list[str]) -> str:
    """``Pt`` for one, ``Pt2`` for two of a kind, ``NiPd`` for mixed (alphabetical)."""
    from collections import Counter

    c = Counter(symbols)
    return "".join(f"{el}{n if n > 1 else ''}" for el, n in sorted(c.items()))


GAS_MIN_VACUUM_A = 5.0  # empty space around a gas reference along every periodic cell vector
GAS_DIMER_MAX_A = 3.5  # M–M distance of a gas dimer


def periodicity(atoms: Atoms) -> tuple[str, list[float]]:
    """``("gas" | "slab" | "wire" | "bulk", gaps_A)``: how many directions of a small cell are vacuum.

    ``gaps_A``: per cell vector, the largest empty gap of the atoms' fractional coordinates times the spacing of
    the lattice planes (Å; ``inf`` for a non-periodic direction or no cell). A direction with a gap of at least
    :data:`GAS_MIN_VACUUM_A` is vacuum; isolated (gas) = vacuum in all three; a slab in one; bulk in none.
    """
    cell = np.array(atoms.cell)
    gaps = []
    if np.linalg.matrix_rank(cell) < 3:
        return ("gas" if not any(atoms.pbc) else "bulk"), [float("inf")] * 3
    frac = atoms.get_scaled_positions(wrap=True)
    for ax in range(3):
        if not atoms.pbc[ax]:
            gaps.append(float("inf"))
            continue
        normal = np.cross(cell[(ax + 1) % 3], cell[(ax + 2) % 3])
        spacing = abs(np.dot(cell[ax], normal)) / np.linalg.norm(normal)
        f = np.sort(frac[:, ax])
        gap = float(np.diff(np.concatenate([f, [f[0] + 1.0]])).max())
        gaps.append(gap * spacing)
    n_vac = sum(g >= GAS_MIN_VACUUM_A for g in gaps)
    return {3: "gas", 2: "wire", 1: "slab", 0: "bulk"}[n_vac], gaps


def recognise(atoms: Atoms) -> dict:
    """Metadata of a configuration from its geometry (see module docstring). Raises :class:`RecognitionError`."""
    symbols = np.array(atoms.get_chemical_symbols())
    is_sheet = np.isin(symbols, SHEET_ELEMENTS)
    metal_idx = np.where(~np.isin(symbols, list(NON_METALS)))[0]
    other_nonmetal = np.where(np.isin(symbols, list(NON_METALS - set(SHEET_ELEMENTS) - {"H"})))[0]
    out = dict(
        kind="", site_kinds="", separation_A=float("nan"), shares_NN_bond=False, n_C_between=-1, occupants="",
        metals="", pair_geometry="", sites=[], n_sheet_points=0, pair_id="", id="", spin_polarised=False,
        swap_symmetric=False,
    )  # fmt: skip
    n_c = int((symbols == "C").sum())
    if n_c == 0:
        if len(metal_idx) == len(atoms) and len(atoms) in (1, 2):
            phase, gaps = periodicity(atoms)
            if phase != "gas":  # a periodic bulk cell or metal slab is never taken for a gas reference
                out["kind"] = phase
                out["occupants"] = _metal_label(list(symbols))
                out["metals"] = ",".join(sorted(symbols))
                out["id"] = f"{phase}_{out['occupants']}"
                out["phase_note"] = (
                    f"{phase} cell of {atoms.get_chemical_formula()} (empty gap along the cell vectors "
                    f"{', '.join(f'{g:.1f}' for g in gaps)} Å; a gas reference needs >= {GAS_MIN_VACUUM_A:g} Å of "
                    "vacuum in every direction): not a gas reference, not used")
                return out
            if len(atoms) == 2 and atoms.get_distance(0, 1, mic=True) > GAS_DIMER_MAX_A:
                raise RecognitionError(f"two metal atoms {atoms.get_distance(0, 1, mic=True):.2f} Å apart: not a "
                                       f"gas dimer (bond <= {GAS_DIMER_MAX_A:g} Å)")
            out["kind"] = "gas_atom" if len(atoms) == 1 else "gas_dimer"
            out["occupants"] = _metal_label(list(symbols))
            out["metals"] = ",".join(sorted(symbols))
            out["id"] = f"gas_{out['occupants']}"
            out["spin_polarised"] = len(atoms) == 1
            return out
        if set(symbols) == {"N"}:
            out["kind"] = "reference"
            return out
        raise RecognitionError(f"no carbon sheet and not a gas reference ({atoms.get_chemical_formula()})")
    if len(other_nonmetal):
        raise RecognitionError(
            f"unexpected elements in the sheet structure: {sorted(set(symbols[other_nonmetal]))}"
        )
    sheet_idx = np.where(is_sheet)[0]
    lat = Lattice(atoms, sheet_idx)
    pidx, pdist = lat.snap(atoms.positions[sheet_idx])
    if pdist.max() > SNAP_TOL_A:
        bad = sheet_idx[pdist.argmax()]
        raise RecognitionError(f"atom {bad} ({symbols[bad]}) is {pdist.max():.2f} Å from any lattice site")
    if len(set(pidx.tolist())) != len(pidx):
        raise RecognitionError("two sheet atoms map onto one lattice site (not a single graphene layer)")
    out["n_sheet_points"] = lat.n_points
    pts = lat.points3d()
    nbr = lat.neighbours()
    occupant = -np.ones(lat.n_points, dtype=int)  # lattice point -> atom index
    occupant[pidx] = sheet_idx
    missing = np.where(occupant < 0)[0]
    # connected groups of missing points = sites
    groups: list[list[int]] = []
    seen: set[int] = set()
    for m in missing:
        if m in seen:
            continue
        comp, queue = [], deque([m])
        seen.add(m)
        while queue:
            u = queue.popleft()
            comp.append(u)
            for v in np.where(nbr[u])[0]:
                if occupant[v] < 0 and v not in seen:
                    seen.add(v)
                    queue.append(v)
        groups.append(sorted(comp))
    sites = []
    n_mask = symbols == "N"
    for g in groups:
        lining = sorted({int(v) for u in g for v in np.where(nbr[u])[0] if occupant[v] >= 0})
        n_ids = [int(occupant[v]) for v in lining if n_mask[occupant[v]]]
        c_ids = [int(occupant[v]) for v in lining if not n_mask[occupant[v]]]
        # centre: centroid of removed points, unwrapped around the first
        rel = _mic(pts[g] - pts[g[0]], lat.cell, lat.pbc)
        centre = pts[g[0]] + rel.mean(axis=0)
        sites.append(
            dict(kind=_canonical_kind(len(n_ids)), centre_A=centre, n_indices=n_ids, c_lining=c_ids,
                 removed_points=g, removed_A=pts[g[0]] + rel, metals=[], metal_idx=[])
        )  # fmt: skip
    stray_n = [int(i) for i in np.where(n_mask)[0] if not any(int(i) in s["n_indices"] for s in sites)]
    for s in sites:
        if s["kind"] not in KIND_ORDER:
            raise RecognitionError(f"a vacancy lined by {len(s['n_indices'])} N atoms is not a 3N/4N/6N site")
        if s["c_lining"]:
            raise RecognitionError(f"a {s['kind']} vacancy also has {len(s['c_lining'])} C atoms at its edge")
    if stray_n:
        raise RecognitionError(f"N atoms {stray_n} do not line any vacancy (graphitic N is not supported)")
    # metals -> nearest site centre (in plane)
    for mi in metal_idx:
        if not sites:
            raise RecognitionError(f"metal atom {mi} ({symbols[mi]}) but no coordination site in the sheet")
        vec = _mic(np.array([s["centre_A"] for s in sites]) - atoms.positions[mi], lat.cell, lat.pbc)
        d_inplane = np.linalg.norm(vec - np.outer(vec @ lat.normal, lat.normal), axis=1)
        k = int(d_inplane.argmin())
        if d_inplane[k] > METAL_SITE_MAX_A:
            raise RecognitionError(
                f"metal atom {mi} ({symbols[mi]}) is {d_inplane[k]:.2f} Å from the nearest site centre (adatom?)"
            )
        sites[k]["metals"].append(str(symbols[mi]))
        sites[k]["metal_idx"].append(int(mi))
    sites.sort(key=lambda s: (KIND_ORDER[s["kind"]], 0 if s["metals"] else 1, _metal_label(s["metals"])))
    placement = None
    if len(sites) == 2:
        placement, swap = _builder_placement(sites, lat)
        if placement is not None and swap:
            sites = [sites[1], sites[0]]
    out["sites"] = [
        dict(kind=s["kind"], centre_A=[float(x) for x in s["centre_A"]], n_indices=s["n_indices"],
             removed_A=np.asarray(s["removed_A"]).round(4).tolist(), metals=s["metals"])
        for s in sites
    ]  # fmt: skip
    out["site_kinds"] = "-".join(s["kind"] for s in sites)
    metals_in_order = [m for s in sites for m in sorted(s["metals"])]
    out["metals"] = ",".join(metals_in_order)
    if any(s["metals"] for s in sites):
        out["occupants"] = "-".join(
            (f"{_metal_label(s['metals'])}/{s['kind']}" if s["metals"] else s["kind"]) for s in sites
        )
    n_metal_sites = [len(s["metals"]) for s in sites]
    n_metals = len(metal_idx)
    out["spin_polarised"] = n_metals == 1
    if len(sites) == 0:
        out["kind"] = "slab"
        out["id"] = "slab"
    elif len(sites) == 1:
        kind = sites[0]["kind"]
        out["kind"] = {0: "single_site", 1: "metal_single", 2: "dimer"}.get(n_metal_sites[0], "cluster")
        out["pair_id"] = kind
        out["id"] = out["occupants"] or kind
        if out["kind"] == "dimer":
            out["id"] += "_" + _dimer_orientation(atoms, sites[0], lat)
    elif len(sites) == 2:
        if max(n_metal_sites) > 1:
            out["kind"] = "cluster"
        else:
            out["kind"] = ("bare_pair", "metal_single", "metal_pair")[sum(n_metal_sites)]
        _pair_descriptors(out, sites, lat, pts, nbr, occupant, n_mask)
        label = "-".join((f"{_metal_label(s['metals'])}/{s['kind']}" if s["metals"] else s["kind"]) for s in sites)
        if placement is not None:
            out["pair_id"] = placement.id
            out["id"] = f"{label}_{placement.id.split('_', 1)[1]}"
            out["separation_A"] = round(float(placement.separation_A), 4)
            out["swap_symmetric"] = bool(placement.swap_symmetric)
        else:
            out["id"] = f"{label}_d{out['separation_A']:.2f}"
    else:
        out["kind"] = "multi_site"
    return out


def _on_atom(grid) -> bool:
    try:
        sublattice(tuple(int(x) for x in grid))
    except ValueError:
        return False
    return True


def _grid_sites(sites, lat):
    """The two sites as :class:`sacmap.structures.lattice.GridSite` on the builder's integer grid (same relative
    placement; the grid frame is fixed up to a symmetry of the sheet, which the canonical keys ignore).

    The fitted lattice vectors ``lat.L`` play the builder's Bravais vectors ``a1``, ``a2`` and the fitted origin
    atom is of the sublattice from which ``lat.delta`` (±(a1 + a2)/3) reaches an atom; the mapping to grid
    coordinates is :func:`sacmap.structures.lattice_to_grid`."""
    Linv = np.linalg.inv(lat.L)
    delta = lat.delta @ Linv
    origin = next((s for s in ("A", "B") if _on_atom(lattice_to_grid(delta, s))), None)
    if origin is None:  # pragma: no cover - lat.delta is ±(a1 + a2)/3 by construction
        return None
    ref = np.asarray(sites[0]["removed_A"])[0]
    out = []
    for s in sites:
        rem = np.asarray(s["removed_A"])
        rel = _mic((rem - ref), lat.cell, lat.pbc) if s is not sites[0] else rem - ref
        if s is not sites[0]:
            # keep the site whole: unwrap its points around its first one
            rel = rel[0] + _mic(rem - rem[0], lat.cell, lat.pbc)
        xy = (ref + rel) @ lat.basis.T - lat.origin2d
        try:
            grid = lattice_to_grid(xy @ Linv, origin)
        except ValueError:
            return None
        if not all(_on_atom(p) for p in grid):
            return None
        anchor = np.mean(grid, axis=0)
        if np.abs(anchor - np.round(anchor)).max() > 1e-6:
            return None
        out.append(grid_site(s["kind"], tuple(int(x) for x in np.round(anchor))))
    return out


def _builder_placement(sites, lat):
    """``(PairPlacement, swapped)`` of :mod:`sacmap.structures.pairs` matching the recognised pair, or ``(None, False)``.

    ``swapped`` is True when the recognised second site plays the builder's seed site A.
    """
    gs = _grid_sites(sites, lat)
    if gs is None:
        return None, False
    x, y = gs
    limit = 0.5 * min(np.linalg.norm(lat.cell[k]) for k in lat.inplane)
    try:
        placements = enumerate_pairs(x.kind, y.kind, max_separation=limit, cell_limit=limit)
    except (StructureInputError, ValueError):
        return None, False
    key = canonical_key(x, y)
    for p in placements:
        if p.key == key:
            if x.kind != y.kind:
                return p, False
            k_ab = canonical_key(p.site_a, p.site_b, allow_swap=False)
            if p.swap_symmetric:
                # A and B exchangeable: the occupied site (recogniser order) is A
                return p, False
            return p, canonical_key(x, y, allow_swap=False) != k_ab
    return None, False


def _dimer_orientation(atoms, site, lat) -> str:
    """``v`` (vertical), ``a`` (along the site's reference axis) or ``b`` (perpendicular in plane)."""
    i, j = site["metal_idx"][:2]
    v = _mic((atoms.positions[j] - atoms.positions[i])[None], lat.cell, lat.pbc)[0]
    if abs(v @ lat.normal) > 0.7 * np.linalg.norm(v):
        return "v"
    v2 = lat._to2d(v)
    if site["kind"] == "4N":
        rem = np.asarray(site["removed_A"])
        axes = [lat._to2d(rem[1] - rem[0])]
    else:
        c = np.asarray(site["centre_A"])
        axes = [lat._to2d(_mic((atoms.positions[n] - c)[None], lat.cell, lat.pbc)[0]) for n in site["n_indices"]]
    cos = max(abs(v2 @ a) / (np.linalg.norm(v2) * np.linalg.norm(a)) for a in axes)
    return "a" if cos > math.cos(math.radians(20)) else "b"


def _pair_descriptors(out, sites, lat, pts, nbr, occupant, n_mask) -> None:
    a, b = sites
    d = np.linalg.norm(_mic((b["centre_A"] - a["centre_A"])[None], lat.cell, lat.pbc)[0])
    out["separation_A"] = float(d)
    pa = [p for p in range(len(pts)) if occupant[p] >= 0 and occupant[p] in a["n_indices"]]
    pb = [p for p in range(len(pts)) if occupant[p] >= 0 and occupant[p] in b["n_indices"]]
    out["shares_NN_bond"] = bool(nbr[np.ix_(pa, pb)].any()) or bool(set(pa) & set(pb))
    # shortest path over occupied lattice points from any N of a to any N of b; count C atoms in between
    dist = {p: 0 for p in pa}
    queue = deque(pa)
    target = set(pb)
    found = -1
    while queue:
        u = queue.popleft()
        if u in target:
            found = dist[u]
            break
        for v in np.where(nbr[u])[0]:
            v = int(v)
            if occupant[v] >= 0 and v not in dist:
                dist[v] = dist[u] + 1
                queue.append(v)
    out["n_C_between"] = max(found - 1, 0) if found >= 0 else -1
    # placement key: multiset of ideal distances between removed points of a and of b (with kinds)
    ra, rb = np.asarray(a["removed_A"]), np.asarray(b["removed_A"])
    _, dab = _pair_mic(ra, rb, lat.cell, lat.pbc)
    out["pair_geometry"] = f"{out['site_kinds']}|{lat.n_points}|" + ",".join(
        f"{x:.2f}" for x in sorted(dab.ravel())
    )


def recognise_many(atoms_list, progress: bool = False) -> list[dict]:
    """:func:`recognise` for each structure; failures give ``{"kind": "", "error": message}``."""
    it = atoms_list
    if progress:
        from tqdm import tqdm

        it = tqdm(atoms_list, desc="recognising", unit="structure")
    out = []
    for at in it:
        try:
            out.append(recognise(at))
        except AnalysisInputError as exc:
            out.append({"kind": "", "error": str(exc)})
    return out
