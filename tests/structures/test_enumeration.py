"""Site-pair enumeration: an independent brute-force count, symmetry checks with pymatgen, stable ids."""

from __future__ import annotations

import itertools

import numpy as np
import pytest
from ase.geometry import get_distances

from sacmap.structures import enumerate_pairs, graphene_slab, smallest_separation
from sacmap.structures.errors import StructureInputError

KINDS = ("3N", "4N", "6N")
MAX_SEP = 9.0


def _brute_force(geo, slab, ka, kb, max_sep=MAX_SEP):
    """Classes of placements found by trying every site of kind kb in the periodic slab around one seed."""
    centre = slab.cell.sum(axis=0) / 2
    seeds = geo.slab_sites(slab, ka)
    # pick a seed near the cell centre; for 4N one with a tilted bond (the library's seed bond is vertical)
    pos = slab.get_positions()

    def ok(s):
        if ka != "4N":
            return True
        a, b = sorted(s[1])
        _, d = get_distances(pos[a], pos[b], cell=slab.cell, pbc=slab.pbc)
        return abs(pos[a][1] - pos[b][1]) < 1.0  # not the bond along y

    seed = min((s for s in seeds if ok(s)), key=lambda s: np.linalg.norm(s[0] - centre))
    classes = {}
    for sb in geo.slab_sites(slab, kb):
        if (seed[1] | seed[2]) & (sb[1] | sb[2]):
            continue  # an atom would belong to both sites
        _, d = get_distances(seed[0], sb[0], cell=slab.cell, pbc=slab.pbc)
        d = float(d[0, 0])
        if d > max_sep + 1e-6:
            continue
        labels, pts = geo.labelled_points(slab, seed, sb)
        inv = geo.distance_invariant(labels, pts, swap=ka == kb)
        nn = any(
            np.linalg.norm(get_distances(pos[p], pos[q], cell=slab.cell, pbc=slab.pbc)[0][0, 0]) < 1.6
            for p in seed[2] for q in sb[2]
        )
        classes.setdefault(inv, (round(d, 2), nn))
    return classes


@pytest.mark.parametrize("ka,kb", list(itertools.product(KINDS, KINDS)))
def test_brute_force_agrees_on_inequivalent_counts(geo, ka, kb):
    slab = graphene_slab()
    brute = _brute_force(geo, slab, ka, kb)
    ours = enumerate_pairs(ka, kb, MAX_SEP)
    assert len(ours) == len(brute), f"{ka}-{kb}: library {len(ours)} vs brute force {len(brute)}"
    assert sorted(round(p.separation_A, 2) for p in ours) == sorted(v[0] for v in brute.values())
    assert sum(p.shares_NN_bond for p in ours) == sum(v[1] for v in brute.values())


def test_smallest_separation_shares_nn_bond():
    # the paper: "from the minimum possible (3 to 4 Å depending on the coordination site geometry) to 9 Å"
    for ka, kb in itertools.product(KINDS, KINDS):
        first = enumerate_pairs(ka, kb)[0]
        assert first.shares_NN_bond and first.n_C_between == 0
        assert first.separation_A == pytest.approx(smallest_separation(ka, kb))
    assert smallest_separation("3N", "3N") == pytest.approx(2 * 1.42, abs=0.01)
    assert smallest_separation("3N", "4N") == pytest.approx(3.55, abs=0.01)
    assert smallest_separation("4N", "4N") == pytest.approx(3 * 1.42, abs=0.01)


def test_ids_stable_and_independent_of_range():
    full = {p.id: p for p in enumerate_pairs("4N", "4N", 9.0)}
    part = enumerate_pairs("4N", "4N", 6.0, min_separation=4.5)
    assert part and all(p.id in full and full[p.id].separation_A == p.separation_A for p in part)
    assert all(4.5 <= p.separation_A <= 6.0 for p in part)
    ids = [p.id for p in enumerate_pairs("3N", "4N")]
    assert len(set(ids)) == len(ids)
    assert "4N-4N_d4.26_a" in full and full["4N-4N_d4.26_a"].shares_NN_bond
    # separations in ids to 0.01 Å
    for pid, p in full.items():
        assert pid.startswith("4N-4N_d") and f"{p.separation_A:.2f}" in pid


def test_multiplicities_cover_all_placements():
    # every placement of the second site around the seed belongs to exactly one class
    for ka, kb in itertools.product(KINDS, KINDS):
        ps = enumerate_pairs(ka, kb)
        assert all(p.multiplicity >= 1 for p in ps)
    # counting pairs per unit cell two ways: 3N seeds (2 per cell) x 4N placements == 4N seeds (3) x 3N placements
    n34 = sum(p.multiplicity for p in enumerate_pairs("3N", "4N"))
    n43 = sum(p.multiplicity for p in enumerate_pairs("4N", "3N"))
    assert 2 * n34 == 3 * n43


def test_separation_beyond_cell_rejected():
    with pytest.raises(StructureInputError, match="max_separation"):
        enumerate_pairs("4N", "4N", 12.0)
    with pytest.raises(StructureInputError, match="min_separation"):
        enumerate_pairs("4N", "4N", 6.0, min_separation=7.0)


def _carved_structures(atoms):
    """The carved atoms of a built pair as pymatgen Structures in a large hexagonal cell aligned with the
    graphene lattice (so that its 60° rotations and mirrors are lattice symmetries StructureMatcher tries):
    removed A → He, N of A → N, removed B → Ne, N of B → O; and the same with A and B exchanged."""
    from pymatgen.core import Lattice, Structure

    from sacmap.structures import A_LATTICE, sites_of

    sa, sb = sites_of(atoms)
    pos = atoms.get_positions()
    species, pts = [], []
    cb = np.asarray(sa.centre) + get_distances(sa.centre, sb.centre, cell=atoms.cell, pbc=atoms.pbc)[0][0, 0]
    for (rem_sp, n_sp), s, c in ((("He", "N"), sa, np.asarray(sa.centre)), (("Ne", "O"), sb, cb)):
        own = np.vstack([np.asarray(s.removed_positions), pos[s.n_indices]])
        v, _ = get_distances(s.centre, own, cell=atoms.cell, pbc=atoms.pbc)
        species += [rem_sp] * len(s.removed_positions) + [n_sp] * len(s.n_indices)
        pts += list(c + v[0])
    pts = np.array(pts)
    pts[:, 2] = 10.0
    lat = Lattice([[16 * A_LATTICE, 0, 0], [8 * A_LATTICE, 8 * A_LATTICE * np.sqrt(3), 0], [0, 0, 20.0]])
    swap = {"He": "Ne", "Ne": "He", "N": "O", "O": "N"}
    mk = lambda sp: Structure(lat, sp, pts, coords_are_cartesian=True)  # noqa: E731
    return mk(species), mk([swap[x] for x in species])


@pytest.mark.parametrize("ka,kb", [("4N", "4N"), ("3N", "4N")])
def test_no_two_kept_configurations_congruent_pymatgen(ka, kb):
    """pymatgen's StructureMatcher on the carved atoms: kept classes are pairwise non-congruent (also under the
    exchange of equal-kind sites), while a rotated (60°) and mirrored copy of a class is recognised as the same."""
    from pymatgen.analysis.structure_matcher import StructureMatcher

    from sacmap.structures import build_pair

    ps = enumerate_pairs(ka, kb)
    structs = [_carved_structures(build_pair(p)) for p in ps]
    sm = StructureMatcher(ltol=0.01, stol=0.01, angle_tol=0.1, primitive_cell=False, scale=False,
                          attempt_supercell=False)
    for (i, (s1, s1x)), (j, (s2, _)) in itertools.combinations(enumerate(structs), 2):
        if abs(ps[i].separation_A - ps[j].separation_A) > 1e-3:
            continue  # different separations can never be congruent
        assert not sm.fit(s1, s2), f"{ps[i].id} ~ {ps[j].id}"
        if ka == kb:
            assert not sm.fit(s1x, s2), f"{ps[i].id} ~ swapped {ps[j].id}"
    # positive control: rotate the motif by 60° about the cell's z axis and mirror it -> still the same class
    s, _ = structs[5]
    rot = np.array([[0.5, -np.sqrt(3) / 2, 0], [np.sqrt(3) / 2, 0.5, 0], [0, 0, 1]]) @ np.diag([-1, 1, 1])
    c = s.cart_coords.mean(axis=0)
    moved = s.copy()
    for k in range(len(s)):
        moved.replace(k, s[k].species, coords=rot @ (s[k].coords - c) + c + [1.3, 0.7, 0], coords_are_cartesian=True)
    assert sm.fit(s, moved)
    # negative control: the positive control breaks when one N of site B is moved by 0.3 Å
    broken = moved.copy()
    k = [i for i, sp in enumerate(broken.species) if sp.symbol == "O"][0]
    broken.replace(k, "O", coords=broken[k].coords + [0.3, 0, 0], coords_are_cartesian=True)
    assert not sm.fit(s, broken)
