"""Fixtures for the workflow tests: small hand-made N-doped graphene configurations with contract metadata."""

from __future__ import annotations

import numpy as np
import pytest
from ase.build import graphene, make_supercell
from ase.neighborlist import neighbor_list


def sheet(nx: int, ny: int, vacuum_A: float = 15.0, vacuum_axis: int = 2):
    """Orthogonal graphene (a = 2.46 Å; 4 atoms per a × √3a unit), vacuum along ``vacuum_axis`` (2 = c, 1 = b)."""
    g = graphene(a=2.46, vacuum=vacuum_A / 2)
    rect = make_supercell(g, [[1, 0, 0], [1, 2, 0], [0, 0, 1]])
    atoms = rect.repeat((nx, ny, 1))
    atoms.pbc = True
    if vacuum_axis == 1:  # swap b and c: vacuum along b (the paper's "2 x 1 x 2" k-grid)
        lengths = atoms.cell.lengths()
        pos = atoms.positions[:, [0, 2, 1]]
        atoms.set_cell(np.diag([lengths[0], lengths[2], lengths[1]]))
        atoms.positions = pos
    return atoms


def four_n_site(atoms, metal: str | None, *, cid: str, seed: int = 0, rattle: float = 0.03):
    """Carve a 4×N6 site (remove a C–C bond, its 4 neighbours → N, metal at the bond centre) near the middle."""
    atoms = atoms.copy()
    centre = atoms.cell.array.sum(axis=0) / 2
    i = int(np.argmin(np.linalg.norm(atoms.positions - centre, axis=1)))
    ii, jj, dd = neighbor_list("ijd", atoms, 1.6)
    nbrs_i = jj[ii == i]
    j = int(nbrs_i[0])
    mid = atoms.positions[i] + atoms.get_distance(i, j, mic=True, vector=True) / 2
    ring = {int(k) for k in jj[(ii == i) | (ii == j)]} - {i, j}
    for k in ring:
        atoms[k].symbol = "N"
    del atoms[[i, j]]
    if metal:
        atoms.append(metal)
        atoms.positions[-1] = mid
    atoms.rattle(rattle, seed=seed)
    atoms.info.update(
        id=cid, kind="metal_single" if metal else "single_site", site_kinds="4N", separation_A=float("nan"),
        shares_NN_bond=False, n_C_between=-1, occupants=f"{metal}/4N" if metal else "", metals=metal or "",
        spin_polarised=bool(metal), pair_id=cid.split("/")[-1], n_atoms=len(atoms),
        formula=atoms.get_chemical_formula(),
    )
    return atoms


@pytest.fixture
def make_config():
    """``make_config(metal, cid, nx=3, ny=2, seed=0, vacuum_axis=2)`` → a 4×N6 configuration."""

    def _make(metal, cid, nx=3, ny=2, seed=0, vacuum_axis=2, rattle=0.03):
        return four_n_site(sheet(nx, ny, vacuum_axis=vacuum_axis), metal, cid=cid, seed=seed, rattle=rattle)

    return _make


def pytest_configure(config):
    # FireWorks' load_object (used by its queue launcher) scans fireworks' own test modules, which carry a
    # `mongodb` marker; declare it so strict marker checking does not turn that import into a failure
    config.addinivalue_line("markers", "mongodb: FireWorks' own marker (its test modules are imported by load_object)")
