"""Physics invariants on every configuration that inputs/campaigns/paper.yaml expands to."""

from __future__ import annotations

import json
import math
from collections import Counter

import numpy as np
import pytest
from ase.geometry import get_distances
from ase.neighborlist import neighbor_list
from scipy.sparse import csr_matrix
from scipy.sparse.csgraph import shortest_path

from sacmap.structures import METADATA_KEYS, plane_axes, safe_name, sites_of

N_SLAB = 216
REMOVED = {"3N": 1, "4N": 2, "6N": 6}
N_PER_SITE = {"3N": 3, "4N": 4, "6N": 6}


def _slab_configs(configs):
    return [a for a in configs if not a.info["kind"].startswith("gas")]


def test_metadata_complete_and_ids_unique(paper_configs):
    ids = [a.info["id"] for a in paper_configs]
    assert len(ids) == len(set(ids))
    assert len({safe_name(i) for i in ids}) == len(ids)
    for a in paper_configs:
        for k in METADATA_KEYS + ("set", "campaign", "sites", "kpts"):
            assert k in a.info, (a.info["id"], k)
        assert a.info["n_atoms"] == len(a)
        assert a.info["formula"] == a.get_chemical_formula(mode="hill")
        assert isinstance(a.info["separation_A"], float)
        assert a.info["spin_polarised"] == (a.info["kind"] in ("metal_single", "gas_atom"))


def test_atom_counts(paper_configs):
    for a in _slab_configs(paper_configs):
        sites = sites_of(a)
        c = Counter(a.get_chemical_symbols())
        removed = sum(REMOVED[s.kind] for s in sites)
        n_n = sum(N_PER_SITE[s.kind] for s in sites)
        assert c["N"] == n_n, a.info["id"]
        assert c["C"] == N_SLAB - removed - n_n, a.info["id"]
        assert c.get("H", 0) == 0 and a.info["saturated_H"] == 0
        n_metal = len(a) - c["C"] - c["N"]
        expected = {"slab": 0, "single_site": 0, "bare_pair": 0, "metal_single": 1, "metal_pair": 2, "dimer": 2}
        assert n_metal == expected[a.info["kind"]], a.info["id"]
        assert len(sites) == len([k for k in a.info["site_kinds"].split("-") if k])
        # species are contiguous (one block per species in the POSCAR)
        sym = a.get_chemical_symbols()
        blocks = [s for k, s in enumerate(sym) if k == 0 or sym[k - 1] != s]
        assert len(blocks) == len(set(blocks)), a.info["id"]


def test_coordination_of_every_atom(paper_configs, geo):
    """Every N has exactly two neighbours within 1.6 Å; no C has fewer than two (here: all keep three),
    counting bonds through the periodic images at the cell edges."""
    for a in _slab_configs(paper_configs):
        counts = geo.heavy_neighbour_counts(a)
        sym = a.get_chemical_symbols()
        for k, n in counts.items():
            if sym[k] == "N":
                assert n == 2, (a.info["id"], k, n)
            elif sym[k] == "C":
                assert n == 3, (a.info["id"], k, n)
        sites = sites_of(a)
        for s in sites:
            assert all(sym[k] == "N" for k in s.n_indices)
            assert all(sym[k] not in ("C", "N") for k in s.metal_indices)


def test_minimum_distances(paper_configs):
    """No two atoms closer than 1.1 Å (minimum image), except the two atoms of a deliberately placed dimer."""
    for a in paper_configs:
        if len(a) < 2:
            continue
        i, j, d = neighbor_list("ijd", a, 2.5)
        dimer = set()
        if a.info["kind"] in ("dimer", "gas_dimer"):
            metals = [k for k, s in enumerate(a.get_chemical_symbols()) if s not in ("C", "N", "H")]
            assert len(metals) == 2
            assert a.get_distance(*metals, mic=True) == pytest.approx(2.2, abs=1e-6)
            dimer = {tuple(metals), tuple(metals[::-1])}
        others = [dist for x, y, dist in zip(i, j, d) if (int(x), int(y)) not in dimer]
        assert min(others, default=9.9) > 1.1, (a.info["id"], min(others))
        if a.info["kind"] not in ("dimer", "gas_dimer") and len(a) > 2:
            assert min(others) > 1.35, a.info["id"]


def test_metals_at_site_centres(paper_configs):
    for a in _slab_configs(paper_configs):
        u, v, n = plane_axes(a)
        pos = a.get_positions()
        z_sheet = np.median(pos[[k for k, s in enumerate(a.get_chemical_symbols()) if s == "C"], n])
        for s in sites_of(a):
            if not s.metal_indices:
                continue
            mpos = pos[s.metal_indices].mean(axis=0)
            vec, _ = get_distances(s.centre, mpos, cell=a.cell, pbc=a.pbc)
            assert np.hypot(vec[0, 0, u], vec[0, 0, v]) < 1e-6, a.info["id"]
            h = pos[s.metal_indices, n].min() - z_sheet
            if a.info["kind"] != "dimer":
                assert h == pytest.approx({"3N": 1.4, "4N": 0.0, "6N": 0.8}[s.kind]), a.info["id"]
            assert 0.0 <= h < 2.5
            if a.info["kind"] == "dimer":
                assert s.occupant.endswith("2") and len(s.metal_indices) == 2


def test_separations_and_nc_between_match_metadata(paper_configs):
    """Centre distances (minimum image) equal separation_A; shares_NN_bond and n_C_between agree with a
    shortest-path search through the carved sheet's bond graph."""
    checked = 0
    for a in _slab_configs(paper_configs):
        sites = sites_of(a)
        if len(sites) != 2:
            assert math.isnan(a.info["separation_A"]) and a.info["n_C_between"] == -1
            continue
        sa, sb = sites
        _, d = get_distances(sa.centre, sb.centre, cell=a.cell, pbc=a.pbc)
        assert d[0, 0] == pytest.approx(a.info["separation_A"], abs=1e-3), a.info["id"]
        assert f"_d{a.info['separation_A']:.2f}_" in a.info["id"]
        sym = np.array(a.get_chemical_symbols())
        light = np.flatnonzero(np.isin(sym, ("C", "N")))
        bi, bj = neighbor_list("ij", a[light], 1.6)
        adj = csr_matrix((np.ones(len(bi)), (bi, bj)), shape=(len(light), len(light)))
        where = {int(k): i for i, k in enumerate(light)}
        sp = shortest_path(adj, unweighted=True, indices=[where[k] for k in sa.n_indices])
        steps = sp[:, [where[k] for k in sb.n_indices]].min()
        assert (steps == 1) == a.info["shares_NN_bond"], a.info["id"]
        assert steps - 1 == a.info["n_C_between"], a.info["id"]
        checked += 1
    assert checked > 300


def test_periodic_images_at_cell_edges(paper_configs):
    """Atoms are wrapped into the cell and every site is complete through the periodic images (sites cut by
    the cell edge are tested in test_sites.py)."""
    for a in _slab_configs(paper_configs):
        frac = a.get_scaled_positions(wrap=False)
        assert (frac >= -1e-9).all() and (frac < 1 - 1e-9).all(), a.info["id"]
        pos = a.get_positions()
        for s in sites_of(a):
            npos = pos[s.n_indices]
            _, d = get_distances(s.centre, npos, cell=a.cell, pbc=a.pbc)
            expected = {"3N": 1.42, "4N": 1.88, "6N": 2.84}[s.kind]
            assert np.allclose(d, expected, atol=0.01), (a.info["id"], d)


def test_sites_json_and_orientation(paper_configs):
    for a in _slab_configs(paper_configs)[:40]:
        raw = json.loads(a.info["sites"])
        assert [s["kind"] for s in raw] == [k for k in a.info["site_kinds"].split("-") if k]
    for a in paper_configs:
        assert a.info["kpts"] == ("1x1x1" if a.info["kind"].startswith("gas") else "2x2x1")


def test_no_two_kept_pairs_equivalent(paper_configs, geo):
    """Within each kind pair, the built bare pairs are pairwise non-congruent (sorted labelled distance lists of
    the carved atoms differ), so no configuration is computed twice."""
    by_kinds: dict[str, list] = {}
    for a in paper_configs:
        if a.info["kind"] == "bare_pair":
            by_kinds.setdefault(a.info["site_kinds"], []).append(geo.config_invariant(a))
    assert set(by_kinds) == {"3N-3N", "4N-4N", "3N-4N", "3N-6N", "4N-6N", "6N-6N"}
    for kinds, invs in by_kinds.items():
        assert len(set(invs)) == len(invs), kinds
    # the metal variants sit on exactly the bare geometries (same pair_id → same carved atoms)
    bare = {a.info["id"]: geo.config_invariant(a) for a in paper_configs if a.info["kind"] == "bare_pair"}
    for a in paper_configs:
        if a.info["kind"] in ("metal_single", "metal_pair") and "-" in a.info["site_kinds"]:
            assert geo.config_invariant(a) == bare[a.info["pair_id"]], a.info["id"]
