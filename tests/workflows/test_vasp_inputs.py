"""VASP inputs of the presets: exactly the paper's settings (Mitchell et al. 2024, Methods), +U arrays in
pymatgen's species order, spin only for single-metal configurations, k-grid following the slab orientation."""

from __future__ import annotations

import warnings

import pytest
from pymatgen.io.vasp import Incar, Kpoints, Poscar

from sacmap.workflows.campaign.settings import calculation_variants, load_preset, settings_hash
from sacmap.workflows.campaign.vasp_inputs import vacuum_axis, write_inputs
from sacmap.workflows.errors import WorkflowInputError

# the paper: PBE, D3, PAW, 450 eV, 1e-5 eV electronic and 1e-4 eV ionic convergence, fixed cell
PAPER = {"ENCUT": 450, "EDIFF": 1e-5, "EDIFFG": 1e-4, "ISIF": 2, "IVDW": 11, "ISMEAR": 0}


@pytest.fixture(autouse=True)
def _no_potcars(monkeypatch):
    monkeypatch.delenv("PMG_VASP_PSP_DIR", raising=False)
    monkeypatch.setattr("sacmap.workflows.campaign.vasp_inputs.potcar_library_available", lambda: False)
    warnings.filterwarnings("ignore", category=UserWarning)


def _write(atoms, variant, path, static=False):
    from sacmap.workflows.campaign.configs import config_meta

    info = write_inputs(atoms, config_meta(atoms), variant["settings"], path, static=static)
    return info, Incar.from_file(path / "INCAR"), Poscar.from_file(path / "POSCAR", check_for_potcar=False)


def test_pbe_d3_metal_in_site_has_the_paper_settings(make_config, tmp_path):
    atoms = make_config("Ni", "Ni/4N_x")
    (variant,) = calculation_variants({"calculator": "vasp", "preset": "pbe-d3"})
    info, incar, poscar = _write(atoms, variant, tmp_path)
    for key, value in PAPER.items():
        assert incar[key] == pytest.approx(value), key
    assert 0 < incar["SIGMA"] <= 0.1  # Gaussian smearing with a small width
    assert incar.get("LDAU", False) is False
    assert "GGA" not in incar  # PBE from the PAW PBE POTCARs
    assert incar["ISPIN"] == 2
    symbols = [s for s, n in zip(poscar.site_symbols, poscar.natoms) for _ in range(n)]
    magmom = incar["MAGMOM"]
    assert len(magmom) == len(atoms)
    assert all((m > 0) == (s == "Ni") for m, s in zip(magmom, symbols))
    assert info["potcar_spec"] is True
    spec = (tmp_path / "POTCAR.spec").read_text().split()
    assert [s.split("_")[0] for s in spec] == poscar.site_symbols
    kp = Kpoints.from_file(tmp_path / "KPOINTS")
    assert kp.style.name == "Gamma" and list(kp.kpts[0]) == [2, 2, 1]


def test_pbe_d3_u_ldau_arrays_in_species_order(make_config, tmp_path):
    atoms = make_config("Pd", "Pd/4N_x")
    variants = calculation_variants({"calculator": "vasp", "preset": "pbe-d3-u", "u_values": [3.0, 5.5]})
    assert len(variants) == 2 and variants[0]["settings_hash"] != variants[1]["settings_hash"]
    for variant, u in zip(variants, (3.0, 5.5)):
        path = tmp_path / str(u)
        _, incar, poscar = _write(atoms, variant, path)
        for key, value in PAPER.items():
            assert incar[key] == pytest.approx(value), key
        assert incar["LDAU"] is True and incar["LDAUTYPE"] == 2
        order = poscar.site_symbols  # pymatgen's sorted species order
        assert set(order) == {"Pd", "C", "N"}
        assert incar["LDAUU"] == [u if s == "Pd" else 0 for s in order]
        assert incar["LDAUL"] == [2 if s == "Pd" else -1 for s in order]
        assert incar["LDAUJ"] == [0] * len(order)
        assert incar["ISPIN"] == 2


def test_preset_default_u_list_gives_one_calculation_per_u():
    hub = load_preset("pbe-d3-u")["hubbard"]
    variants = calculation_variants({"calculator": "vasp", "preset": "pbe-d3-u"})
    assert [v["settings"]["hubbard"]["u_eV"] for v in variants] == [float(u) for u in hub["u_values_eV"]]
    assert len({v["settings_hash"] for v in variants}) == len(variants)


def test_bare_site_is_not_spin_polarised_and_static_writes_charge_densities(make_config, tmp_path):
    atoms = make_config(None, "4N_x")
    (variant,) = calculation_variants({"calculator": "vasp"})
    _, incar, _ = _write(atoms, variant, tmp_path / "relax")
    assert incar["ISPIN"] == 1 and "MAGMOM" not in incar
    _, incar, _ = _write(atoms, variant, tmp_path / "static", static=True)
    assert incar["LCHARG"] is True and incar["LAECHG"] is True and incar["NSW"] == 0
    assert incar["ENCUT"] == 450 and incar["IVDW"] == 11


def test_kpoint_grid_follows_the_vacuum_axis(make_config, tmp_path):
    atoms = make_config("Ni", "Ni/4N_b", vacuum_axis=1)
    assert vacuum_axis(atoms) == 1
    (variant,) = calculation_variants({"calculator": "vasp"})
    _write(atoms, variant, tmp_path)
    kp = Kpoints.from_file(tmp_path / "KPOINTS")
    assert list(kp.kpts[0]) == [2, 1, 2]  # the paper's "2 x 1 x 2" grid with its vacuum along b


def test_settings_hash_is_stable_and_sensitive():
    h = settings_hash("vasp", {"a": 1, "b": [1.0, 2.0]})
    assert h == settings_hash("vasp", {"b": [1.0, 2.0], "a": 1})
    assert h != settings_hash("vasp", {"a": 1, "b": [1.0, 2.5]})
    assert h != settings_hash("chgnet-d3", {"a": 1, "b": [1.0, 2.0]})
    assert len(h) == 16


@pytest.mark.parametrize(
    "block, match",
    [
        ({"calculator": "nope"}, "calculation.calculator: unknown calculator 'nope'"),
        ({"calculator": "vasp", "preset": "pbe-d5"}, "preset 'pbe-d5' not found"),
        ({"calculator": "vasp", "u_values": [2.0]}, "has no hubbard block"),
        ({"calculator": "vasp", "preset": "pbe-d3-u", "u_values": ["x"]}, r"u_values\[0\]: expected a number"),
        ({"calculator": "embedded", "fmax": -1}, "calculation.fmax: -1 is not above the minimum 0"),
        ({"calculator": "embedded", "optimizer": "SD"}, "calculation.optimizer"),
        ({"calculator": "embedded", "preset": "pbe-d3"}, "calculation.preset: only for calculator vasp"),
        ({"calculator": "vasp", "fmax": 0.1}, "calculation.fmax: only for embedded"),
        ({"calculatr": "vasp"}, r"calculation.calculatr: unknown key \(allowed: calculator, preset"),
        ({"calculator": "vasp", "custodian": {"max_errors": 2.5}}, "custodian.max_errors: expected an integer"),
        ({"calculator": "vasp", "custodian": {"handlers": ["Nope"]}}, r"custodian.handlers\[0\]: unknown value 'Nope'"),
        ({"calculator": "vasp", "custodian": {"walltime_s": 0}}, "custodian.walltime_s: 0 is not above the minimum"),
    ],
)
def test_bad_calculation_blocks_name_file_and_field(block, match):
    with pytest.raises(WorkflowInputError, match=match) as err:
        calculation_variants(block, source="camp.yaml")
    assert "camp.yaml" in str(err.value)


def test_bad_preset_file_names_the_file(tmp_path):
    bad = tmp_path / "mine.yaml"
    bad.write_text("name: mine\nincar: {ENCUT: 450}\nkpoints: {in_plane: 0, vacuum: 1}\n")
    with pytest.raises(WorkflowInputError, match=r"mine.yaml: kpoints.in_plane: 0 is below the minimum 1"):
        calculation_variants({"calculator": "vasp", "preset": str(bad)}, source="camp.yaml")
