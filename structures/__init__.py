"""sacmap structures: ASE builders for N-doped graphene slabs with 3×N6/4×N6/6×N6 sites, metals, dimers, references.

All lengths in Å. Imports only :mod:`sacmap.core` of sacmap. Main entry points:

* :func:`graphene_slab`, :func:`kpoint_grid` — the paper's 216-atom, 22.14 × 25.56 Å sheet;
* :func:`carve_site`, :class:`Site`, :func:`sites_of` — coordination sites;
* :func:`enumerate_pairs` — symmetry-inequivalent two-site placements up to 9 Å;
* :func:`build_pair`, :func:`build_single_site`, :func:`build_dimer`, :func:`build_gas_atom`, ... — labelled configs;
* :func:`load_spec`, :func:`expand`, :func:`plan`, :func:`build_campaign` — campaign specs (a YAML path or a
  bundled spec's name, ``paper``/``demo``: ``inputs/campaigns/*.yaml``, installed as ``sacmap.inputs``);
* :func:`write_configurations`, :func:`read_index`, :func:`read_configuration` — extxyz/POSCAR + ``index.csv``.
"""

from .builders import (
    CONFIG_KINDS,
    METADATA_KEYS,
    SlabSpec,
    build_dimer,
    build_gas_atom,
    build_gas_dimer,
    build_pair,
    build_single_site,
    build_slab,
)
from .campaign import build_campaign, counts_per_set, expand, load_spec, plan, select_sets, validate_spec
from .errors import StructureInputError
from .io import read_configuration, read_index, safe_name, write_configurations
from .lattice import (
    A_LATTICE,
    BRAVAIS_GRID,
    CC_BOND,
    SITE_KINDS,
    SUBLATTICE_GRID,
    graphene_slab,
    grid_site,
    kpoint_grid,
    lattice_to_grid,
    lattice_vectors,
    parse_kind,
    plane_axes,
    slab_kpoint_grid,
    sublattice,
)
from .occupations import (
    DEFAULT_HEIGHTS,
    DIMER_BOND,
    check_metal,
    gas_atom,
    gas_dimer,
    place_dimer,
    place_metal,
)
from .pairs import PairPlacement, canonical_key, enumerate_pairs, smallest_separation
from .sites import (
    Site,
    carve_site,
    carve_sites,
    find_site,
    identify_sites,
    saturate_dangling,
    sites_of,
    undercoordinated,
)

__all__ = [
    "BRAVAIS_GRID", "SUBLATTICE_GRID", "grid_site", "lattice_to_grid", "lattice_vectors", "slab_kpoint_grid", "sublattice",
    "A_LATTICE", "CC_BOND", "CONFIG_KINDS", "DEFAULT_HEIGHTS", "DIMER_BOND", "METADATA_KEYS", "SITE_KINDS",
    "PairPlacement", "Site", "SlabSpec", "StructureInputError",
    "build_campaign", "build_dimer", "build_gas_atom", "build_gas_dimer", "build_pair", "build_single_site", "build_slab",
    "canonical_key", "carve_site", "carve_sites", "check_metal", "counts_per_set", "enumerate_pairs", "expand",
    "find_site", "identify_sites", "gas_atom", "gas_dimer", "graphene_slab", "kpoint_grid", "load_spec", "parse_kind", "place_dimer",
    "place_metal", "plan", "plane_axes", "read_configuration", "read_index", "safe_name", "saturate_dangling",
    "select_sets", "sites_of", "smallest_separation", "undercoordinated", "validate_spec", "write_configurations",
]
