"""Parallel relaxations of the main job: the configurations are sharded over worker processes (each its own
embedded launchpad) that write one results database; every configuration is computed exactly once, and a rerun
with another number of workers computes nothing again. Plus the simulated-images block and the report's note for
a skipped step."""

from __future__ import annotations

import json

import ase.db
import pandas as pd
import pytest

from sacmap import structures
from sacmap.workflows import cli
from sacmap.workflows.errors import WorkflowInputError
from sacmap.workflows.job import steps_compute
from sacmap.workflows.job.worker import default_workers, shard

SPEC = """
name: par
calculation: {calculator: emt, fmax: 0.5, max_steps: 5}
structures:
  slab: {nx: 9, ny: 6, vacuum: 15.0}
  sets:
    - {name: site, type: site, kinds: [4N]}
    - {name: Pd_site, type: site, kinds: [4N], metals: [Pd, Pt]}
    - {name: gas, type: gas_atom, metals: [Pd, Pt]}
"""


def test_shards_partition_the_configurations_and_balance_the_large_ones():
    configs = [structures.build_gas_atom("Pd"), structures.build_single_site("4N", "Pd"),
               structures.build_gas_atom("Pt"), structures.build_single_site("4N", "Pt"),
               structures.build_single_site("4N")]
    parts = [shard(configs, i, 2) for i in range(2)]
    ids = [a.info["id"] for p in parts for a in p]
    assert sorted(ids) == sorted(a.info["id"] for a in configs)  # each exactly once
    big = [sum(len(a) > 100 for a in p) for p in parts]
    assert sorted(big) == [1, 2]  # the three slabs are spread, not piled on one worker
    assert shard(configs, 0, 1) == sorted(configs, key=lambda a: -len(a))
    with pytest.raises(ValueError):
        shard(configs, 2, 2)


def test_default_workers(monkeypatch):
    monkeypatch.setenv("SACMAP_WORKERS", "3")
    assert default_workers(10) == 3 and default_workers(2) == 2
    monkeypatch.setenv("SACMAP_WORKERS", "zero")
    with pytest.raises(WorkflowInputError, match="SACMAP_WORKERS"):
        default_workers(5)


@pytest.mark.slow
def test_two_workers_compute_each_configuration_once_and_a_rerun_with_one_computes_nothing(tmp_path):
    path = tmp_path / "par.yaml"
    path.write_text(SPEC)
    spec = structures.load_spec(path)
    out = tmp_path / "out"
    res = steps_compute.run_calculations(spec, out, workers=2, progress=False)
    assert res["workers"] == 2
    db = ase.db.connect(res["db"])
    ids = [r.config_id for r in db.select()]
    assert sorted(ids) == sorted(a.info["id"] for a in structures.expand(spec))
    assert res["status"]["counts"].get("FIZZLED", 0) == 0
    assert (out / "campaign" / "worker-1-of-2" / "worker.log").is_file()
    stamps = {r.config_id: r.ctime for r in db.select()}
    again = steps_compute.run_calculations(spec, out, workers=1, progress=False)
    assert again["db"] == res["db"]
    assert {r.config_id: r.ctime for r in ase.db.connect(again["db"]).select()} == stamps


def test_simulated_images_block_is_validated(tmp_path):
    from sacmap.workflows.job.spec import job_settings

    p = tmp_path / "s.yaml"
    p.write_text("name: s\nsimulated_images: {densities_nm2: [0.5, -1]}\n")
    with pytest.raises(WorkflowInputError, match=r"s.yaml: simulated_images.densities_nm2\[1\]"):
        job_settings(structures.load_spec(p), p)
    p.write_text("name: s\nsimulated_images: {densitys: [1]}\n")
    with pytest.raises(WorkflowInputError, match="densitys"):
        job_settings(structures.load_spec(p), p)
    p.write_text("name: s\nsimulated_images: {}\n")
    sim = job_settings(structures.load_spec(p), p)["simulated_images"]
    assert sim["densities_nm2"] == [0.5, 1.0, 2.0, 4.0, 6.0, 8.0] and sim["element"] == "Pt"


@pytest.mark.slow
def test_skip_calculations_says_so_and_simulated_images_are_described_twice(tmp_path):
    p = tmp_path / "sk.yaml"
    p.write_text(SPEC + "simulated_images: {densities_nm2: [2.0], size_px: 160, seed: 4}\n"
                        "sampling: {runs: 3, n_boot: 2, fit: false, densities_nm2: [1.0]}\n")
    out = tmp_path / "o"
    assert cli.main(["run", str(p), "-o", str(out), "--skip-calculations", "--no-progress"]) == 0
    html = (out / "report.html").read_text()
    assert "Skipped: run with --skip-calculations" in html
    assert not (out / "campaign").exists()
    truth = pd.read_csv(out / "simulated" / "simulated_2_per_nm2_truth.csv")
    table = pd.read_csv(out / "statistics" / "simulated_detected_vs_true.csv")
    row = table.iloc[0]
    assert row["image"] == "simulated_2_per_nm2" and row["n_true"] == len(truth)
    area = (160 * 0.029296875) ** 2
    assert row["density_true_nm2"] == pytest.approx(len(truth) / area, rel=1e-6)
    assert 0 <= row["recall"] <= 1 and 0 <= row["precision"] <= 1
    desc = pd.read_csv(out / "statistics" / "descriptors.csv")
    assert desc.set_index("image").loc["simulated_2_per_nm2", "simulated"]
    summary = json.loads((out / "run_summary.json").read_text())
    assert summary["detection"]["images"][0]["simulated"] is True
