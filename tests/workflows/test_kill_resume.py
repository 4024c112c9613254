"""SIGKILL a running campaign, run it again: nothing finished is recomputed, nothing missing, nothing duplicated.

Uses the embedded default (CHGNet + D3) on small 22/23-atom N-doped sheets with a loose fmax: the machinery
under test is FireWorks, the embedded store and the results database.
"""

from __future__ import annotations

import os
import signal
import sqlite3
import subprocess
import sys
import time
from pathlib import Path

import pytest

from sacmap.workflows.campaign import results, runner
from sacmap.workflows.campaign.launchpad import EmbeddedLaunchPad

N_CONFIGS = 6


def _relax_dirs(wd: Path, cid_folder: str) -> list[Path]:
    return sorted(p for p in (wd / "calcs" / cid_folder).glob("*/relax*") if p.is_dir())


@pytest.mark.slow
def test_sigkill_then_resume(tmp_path, make_config):
    configs = [make_config("Ni" if i % 2 else None, f"{'Ni/' if i % 2 else ''}4N_k{i}", seed=i, rattle=0.05)
               for i in range(N_CONFIGS)]
    wd = tmp_path / "camp"
    runner.submit_configs(configs, wd, name="kill", calculation={"calculator": "embedded", "fmax": 0.1})
    db_path = wd / "results.db"
    env = dict(os.environ, PYTHONUNBUFFERED="1", SACMAP_TORCH_THREADS="1", OMP_NUM_THREADS="1")
    proc = subprocess.Popen([sys.executable, "-m", "sacmap.workflows.cli", "campaign", "run", "-w", str(wd),
                             "--no-progress"], stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, env=env)
    n_before = 0
    deadline = time.time() + 240
    try:
        while time.time() < deadline and proc.poll() is None:
            if db_path.exists():
                try:
                    n_before = results.connect(str(db_path)).count()
                except sqlite3.OperationalError:  # being created/written by the campaign process
                    n_before = 0
                if n_before >= 2:
                    break
            time.sleep(0.05)
    finally:
        os.kill(proc.pid, signal.SIGKILL)
        proc.wait()
    assert 2 <= n_before < N_CONFIGS, f"kill came too late/early ({n_before} results); stderr: {proc.stderr.read()}"

    db = results.connect(str(db_path))
    before = {r.config_id: (r.id, r.unique_id, Path(r.calc_dir, "relax.traj").stat().st_mtime_ns)
              for r in db.select()}
    assert len(before) >= n_before

    # the store survives the kill: it is valid JSON with every Firework; the killed one is reset on restart
    with EmbeddedLaunchPad(wd) as handle:
        assert handle.lp.fireworks.count_documents({}) == 2 * N_CONFIGS
    counts = runner.run(wd, progress=False)
    assert counts == {"COMPLETED": 2 * N_CONFIGS}

    rows = list(db.select())
    ids = [r.config_id for r in rows]
    assert sorted(ids) == sorted(c.info["id"] for c in configs)  # none missing, none duplicated
    for cid, (row_id, uid, mtime) in before.items():
        row = db.get(config_id=cid)
        assert (row.id, row.unique_id) == (row_id, uid)  # the finished row itself is reused
        assert Path(row.calc_dir, "relax.traj").stat().st_mtime_ns == mtime  # not recomputed
        folder = Path(row.calc_dir).parent.parent.name
        assert len(_relax_dirs(wd, folder)) == 1  # no second relaxation folder was ever made
    # another run finds nothing to do
    assert runner.run(wd, progress=False) == counts
    assert db.count() == N_CONFIGS


def test_second_process_is_refused_while_one_holds_the_store(tmp_path):
    from sacmap.workflows.errors import WorkflowInputError

    with EmbeddedLaunchPad(tmp_path):
        with pytest.raises(WorkflowInputError, match="another sacmap process is using this embedded launchpad"):
            EmbeddedLaunchPad(tmp_path)
    with EmbeddedLaunchPad(tmp_path) as handle:  # released on close
        assert handle.path.exists()


def test_store_is_flushed_and_reloaded(tmp_path):
    from fireworks import Firework, ScriptTask

    with EmbeddedLaunchPad(tmp_path) as handle:
        handle.lp.add_wf(Firework(ScriptTask.from_str("true"), name="a"))
        handle.flush()
    # a fresh object (as after a SIGKILL: no exit-time writer involved) sees the Firework
    with EmbeddedLaunchPad(tmp_path) as handle:
        assert [d["name"] for d in handle.lp.fireworks.find({}, {"name": 1})] == ["a"]
    (tmp_path / "launchpad.json").write_text("{not json")
    from sacmap.workflows.errors import WorkflowInputError

    with pytest.raises(WorkflowInputError, match="corrupt launchpad store"):
        EmbeddedLaunchPad(tmp_path)


def test_dupefinder_runs_an_identical_workflow_once(tmp_path, make_config):
    """Two identical workflows on one LaunchPad (bypassing submit's key check): DupeFinderExact makes the second
    take over the first's launches, so the relaxation runs once and one row is written."""
    from sacmap.workflows.campaign.builders import build_workflow
    from sacmap.workflows.campaign.configs import config_to_doc
    from sacmap.workflows.campaign.settings import calculation_variants

    atoms = make_config("Pt", "Pt/4N_dup", rattle=0.02)
    wd = tmp_path / "camp"
    runner.submit_configs([atoms], wd, name="dup", calculation={"calculator": "emt", "fmax": 0.3})
    (variant,) = calculation_variants({"calculator": "emt", "fmax": 0.3})
    state = runner.load_state(wd)
    with EmbeddedLaunchPad(wd) as handle:
        handle.lp.add_wf(build_workflow(config_to_doc(atoms), variant, db=state["db"], campaign="dup"))
        handle.flush()
    assert runner.run(wd, progress=False) == {"COMPLETED": 4}
    assert results.connect(state["db"]).count() == 1
    assert len(list((wd / "calcs").rglob("relax.traj"))) == 1
    assert len(list((wd / "calcs").rglob("FW.json"))) == 2  # one relax, one store ran
    with EmbeddedLaunchPad(wd) as handle:
        launches = {d["fw_id"]: d["launches"] for d in handle.lp.fireworks.find({}, {"fw_id": 1, "launches": 1})}
    assert launches[3] == launches[1] and launches[4] == launches[2]  # the copies took over the launches
