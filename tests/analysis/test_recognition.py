"""Recognition from geometry alone must give back the builder's metadata for every configuration of
inputs/campaigns/paper.yaml, also after random 0.1 Å displacements."""

from __future__ import annotations

import math
from pathlib import Path

import numpy as np
import pytest
from ase import Atoms

from sacmap.analysis.energetics.recognition import RecognitionError, recognise
from sacmap.structures.builders import build_pair, build_single_site
from sacmap.structures.campaign import expand
from sacmap.structures.pairs import enumerate_pairs

KEYS = ("id", "kind", "site_kinds", "separation_A", "shares_NN_bond", "n_C_between", "occupants", "metals",
        "pair_id", "spin_polarised")


@pytest.fixture(scope="module")
def paper_configs(repo_dir):
    return expand(repo_dir / "inputs" / "campaigns" / "paper.yaml")


def _mismatches(built, found) -> list[str]:
    out = []
    for key in KEYS:
        want, got = built.info[key], found.get(key)
        if isinstance(want, float) and math.isnan(want):
            if not (isinstance(got, float) and math.isnan(got)):
                out.append(f"{built.info['id']}: {key} {want!r} != {got!r}")
        elif isinstance(want, float):
            if got is None or abs(float(got) - want) > 1e-3:
                out.append(f"{built.info['id']}: {key} {want!r} != {got!r}")
        elif want != got:
            out.append(f"{built.info['id']}: {key} {want!r} != {got!r}")
    return out


def _displaced(atoms: Atoms, rng: np.random.Generator, step: float = 0.1) -> Atoms:
    """Every atom moved by exactly ``step`` Å in a random direction; metadata stripped."""
    v = rng.normal(size=(len(atoms), 3))
    v *= step / np.linalg.norm(v, axis=1)[:, None]
    out = Atoms(atoms.get_chemical_symbols(), positions=atoms.positions + v, cell=atoms.cell, pbc=atoms.pbc)
    return out[rng.permutation(len(out))]  # atom order must not matter either


@pytest.mark.slow
def test_paper_campaign_round_trip(paper_configs):
    assert len(paper_configs) > 400
    kinds = {a.info["kind"] for a in paper_configs}
    assert kinds == {"slab", "single_site", "metal_single", "bare_pair", "metal_pair", "dimer", "gas_atom",
                     "gas_dimer"}
    bad = []
    for at in paper_configs:
        bare = Atoms(at.get_chemical_symbols(), positions=at.positions, cell=at.cell, pbc=at.pbc)
        bad += _mismatches(at, recognise(bare))
    assert not bad, "\n".join(bad[:20])


@pytest.mark.slow
def test_paper_campaign_round_trip_after_random_displacements(paper_configs):
    rng = np.random.default_rng(2024)
    bad = []
    for at in paper_configs:
        bad += _mismatches(at, recognise(_displaced(at, rng)))
    assert not bad, "\n".join(bad[:20])


def test_sites_centres_and_metal_positions():
    at = build_single_site("3N", "Pd")
    r = recognise(at)
    (site,) = r["sites"]
    assert site["kind"] == "3N" and site["metals"] == ["Pd"] and len(site["n_indices"]) == 3
    assert all(at[i].symbol == "N" for i in site["n_indices"])
    # centre = the removed C position: every N of a 3N site is one C-C bond (1.42 Å) from it, in plane
    c = np.asarray(site["centre_A"])
    d = [np.linalg.norm((at.positions[i] - c)[:2]) for i in site["n_indices"]]
    assert d == pytest.approx([2.46 / math.sqrt(3)] * 3, abs=1e-6)


def test_separation_is_minimum_image():
    p = enumerate_pairs("4N", "4N", 9.0)[-1]
    at = build_pair(p)
    r = recognise(at)
    assert r["separation_A"] == pytest.approx(p.separation_A, abs=1e-4)
    shifted = at.copy()
    shifted.positions += np.array([7.3, -11.1, 0.0])  # wrap across the cell boundary
    shifted.wrap()
    assert recognise(shifted)["separation_A"] == pytest.approx(p.separation_A, abs=1e-4)


def test_rejects_non_sheets():
    with pytest.raises(RecognitionError, match="no carbon sheet"):
        recognise(Atoms("Pt3", positions=[[0, 0, 0], [2, 0, 0], [0, 2, 0]], cell=[10, 10, 10], pbc=True))
    at = build_single_site("4N")
    at.positions[0] += [0, 0, 0.0]
    at.append("O")
    with pytest.raises(RecognitionError, match="unexpected elements"):
        recognise(at)
    at = build_single_site("4N", "Ni")
    at.positions[-1] += [6.0, 0, 2.0]  # the metal wandered off its site
    with pytest.raises(RecognitionError, match="adatom"):
        recognise(at)
    # an amorphous blob of carbon is not a honeycomb sheet
    rng = np.random.default_rng(0)
    blob = Atoms("C40", positions=rng.uniform(0, 10, (40, 3)), cell=[10, 10, 10], pbc=True)
    with pytest.raises(RecognitionError):
        recognise(blob)


RELAXED = Path(__file__).resolve().parents[1] / "data" / "analysis" / "relaxed" / "Ni3N-Pd4N_chgnet.extxyz"


def test_round_trip_after_real_relaxation():
    """A CHGNet-relaxed Ni/3N-Pd/4N pair (tests/data/analysis/relaxed/make_relaxed.py) is recognised as built."""
    from ase.io import read

    at = read(RELAXED, format="extxyz")
    assert at.info["max_displacement_A"] > 0.1  # it really moved
    r = recognise(Atoms(at.get_chemical_symbols(), positions=at.positions, cell=at.cell, pbc=at.pbc))
    for key in KEYS:
        want = at.info[f"built_{key}"]
        assert (r[key] == pytest.approx(want, abs=1e-3)) if isinstance(want, float) else r[key] == want, key


@pytest.mark.slow
def test_round_trip_during_live_chgnet_relaxation():
    """Relax a 95-atom Ni/3N-Pd/4N pair with CHGNet on the CPU for a few steps; recognition is unchanged."""
    torch = pytest.importorskip("torch")
    chgnet_model = pytest.importorskip("chgnet.model")
    from ase.optimize import FIRE

    from sacmap.structures.builders import SlabSpec

    torch.set_num_threads(2)
    slab = SlabSpec(6, 4)
    p = [q for q in enumerate_pairs("3N", "4N", 7.0, cell_limit=slab.separation_limit) if not q.shares_NN_bond][0]
    built = build_pair(p, ("Ni", "Pd"), slab=slab)
    at = built.copy()
    at.calc = chgnet_model.CHGNetCalculator(use_device="cpu")
    FIRE(at, logfile=None).run(fmax=0.1, steps=8)
    assert np.linalg.norm(at.positions - built.positions, axis=1).max() > 0.02
    assert not _mismatches(built, recognise(at))


def test_paper_orientation_and_foreign_hexagonal_cell():
    """The paper's sheet in the (a, c) plane, and a rotated hexagonal cell built without `structures`."""
    from ase.build import graphene
    from ase.neighborlist import neighbor_list

    from sacmap.structures.builders import SlabSpec

    p = enumerate_pairs("3N", "4N", 9.0)[5]
    built = build_pair(p, ("Ni", "Pd"), slab=SlabSpec(orientation="ac"))
    assert not _mismatches(built, recognise(built))

    g = graphene(size=(8, 8, 1), vacuum=7.5)  # 128 atoms, 60° cell
    i, j = neighbor_list("ij", g, 1.6)
    for r0 in (10, 90):  # two single vacancies -> two 3N sites
        for k in j[i == r0]:
            g[k].symbol = "N"
    del g[[10, 90]]
    g.rotate(17, "z", rotate_cell=True)
    r = recognise(g)
    assert (r["kind"], r["site_kinds"], r["n_C_between"]) == ("bare_pair", "3N-3N", 3)
    assert r["separation_A"] == pytest.approx(3 * 2.46, abs=1e-6)
    assert r["pair_id"] == "3N-3N_d7.38_a"  # the same placement as the builder's, found by symmetry


def test_gas_and_reference_kinds():
    r = recognise(Atoms("Pt2", positions=[[5, 5, 5], [5, 5, 7.2]], cell=[15, 15.5, 16], pbc=True))
    assert (r["kind"], r["occupants"], r["metals"], r["id"]) == ("gas_dimer", "Pt2", "Pt,Pt", "gas_Pt2")
    r = recognise(Atoms("N4", positions=[[0, 0, 0], [0, 0, 1.1], [2, 2, 2], [2, 2, 3.1]], cell=[5, 5, 5], pbc=True))
    assert r["kind"] == "reference"


def test_public_lattice_api_maps_bravais_coefficients_onto_the_builders_grid():
    """Recognition reaches the builder's grid only through structures' public lattice API."""
    from sacmap.structures import A_LATTICE, lattice_to_grid, lattice_vectors, sublattice
    from sacmap.structures.lattice import grid_to_plane

    a1, a2 = lattice_vectors()
    assert np.linalg.norm(a1) == pytest.approx(A_LATTICE) and np.linalg.norm(a2) == pytest.approx(A_LATTICE)
    assert math.degrees(math.atan2(a2[1], a2[0])) == pytest.approx(60.0)
    # from a B atom, +(a1 + a2)/3 is an A atom; from an A atom it is a hexagon centre (not an atom)
    assert sublattice(tuple(lattice_to_grid([1 / 3, 1 / 3], "B"))) == "A"
    with pytest.raises(ValueError):
        sublattice(tuple(lattice_to_grid([1 / 3, 1 / 3], "A")))
    coeffs = np.array([[2.0, -1.0], [0.5, 0.5]])
    grid = lattice_to_grid(coeffs, "A")
    assert np.allclose(grid_to_plane(grid, offset=False), coeffs @ lattice_vectors())
    with pytest.raises(ValueError, match="not on the lattice grid"):
        lattice_to_grid([0.1, 0.0])
