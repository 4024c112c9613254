"""A real campaign on the embedded calculator (CHGNet + D3) end to end through FireWorks and the CLI."""

from __future__ import annotations

import csv
import math
from pathlib import Path

import numpy as np
import pytest

from sacmap.workflows import cli
from sacmap.workflows.campaign import results, runner
from sacmap.workflows.campaign.settings import calculation_variants

SPEC = """\
name: tiny
calculation:
  calculator: embedded
  fmax: 0.1
structures:
  slab: {nx: 3, ny: 2, vacuum: 12.0, orientation: ab}
  sets:
    - {name: site, type: site, kinds: [4N]}
    - {name: Ni_site, type: site, kinds: [4N], metals: [Ni]}
"""


@pytest.mark.slow
def test_two_configuration_chgnet_campaign_through_the_cli(tmp_path, capsys):
    pytest.importorskip("sacmap.structures")
    spec = tmp_path / "tiny.yaml"
    spec.write_text(SPEC)
    wd = tmp_path / "camp"
    assert cli.main(["campaign", "submit", str(spec), "-w", str(wd)]) == 0
    assert "submitted 2 workflow(s)" in capsys.readouterr().out
    assert cli.main(["campaign", "run", "-w", str(wd), "--no-progress"]) == 0
    assert cli.main(["campaign", "status", "-w", str(wd)]) == 0
    out = capsys.readouterr().out
    assert "COMPLETED  4" in out and "(2 results)" in out and "FIZZLED" not in out

    (variant,) = calculation_variants({"calculator": "embedded", "fmax": 0.1})
    db = results.connect(str(wd / "results.db"))
    rows = {r.config_id: r for r in db.select()}
    assert set(rows) == {"4N", "Ni/4N"}
    for row in rows.values():
        assert row.calculator == "chgnet-d3" and row.settings_hash == variant["settings_hash"]
        assert row.energy_kind == "total" and math.isfinite(row.energy_eV) and row.energy == row.energy_eV
        assert row.converged and row.fmax_eV_A <= 0.1 + 1e-9
        assert np.abs(row.forces).max() <= 0.1 + 1e-6
        assert row.campaign == "tiny" and row.pair_id == "4N" and row.site_kinds == "4N"
        assert math.isnan(row.separation_A) and row.n_C_between == -1
        assert "charges" not in row.data  # CHGNet gives no atomic charges: absent, never invented
        assert row.data["settings"] == variant["settings"]
        # the settings record: the model is the "functional", D3 the dispersion; no ENCUT (not a plane-wave code)
        assert (row.functional, row.dispersion, row.ivdw) == ("chgnet:0.3.0", "D3(zero)", 11)
        assert row.get("encut_eV") is None
        assert len(row.magmoms) == row.natoms
        assert Path(row.calc_dir, "relax.traj").stat().st_size > 0
    ni = rows["Ni/4N"]
    assert ni.kind == "metal_single" and ni.metals == "Ni" and ni.occupants == "Ni/4N"
    atoms = ni.toatoms()
    m = [a.index for a in atoms if a.symbol == "Ni"][0]
    n_idx = [a.index for a in atoms if a.symbol == "N"]
    d_mn = atoms.get_distances(m, n_idx, mic=True)
    assert np.all((d_mn > 1.75) & (d_mn < 2.05))  # Ni-N ~1.87 A in a 4xN6 site (CHGNet, reference note)
    z = atoms.positions[:, 2]
    assert abs(z[m] - np.median(z)) < 0.3  # Ni stays in the plane of a 4xN6 site
    # energies differ by about a Ni atom's binding: physically different configurations
    assert ni.energy_eV < rows["4N"].energy_eV - 3.0

    traj_mtimes = {cid: Path(r.calc_dir, "relax.traj").stat().st_mtime_ns for cid, r in rows.items()}
    # resubmitting and rerunning recomputes nothing and duplicates nothing
    assert cli.main(["campaign", "submit", str(spec), "-w", str(wd)]) == 0
    assert "submitted 0 workflow(s) (2 already there)" in capsys.readouterr().out
    assert cli.main(["campaign", "run", "-w", str(wd), "--no-progress"]) == 0
    assert db.count() == 2
    assert {cid: Path(r.calc_dir, "relax.traj").stat().st_mtime_ns for cid, r in rows.items()} == traj_mtimes

    out_csv = tmp_path / "results.csv"
    assert cli.main(["campaign", "export", "-w", str(wd), "-o", str(out_csv)]) == 0
    with open(out_csv) as fh:
        recs = list(csv.DictReader(fh))
    assert {r["config_id"] for r in recs} == {"4N", "Ni/4N"}
    assert {r["calculator"] for r in recs} == {"chgnet-d3"}
    assert all(r["has_charges"] == "False" for r in recs)


def test_run_campaign_api_is_resumable_and_separates_settings(tmp_path, make_config):
    configs = [make_config(None, "4N_a", seed=1), make_config("Pt", "Pt/4N_a", seed=2)]
    spec = {"name": "api", "calculation": {"calculator": "emt", "fmax": 0.2}}
    wd = tmp_path / "camp"
    url = runner.run_campaign(spec, wd, progress=False, configs=configs)
    assert url == str(wd / "results.db")
    db = results.connect(url)
    assert db.count() == 2
    # a second call skips all finished work
    assert runner.run_campaign(spec, wd, progress=False, configs=configs) == url
    assert db.count() == 2
    # other settings are a different calculation: new rows with another settings hash, old rows kept
    spec2 = {"name": "api", "calculation": {"calculator": "emt", "fmax": 0.1}}
    runner.run_campaign(spec2, wd, progress=False, configs=configs)
    assert db.count() == 4
    assert len({r.settings_hash for r in db.select()}) == 2
    assert len({(r.config_id, r.settings_hash) for r in db.select()}) == 4


def test_submit_rejects_bad_input(tmp_path, make_config):
    from sacmap.workflows.errors import WorkflowInputError

    a = make_config(None, "4N_a")
    with pytest.raises(WorkflowInputError, match="duplicate configuration ids"):
        runner.submit_configs([a, a.copy()], tmp_path / "w", name="x", calculation={"calculator": "emt"})
    b = a.copy()
    b.info.pop("id")
    with pytest.raises(WorkflowInputError, match=r"atoms.info\['id'\]"):
        runner.submit_configs([b], tmp_path / "w", name="x", calculation={"calculator": "emt"})
    with pytest.raises(WorkflowInputError, match="only SQLite paths and postgresql"):
        runner.submit_configs([a], tmp_path / "w", name="x", calculation={"calculator": "emt"}, db="mysql://x")
    with pytest.raises(WorkflowInputError, match="no campaign here"):
        runner.status(tmp_path / "nothing")
    assert cli.main(["campaign", "status", "-w", str(tmp_path / "nothing")]) == 2
