"""The results database on a real PostgreSQL server (``SACMAP_TEST_PG_URL``, started by .ci/run)."""

from __future__ import annotations

import math
import os
import uuid

import numpy as np
import pytest
from ase.build import molecule

from sacmap.workflows.campaign import results, runner

PG_URL = os.environ.get("SACMAP_TEST_PG_URL")
pytestmark = [
    pytest.mark.postgres,
    pytest.mark.skipif(not PG_URL, reason="SACMAP_TEST_PG_URL not set (no PostgreSQL server)"),
]


@pytest.fixture
def pg_db():
    db = results.connect(PG_URL)
    tag = f"pgtest-{uuid.uuid4().hex[:10]}"
    yield db, tag
    ids = [r.id for r in db.select(campaign=tag)]
    if ids:
        db.delete(ids)


def test_store_and_read_back_every_contract_key(pg_db):
    db, tag = pg_db
    atoms = molecule("H2O")
    meta = {"config_id": f"{tag}/Ni/4N-4N_d5.12_a", "kind": "metal_pair", "site_kinds": "4N-4N",
            "separation_A": float("nan"), "shares_NN_bond": True, "n_C_between": 3, "occupants": "Ni/4N-4N",
            "metals": "Ni", "pair_id": "4N-4N_d5.12_a", "spin_polarised": True}
    res = {"atoms": atoms, "energy_eV": -14.2, "forces": np.full((3, 3), 0.01), "energy_kind": "e_0_energy",
           "converged": True, "converged_electronic": True, "converged_ionic": False, "magmom": 1.5,
           "charges": [0.5, -0.25, -0.25], "charge_method": "bader", "calc_dir": "/scratch/x"}
    row_id = results.store(db, res, meta, calculator="vasp", settings_hash="abc123", settings={"ENCUT": 450},
                           campaign=tag)
    again = results.store(db, res, meta, calculator="vasp", settings_hash="abc123", settings={}, campaign=tag)
    assert again == row_id and db.count(campaign=tag) == 1  # the key is written once
    row = results.find(db, meta["config_id"], "abc123")
    assert row.id == row_id and row.calculator == "vasp" and row.magmom == pytest.approx(1.5)
    assert row.energy_eV == pytest.approx(-14.2) and row.energy == pytest.approx(-14.2)
    assert row.energy_kind == "e_0_energy" and row.converged and not row.converged_ionic
    assert row.shares_NN_bond is True and row.n_C_between == 3 and row.occupants == "Ni/4N-4N"
    assert math.isnan(row.separation_A)
    assert row.fmax_eV_A == pytest.approx(np.sqrt(3) * 0.01)
    assert row.data["charges"] == [0.5, -0.25, -0.25] and row.data["charge_method"] == "bader"
    assert row.toatoms().get_chemical_formula() == "H2O"
    assert results.find(db, meta["config_id"], "other") is None


def test_campaign_writes_to_postgres(tmp_path, make_config, pg_db):
    _, tag = pg_db
    configs = [make_config(None, f"{tag}/4N"), make_config("Pd", f"{tag}/Pd/4N")]
    url = runner.run_campaign({"name": tag, "calculation": {"calculator": "emt", "fmax": 0.3}}, tmp_path / "w",
                              db=PG_URL, progress=False, configs=configs)
    assert url == PG_URL
    db = results.connect(url)
    assert sorted(r.config_id for r in db.select(campaign=tag)) == sorted(c.info["id"] for c in configs)
    runner.run_campaign({"name": tag, "calculation": {"calculator": "emt", "fmax": 0.3}}, tmp_path / "w",
                        db=PG_URL, progress=False, configs=configs)
    assert db.count(campaign=tag) == 2
