"""Metal atoms on coordination sites, metal dimers in a site, and gas-phase references.

All lengths in Å. Initial heights are above the sheet plane along its normal (the vacuum axis, positive side).
They are starting points for a relaxation, not results: the paper finds Pt/Pd/Ni in 4×N6 in plane, while in
3×N6 and 6×N6 they relax out of plane or off centre.
"""

from __future__ import annotations

import math

import numpy as np
from ase import Atoms
from ase.data import chemical_symbols

from sacmap.core.constants import NON_METALS

from .errors import StructureInputError
from .lattice import plane_axes
from .sites import Site, _mic_plane, set_sites, sites_of

#: initial height (Å) of a single metal atom above the plane, per site kind
DEFAULT_HEIGHTS = {"3N": 1.4, "4N": 0.0, "6N": 0.8}
DIMER_BOND = 2.2  #: Å, metal–metal distance of the starting dimers (the paper's typical relaxed value)
DIMER_ORIENTATIONS = ("v", "a", "b")
#: minimum metal–N distance (Å) kept when placing a horizontal dimer (it is lifted until this holds)
MIN_METAL_N = 1.85
DEFAULT_GAS_BOX = (15.0, 15.5, 16.0)  #: Å; slightly different edges break the cubic symmetry of the box


def check_metal(symbol: object, where: str = "metal") -> str:
    """Return ``symbol`` if it is a metal (or metalloid) element known to ASE, else raise
    :class:`StructureInputError` naming ``where``. Symbols are case-sensitive (``Pt``, not ``pt``)."""
    s = str(symbol).strip() if symbol is not None else ""
    if s in chemical_symbols and s not in NON_METALS:
        return s
    hint = ""
    if s.capitalize() in chemical_symbols and s.capitalize() not in NON_METALS:
        hint = f" (did you mean {s.capitalize()!r}?)"
    raise StructureInputError(f"{where}: unknown metal {symbol!r}{hint}; give an element symbol such as Ni, Pd, Pt, Ru")


def _normal(atoms: Atoms) -> np.ndarray:
    _, _, n = plane_axes(atoms)
    e = np.zeros(3)
    e[n] = 1.0
    return e


def _in_plane(atoms: Atoms, angle_deg: float) -> np.ndarray:
    u, v, _ = plane_axes(atoms)
    e = np.zeros(3)
    e[u] = math.cos(math.radians(angle_deg))
    e[v] = math.sin(math.radians(angle_deg))
    return e


def place_metal(atoms: Atoms, site_index: int, symbol: str, height: float | None = None) -> Atoms:
    """A copy of ``atoms`` with one ``symbol`` atom at the centre (in plane) of site ``site_index``, ``height`` Å
    above the plane (default :data:`DEFAULT_HEIGHTS` of the site kind). The site's ``occupant`` and
    ``metal_indices`` are updated."""
    symbol = check_metal(symbol)
    sites = sites_of(atoms)
    site = sites[site_index]
    if site.occupant:
        raise StructureInputError(f"site {site_index} ({site.kind}) is already occupied by {site.occupant}")
    h = DEFAULT_HEIGHTS[site.kind] if height is None else float(height)
    new = atoms.copy()
    new.info = dict(atoms.info)
    new.append(symbol)
    new.positions[-1] = np.asarray(site.centre) + h * _normal(atoms)
    site.occupant = symbol
    site.metal_indices = [len(new) - 1]
    set_sites(new, sites)
    return new


def _min_metal_n(atoms: Atoms, site: Site, pts: np.ndarray) -> float:
    pos = atoms.get_positions()[site.n_indices]
    d = [np.linalg.norm(_mic_plane(atoms, pos - p), axis=1).min() for p in pts]
    return float(min(d))


def place_dimer(
    atoms: Atoms,
    site_index: int,
    symbol: str,
    orientation: str = "v",
    bond: float = DIMER_BOND,
    height: float | None = None,
) -> Atoms:
    """A copy of ``atoms`` with a ``symbol``₂ dimer (``bond`` Å apart) in site ``site_index``.

    Orientations: ``"v"`` vertical — the first atom where a single metal would sit (``height``, default
    :data:`DEFAULT_HEIGHTS`), the second ``bond`` Å above it; ``"a"`` horizontal along the site's reference axis
    (3N/6N: centre→N; 4N: the removed C–C bond), centred on the site; ``"b"`` horizontal, perpendicular to
    ``"a"`` in plane. Horizontal dimers start at the single-metal height and are lifted until every metal–N
    distance is at least :data:`MIN_METAL_N` Å. Each lies on a mirror line of the site.
    """
    symbol = check_metal(symbol)
    if orientation not in DIMER_ORIENTATIONS:
        raise StructureInputError(f"dimer orientation: unknown value {orientation!r} (expected v, a or b)")
    sites = sites_of(atoms)
    site = sites[site_index]
    if site.occupant:
        raise StructureInputError(f"site {site_index} ({site.kind}) is already occupied by {site.occupant}")
    h0 = DEFAULT_HEIGHTS[site.kind] if height is None else float(height)
    c = np.asarray(site.centre, float)
    nrm = _normal(atoms)
    if orientation == "v":
        pts = np.array([c + h0 * nrm, c + (h0 + bond) * nrm])
    else:
        axis = _in_plane(atoms, site.orientation + (0.0 if orientation == "a" else 90.0))
        h = h0
        while True:
            pts = np.array([c + h * nrm + 0.5 * bond * axis, c + h * nrm - 0.5 * bond * axis])
            if _min_metal_n(atoms, site, pts) >= MIN_METAL_N or h > 5.0:
                break
            h += 0.05
    new = atoms.copy()
    new.info = dict(atoms.info)
    for p in pts:
        new.append(symbol)
        new.positions[-1] = p
    site.occupant = f"{symbol}2"
    site.metal_indices = [len(new) - 2, len(new) - 1]
    set_sites(new, sites)
    return new


def gas_atom(symbol: str, box=DEFAULT_GAS_BOX) -> Atoms:
    """One ``symbol`` atom at the centre of an orthorhombic periodic box (edges ``box`` Å)."""
    symbol = check_metal(symbol)
    box = np.asarray(box, float)
    return Atoms(symbol, positions=[box / 2.0], cell=np.diag(box), pbc=True)


def gas_dimer(symbol: str, bond: float = DIMER_BOND, box=DEFAULT_GAS_BOX) -> Atoms:
    """A ``symbol``₂ dimer (``bond`` Å, along the longest box edge) centred in an orthorhombic box."""
    symbol = check_metal(symbol)
    box = np.asarray(box, float)
    axis = np.zeros(3)
    axis[int(np.argmax(box))] = 1.0
    c = box / 2.0
    return Atoms(f"{symbol}2", positions=[c - 0.5 * bond * axis, c + 0.5 * bond * axis], cell=np.diag(box), pbc=True)
