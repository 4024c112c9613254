"""Symmetry-inequivalent placements of two coordination sites in a graphene sheet.

All lengths in Å. A *placement* is a seed site A (kind ``kind_a``, fixed) plus a second site B (kind ``kind_b``)
at centre-to-centre distance from the smallest possible (the sites share an N–N bond) up to ``max_separation``.
Placements in which any atom would belong to both sites (removed in one and removed or N in the other, or N in
both) are rejected. Two placements are the same configuration when a symmetry of the infinite graphene sheet
(translations, rotations by 60°, mirrors; for equal kinds also the exchange of A and B) maps one onto the other;
the enumeration works on the exact integer grid of :mod:`sacmap.structures.lattice`, and the canonical key of a
placement is the lexicographically smallest sorted list of labelled atoms (removed/N of A/B, relative to the
centre of the first site) over the 12 point operations (and the exchange).

Ids are derived from content only: ``<kA>-<kB>_d<separation to 0.01 Å>_<letter>``, the letter ordering the
classes that share kinds and rounded separation by (exact separation, C atoms between, canonical key).
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from functools import lru_cache

import numpy as np

from .errors import StructureInputError
from .lattice import (
    GridSite,
    apply_op,
    grid_neighbours,
    grid_to_plane,
    parse_kind,
    point_ops,
    seed_site,
    separation_limit,
    sites_within,
)

DEFAULT_MAX_SEPARATION = 9.0  #: Å, the paper's largest separation


@dataclass(frozen=True)
class PairPlacement:
    """One symmetry-inequivalent configuration of two sites (grid representation; see :func:`enumerate_pairs`).

    ``separation_A``: centre-to-centre distance (Å). ``shares_NN_bond``: an N of A is bonded to an N of B.
    ``n_C_between``: C atoms on the shortest path (through the carved sheet) between N of A and N of B.
    ``swap_symmetric``: for equal kinds, whether a sheet symmetry exchanges A and B (then a metal on A or on B is
    the same configuration). ``multiplicity``: number of placements of B around the fixed A in this class.
    """

    id: str
    kinds: tuple[str, str]
    site_a: GridSite
    site_b: GridSite
    separation_A: float
    shares_NN_bond: bool
    n_C_between: int
    swap_symmetric: bool
    multiplicity: int
    key: tuple

    @property
    def site_kinds(self) -> str:
        return f"{self.kinds[0]}-{self.kinds[1]}"


def _labelled(x: GridSite, y: GridSite):
    labels, pts = [], []
    for lab, site in ((0, x), (1, y)):
        for p in sorted(site.removed):
            labels.append(2 * lab)
            pts.append(p)
        for p in sorted(site.nitrogens):
            labels.append(2 * lab + 1)
            pts.append(p)
    rel = np.array(pts, dtype=np.int64) - np.array(x.centre, dtype=np.int64)
    return labels, rel


def _oriented_key(x: GridSite, y: GridSite) -> tuple:
    labels, rel = _labelled(x, y)
    best = None
    for op in point_ops():
        r = apply_op(op, rel)
        k = tuple(sorted(zip(labels, r[:, 0].tolist(), r[:, 1].tolist())))
        if best is None or k < best:
            best = k
    return best


def canonical_key(a: GridSite, b: GridSite, allow_swap: bool | None = None) -> tuple:
    """Canonical key of the placement (A, B): equal keys ⇔ equivalent under the sheet's symmetry (and the
    exchange of A and B when ``allow_swap``, default: when the kinds are equal)."""
    if allow_swap is None:
        allow_swap = a.kind == b.kind
    k = _oriented_key(a, b)
    if allow_swap:
        k = min(k, _oriented_key(b, a))
    return k


def n_c_between(a: GridSite, b: GridSite, max_steps: int = 64) -> int:
    """C atoms on the shortest bond path between an N of ``a`` and an N of ``b`` (removed atoms excluded)."""
    blocked = a.removed | b.removed
    targets = b.nitrogens
    frontier = set(a.nitrogens)
    seen = set(frontier)
    for step in range(max_steps):
        if frontier & targets:
            return step - 1
        nxt = set()
        for p in frontier:
            for q in grid_neighbours(p):
                if q not in seen and q not in blocked:
                    nxt.add(q)
        seen |= nxt
        frontier = nxt
    return -1


def shares_nn_bond(a: GridSite, b: GridSite) -> bool:
    """True when an N atom of ``a`` is bonded to an N atom of ``b``."""
    return any(q in b.nitrogens for p in a.nitrogens for q in grid_neighbours(p))


def separation(a: GridSite, b: GridSite) -> float:
    """Centre-to-centre distance (Å) of two grid sites."""
    return float(np.linalg.norm(grid_to_plane(np.subtract(b.centre, a.centre), offset=False)))


def _letters(k: int) -> str:
    s = ""
    k += 1
    while k:
        k, r = divmod(k - 1, 26)
        s = chr(97 + r) + s
    return s


def _polar(a: GridSite, b: GridSite) -> float:
    v = grid_to_plane(np.subtract(b.centre, a.centre), offset=False)
    return round(math.degrees(math.atan2(v[1], v[0])) % 360.0, 6)


@lru_cache(maxsize=64)
def _enumerate(kind_a: str, kind_b: str, max_sep: float) -> tuple[PairPlacement, ...]:
    a = seed_site(kind_a)
    classes: dict[tuple, list[GridSite]] = {}
    a_atoms = a.atoms()
    for b in sites_within(kind_b, a.centre, max_sep):
        if b.atoms() & a_atoms:
            continue  # an atom would belong to both sites
        classes.setdefault(canonical_key(a, b), []).append(b)
    rows = []
    for key, members in classes.items():
        rep = min(members, key=lambda b: (_polar(a, b), tuple(sorted(b.removed))))
        d = separation(a, rep)
        swap = kind_a == kind_b and _oriented_key(a, rep) == _oriented_key(rep, a)
        rows.append((round(d, 6), n_c_between(a, rep), key, rep, d, swap, len(members)))
    rows.sort(key=lambda r: (r[0], r[1], r[2]))
    out = []
    counter: dict[str, int] = {}
    for _, nc, key, rep, d, swap, mult in rows:
        dlabel = f"{d:.2f}"
        k = counter.get(dlabel, 0)
        counter[dlabel] = k + 1
        out.append(
            PairPlacement(
                id=f"{kind_a}-{kind_b}_d{dlabel}_{_letters(k)}",
                kinds=(kind_a, kind_b),
                site_a=a,
                site_b=rep,
                separation_A=d,
                shares_NN_bond=shares_nn_bond(a, rep),
                n_C_between=nc,
                swap_symmetric=swap,
                multiplicity=mult,
                key=key,
            )
        )
    return tuple(out)


def enumerate_pairs(
    kind_a: str,
    kind_b: str,
    max_separation: float = DEFAULT_MAX_SEPARATION,
    min_separation: float = 0.0,
    cell_limit: float | None = None,
) -> list[PairPlacement]:
    """Symmetry-inequivalent placements of a ``kind_b`` site around a seed ``kind_a`` site.

    Separations (Å) from the smallest possible (sharing an N–N bond) up to ``max_separation`` (and at least
    ``min_separation``); sorted by separation. ``cell_limit`` (Å, default that of the 9 × 6 slab, 11.07) is the
    largest separation that stays a proper minimum-image distance in the periodic cell; asking for more raises
    :class:`StructureInputError`. Ids do not depend on the requested range.
    """
    ka, kb = parse_kind(kind_a), parse_kind(kind_b)
    limit = separation_limit() if cell_limit is None else cell_limit
    if not (0 < max_separation <= limit + 1e-9):
        raise StructureInputError(
            f"max_separation: {max_separation} Å is outside what the cell allows (0 < d <= {limit:.2f} Å)"
        )
    if min_separation < 0 or min_separation > max_separation:
        raise StructureInputError(f"min_separation: {min_separation} Å must lie in [0, max_separation]")
    # enumerate a little beyond the range so letters never depend on where the range is cut
    full = _enumerate(ka, kb, round(float(max_separation) + 0.02, 6))
    return [p for p in full if min_separation - 1e-9 <= p.separation_A <= max_separation + 1e-9]


def smallest_separation(kind_a: str, kind_b: str) -> float:
    """The smallest possible centre-to-centre distance (Å) of two non-overlapping sites of these kinds."""
    return enumerate_pairs(kind_a, kind_b, max_separation=separation_limit())[0].separation_A
