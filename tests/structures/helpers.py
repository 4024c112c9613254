"""Independent geometry helpers for the structures tests (no use of the library's lattice/grid code)."""

from __future__ import annotations

import itertools

import numpy as np
from ase import Atoms
from ase.geometry import get_distances
from ase.neighborlist import neighbor_list

BOND = 1.6


def heavy_neighbour_counts(atoms: Atoms) -> dict[int, int]:
    """Number of C/N/H neighbours within 1.6 Å of every C/N/H atom (periodic)."""
    sym = np.array(atoms.get_chemical_symbols())
    light = np.flatnonzero(np.isin(sym, ("C", "N", "H")))
    i = neighbor_list("i", atoms[light], BOND)
    counts = np.bincount(i, minlength=len(light))
    return {int(light[k]): int(counts[k]) for k in range(len(light))}


def slab_sites(slab: Atoms, kind: str):
    """All sites of ``kind`` in a pristine periodic sheet, found from bonds and distances only.

    Returns a list of (centre (3,), removed index frozenset, N index frozenset)."""
    pos = slab.get_positions()
    i, j, d = neighbor_list("ijd", slab, 1.6)
    nb = {k: set() for k in range(len(slab))}
    for a, b in zip(i, j):
        nb[int(a)].add(int(b))
    out = []

    def make(removed):
        removed = frozenset(removed)
        nitro = frozenset(q for p in removed for q in nb[p] if q not in removed)
        ref = pos[min(removed)]
        vec, _ = get_distances(ref, pos[sorted(removed)], cell=slab.cell, pbc=slab.pbc)
        centre = ref + vec[0].mean(axis=0)
        return centre, removed, nitro

    if kind == "3N":
        out = [make([k]) for k in range(len(slab))]
    elif kind == "4N":
        out = [make([int(a), int(b)]) for a, b in zip(i, j) if a < b]
    else:
        # a hexagon = an atom's para partners: pairs at 2·d = 2.84 Å span one hexagon each
        ii, jj = neighbor_list("ij", slab, 2.95)
        _, _, dd = neighbor_list("ijd", slab, 2.95)
        seen = set()
        for a, b, dist in zip(ii, jj, dd):
            if a < b and dist > 2.7:
                # the ring = atoms within 1.45 Å of the mid-point
                vec, _ = get_distances(pos[a], pos[b], cell=slab.cell, pbc=slab.pbc)
                mid = pos[a] + vec[0, 0] / 2
                _, dm = get_distances(mid, pos, cell=slab.cell, pbc=slab.pbc)
                ring = frozenset(int(k) for k in np.flatnonzero(dm[0] < 1.45))
                if len(ring) == 6 and ring not in seen:
                    seen.add(ring)
                    out.append(make(ring))
    return out


def labelled_points(slab: Atoms, sa, sb):
    """(labels, positions) of the carved atoms of two sites: B's centre unwrapped (minimum image) around A's
    centre, each site's atoms unwrapped around its own centre (a site's atoms may straddle the cell edge)."""
    pos = slab.get_positions()
    vec, _ = get_distances(sa[0], sb[0], cell=slab.cell, pbc=slab.pbc)
    centres = (np.asarray(sa[0]), np.asarray(sa[0]) + vec[0, 0])
    labels, pts = [], []
    for tag, (_, removed, nitro), c in (("A", sa, centres[0]), ("B", sb, centres[1])):
        own = [pos[k] for k in sorted(removed)] + [pos[k] for k in sorted(nitro)]
        v, _ = get_distances(c, np.array(own), cell=slab.cell, pbc=slab.pbc)
        labels += [tag + "c"] + [tag + "r"] * len(removed) + [tag + "n"] * len(nitro)
        pts += [c] + list(c + v[0])
    return labels, np.array(pts)


def distance_invariant(labels, pts, swap: bool) -> tuple:
    """Sorted list of (label pair, distance to 0.01 Å) over all point pairs; with ``swap`` the smaller of the
    lists for the two A/B labellings (so exchanging equal-kind sites gives the same invariant)."""

    def inv(lab):
        items = []
        for x, y in itertools.combinations(range(len(lab)), 2):
            pair = tuple(sorted((lab[x], lab[y])))
            items.append((pair, round(float(np.linalg.norm(pts[x] - pts[y])), 2)))
        return tuple(sorted(items))

    first = inv(labels)
    if not swap:
        return first
    swapped = [("B" if s[0] == "A" else "A") + s[1:] for s in labels]
    return min(first, inv(swapped))


def config_invariant(atoms: Atoms) -> tuple:
    """Labelled distance invariant of the two carved sites of a built configuration (removed positions and N
    atoms of each site, unwrapped around its centre; the exchange of equal-kind sites allowed)."""
    from sacmap.structures import sites_of

    sa, sb = sites_of(atoms)
    pos = atoms.get_positions()
    vec, _ = get_distances(sa.centre, sb.centre, cell=atoms.cell, pbc=atoms.pbc)
    centres = (np.asarray(sa.centre), np.asarray(sa.centre) + vec[0, 0])
    labels, pts = [], []
    for tag, s, c in (("A", sa, centres[0]), ("B", sb, centres[1])):
        own = np.vstack([np.asarray(s.removed_positions), pos[s.n_indices]])
        v, _ = get_distances(c, own, cell=atoms.cell, pbc=atoms.pbc)
        labels += [tag + "c"] + [tag + "r"] * len(s.removed_positions) + [tag + "n"] * len(s.n_indices)
        pts += [c] + list(c + v[0])
    return distance_invariant(labels, np.array(pts), swap=sa.kind == sb.kind)
