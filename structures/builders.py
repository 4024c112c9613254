"""Fully labelled configurations: slab, single sites, site pairs, metals, dimers, gas references.

All lengths in Å. Every builder returns an ``ase.Atoms`` whose ``info`` carries the metadata of
``docs/contracts.md`` (``id, kind, site_kinds, separation_A, shares_NN_bond, n_C_between, occupants, metals,
n_atoms, formula, spin_polarised, pair_id``) plus ``sites`` (JSON list of :class:`~sacmap.structures.sites.Site`),
``swap_symmetric``, ``kpts`` (Γ-centred grid as ``"2x2x1"``), ``vacuum_axis``, ``orientation``, ``slab`` and
``saturated_H``. Atoms are ordered by species (C, N, H, then metals in site order) so that a POSCAR written from
them has one block per species and the same order as the extxyz file.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from functools import lru_cache

import numpy as np
from ase import Atoms

from .errors import StructureInputError
from .lattice import (
    DEFAULT_VACUUM,
    GRID_OFFSET,
    graphene_slab,
    grid_to_plane,
    kpoint_grid,
    kpts_string,
    lattice_translation_near,
    parse_kind,
    seed_site,
    separation_limit,
)
from .occupations import (
    DEFAULT_GAS_BOX,
    DIMER_BOND,
    check_metal,
    gas_atom,
    gas_dimer,
    place_dimer,
    place_metal,
)
from .pairs import PairPlacement
from .sites import carve_site, set_sites, sites_of

CONFIG_KINDS = ("slab", "single_site", "bare_pair", "metal_single", "metal_pair", "dimer", "gas_atom", "gas_dimer")
METADATA_KEYS = (
    "id", "kind", "site_kinds", "separation_A", "shares_NN_bond", "n_C_between", "occupants", "metals",
    "n_atoms", "formula", "spin_polarised", "pair_id",
)


@dataclass(frozen=True)
class SlabSpec:
    """The sheet every slab configuration is carved from (see :func:`~sacmap.structures.lattice.graphene_slab`)."""

    nx: int = 9
    ny: int = 6
    vacuum: float = DEFAULT_VACUUM
    orientation: str = "ab"

    def build(self) -> Atoms:
        return _slab(self.nx, self.ny, float(self.vacuum), self.orientation).copy()

    @property
    def separation_limit(self) -> float:
        return separation_limit(self.nx, self.ny)


@lru_cache(maxsize=8)
def _slab(nx, ny, vacuum, orientation) -> Atoms:
    return graphene_slab(nx, ny, vacuum, orientation)


def _cell_centre_grid(slab: SlabSpec) -> tuple[float, float]:
    # grid coordinates (no offset) of the cell centre; see lattice.GRID_OFFSET
    return (2.0 * slab.nx - GRID_OFFSET[0], 6.0 * slab.ny - GRID_OFFSET[1])


def _carve_grid_sites(slab: SlabSpec, grid_sites) -> Atoms:
    """Carve grid sites (already placed near the cell centre) into the slab (a fresh copy)."""
    key = tuple((gs.kind, gs.centre, gs.orientation) for gs in grid_sites)
    atoms = _carved(slab, key).copy()
    atoms.info = dict(atoms.info)
    return atoms


@lru_cache(maxsize=512)
def _carved(slab: SlabSpec, key) -> Atoms:
    atoms = slab.build()
    for kind, centre, orientation in key:
        near = grid_to_plane(centre)
        atoms, _ = carve_site(atoms, kind, near=near, orientation=orientation, max_offset=0.05)
    return atoms


def _centre_translation(slab: SlabSpec, centres) -> tuple[int, int]:
    mid = np.mean(np.asarray(centres, float), axis=0)
    cc = _cell_centre_grid(slab)
    return lattice_translation_near((cc[0] - mid[0], cc[1] - mid[1]))


def _occ_label(kind: str, metal: str | None) -> str:
    return f"{metal}/{kind}" if metal else kind


def finalize(atoms: Atoms, **meta) -> Atoms:
    """Order atoms by species (C, N, H, metals in site order), remap site indices, and fill ``info`` with the
    configuration metadata (missing keys get their 'none' values: ``""``, NaN, -1, False)."""
    sym = atoms.get_chemical_symbols()
    order_species = ["C", "N", "H"]
    for s in sym:
        if s not in order_species:
            order_species.append(s)
    rank = np.array([order_species.index(s) for s in sym])
    perm = np.argsort(rank, kind="stable")
    inv = np.empty_like(perm)
    inv[perm] = np.arange(len(perm))
    sites = sites_of(atoms)
    new = atoms[perm]
    new.wrap()
    new.info = dict(atoms.info)
    for s in sites:
        s.n_indices = sorted(int(inv[k]) for k in s.n_indices)
        s.metal_indices = [int(inv[k]) for k in s.metal_indices]
    set_sites(new, sites)
    info = {
        "site_kinds": "",
        "separation_A": float("nan"),
        "shares_NN_bond": False,
        "n_C_between": -1,
        "occupants": "",
        "metals": "",
        "pair_id": "",
        "swap_symmetric": False,
    }
    info.update(meta)
    metals = [m for m in info["metals"].split(",") if m]
    info.setdefault("spin_polarised", len(metals) == 1)
    info["n_atoms"] = len(new)
    info["formula"] = new.get_chemical_formula(mode="hill")
    info["kpts"] = kpts_string(kpoint_grid(new) if not info["kind"].startswith("gas") else (1, 1, 1))
    info.setdefault("saturated_H", int(new.info.get("saturated_H", 0)))
    new.info.update(info)
    if info["kind"] not in CONFIG_KINDS:  # pragma: no cover - programming error
        raise ValueError(f"unknown configuration kind {info['kind']}")
    return new


# ---------------------------------------------------------------------------------------------- builders
def build_slab(slab: SlabSpec = SlabSpec()) -> Atoms:
    """The pristine sheet, id ``slab``."""
    atoms = slab.build()
    atoms.info["saturated_H"] = 0
    set_sites(atoms, [])
    return finalize(atoms, id="slab", kind="slab")


def build_single_site(kind: str, metal: str | None = None, slab: SlabSpec = SlabSpec(), height=None) -> Atoms:
    """One site of ``kind`` near the cell centre, bare (id ``4N``, kind ``single_site``) or holding one ``metal``
    atom (id ``Pd/4N``, kind ``metal_single``). ``height``: Å above the plane (default per site kind)."""
    kind = parse_kind(kind)
    gs = seed_site(kind)
    gs = gs.translated(_centre_translation(slab, [gs.centre]))
    atoms = _carve_grid_sites(slab, [gs])
    label = _occ_label(kind, metal)
    if metal:
        metal = check_metal(metal)
        atoms = place_metal(atoms, 0, metal, height)
        return finalize(atoms, id=label, kind="metal_single", site_kinds=kind, occupants=label, metals=metal,
                        pair_id=kind)
    return finalize(atoms, id=kind, kind="single_site", site_kinds=kind, pair_id=kind)


def build_pair(placement: PairPlacement, metals=(None, None), slab: SlabSpec = SlabSpec(), heights=None) -> Atoms:
    """Two sites placed as in ``placement`` (see :func:`~sacmap.structures.pairs.enumerate_pairs`), with optional metals
    ``(metal_on_first, metal_on_second)`` (None = bare). ``heights``: optional dict site kind → Å.

    Kinds: ``bare_pair`` (no metal), ``metal_single`` (one), ``metal_pair`` (two). The id replaces the kinds in
    the pair id by the occupation, e.g. ``Ni/4N-4N_d5.36_a``, ``4N-Ni/4N_d5.36_a``, ``Ni/3N-Pd/4N_d3.55_a``;
    ``pair_id`` is the bare pair's id.
    """
    if placement.separation_A > slab.separation_limit + 1e-9:
        raise StructureInputError(
            f"separation {placement.separation_A:.2f} Å is beyond what a {slab.nx}x{slab.ny} cell allows "
            f"({slab.separation_limit:.2f} Å)"
        )
    heights = heights or {}
    t = _centre_translation(slab, [placement.site_a.centre, placement.site_b.centre])
    a, b = placement.site_a.translated(t), placement.site_b.translated(t)
    atoms = _carve_grid_sites(slab, [a, b])
    ms = [check_metal(m) if m else None for m in metals]
    for k, m in enumerate(ms):
        if m:
            atoms = place_metal(atoms, k, m, heights.get((a, b)[k].kind))
    ka, kb = placement.kinds
    occupants = f"{_occ_label(ka, ms[0])}-{_occ_label(kb, ms[1])}"
    suffix = placement.id.split("_", 1)[1]
    n_metal = sum(1 for m in ms if m)
    kind = ("bare_pair", "metal_single", "metal_pair")[n_metal]
    # the separation recorded is the one between the carved centres (minimum image), equal to the grid value
    return finalize(
        atoms,
        id=f"{occupants}_{suffix}",
        kind=kind,
        site_kinds=placement.site_kinds,
        separation_A=round(float(placement.separation_A), 4),
        shares_NN_bond=bool(placement.shares_NN_bond),
        n_C_between=int(placement.n_C_between),
        occupants=occupants if n_metal else "",
        metals=",".join(m for m in ms if m),
        pair_id=placement.id,
        swap_symmetric=bool(placement.swap_symmetric),
    )


def build_dimer(kind: str, metal: str, orientation: str = "v", bond: float = DIMER_BOND,
                slab: SlabSpec = SlabSpec(), height=None) -> Atoms:
    """A ``metal``₂ dimer in one site of ``kind``; id ``Pt2/4N_v`` (orientation ``v``, ``a`` or ``b``, see
    :func:`~sacmap.structures.occupations.place_dimer`), kind ``dimer``, ``pair_id`` the bare site (``4N``)."""
    kind = parse_kind(kind)
    metal = check_metal(metal)
    gs = seed_site(kind)
    gs = gs.translated(_centre_translation(slab, [gs.centre]))
    atoms = _carve_grid_sites(slab, [gs])
    atoms = place_dimer(atoms, 0, metal, orientation, bond, height)
    occ = f"{metal}2/{kind}"
    return finalize(atoms, id=f"{occ}_{orientation}", kind="dimer", site_kinds=kind, occupants=occ,
                    metals=f"{metal},{metal}", pair_id=kind, spin_polarised=False, dimer_bond_A=float(bond))


def build_gas_atom(metal: str, box=DEFAULT_GAS_BOX) -> Atoms:
    """Isolated ``metal`` atom in a box; id ``gas_Pt``; spin polarised."""
    atoms = gas_atom(metal, box)
    atoms.info["saturated_H"] = 0
    return finalize(atoms, id=f"gas_{metal}", kind="gas_atom", occupants=metal, metals=metal, spin_polarised=True)


def build_gas_dimer(metal: str, bond: float = DIMER_BOND, box=DEFAULT_GAS_BOX) -> Atoms:
    """``metal``₂ in a box; id ``gas_Pt2``."""
    atoms = gas_dimer(metal, bond, box)
    atoms.info["saturated_H"] = 0
    return finalize(atoms, id=f"gas_{metal}2", kind="gas_dimer", occupants=f"{metal}2", metals=f"{metal},{metal}",
                    spin_polarised=False, dimer_bond_A=float(bond))


def is_nan(x) -> bool:
    try:
        return math.isnan(float(x))
    except (TypeError, ValueError):
        return False
