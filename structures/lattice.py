"""The graphene lattice: the periodic slab and an exact integer grid for sites, pairs and their symmetry.

All lengths in Å. Graphene lattice constant ``a = 2.46`` Å, C–C bond ``d = a/√3 ≈ 1.42`` Å.

**Grid coordinates.** Every atom, bond mid-point and hexagon centre of the (infinite) sheet lies on the grid
``x = i·a/4``, ``y = j·d/4`` with integer ``(i, j)``, where x runs along the zigzag direction (the first in-plane
lattice vector of the slab) and y along the armchair direction. Atoms of sublattice A sit at
``(4m + 2n, 6n)``, sublattice B at ``(4m + 2n, 6n + 4)``, hexagon centres at ``(4m + 2n + 2, 6n + 2)``. Working
on this grid makes overlap tests, symmetry operations and canonical keys exact (integer arithmetic).

**Slab orientation.** ``orientation="ab"`` (default): the sheet spans the first two lattice vectors, the vacuum
is along ``c`` (the third), k-grid 2×2×1. ``orientation="ac"``: the paper's choice, the sheet spans ``a`` and
``c``, the vacuum is along ``b``, k-grid 2×1×2. In both cases the cell is orthorhombic and right-handed.
"""

from __future__ import annotations

import math
from functools import lru_cache

import numpy as np
from ase import Atoms

from .errors import StructureInputError

A_LATTICE = 2.46  #: graphene lattice constant (Å)
CC_BOND = A_LATTICE / math.sqrt(3.0)  #: C–C bond length (Å), ≈ 1.42
UX = A_LATTICE / 4.0  #: grid unit along x (Å)
UY = CC_BOND / 4.0  #: grid unit along y (Å)
GRID_OFFSET = (1, 1)  #: grid offset of the slab's first atom from the cell origin (keeps atoms off the edges)
DEFAULT_VACUUM = 15.0  #: cell length along the vacuum axis (Å); the sheet sits in its middle
ORIENTATIONS = ("ab", "ac")

SITE_KINDS = ("3N", "4N", "6N")
_KIND_ALIASES = {
    "3": "3N", "3n": "3N", "3xn6": "3N", "3×n6": "3N", "3*n6": "3N", "3-n6": "3N", "3n6": "3N",
    "4": "4N", "4n": "4N", "4xn6": "4N", "4×n6": "4N", "4*n6": "4N", "4-n6": "4N", "4n6": "4N",
    "6": "6N", "6n": "6N", "6xn6": "6N", "6×n6": "6N", "6*n6": "6N", "6-n6": "6N", "6n6": "6N",
}

# neighbour offsets on the grid, by sublattice
_NEIGH_A = ((0, 4), (2, -2), (-2, -2))
_NEIGH_B = ((0, -4), (2, 2), (-2, 2))
_HEX_VERTICES = ((-2, -2), (-2, 2), (0, 4), (2, 2), (2, -2), (0, -4))  # relative to a hexagon centre

#: The sheet's Bravais vectors in grid units: ``a1 = (4, 0)`` along x (zigzag, ``|a1| = a``), ``a2 = (2, 6)`` at
#: +60° from ``a1``. The Bravais cell ``(m, n)`` holds the A atom ``m·a1 + n·a2`` and the B atom 4 grid units
#: above it along y.
BRAVAIS_GRID = ((4, 0), (2, 6))
#: Grid coordinates of the two atoms of the Bravais cell ``(0, 0)``, by sublattice.
SUBLATTICE_GRID = {"A": (0, 0), "B": (0, 4)}


def parse_kind(kind: object, where: str = "site kind") -> str:
    """Canonical site kind ``'3N'``, ``'4N'`` or ``'6N'`` from ``3N``, ``3xN6``, ``3×N6`` (any case), ``3``.

    Raises :class:`StructureInputError` naming ``where`` for anything else.
    """
    key = str(kind).strip().lower().replace(" ", "")
    if key in _KIND_ALIASES:
        return _KIND_ALIASES[key]
    raise StructureInputError(f"{where}: unknown site kind {kind!r} (expected one of 3N, 4N, 6N or 3xN6, 4xN6, 6xN6)")


# --------------------------------------------------------------------------------------------------- the slab
def plane_axes(atoms_or_orientation: Atoms | str) -> tuple[int, int, int]:
    """``(u, v, n)``: indices of the two in-plane Cartesian axes and of the normal (vacuum) axis.

    Accepts an orientation string (``"ab"``/``"ac"``) or an ``Atoms`` built here (reads ``info["vacuum_axis"]``;
    without it, the axis along which the atoms are flattest is taken as the normal).
    """
    if isinstance(atoms_or_orientation, str):
        orient = check_orientation(atoms_or_orientation)
        return (0, 1, 2) if orient == "ab" else (0, 2, 1)
    atoms = atoms_or_orientation
    n = atoms.info.get("vacuum_axis")
    if n is None:
        pos = atoms.get_positions()
        n = int(np.argmin(np.ptp(pos, axis=0))) if len(atoms) else 2
    n = int(n)
    u, v = [k for k in range(3) if k != n]
    return u, v, n


def check_orientation(orientation: str) -> str:
    o = str(orientation).strip().lower()
    if o not in ORIENTATIONS:
        raise StructureInputError(
            f"slab orientation: unknown value {orientation!r} (expected 'ab' = vacuum along c, or 'ac' = sheet in a,c)"
        )
    return o


def grid_to_plane(ij, offset: bool = True) -> np.ndarray:
    """Grid coordinates ``(..., 2)`` → in-plane Cartesian coordinates (Å) of the slab (with the slab offset)."""
    ij = np.asarray(ij, dtype=float)
    out = np.empty(ij.shape, dtype=float)
    out[..., 0] = ij[..., 0] * UX
    out[..., 1] = ij[..., 1] * UY
    if offset:
        out[..., 0] += GRID_OFFSET[0] * UX
        out[..., 1] += GRID_OFFSET[1] * UY
    return out


def lattice_vectors() -> np.ndarray:
    """The sheet's Bravais vectors ``a1``, ``a2`` (rows, Å) in the slab's in-plane frame: ``(a, 0)`` along the
    zigzag x axis and ``(a/2, a·√3/2)`` at +60° (:data:`BRAVAIS_GRID` in grid units; ``a`` = 2.46 Å)."""
    return grid_to_plane(np.array(BRAVAIS_GRID), offset=False)


def lattice_to_grid(coeffs, origin: str = "A", tol: float = 1e-2) -> np.ndarray:
    """Integer grid coordinates of points given as coefficients ``(..., 2)`` on the Bravais vectors ``a1``, ``a2``
    (:func:`lattice_vectors`), measured from an atom of sublattice ``origin`` (``"A"`` or ``"B"``).

    Fractional coefficients reach the other sublattice (``±(a1 + a2)/3``), bond mid-points and hexagon centres.
    Raises ``ValueError`` when a point is not on the grid (more than ``tol`` grid units off).
    """
    if origin not in SUBLATTICE_GRID:
        raise ValueError(f"unknown sublattice {origin!r} (expected 'A' or 'B')")
    grid = np.asarray(coeffs, dtype=float) @ np.array(BRAVAIS_GRID, dtype=float) + SUBLATTICE_GRID[origin]
    r = np.rint(grid)
    if np.max(np.abs(grid - r), initial=0.0) > tol:
        raise ValueError("point is not on the lattice grid")
    return r.astype(np.int64)


def slab_kpoint_grid(vacuum_axis: int, in_plane: int = 2, vacuum: int = 1) -> tuple[int, int, int]:
    """The slab k-point rule: Γ-centred, ``in_plane`` subdivisions along both in-plane cell vectors and
    ``vacuum`` along the cell vector ``vacuum_axis`` (0, 1 or 2). Used by :func:`kpoint_grid` and the campaign's
    VASP inputs."""
    if int(vacuum_axis) not in (0, 1, 2):
        raise ValueError(f"vacuum axis must be 0, 1 or 2, got {vacuum_axis!r}")
    k = [int(in_plane)] * 3
    k[int(vacuum_axis)] = int(vacuum)
    return tuple(k)


def graphene_slab(nx: int = 9, ny: int = 6, vacuum: float = DEFAULT_VACUUM, orientation: str = "ab") -> Atoms:
    """Pristine monolayer graphene in an orthorhombic cell of ``nx × ny`` rectangular 4-atom units.

    The rectangular unit is ``a × √3·a`` (2.46 × 4.261 Å); the default 9 × 6 gives the paper's "6×9" slab:
    216 C atoms in 22.14 × 25.56 Å. ``vacuum`` is the cell length (Å) along the vacuum axis (the sheet is placed
    in the middle, so it is also the sheet-to-image distance). ``orientation="ab"`` puts the vacuum along ``c``
    (default); ``"ac"`` puts the sheet in the (a, c) plane with the vacuum along ``b`` (the paper's choice, which
    goes with its Γ-centred 2×1×2 k-grid). See :func:`kpoint_grid`.

    ``info`` gets ``vacuum_axis`` (0-based), ``orientation``, ``slab`` (``"9x6"``), ``kpts`` (``"2x2x1"``).
    """
    if int(nx) != nx or int(ny) != ny or nx < 1 or ny < 1:
        raise StructureInputError(f"slab: nx and ny must be positive integers (got nx={nx!r}, ny={ny!r})")
    nx, ny = int(nx), int(ny)
    if not (isinstance(vacuum, (int, float)) and vacuum >= 8.0):
        raise StructureInputError(f"slab: vacuum must be a number >= 8 Å (got {vacuum!r})")
    orientation = check_orientation(orientation)
    grid = []
    for iy in range(ny):
        for ix in range(nx):
            for di, dj in ((0, 0), (0, 4), (2, 6), (2, 10)):
                grid.append((4 * ix + di, 12 * iy + dj))
    plane = grid_to_plane(np.array(grid))
    lx, ly = nx * A_LATTICE, ny * math.sqrt(3.0) * A_LATTICE
    u, v, n = plane_axes(orientation)
    pos = np.zeros((len(grid), 3))
    pos[:, u] = plane[:, 0]
    pos[:, v] = plane[:, 1]
    pos[:, n] = vacuum / 2.0
    lengths = np.zeros(3)
    lengths[u], lengths[v], lengths[n] = lx, ly, vacuum
    atoms = Atoms(f"C{len(grid)}", positions=pos, cell=np.diag(lengths), pbc=True)
    atoms.info.update(
        vacuum_axis=n, orientation=orientation, slab=f"{nx}x{ny}", kpts=kpts_string(kpoint_grid(orientation))
    )
    return atoms


def kpoint_grid(atoms_or_orientation: Atoms | str, in_plane: int = 2) -> tuple[int, int, int]:
    """Γ-centred k-point grid for the slab: ``in_plane`` points along both sheet vectors, 1 along the vacuum.

    ``"ab"`` (vacuum along c) → ``(2, 2, 1)``; ``"ac"`` (the paper's sheet in a, c) → ``(2, 1, 2)``. Gas-phase
    boxes (``info["kind"]`` starting with ``gas``) get ``(1, 1, 1)``.
    """
    if isinstance(atoms_or_orientation, Atoms) and str(atoms_or_orientation.info.get("kind", "")).startswith("gas"):
        return (1, 1, 1)
    _, _, n = plane_axes(atoms_or_orientation)
    return slab_kpoint_grid(n, in_plane)


def kpts_string(k) -> str:
    return "x".join(str(int(x)) for x in k)


def separation_limit(nx: int = 9, ny: int = 6) -> float:
    """Largest centre-to-centre separation (Å) that is unambiguous as a minimum-image distance in the cell:
    half the shorter in-plane cell length (11.07 Å for the 9 × 6 slab)."""
    return 0.5 * min(nx * A_LATTICE, ny * math.sqrt(3.0) * A_LATTICE)


# --------------------------------------------------------------------------------------- grid-level sites
def sublattice(p) -> str:
    """``'A'`` or ``'B'`` for a grid atom, raises ValueError for a non-atom grid point."""
    i, j = p
    r = j % 6
    if r == 0 and (i - j // 3) % 4 == 0:
        return "A"
    if r == 4 and (i - (j - 4) // 3) % 4 == 0:
        return "B"
    raise ValueError(f"grid point {p} is not an atom")


def grid_neighbours(p) -> list[tuple[int, int]]:
    i, j = p
    offs = _NEIGH_A if sublattice(p) == "A" else _NEIGH_B
    return [(i + di, j + dj) for di, dj in offs]


class GridSite:
    """A coordination site on the infinite lattice: kind, centre, orientation (deg), removed atoms, N atoms.

    ``orientation`` is the angle (degrees, in-plane, from +x) of the site's reference axis, reduced modulo the
    site's own symmetry: 3N → direction centre→N modulo 120 (30 or 90: the two sublattices); 4N → the removed
    bond modulo 180 (30, 90 or 150); 6N → centre→N modulo 60 (always 30).
    """

    __slots__ = ("kind", "centre", "orientation", "removed", "nitrogens")

    def __init__(self, kind: str, centre, orientation: int, removed, nitrogens):
        self.kind = kind
        self.centre = tuple(centre)
        self.orientation = int(orientation)
        self.removed = frozenset(removed)
        self.nitrogens = frozenset(nitrogens)

    def atoms(self) -> frozenset:
        return self.removed | self.nitrogens

    def translated(self, t) -> GridSite:
        ti, tj = t
        return GridSite(
            self.kind,
            (self.centre[0] + ti, self.centre[1] + tj),
            self.orientation,
            [(i + ti, j + tj) for i, j in self.removed],
            [(i + ti, j + tj) for i, j in self.nitrogens],
        )

    def __repr__(self) -> str:
        return f"GridSite({self.kind}, centre={self.centre}, orientation={self.orientation})"


def _site_from_removed(kind: str, centre, removed) -> GridSite:
    removed = set(removed)
    nitrogens = set()
    for p in removed:
        for q in grid_neighbours(p):
            if q not in removed:
                nitrogens.add(q)
    c = np.array(grid_to_plane(centre, offset=False))
    if kind == "3N":
        q = next(iter(nitrogens))
        vec = grid_to_plane(q, offset=False) - c
        orient = round(math.degrees(math.atan2(vec[1], vec[0]))) % 120
    elif kind == "4N":
        p, q = sorted(removed)
        vec = grid_to_plane(q, offset=False) - grid_to_plane(p, offset=False)
        orient = round(math.degrees(math.atan2(vec[1], vec[0]))) % 180
    else:
        q = next(iter(nitrogens))
        vec = grid_to_plane(q, offset=False) - c
        orient = round(math.degrees(math.atan2(vec[1], vec[0]))) % 60
    return GridSite(kind, centre, orient, removed, nitrogens)


def grid_site(kind: str, anchor) -> GridSite:
    """Site of ``kind`` at a grid ``anchor``: 3N → the removed atom; 4N → the bond mid-point; 6N → the hexagon
    centre (all in grid coordinates)."""
    kind = parse_kind(kind)
    i, j = anchor
    if kind == "3N":
        sublattice(anchor)
        return _site_from_removed(kind, anchor, [anchor])
    if kind == "4N":
        # mid-point of a bond: find the two atoms at ±half bond
        for di, dj in ((0, 2), (1, 1), (-1, 1)):
            p, q = (i - di, j - dj), (i + di, j + dj)
            try:
                if sublattice(p) != sublattice(q) and q in grid_neighbours(p):
                    return _site_from_removed(kind, anchor, [p, q])
            except ValueError:
                continue
        raise ValueError(f"grid point {anchor} is not a bond mid-point")
    removed = [(i + di, j + dj) for di, dj in _HEX_VERTICES]
    for p in removed:
        sublattice(p)  # raises if not a hexagon centre
    return _site_from_removed(kind, anchor, removed)


def seed_site(kind: str) -> GridSite:
    """The canonical seed site of each kind near the grid origin (3N: an A atom; 4N: a bond along y; 6N: a
    hexagon)."""
    kind = parse_kind(kind)
    return grid_site(kind, {"3N": (0, 0), "4N": (0, 2), "6N": (2, 2)}[kind])


def sites_within(kind: str, centre, radius_A: float) -> list[GridSite]:
    """All sites of ``kind`` on the infinite lattice whose centre lies within ``radius_A`` (Å) of the grid point
    ``centre``."""
    kind = parse_kind(kind)
    c = grid_to_plane(centre, offset=False)
    mmax = int(radius_A / A_LATTICE) + 3
    anchors = []
    for m in range(-2 * mmax, 2 * mmax + 1):
        for n in range(-mmax - 1, mmax + 2):
            base = (4 * m + 2 * n, 6 * n)
            if kind == "3N":
                anchors += [base, (base[0], base[1] + 4)]
            elif kind == "4N":
                anchors += [(base[0], base[1] + 2), (base[0] + 1, base[1] + 5), (base[0] - 1, base[1] + 5)]
            else:
                anchors.append((base[0] + 2, base[1] + 2))
    out = []
    for a in anchors:
        if np.linalg.norm(grid_to_plane(a, offset=False) - c) <= radius_A + 1e-9:
            out.append(grid_site(kind, a))
    return out


@lru_cache(maxsize=1)
def point_ops() -> tuple[np.ndarray, ...]:
    """The 12 linear parts of the graphene sheet's point group 6mm, as 2×2 float matrices acting on grid
    vectors (rotations by k·60° and the mirrors)."""
    g = np.diag([UX, UY])
    gi = np.linalg.inv(g)
    ops = []
    for k in range(6):
        t = math.radians(60 * k)
        r = np.array([[math.cos(t), -math.sin(t)], [math.sin(t), math.cos(t)]])
        for m in (np.eye(2), np.diag([-1.0, 1.0])):
            ops.append(gi @ r @ m @ g)
    return tuple(ops)


def apply_op(op: np.ndarray, vecs: np.ndarray) -> np.ndarray:
    """Apply a grid-space point operation to integer grid vectors ``(n, 2)``; returns integers (exact)."""
    out = vecs @ op.T
    r = np.rint(out)
    if np.max(np.abs(out - r), initial=0.0) > 1e-6:
        raise AssertionError("symmetry operation left the grid")  # pragma: no cover - lattice invariant
    return r.astype(np.int64)


def lattice_translation_near(target_ij) -> tuple[int, int]:
    """The Bravais lattice vector ``m·(4, 0) + n·(2, 6)`` (grid units) closest in Å to ``target_ij``."""
    ti, tj = target_ij
    n0 = tj / 6.0
    best = None
    for n in range(math.floor(n0) - 1, math.floor(n0) + 3):
        m0 = (ti - 2 * n) / 4.0
        for m in range(math.floor(m0) - 1, math.floor(m0) + 3):
            v = (4 * m + 2 * n, 6 * n)
            d = np.linalg.norm(grid_to_plane((v[0] - ti, v[1] - tj), offset=False))
            key = (round(d, 9), v)
            if best is None or key < best:
                best = key
    return best[1]
