"""Campaign specs: validation errors that name the file and the field, expansion, the shipped specs."""

from __future__ import annotations

import math

import pytest
import yaml

from sacmap.structures import StructureInputError, counts_per_set, expand, load_spec, plan

GOOD = {
    "name": "t",
    "calculation": {"calculator": "embedded", "anything": [1, 2]},
    "structures": {
        "sets": [
            {"name": "pairs", "type": "pair", "kinds": ["4xN6", "4×N6"], "max_separation": 5.0},
            {"name": "one", "type": "pair", "kinds": ["3N", "4N"], "max_separation": 3.6, "occupation": "mixed",
             "metals": ["Ni", "Pd"]},
            {"name": "dimer", "type": "dimer", "kinds": ["6N"], "metals": ["Ru"], "orientations": ["v"]},
            {"name": "gas", "type": "gas_atom", "metals": ["Ru"]},
        ]
    },
}


def _write(tmp_path, data, name="spec.yaml"):
    p = tmp_path / name
    p.write_text(data if isinstance(data, str) else yaml.safe_dump(data, allow_unicode=True), encoding="utf-8")
    return p


def test_good_spec_round_trip(tmp_path):
    p = _write(tmp_path, GOOD)
    spec = load_spec(p)
    assert spec["calculation"] == GOOD["calculation"]  # passed through untouched
    assert spec["structures"]["sets"][0]["kinds"] == ["4N", "4N"]
    assert spec["_source"] == str(p)
    atoms = expand(spec)
    ids = [a.info["id"] for a in atoms]
    assert ids[:5] == ["4N-4N_d4.26_a", "4N-4N_d4.26_b", "4N-4N_d4.43_a", "4N-4N_d4.92_a", "4N-4N_d4.92_b"]
    assert "Ni/3N-Pd/4N_d3.55_a" in ids and "Pd/3N-Ni/4N_d3.55_a" in ids
    assert "Ru2/6N_v" in ids and "gas_Ru" in ids
    assert {a.info["set"] for a in atoms} == {"pairs", "one", "dimer", "gas"}
    assert all(a.info["campaign"] == "t" for a in atoms)
    assert [p.id for p in plan(p)] == ids
    assert counts_per_set(spec) == {"pairs": 5, "one": 2, "dimer": 1, "gas": 1}


def _error(tmp_path, data, *fragments):
    p = _write(tmp_path, data)
    with pytest.raises(StructureInputError) as exc:
        load_spec(p)
    msg = str(exc.value)
    assert str(p) in msg, msg
    for f in fragments:
        assert f in msg, msg
    return msg


def _with_set(**changes):
    import copy

    d = copy.deepcopy(GOOD)
    d["structures"]["sets"][0].update(changes)
    return d


def test_unknown_top_level_key(tmp_path):
    _error(tmp_path, dict(GOOD, structure={}), ": structure: unknown key", "allowed: name, description, structures")


def test_unknown_set_key(tmp_path):
    _error(tmp_path, _with_set(max_sep=4), "structures.sets[0] (pairs).max_sep", "unknown key")


def test_unknown_site_kind(tmp_path):
    _error(tmp_path, _with_set(kinds=["4N", "5N"]), "structures.sets[0] (pairs).kinds[1]", "5N")


def test_unknown_metal(tmp_path):
    _error(tmp_path, _with_set(occupation="both", metals=["Ni", "Unobtainium"]), "metals[1]", "Unobtainium")


def test_separation_beyond_cell(tmp_path):
    _error(tmp_path, _with_set(max_separation=12.0), "max_separation", "11.07")
    # a smaller slab allows less
    d = _with_set(max_separation=9.0)
    d["structures"]["slab"] = {"nx": 6, "ny": 4}
    _error(tmp_path, d, "max_separation", "7.38")


def test_malformed_yaml(tmp_path):
    _error(tmp_path, "name: x\nstructures: [unclosed\n", "malformed YAML", "line")


def test_other_bad_fields(tmp_path):
    _error(tmp_path, _with_set(occupation="one"), "metals", "needs a list of metals")
    _error(tmp_path, _with_set(occupation="sideways", metals=["Ni"]), "occupation", "sideways")
    _error(tmp_path, _with_set(type="triple"), "type", "triple")
    _error(tmp_path, _with_set(kinds=["4N"]), "kinds", "exactly two")
    _error(tmp_path, _with_set(min_separation=6.0), "min_separation")
    _error(tmp_path, _with_set(name="one"), "duplicate set name")
    d = dict(GOOD, structures=dict(GOOD["structures"], slab={"orientation": "xy"}))
    _error(tmp_path, d, "structures.slab.orientation", "xy")
    _error(tmp_path, "- just\n- a list\n", "top level")
    d = dict(GOOD, structures=dict(GOOD["structures"], heights={"7N": 1.0}))
    _error(tmp_path, d, "structures.heights", "unknown site kind '7N'")


def test_missing_file(tmp_path):
    with pytest.raises(FileNotFoundError):
        load_spec(tmp_path / "nope.yaml")


def test_occupations_respect_exchange_symmetry(tmp_path):
    base = {"name": "o", "structures": {"sets": [
        {"name": "one", "type": "pair", "kinds": ["4N", "4N"], "max_separation": 4.5, "occupation": "one",
         "metals": ["Pt"]},
        {"name": "mixed", "type": "pair", "kinds": ["4N", "4N"], "max_separation": 4.5, "occupation": "mixed",
         "metals": ["Pd", "Ni"]},
    ]}}
    atoms = expand(load_spec(_write(tmp_path, base)))
    ids = {a.info["id"]: a for a in atoms}
    # 4.26 a/b are exchange-symmetric (one id each), 4.43 is not (metal on either site)
    assert {"Pt/4N-4N_d4.26_a", "Pt/4N-4N_d4.26_b", "Pt/4N-4N_d4.43_a", "4N-Pt/4N_d4.43_a"} <= set(ids)
    assert "4N-Pt/4N_d4.26_a" not in ids
    assert "Ni/4N-Pd/4N_d4.26_a" in ids and "Pd/4N-Ni/4N_d4.26_a" not in ids
    assert "Pd/4N-Ni/4N_d4.43_a" in ids and "Ni/4N-Pd/4N_d4.43_a" in ids
    a = ids["4N-Pt/4N_d4.43_a"]
    assert a.info["pair_id"] == "4N-4N_d4.43_a" and a.info["occupants"] == "4N-Pt/4N"
    assert a.info["kind"] == "metal_single" and a.info["spin_polarised"] and a.info["metals"] == "Pt"
    b = ids["Ni/4N-Pd/4N_d4.43_a"]
    assert b.info["kind"] == "metal_pair" and b.info["metals"] == "Ni,Pd" and not b.info["spin_polarised"]


def test_paper_spec_counts(paper_spec):
    counts = counts_per_set(paper_spec)
    assert counts["bare_3N-3N"] == 15 and counts["bare_4N-4N"] == 25 and counts["bare_3N-4N"] == 22
    assert counts["M_4N-M_4N"] == 4 * 25 and counts["NiPd_3N-4N"] == 2 * 22
    assert counts["dimers"] == 4 * 3 * 3 and counts["gas_atoms"] == 4 and counts["gas_dimers"] == 4
    assert sum(counts.values()) == 419  # the number quoted in docs/structures.md
    assert paper_spec["calculation"] == {"calculator": "vasp", "preset": "pbe-d3",
                                         "launchpad": "../fireworks/my_launchpad.yaml",
                                         "custodian": {"walltime_s": 172800, "walltime_buffer_s": 1800,
                                                       "max_restarts": 3}}


def test_paper_configs_sets(paper_configs):
    kinds = {a.info["kind"] for a in paper_configs}
    assert kinds == {"slab", "single_site", "bare_pair", "metal_single", "metal_pair", "dimer", "gas_atom",
                     "gas_dimer"}
    seps = [a.info["separation_A"] for a in paper_configs if a.info["kind"] == "bare_pair"]
    assert max(seps) <= 9.0 and min(seps) == pytest.approx(2.84, abs=0.01)
    assert all(math.isnan(a.info["separation_A"]) for a in paper_configs if a.info["kind"] == "dimer")


def test_demo_spec_holds_what_the_findings_need(repo_dir):
    """The demo (issue 18): every bare 4N-4N pair from the closest to 9 A, Pd on one/both sites of the closest
    pairs, Pd2 and Pt2 dimers with their references; still small enough for minutes on an embedded calculator."""
    spec = load_spec(repo_dir / "inputs" / "campaigns" / "demo.yaml")
    assert spec["calculation"] == {"calculator": "embedded", "optimizer": "PreconLBFGS"}
    items = plan(spec)
    assert 35 <= len(items) <= 45
    ids = {p.id for p in items}
    assert {"gas_Pd", "gas_Pd2", "gas_Pt", "gas_Pt2", "Pd2/4N_v", "Pt2/4N_v", "4N", "Pd/4N", "Pt/4N"} <= ids
    bare = [a.info["separation_A"] for a in expand(spec) if a.info["kind"] == "bare_pair"]
    assert len(bare) == 25 and min(bare) == pytest.approx(4.26, abs=0.01) and 8.8 < max(bare) <= 9.0


def test_paper_orientation_spec(tmp_path, geo):
    """The paper's sheet-in-(a, c) setting: every configuration has its vacuum along b and a 2x1x2 k-grid."""
    from sacmap.structures import plane_axes, sites_of

    d = {"name": "ac", "structures": {"slab": {"orientation": "ac"}, "sets": [
        {"name": "p", "type": "pair", "kinds": ["3N", "4N"], "max_separation": 4.0, "occupation": "first",
         "metals": ["Pt"]},
        {"name": "d", "type": "dimer", "kinds": ["6N"], "metals": ["Pt"], "orientations": ["a"]},
    ]}}
    atoms = expand(load_spec(_write(tmp_path, d)))
    assert len(atoms) == 3
    for a in atoms:
        assert a.info["kpts"] == "2x1x2" and a.info["vacuum_axis"] == 1 and plane_axes(a) == (0, 2, 1)
        counts = geo.heavy_neighbour_counts(a)
        assert all(c == 2 for k, c in counts.items() if a[k].symbol == "N")
        metal = [k for k, s in enumerate(a.get_chemical_symbols()) if s == "Pt"]
        assert a.positions[metal, 1].min() > a.positions[0, 1] + 0.5 or a.info["kind"] != "dimer"
        for s in sites_of(a):
            assert s.centre[1] == pytest.approx(a.positions[0, 1])


def test_bundled_specs_by_name(repo_dir, tmp_path, monkeypatch, capsys):
    """`paper` / `demo` name the bundled specs from any folder; a file of that name in the folder wins."""
    from sacmap.workflows import cli

    monkeypatch.chdir(tmp_path)
    for name in ("paper", "demo"):
        spec = load_spec(name)
        assert spec == load_spec(repo_dir / "inputs" / "campaigns" / f"{name}.yaml")
    assert cli.main(["structures", "list", "paper"]) == 0
    assert capsys.readouterr().out.strip().splitlines()[-1].split() == ["total", "419"]
    local = _write(tmp_path, GOOD, name="paper")
    assert load_spec("paper")["_source"] == "paper" and local.is_file()
    with pytest.raises(FileNotFoundError, match="bundled spec: demo, paper"):
        load_spec("nosuchspec")


def test_build_only_named_sets(tmp_path):
    from sacmap.structures import build_campaign, read_index

    n, index = build_campaign(_write(tmp_path, GOOD), tmp_path / "out", sets=["dimer", "gas"], poscar=False)
    assert n == 2 and list(read_index(tmp_path / "out")["id"]) == ["Ru2/6N_v", "gas_Ru"]
    with pytest.raises(StructureInputError, match="--set 'nope': no such set"):
        build_campaign(_write(tmp_path, GOOD), tmp_path / "out", sets=["nope"])
