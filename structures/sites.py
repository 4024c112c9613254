"""Coordination sites carved into a graphene sheet: 3×N6 (3N), 4×N6 (4N), 6×N6 (6N).

All lengths in Å.

* 3N (trigonal): remove one C; its 3 neighbours become N.
* 4N (square planar): remove two bonded C (a divacancy, any of the 3 bond orientations); the 4 C bonded to them
  become N.
* 6N (hexagonal): remove the 6 C of one hexagon; the 6 C bonded to them become N.

Carving works geometrically on any graphene ``Atoms`` (pristine or already carved), with periodic images, so the
same code serves the campaign builders and the recognition of sites in other structures. The sites of a
structure are kept as a JSON list in ``atoms.info["sites"]`` (see :class:`Site`).
"""

from __future__ import annotations

import json
import math
from dataclasses import asdict, dataclass, field

import numpy as np
from ase import Atoms
from ase.geometry import find_mic
from ase.neighborlist import neighbor_list

from .errors import StructureInputError
from .lattice import CC_BOND, parse_kind, plane_axes

BOND_CUTOFF = 1.6  #: Å, two C/N atoms closer than this are bonded
_N_COUNT = {"3N": 3, "4N": 4, "6N": 6}
_REMOVED_COUNT = {"3N": 1, "4N": 2, "6N": 6}
_ORIENT_PERIOD = {"3N": 120, "4N": 180, "6N": 60}
_LIGHT = ("C", "N", "H")
_XH_BOND = {"C": 1.09, "N": 1.02}


@dataclass
class Site:
    """One coordination site of a structure.

    ``kind``: ``3N``/``4N``/``6N``. ``centre``: Cartesian centre (Å) in the sheet plane, wrapped into the cell: the
    centroid of the removed atoms. ``orientation``: in-plane angle (degrees from the first in-plane axis) of the
    site's reference axis, modulo the site's symmetry (3N: centre→N mod 120; 4N: removed bond mod 180; 6N:
    centre→N mod 60). ``n_indices``: indices of its N atoms in the structure. ``removed_positions``: where the
    removed C atoms were (Å). ``occupant``: ``""`` (bare), an element (``"Pd"``) or a dimer (``"Pt2"``);
    ``metal_indices``: the indices of those metal atoms.
    """

    kind: str
    centre: list[float]
    orientation: int
    n_indices: list[int]
    removed_positions: list[list[float]]
    occupant: str = ""
    metal_indices: list[int] = field(default_factory=list)

    def to_dict(self) -> dict:
        d = asdict(self)
        d["centre"] = [round(float(x), 6) for x in self.centre]
        d["removed_positions"] = [[round(float(x), 6) for x in p] for p in self.removed_positions]
        d["n_indices"] = [int(i) for i in self.n_indices]
        d["metal_indices"] = [int(i) for i in self.metal_indices]
        return d

    @classmethod
    def from_dict(cls, d: dict) -> Site:
        return cls(
            kind=d["kind"],
            centre=list(d["centre"]),
            orientation=int(d["orientation"]),
            n_indices=list(d["n_indices"]),
            removed_positions=[list(p) for p in d["removed_positions"]],
            occupant=d.get("occupant", ""),
            metal_indices=list(d.get("metal_indices", [])),
        )

    @property
    def label(self) -> str:
        """``Pd/4N`` when occupied, else ``4N``."""
        return f"{self.occupant}/{self.kind}" if self.occupant else self.kind


def sites_of(atoms: Atoms) -> list[Site]:
    """The :class:`Site` list stored in ``atoms.info["sites"]`` (JSON string or list of dicts); ``[]`` if none."""
    raw = atoms.info.get("sites")
    if raw is None or raw == "":
        return []
    if isinstance(raw, str):
        raw = json.loads(raw)
    return [Site.from_dict(d) for d in raw]


def set_sites(atoms: Atoms, sites: list[Site]) -> None:
    """Store ``sites`` in ``atoms.info["sites"]`` as a JSON string (extxyz-safe)."""
    atoms.info["sites"] = json.dumps([s.to_dict() for s in sites], separators=(",", ":"))


# ------------------------------------------------------------------------------------------------ geometry
def _light_graph(atoms: Atoms):
    """Neighbour list (i, j, D) restricted to C/N atoms, with indices of ``atoms``."""
    sym = np.array(atoms.get_chemical_symbols())
    light = np.flatnonzero(np.isin(sym, ("C", "N")))
    sub = atoms[light]
    i, j, d = neighbor_list("ijD", sub, BOND_CUTOFF)
    return light[i], light[j], d


def _mic_plane(atoms: Atoms, vecs: np.ndarray) -> np.ndarray:
    """Minimum-image versions of Cartesian difference vectors ``(n, 3)``."""
    out, _ = find_mic(np.atleast_2d(vecs), atoms.cell, atoms.pbc)
    return out


def _wrap(atoms: Atoms, pos) -> np.ndarray:
    """Wrap Cartesian point(s) ``(3,)`` or ``(n, 3)`` into the cell along periodic axes."""
    pos = np.asarray(pos, float)
    frac = pos @ np.linalg.inv(atoms.cell.array)
    frac = np.where(atoms.pbc, frac % 1.0, frac)
    frac = np.where(np.isclose(frac, 1.0, atol=1e-9) & atoms.pbc, 0.0, frac)
    return frac @ atoms.cell.array


def _angle(vec, u: int, v: int) -> float:
    return math.degrees(math.atan2(vec[v], vec[u]))


def _orient_close(a: float, b: float, period: int, tol: float = 10.0) -> bool:
    diff = (a - b) % period
    return min(diff, period - diff) < tol


def _candidates(atoms: Atoms, kind: str, graph):
    """Candidate sites of ``kind``: ``(centres (k, 3), orientations (k,) deg, removed index tuples)``.

    For 6N the removed tuples are ``None`` (the ring is resolved only for the chosen candidate)."""
    u, v, _ = plane_axes(atoms)
    pos = atoms.get_positions()
    sym = np.array(atoms.get_chemical_symbols())
    gi, gj, gd = graph
    is_c = sym == "C"
    if kind == "3N":
        counts = np.bincount(gi, minlength=len(atoms))
        first = {}
        for a, dv in zip(gi, gd):
            first.setdefault(int(a), dv)
        idx = [a for a in range(len(atoms)) if is_c[a] and counts[a] == 3]
        ang = np.array([_angle(first[a], u, v) % 120 for a in idx])
        return pos[idx], ang, [(a,) for a in idx]
    if kind == "4N":
        m = (gi < gj) & is_c[gi] & is_c[gj]
        centres = pos[gi[m]] + gd[m] / 2.0
        ang = np.degrees(np.arctan2(gd[m][:, v], gd[m][:, u])) % 180
        return centres, ang, [(int(a), int(b)) for a, b in zip(gi[m], gj[m])]
    # 6N: hexagon centre = j + k - i for consecutive ring atoms j, i, k
    neigh: dict[int, list[np.ndarray]] = {}
    for a, dv in zip(gi, gd):
        neigh.setdefault(int(a), []).append(dv)
    cs = []
    for a, dvs in neigh.items():
        for x in range(len(dvs)):
            for y in range(x + 1, len(dvs)):
                cs.append(pos[a] + dvs[x] + dvs[y])
    if not cs:
        return np.zeros((0, 3)), np.zeros(0), []
    cs = _wrap(atoms, np.array(cs))
    _, uniq = np.unique(np.round(cs, 2), axis=0, return_index=True)
    cs = cs[np.sort(uniq)]
    return cs, np.full(len(cs), np.nan), [None] * len(cs)


def _hexagon(atoms: Atoms, centre):
    """Indices of the 6 C atoms around a hexagon centre and the ring orientation (deg), or None."""
    u, v, _ = plane_axes(atoms)
    pos = atoms.get_positions()
    sym = atoms.get_chemical_symbols()
    dv = _mic_plane(atoms, pos - centre)
    d = np.linalg.norm(dv, axis=1)
    ring = np.flatnonzero(d < CC_BOND + 0.25)
    if len(ring) != 6 or any(sym[k] != "C" for k in ring):
        return None
    return tuple(int(k) for k in ring), _angle(dv[ring[0]], u, v) % 60


def find_site(atoms: Atoms, kind: str, near=None, orientation: float | None = None):
    """Locate where a site of ``kind`` would be carved: ``(centre, orientation, removed indices, graph,
    distance_A)`` of the candidate closest (minimum image, in plane) to ``near`` (Cartesian Å; default the cell
    centre), restricted to the given ``orientation`` (degrees, see :class:`Site`) when not None."""
    kind = parse_kind(kind)
    u, v, n = plane_axes(atoms)
    if near is None:
        near = atoms.cell.sum(axis=0) / 2.0
    near = np.asarray(near, float)
    if near.shape == (2,):
        p3 = np.zeros(3)
        p3[u], p3[v] = near
        near = p3
    graph = _light_graph(atoms)
    centres, orients, removed = _candidates(atoms, kind, graph)
    if len(centres):
        dvec = _mic_plane(atoms, centres - near)
        dvec[:, n] = 0.0
        dist = np.round(np.linalg.norm(dvec, axis=1), 6)
        for k in np.lexsort((np.arange(len(dist)), dist)):
            rem, orient = removed[k], orients[k]
            if kind == "6N":
                ring = _hexagon(atoms, centres[k])
                if ring is None:
                    continue
                rem, orient = ring
            if orientation is not None and not _orient_close(orient, orientation, _ORIENT_PERIOD[kind]):
                continue
            return centres[k], float(orient), rem, graph, float(dist[k])
    raise StructureInputError(f"carve_site: no place for a {kind} site (orientation={orientation}) in this sheet")


def carve_site(atoms: Atoms, kind: str, near=None, orientation: float | None = None, max_offset: float | None = None):
    """Carve one site of ``kind`` (``3N``/``3xN6``/..., ``4N``, ``6N``) into a graphene sheet.

    The site is the candidate closest to ``near`` (Cartesian position in Å, 2 in-plane or 3 components; default
    the cell centre) with the given ``orientation`` (degrees; None = any). ``max_offset`` (Å): fail if the
    closest candidate centre is further than this from ``near``. Sites already present (``info["sites"]``) are
    kept, their indices updated; carving into an atom of an existing site raises :class:`StructureInputError`.

    Returns ``(new_atoms, site)``; ``new_atoms.info`` holds the updated ``sites`` JSON and ``saturated_H`` (number of
    H atoms added to saturate atoms left with fewer than two neighbours — none for well-separated sites).
    """
    kind = parse_kind(kind)
    centre, orient, removed, graph, dist = find_site(atoms, kind, near, orientation)
    if max_offset is not None and dist > max_offset:
        where = "the cell centre" if near is None else str(list(np.round(np.asarray(near, float), 3)))
        raise StructureInputError(f"carve_site: no free {kind} site within {max_offset} Å of {where}")
    sym = atoms.get_chemical_symbols()
    gi, gj, _ = graph
    removed = set(removed)
    nitro = set()
    for a, b in zip(gi, gj):
        if int(a) in removed and int(b) not in removed:
            nitro.add(int(b))
    bad = [k for k in removed | nitro if sym[k] != "C"]
    if bad or len(nitro) != _N_COUNT[kind] or len(removed) != _REMOVED_COUNT[kind]:
        raise StructureInputError(
            f"carve_site: a {kind} site at {list(np.round(centre, 3))} would overlap an existing site or hole"
        )
    pos = atoms.get_positions()
    rem = sorted(removed)
    rel = _mic_plane(atoms, pos[rem] - pos[rem[0]])
    removed_pos = pos[rem[0]] + rel
    site_centre = _wrap(atoms, removed_pos.mean(axis=0))
    removed_pos_wrapped = _wrap(atoms, removed_pos)

    new = atoms.copy()
    new.info = dict(atoms.info)
    for k in nitro:
        new[k].symbol = "N"
    keep = np.array([k for k in range(len(atoms)) if k not in removed])
    remap = {int(old): new_i for new_i, old in enumerate(keep)}
    new = new[keep]
    new.info = dict(atoms.info)
    sites = sites_of(atoms)
    for s in sites:
        s.n_indices = [remap[k] for k in s.n_indices]
        s.metal_indices = [remap[k] for k in s.metal_indices]
    site = Site(
        kind=kind,
        centre=[float(x) for x in site_centre],
        orientation=int(round(orient)) % _ORIENT_PERIOD[kind],
        n_indices=sorted(remap[k] for k in nitro),
        removed_positions=removed_pos_wrapped.tolist(),
    )
    sites.append(site)
    set_sites(new, sites)
    added = saturate_dangling(new, removed_pos_wrapped)
    new.info["saturated_H"] = int(new.info.get("saturated_H", 0)) + added
    return new, site


def undercoordinated(atoms: Atoms, minimum: int = 2) -> list[int]:
    """Indices of C/N atoms with fewer than ``minimum`` C/N/H neighbours within 1.6 Å (periodic)."""
    sym = np.array(atoms.get_chemical_symbols())
    light = np.flatnonzero(np.isin(sym, _LIGHT))
    if len(light) == 0:
        return []
    sub = atoms[light]
    i = neighbor_list("i", sub, BOND_CUTOFF)
    counts = np.bincount(i, minlength=len(sub))
    return [int(light[k]) for k in range(len(sub)) if sym[light[k]] in ("C", "N") and counts[k] < minimum]


def saturate_dangling(atoms: Atoms, removed_positions=None) -> int:
    """Saturate C/N atoms left with fewer than two neighbours by H (in place); returns the number of H added.

    Each such atom gets one H (C–H 1.09 Å, N–H 1.02 Å) towards each of its former neighbours among
    ``removed_positions`` (C then regains three bonds, N two). Well-formed 3N/4N/6N sites never need this; it is
    the safety net for constructions that would leave a dangling atom, and the count is recorded by the caller.
    """
    bad = undercoordinated(atoms)
    if not bad or removed_positions is None or len(removed_positions) == 0:
        return 0
    pos = atoms.get_positions()
    sym = atoms.get_chemical_symbols()
    removed_positions = np.asarray(removed_positions, float)
    new_h = []
    for k in bad:
        dv = _mic_plane(atoms, removed_positions - pos[k])
        dist = np.linalg.norm(dv, axis=1)
        order = np.argsort(dist)
        need = 3 if sym[k] == "C" else 2
        have = len([1 for q in range(len(atoms)) if q != k and np.linalg.norm(
            _mic_plane(atoms, pos[q] - pos[k])[0]) < BOND_CUTOFF])
        for q in order[: max(0, need - have)]:
            if dist[q] < BOND_CUTOFF:
                new_h.append(pos[k] + dv[q] / dist[q] * _XH_BOND.get(sym[k], 1.05))
    for p in new_h:
        atoms.append("H")
        atoms.positions[-1] = p
    return len(new_h)


def carve_sites(atoms: Atoms, specs) -> tuple[Atoms, list[Site]]:
    """Carve several sites in turn: ``specs`` is a list of ``(kind, near, orientation)`` tuples (see
    :func:`carve_site`). Returns the new structure and its full site list."""
    for kind, near, orientation in specs:
        atoms, _ = carve_site(atoms, kind, near=near, orientation=orientation, max_offset=0.3)
    return atoms, sites_of(atoms)


def site_centres(atoms: Atoms) -> np.ndarray:
    """Centres (Å, Cartesian, ``(n_sites, 3)``) of the sites stored in ``atoms.info``."""
    return np.array([s.centre for s in sites_of(atoms)], float).reshape(-1, 3)


def minimum_image_distance(atoms: Atoms, p, q) -> float:
    """Minimum-image distance (Å) between Cartesian points ``p`` and ``q`` in the cell of ``atoms``."""
    return float(np.linalg.norm(_mic_plane(atoms, np.asarray(q, float) - np.asarray(p, float))[0]))


_KIND_BY_N = {3: "3N", 4: "4N", 6: "6N"}


def identify_sites(atoms: Atoms, metal_radius: float = 3.0, bond_cutoff: float = 1.8) -> list[Site]:
    """Recognise the 3N/4N/6N sites of a (possibly relaxed) structure from its N atoms alone.

    Each N with two C/N neighbours points at its missing third neighbour (``N − (b₁ + b₂)`` for bond vectors
    b₁, b₂ of an sp² centre). Within a site the removed atoms are bonded (≤ 1.42 Å apart), while removed atoms
    of two different valid sites are at least 2.46 Å apart; so the missing positions are grouped by single
    linkage at 1.95 Å, and the number of N atoms in a group gives the kind (3, 4, 6 → 3N, 4N, 6N). The centre is
    the centroid of the site's N atoms (equal to the centroid of the removed atoms for all three kinds, and
    robust to relaxation); removed positions are reconstructed from the ideal geometry; the orientation is
    snapped to the lattice values when within 10°. Metals within ``metal_radius`` Å (in plane) of a site centre
    are assigned to the nearest site. Bonds: C/N pairs closer than ``bond_cutoff`` Å. Sites are returned sorted
    by centre (first in-plane axis, then second). Raises :class:`StructureInputError` if the N atoms do not form
    such sites.
    """
    from scipy.cluster.hierarchy import fcluster, linkage

    u, v, n = plane_axes(atoms)
    sym = atoms.get_chemical_symbols()
    pos = atoms.get_positions()
    light = np.flatnonzero(np.isin(np.array(sym), ("C", "N")))
    li, _, gd = neighbor_list("ijD", atoms[light], bond_cutoff)
    bonds: dict[int, list[np.ndarray]] = {}
    for a, dv in zip(light[li], gd):
        bonds.setdefault(int(a), []).append(dv)
    n_idx = [k for k, s in enumerate(sym) if s == "N"]
    if not n_idx:
        return []
    missing = []
    for k in n_idx:
        b = bonds.get(k, [])
        if len(b) != 2:
            raise StructureInputError(f"identify_sites: N atom {k} has {len(b)} neighbours (expected 2)")
        vec = -(b[0] + b[1])
        vec[n] = 0.0
        missing.append(pos[k] + vec / max(np.linalg.norm(vec), 1e-9) * CC_BOND)
    missing = np.array(missing)
    if len(n_idx) == 1:
        labels = np.array([1])
    else:
        ii, jj = np.triu_indices(len(n_idx), 1)
        dvec = _mic_plane(atoms, missing[jj] - missing[ii])
        dvec[:, n] = 0.0
        labels = fcluster(linkage(np.linalg.norm(dvec, axis=1), method="single"), t=1.95, criterion="distance")
    sites = []
    for lab in sorted(set(labels.tolist())):
        members = sorted(n_idx[k] for k in np.flatnonzero(labels == lab))
        kind = _KIND_BY_N.get(len(members))
        if kind is None:
            raise StructureInputError(
                f"identify_sites: {len(members)} N atoms (indices {members}) around one vacancy cluster do not "
                "form a 3N, 4N or 6N site"
            )
        npos = pos[members[0]] + _mic_plane(atoms, pos[members] - pos[members[0]])
        centre = npos.mean(axis=0)
        radial = npos - centre
        radial[:, n] = 0.0
        if kind == "4N":  # the two N around one removed atom are the closest pair; the bond axis points at them
            d = np.linalg.norm(radial[:, None, :] - radial[None, :, :], axis=2) + np.eye(4) * 99
            x, y = np.unravel_index(np.argmin(d), d.shape)
            ref = (radial[x] + radial[y]) / 2.0
            unit = ref / np.linalg.norm(ref)
            removed = np.array([centre + unit * CC_BOND / 2.0, centre - unit * CC_BOND / 2.0])
        elif kind == "3N":
            ref = radial[0]
            removed = centre[None, :]
        else:
            ref = radial[0]
            removed = centre + radial / np.linalg.norm(radial, axis=1)[:, None] * CC_BOND
        period = _ORIENT_PERIOD[kind]
        raw = _angle(ref, u, v) % period
        orient = int(round(raw)) % period
        for allowed in {"3N": (30, 90), "4N": (30, 90, 150), "6N": (30,)}[kind]:
            if _orient_close(raw, allowed, period):
                orient = allowed
        sites.append(Site(kind, [float(x) for x in _wrap(atoms, centre)], orient, members,
                          _wrap(atoms, removed).tolist()))
    metals = [k for k, s in enumerate(sym) if s not in _LIGHT]
    if sites:
        centres = np.array([s.centre for s in sites])
        for k in metals:
            dv = _mic_plane(atoms, pos[k] - centres)
            dv[:, n] = 0.0
            d = np.linalg.norm(dv, axis=1)
            best = int(np.argmin(d))
            if d[best] <= metal_radius:
                sites[best].metal_indices.append(k)
        for s in sites:
            if s.metal_indices:
                syms = [sym[k] for k in s.metal_indices]
                s.occupant = syms[0] + (str(len(syms)) if len(syms) > 1 else "") if len(set(syms)) == 1 else "".join(
                    syms)
    sites.sort(key=lambda s: (round(s.centre[u], 3), round(s.centre[v], 3)))
    return sites
