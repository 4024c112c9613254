"""The slab, site carving (including across the cell edges), saturation, metals and dimers."""

from __future__ import annotations

import numpy as np
import pytest
from ase.geometry import get_distances

from sacmap.structures import (
    Site,
    StructureInputError,
    carve_site,
    graphene_slab,
    kpoint_grid,
    parse_kind,
    place_dimer,
    place_metal,
    plane_axes,
    saturate_dangling,
    sites_of,
    undercoordinated,
)


def test_slab_matches_paper():
    s = graphene_slab()
    assert len(s) == 216 and set(s.get_chemical_symbols()) == {"C"}
    a, b, c = s.cell.lengths()
    assert a == pytest.approx(22.14, abs=0.005) and b == pytest.approx(25.56, abs=0.01)
    d = s.get_all_distances(mic=True)
    np.fill_diagonal(d, 9)
    assert d.min() == pytest.approx(1.42, abs=0.005)
    assert ((d < 1.6).sum(axis=1) == 3).all()
    assert s.info["vacuum_axis"] == 2 and kpoint_grid(s) == (2, 2, 1)
    assert np.ptp(s.positions[:, 2]) == 0 and s.positions[0, 2] == pytest.approx(c / 2)


def test_paper_orientation_sheet_in_a_c():
    s = graphene_slab(orientation="ac")
    assert s.info["vacuum_axis"] == 1 and plane_axes(s) == (0, 2, 1)
    assert kpoint_grid(s) == (2, 1, 2) and s.info["kpts"] == "2x1x2"
    assert np.ptp(s.positions[:, 1]) == 0
    assert s.cell.lengths()[2] == pytest.approx(25.565, abs=0.001)
    assert np.linalg.det(s.cell.array) > 0
    carved, site = carve_site(s, "4N")
    assert len(site.n_indices) == 4 and not undercoordinated(carved)
    m = place_metal(carved, 0, "Pt", height=1.0)
    assert m.positions[-1, 1] - s.positions[0, 1] == pytest.approx(1.0)


@pytest.mark.parametrize("text,kind", [("3N", "3N"), ("3xN6", "3N"), ("3×N6", "3N"), ("4xn6", "4N"), ("6N", "6N")])
def test_parse_kind_aliases(text, kind):
    assert parse_kind(text) == kind


def test_parse_kind_rejects_unknown():
    with pytest.raises(StructureInputError, match="5N"):
        parse_kind("5N")


EXPECTED = {"3N": (1, 3, 1.42), "4N": (2, 4, 1.88), "6N": (6, 6, 2.84)}


def _check_site(carved, site, slab):
    n_removed, n_n, r_n = EXPECTED[site.kind]
    assert len(carved) == len(slab) - n_removed
    assert len(site.removed_positions) == n_removed and len(site.n_indices) == n_n
    sym = carved.get_chemical_symbols()
    assert all(sym[k] == "N" for k in site.n_indices) and sym.count("N") >= n_n
    _, d = get_distances(site.centre, carved.positions[site.n_indices], cell=carved.cell, pbc=carved.pbc)
    assert np.allclose(d, r_n, atol=0.01)
    # centre = centroid of the removed atoms (minimum image)
    rp = np.asarray(site.removed_positions)
    v, _ = get_distances(rp[0], rp, cell=carved.cell, pbc=carved.pbc)
    cen = rp[0] + v[0].mean(axis=0)
    _, dc = get_distances(cen, site.centre, cell=carved.cell, pbc=carved.pbc)
    assert dc[0, 0] < 1e-6
    frac = carved.cell.scaled_positions(np.vstack([rp, site.centre]))
    assert (frac >= 0).all() and (frac < 1).all()
    assert undercoordinated(carved) == [] and carved.info["saturated_H"] == 0
    counts = np.bincount(__import__("ase.neighborlist").neighborlist.neighbor_list("i", carved, 1.6),
                         minlength=len(carved))
    for k, s in enumerate(sym):
        assert counts[k] == (2 if s == "N" else 3)


@pytest.mark.parametrize("kind", ["3N", "4N", "6N"])
@pytest.mark.parametrize("near", [None, (0.0, 0.0), (22.0, 12.0), (11.0, 25.5)])
def test_carve_sites_everywhere_including_cell_edges(kind, near):
    """Carving works through periodic images: sites at the corner and the edges are complete."""
    slab = graphene_slab()
    carved, site = carve_site(slab, kind, near=near)
    _check_site(carved, site, slab)
    stored = sites_of(carved)
    assert len(stored) == 1 and stored[0].n_indices == site.n_indices
    # a metal at the centre of a site cut by the edge sits at the centre, wrapped into the cell
    m = place_metal(carved, 0, "Pd")
    _, d = get_distances(site.centre, m.positions[-1], cell=m.cell, pbc=m.pbc)
    assert d[0, 0] == pytest.approx({"3N": 1.4, "4N": 0.0, "6N": 0.8}[kind], abs=1e-6)


def test_site_orientations():
    slab = graphene_slab()
    assert {carve_site(slab, "4N", orientation=o)[1].orientation for o in (30, 90, 150)} == {30, 90, 150}
    assert {carve_site(slab, "3N", orientation=o)[1].orientation for o in (30, 90)} == {30, 90}
    assert carve_site(slab, "6N")[1].orientation == 30


def test_second_site_and_overlap():
    slab = graphene_slab()
    one, s1 = carve_site(slab, "4N")
    two, s2 = carve_site(one, "4N", near=np.asarray(s1.centre) + [0, 8.0, 0])
    assert len(sites_of(two)) == 2
    first = sites_of(two)[0]
    assert all(two[k].symbol == "N" for k in first.n_indices)  # indices remapped after deleting atoms
    with pytest.raises(StructureInputError):
        carve_site(one, "3N", near=s1.centre, max_offset=0.1)


def test_site_dict_round_trip():
    s = Site("4N", [1.0, 2.0, 3.0], 90, [1, 2, 3, 4], [[0.0, 0.0, 0.0]], "Pd", [9])
    assert Site.from_dict(s.to_dict()) == s and s.label == "Pd/4N"


def test_dangling_atom_is_saturated_and_recorded():
    slab = graphene_slab()
    # delete two of the three neighbours of one atom: it is left with one bond
    k = 100
    d = slab.get_distances(k, range(len(slab)), mic=True)
    nb = [int(i) for i in np.flatnonzero((d > 0) & (d < 1.6))]
    removed = slab.positions[nb[:2]].copy()
    del slab[sorted(nb[:2])[::-1]]
    bad = undercoordinated(slab)
    assert bad  # the target atom (and the far neighbours of the removed ones) now dangle
    added = saturate_dangling(slab, removed)
    assert added >= 2 and "H" in slab.get_chemical_symbols()
    h = [i for i, s in enumerate(slab.get_chemical_symbols()) if s == "H"]
    assert all(1.0 < min(slab.get_distances(i, [j for j in range(len(slab)) if j != i], mic=True)) < 1.1 for i in h)


@pytest.mark.parametrize("kind", ["3N", "4N", "6N"])
@pytest.mark.parametrize("orientation", ["v", "a", "b"])
def test_dimer_placement(kind, orientation):
    carved, site = carve_site(graphene_slab(), kind)
    m = place_dimer(carved, 0, "Pt", orientation)
    a, b = len(m) - 2, len(m) - 1
    assert m.get_distance(a, b, mic=True) == pytest.approx(2.2)
    mid = m.positions[[a, b]].mean(axis=0)
    assert np.allclose(mid[:2], np.asarray(site.centre)[:2], atol=1e-9)
    dmin = min(m.get_distances(x, site.n_indices, mic=True).min() for x in (a, b))
    assert dmin > 1.8
    vec = m.positions[b] - m.positions[a]
    assert (abs(vec[2]) > 2.19) == (orientation == "v")
    assert sites_of(m)[0].occupant == "Pt2"


def test_bad_metal_rejected():
    carved, _ = carve_site(graphene_slab(), "4N")
    with pytest.raises(StructureInputError, match="Xx"):
        place_metal(carved, 0, "Xx")
    with pytest.raises(StructureInputError, match="did you mean 'Pt'"):
        place_metal(carved, 0, "pt")
    with pytest.raises(StructureInputError, match="unknown metal"):
        place_metal(carved, 0, "C")


def test_identify_sites_round_trip(paper_configs):
    """Sites are recognised from the N atoms alone (info['sites'] dropped, atoms rattled by 0.05 Å): same kinds,
    N indices, metals, orientations, centres within 0.2 Å."""
    from sacmap.structures import identify_sites

    checked = 0
    for a in paper_configs[::3]:
        if a.info["kind"].startswith("gas"):
            continue
        ref = sites_of(a)
        b = a.copy()
        b.info = {k: v for k, v in a.info.items() if k != "sites"}
        b.rattle(0.05, seed=checked)
        got = identify_sites(b)
        assert sorted((s.kind, s.n_indices, s.metal_indices, s.occupant, s.orientation) for s in got) == sorted(
            (s.kind, s.n_indices, s.metal_indices, s.occupant, s.orientation) for s in ref
        ), a.info["id"]
        for s in got:
            r = next(x for x in ref if x.n_indices == s.n_indices)
            _, d = get_distances(s.centre, r.centre, cell=a.cell, pbc=a.pbc)
            assert d[0, 0] < 0.2
        checked += 1
    assert checked > 100


def test_identify_sites_rejects_non_sites():
    from sacmap.structures import identify_sites

    s = graphene_slab()
    s[10].symbol = "N"  # graphitic N: three neighbours, not a coordination site
    with pytest.raises(StructureInputError, match="neighbours"):
        identify_sites(s)
    carved, site = carve_site(graphene_slab(orientation="ac"), "6N", near=(0.0, 0.0))
    got = identify_sites(carved)
    assert len(got) == 1 and got[0].kind == "6N" and got[0].n_indices == site.n_indices
