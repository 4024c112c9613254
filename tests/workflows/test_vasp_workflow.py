"""The VASP path end to end through FireWorks + custodian with a stand-in VASP executable.

The stand-in (tests/data/workflows/fake_vasp.py) checks the INCAR/KPOINTS/POSCAR/POTCAR.spec it finds against
the preset's paper settings and then writes real recorded outputs (custodian's test files, MIT; see
tests/data/workflows/vasp-fixtures/README.md). The configuration is the recorded system itself (Fe2O2 from the
recording's POSCAR, treated as a slab with its vacuum along c) so that outputs and inputs belong together.
"""

from __future__ import annotations

import json
import sys
import warnings
from pathlib import Path

import pytest
from ase.io import read

from sacmap.workflows.campaign import results, runner
from sacmap.workflows.campaign.vasp_run import parse_vasp_dir

DATA = Path(__file__).resolve().parent.parent / "data" / "workflows"
FIX = DATA / "vasp-fixtures"
RECORDED_E0 = -28.21851457  # eV: energy(sigma->0) of the recorded relaxation (OSZICAR E0, last step)
# LargeSigmaHandler is left out: the recorded run's smearing entropy (T*S > 1 meV/atom, SIGMA 0.05 eV) makes it
# ask for a smaller SIGMA on every rerun, and the recording cannot change
HANDLERS = ["VaspErrorHandler", "MeshSymmetryErrorHandler", "UnconvergedErrorHandler", "NonConvergingErrorHandler",
            "PotimErrorHandler", "PositiveEnergyErrorHandler", "FrozenJobErrorHandler", "StdErrHandler",
            "IncorrectSmearingHandler"]
FAST = {"polling_time_step": 0.05, "monitor_freq": 1, "handlers": HANDLERS}


def fe2o2():
    atoms = read(FIX / "relax-ldau-spin" / "POSCAR", format="vasp")
    atoms.pbc = (True, True, False)
    atoms.info.update(id="Fe/fixture", kind="metal_single", site_kinds="", separation_A=float("nan"),
                      shares_NN_bond=False, n_C_between=-1, occupants="Fe", metals="Fe", pair_id="fixture",
                      spin_polarised=True)
    return atoms


def expectation(u=None):
    """What the preset must produce for Fe2O2 (species order Fe, O): the paper's settings."""
    paper = {"ENCUT": 450, "EDIFF": 1e-5, "EDIFFG": 1e-4, "ISIF": 2, "IVDW": 11, "ISMEAR": 0, "SIGMA": 0.05,
             "ISPIN": 2, "MAGMOM": [2.0, 2.0, 0.0, 0.0]}
    if u is None:
        paper["LDAU"] = False
    else:
        paper.update({"LDAU": True, "LDAUTYPE": 2, "LDAUU": [u, 0.0], "LDAUL": [2, -1], "LDAUJ": [0.0, 0.0]})
    static = dict(paper, NSW=0, LCHARG=True, LAECHG=True)
    return {"kpoints": [2, 2, 1], "relax": {"incar": dict(paper, IBRION=2)}, "static": {"incar": static}}


@pytest.fixture
def fake_vasp(monkeypatch, tmp_path):
    warnings.filterwarnings("ignore", category=UserWarning)
    monkeypatch.setenv("SACMAP_VASP_CMD", f"{sys.executable} {DATA / 'fake_vasp.py'}")
    monkeypatch.setenv("SACMAP_ALLOW_POTCAR_SPEC", "1")
    monkeypatch.setattr("sacmap.workflows.campaign.vasp_inputs.potcar_library_available", lambda: False)
    monkeypatch.setenv("FAKE_VASP_OUTPUTS", str(FIX / "relax-ldau-spin"))
    monkeypatch.setenv("FAKE_VASP_LOG", str(tmp_path / "fake_vasp.log"))
    monkeypatch.delenv("FAKE_VASP_ERROR", raising=False)

    def setup(expect: dict, error: str | None = None):
        path = tmp_path / "expect.json"
        path.write_text(json.dumps(expect))
        monkeypatch.setenv("FAKE_VASP_EXPECT", str(path))
        if error:
            monkeypatch.setenv("FAKE_VASP_ERROR", str(FIX / "error-logs" / error))

    return setup


def _calls(tmp_path):
    log = tmp_path / "fake_vasp.log"
    return [json.loads(line) for line in log.read_text().splitlines()] if log.exists() else []


@pytest.mark.parametrize("u", [None, 4.0])
def test_vasp_campaign_with_stand_in(fake_vasp, tmp_path, u):
    fake_vasp(expectation(u))
    calc = {"calculator": "vasp", "custodian": FAST}
    if u is not None:
        calc.update(preset="pbe-d3-u", u_values=[u])
    wd = tmp_path / "camp"
    runner.submit_configs([fe2o2()], wd, name="vasp-test", calculation=calc)
    counts = runner.run(wd, progress=False)
    st = runner.status(wd)
    assert counts == {"COMPLETED": 3}, st["failures"]
    calls = _calls(tmp_path)
    assert [c["step"] for c in calls] == ["relax", "static"]
    assert all(not c["problems"] for c in calls)
    db = results.connect(st["db"])
    (row,) = list(db.select())
    assert row.config_id == "Fe/fixture" and row.calculator == "vasp"
    assert row.energy_eV == pytest.approx(RECORDED_E0, abs=1e-6) and row.energy_kind == "e_0_energy"
    assert row.converged and row.converged_ionic and row.converged_electronic
    assert row.magmom == pytest.approx(4.0)
    assert row.get("hubbard_u_eV") == u
    assert row.preset == ("pbe-d3" if u is None else "pbe-d3-u")
    assert "charges" not in row.data  # no Bader program here: charges absent, never invented
    assert row.data["static_energy_eV"] == pytest.approx(RECORDED_E0, abs=1e-6)
    # outputs are gzipped after parsing (custodian.json and POTCAR.spec stay plain); nothing needs CHG/WAVECAR
    assert Path(row.calc_dir, "INCAR.gz").is_file() and Path(row.calc_dir, "POTCAR.spec").is_file()
    assert Path(row.calc_dir, "vasprun.xml.gz").is_file() and not Path(row.calc_dir, "vasprun.xml").exists()
    assert row.n_restarts == 0 and row.data["corrections"] == {"relax": [], "static": []}
    # the settings record of the run itself (the stand-in copies a recorded run: PBE, no IVDW, PREC Accurate)
    assert (row.functional, row.dispersion, row.prec, row.smearing) == ("PBE", "none", "Accurate", "ISMEAR=0,SIGMA=0.05")
    assert row.potcar == "Fe:PAW_PBE Fe,O:PAW_PBE O" and row.ispin == 2 and row.encut_eV > 0
    from sacmap.analysis.energetics.readers import read_ase_db

    (rec,) = read_ase_db(st["db"])
    assert (rec["functional"], rec["dispersion"], rec["encut_eV"]) == ("PBE", "none", row.encut_eV)
    # a second run computes nothing and adds nothing
    assert runner.submit_configs([fe2o2()], wd, name="vasp-test", calculation=calc)["added"] == 0
    runner.run(wd, progress=False)
    assert len(_calls(tmp_path)) == 2 and db.count() == 1


# recorded error log -> (custodian error name, INCAR tag the correction sets, value)
ERRORS = {
    "vasp.zbrent": ("zbrent", "EDIFF", 1e-6),
    "vasp.brmix": ("brmix", "IMIX", 1),
    "vasp.edddav2": ("edddav", "ALGO", "All"),
    "vasp.eddrmm": ("eddrmm", "ALGO", "Normal"),
    "vasp.ibzkpt": ("mesh_symmetry", "ISYM", 0),
    "vasp.nicht_konvergent": ("nicht_konv", "LREAL", False),
    "vasp.posmap": ("posmap", "SYMPREC", 1e-6),
    "vasp.subspace": ("subspacematrix", "LREAL", False),
}


@pytest.mark.parametrize("log_name", sorted(ERRORS))
def test_custodian_corrects_recorded_errors_and_reruns(fake_vasp, tmp_path, log_name):
    from pymatgen.io.vasp import Incar

    error, tag, value = ERRORS[log_name]
    fake_vasp(expectation(), error=log_name)
    wd = tmp_path / "camp"
    runner.submit_configs([fe2o2()], wd, name="err", calculation={"calculator": "vasp", "custodian": FAST})
    counts = runner.run(wd, progress=False)
    assert counts == {"COMPLETED": 3}, runner.status(wd)["failures"]
    relax_dirs = sorted({c["dir"] for c in _calls(tmp_path) if c["step"] == "relax"})
    assert len(relax_dirs) == 1
    assert [c["step"] for c in _calls(tmp_path)] == ["relax", "relax", "static"]  # failed, corrected, rerun
    log = json.loads(Path(relax_dirs[0], "custodian.json").read_text())
    corrections = [c for run in log for c in run["corrections"]]
    assert [c["errors"] for c in corrections] == [[error]]
    incar = Incar.from_file(Path(relax_dirs[0], "INCAR.gz"))
    assert incar[tag] == value
    db = results.connect(runner.load_state(wd)["db"])
    assert db.count() == 1 and next(db.select()).converged
    # the run-time correction is recorded with the result
    row = next(db.select())
    (corr,) = row.data["corrections"]["relax"]
    assert corr["errors"] == [error] and corr["handler"] in ("VaspErrorHandler", "MeshSymmetryErrorHandler")
    assert row.n_corrections == 1


def test_unrecoverable_error_is_reported_and_can_be_rerun(fake_vasp, tmp_path, monkeypatch):
    fake_vasp(expectation(), error="std_err.txt.oom")
    wd = tmp_path / "camp"
    runner.submit_configs([fe2o2()], wd, name="oom", calculation={"calculator": "vasp", "custodian": FAST})
    counts = runner.run(wd, progress=False)
    assert counts.get("FIZZLED") == 1
    st = runner.status(wd)
    (failure,) = st["failures"]
    assert "relax" in failure["name"] and "Unrecoverable error" in failure["message"]
    # the custodian error is named by class, handler and the error found, not as an object repr
    assert "NonRecoverableError (StdErrHandler): out_of_memory" in failure["message"]
    assert "object at 0x" not in failure["message"]
    assert st["n_results"] == 0
    # the node gets more memory (the stand-in stops failing): rerun the failed Firework and finish
    monkeypatch.delenv("FAKE_VASP_ERROR")
    assert runner.rerun_failed(wd) == 1
    assert runner.run(wd, progress=False) == {"COMPLETED": 3}
    assert runner.status(wd)["n_results"] == 1


def test_wrong_inputs_are_caught_by_the_stand_in(fake_vasp, tmp_path):
    expect = expectation()
    expect["relax"]["incar"]["ENCUT"] = 520  # not the preset's value: the stand-in refuses to "run"
    fake_vasp(expect)
    wd = tmp_path / "camp"
    runner.submit_configs([fe2o2()], wd, name="bad", calculation={"calculator": "vasp", "custodian": FAST})
    assert runner.run(wd, progress=False).get("FIZZLED") == 1
    assert "INCAR ENCUT = '450.0', want 520" in _calls(tmp_path)[0]["problems"][0]


def test_parser_reads_e0_and_refuses_truncated_or_foreign_outputs(tmp_path):
    import shutil

    run = tmp_path / "ok"
    shutil.copytree(FIX / "relax-ldau-spin", run)
    res = parse_vasp_dir(run)
    assert res["energy_eV"] == pytest.approx(RECORDED_E0, abs=1e-8)  # not the 0.0 VASP 5.4.4 writes for e_0
    assert res["converged"] and res["n_steps"] == 28 and res["magmom"] == pytest.approx(4.0)
    bad = tmp_path / "trunc"
    shutil.copytree(FIX / "truncated", bad)
    with pytest.raises(RuntimeError, match="incomplete or unreadable vasprun.xml"):
        parse_vasp_dir(bad)
    (run / "POSCAR").write_text((run / "POSCAR").read_text().replace("Fe O\n2 2", "Fe O\n2 1").replace(
        "0.772069 0.544138 0.251452 O\n", ""))
    with pytest.raises(RuntimeError, match="not this calculation's outputs"):
        parse_vasp_dir(run)


def _relax_positions(path: Path):
    from ase.io import read

    return read(path, format="vasp").positions


def test_walltime_stop_continues_from_contcar_in_a_new_launch(fake_vasp, tmp_path, monkeypatch):
    """custodian's WalltimeHandler stops VASP (STOPCAR): the unconverged relaxation is not stored; a new
    Firework continues from its CONTCAR in a new folder, and the result records the restart and the correction."""
    fake_vasp(expectation())
    monkeypatch.setenv("FAKE_VASP_UNCONVERGED_RELAX", "1")
    monkeypatch.setenv("FAKE_VASP_WAIT_STOPCAR", "1")
    cust = dict(FAST, walltime_s=1, max_restarts=2)  # wall time 1 s < custodian's 300 s buffer: stop at once
    wd = tmp_path / "camp"
    runner.submit_configs([fe2o2()], wd, name="wt", calculation={"calculator": "vasp", "custodian": cust})
    counts = runner.run(wd, progress=False)
    st = runner.status(wd)
    assert counts == {"COMPLETED": 4}, st["failures"]  # relax, relax (restart 1), static, store
    relax_calls = [c for c in _calls(tmp_path) if c["step"] == "relax"]
    assert len(relax_calls) == 2 and relax_calls[0]["dir"] != relax_calls[1]["dir"]
    first, second = Path(relax_calls[0]["dir"]), Path(relax_calls[1]["dir"])
    assert (first / "STOPCAR.gz").is_file() or (first / "STOPCAR").is_file()
    # the continuation starts from the stopped run's CONTCAR, not from the original structure
    from ase.io import read

    contcar = read(FIX / "relax-ldau-spin" / "CONTCAR", format="vasp").positions
    assert second.joinpath("POSCAR.gz").is_file()
    assert relax_calls[1]["first_position"] == pytest.approx(contcar[0], abs=1e-5)
    assert relax_calls[0]["first_position"] == pytest.approx(fe2o2().positions[0], abs=1e-5)
    (restart,) = st["restarts"]
    assert restart["restart"] == 1 and "WalltimeHandler" in restart["reason"]
    db = results.connect(st["db"])
    (row,) = list(db.select())
    assert row.converged and row.n_restarts == 1
    launches = row.data["launches"]["relax"]
    assert [la["converged_ionic"] for la in launches] == [False, True]
    assert "Walltime reached" in [e for c in row.data["corrections"]["relax"] for e in c["errors"]]


def test_unconverged_relaxation_fails_with_the_reason_after_max_restarts(fake_vasp, tmp_path, monkeypatch):
    fake_vasp(expectation())
    monkeypatch.setenv("FAKE_VASP_UNCONVERGED_RELAX", "10")
    handlers = [h for h in HANDLERS if h != "UnconvergedErrorHandler"]  # custodian would rerun it itself
    cust = dict(FAST, handlers=handlers, max_restarts=1)
    wd = tmp_path / "camp"
    runner.submit_configs([fe2o2()], wd, name="nc", calculation={"calculator": "vasp", "custodian": cust})
    counts = runner.run(wd, progress=False)
    assert counts.get("FIZZLED") == 1 and counts.get("COMPLETED") == 1 and "static" not in str(counts)
    st = runner.status(wd)
    (failure,) = st["failures"]
    assert "restart 1" in failure["name"]
    assert "not converged after 1 restart(s)" in failure["message"] and "28 ionic step(s)" in failure["message"]
    assert st["n_results"] == 0  # never stored as a finished result
    assert [c["step"] for c in _calls(tmp_path)] == ["relax", "relax"]


def test_killed_relaxation_is_rerun_from_its_contcar(fake_vasp, tmp_path):
    """A relaxation whose job was killed (no STOPCAR, no parse) is rerun in a new folder from the CONTCAR
    its previous launch left, not from the original structure."""
    import shutil

    fake_vasp(expectation())
    wd = tmp_path / "camp"
    runner.submit_configs([fe2o2()], wd, name="kill", calculation={"calculator": "vasp", "custodian": FAST})
    # what a killed launch leaves: its folder with inputs and a CONTCAR written as VASP went
    (row_dir := next((wd / "calcs").glob("*/*")) if (wd / "calcs").exists() else None)
    assert row_dir is None
    killed = wd / "calcs" / "Fe_fixture" / runner.load_state(wd)["variants"][0]["settings_hash"][:8] / "relax"
    killed.mkdir(parents=True)
    shutil.copy(FIX / "relax-ldau-spin" / "CONTCAR", killed / "CONTCAR")
    assert runner.run(wd, progress=False) == {"COMPLETED": 3}
    (call, _) = _calls(tmp_path)
    assert Path(call["dir"]).name == "relax.1"
    contcar = _relax_positions(FIX / "relax-ldau-spin" / "CONTCAR")
    assert call["first_position"] == pytest.approx(contcar[0], abs=1e-5)


def test_offline_mode_end_to_end(fake_vasp, tmp_path):
    """reserve -> offline run on a 'node' (a separate process, no LaunchPad) -> recover_offline -> stored."""
    import subprocess

    fake_vasp(expectation())
    wd = tmp_path / "camp"
    runner.submit_configs([fe2o2()], wd, name="off", calculation={"calculator": "vasp", "custodian": FAST})
    steps = []
    for _ in range(5):
        dirs = runner.reserve_offline(wd)
        if not dirs:
            break
        for d in dirs:
            assert (d / "FW.json").is_file() and (d / "FW_offline.json").is_file()
            steps.append(d.name)
            # what the job script runs on the node (qlaunch -r appends --fw_id); rlaunch singleshot --offline
            # would crash here with FireWorks 2.1.4 and current monty
            res = subprocess.run([sys.executable, "-m", "sacmap.workflows.campaign.offline", "singleshot",
                                  "--offline", "--fw_id", "0"], cwd=d, capture_output=True, text=True, timeout=300)
            assert res.returncode == 0, res.stderr[-2000:]
            assert '"state": "COMPLETED"' in (d / "FW_offline.json").read_text()
        # an embedded `campaign run` meanwhile must not take the reservations for killed runs
        info = runner.recover_offline(wd)
        assert info["recovered"] == len(dirs) and info["pending"] == 0
    assert steps == ["relax", "static", "store"]
    st = runner.status(wd)
    assert st["counts"] == {"COMPLETED": 3} and st["n_results"] == 1
    (row,) = list(results.connect(st["db"]).select())
    assert row.energy_eV == pytest.approx(RECORDED_E0, abs=1e-6)


def test_reserved_offline_runs_survive_a_local_run(fake_vasp, tmp_path):
    fake_vasp(expectation())
    wd = tmp_path / "camp"
    runner.submit_configs([fe2o2()], wd, name="off", calculation={"calculator": "vasp", "custodian": FAST})
    (d,) = runner.reserve_offline(wd, max_fireworks=1)
    assert runner.run(wd, progress=False) == {"RESERVED": 1, "WAITING": 2}  # nothing else READY, nothing reset
    assert runner.recover_offline(wd)["pending"] == 1
    from sacmap.workflows.campaign.offline import run_offline

    assert run_offline(d)
    assert runner.recover_offline(wd)["counts"] == {"COMPLETED": 1, "READY": 1, "WAITING": 1}


def test_qlaunch_reservation_with_the_offline_qadapter_template(fake_vasp, tmp_path, monkeypatch):
    """FireWorks' own queue launcher in reservation mode (qlaunch -r) with inputs/fireworks/my_qadapter_offline.yaml:
    the job script (run here by a stand-in sbatch) runs sacmap's offline launcher; recover_offline stores it."""
    import yaml
    from fireworks.queue.queue_launcher import launch_rocket_to_queue
    from fireworks.user_objects.queue_adapters.common_adapter import CommonAdapter

    from sacmap.core.resources import inputs_dir
    from sacmap.workflows.campaign.launchpad import open_launchpad

    data = yaml.safe_load((inputs_dir() / "fireworks" / "my_qadapter_offline.yaml").read_text())
    assert data["rocket_launch"].startswith("python -m sacmap.workflows.campaign.offline singleshot --offline")
    data.update(pre_rocket=None, logdir=None,  # the template's module/venv lines are for a real cluster
                rocket_launch=data["rocket_launch"].replace("python", sys.executable, 1))
    bindir = tmp_path / "bin"
    bindir.mkdir()
    sbatch = bindir / "sbatch"
    sbatch.write_text('#!/bin/sh\nbash "$1" > job.out 2>&1\necho "Submitted batch job 42"\n')
    sbatch.chmod(0o755)
    monkeypatch.setenv("PATH", f"{bindir}:{__import__('os').environ['PATH']}")
    fake_vasp(expectation())
    wd = tmp_path / "camp"
    runner.submit_configs([fe2o2()], wd, name="q", calculation={"calculator": "vasp", "custodian": FAST})
    launches = tmp_path / "launches"
    launches.mkdir()
    for _ in range(3):  # relax, static, store: one job each
        with open_launchpad(wd) as handle:
            assert launch_rocket_to_queue(handle.lp, runner.load_fworker(), CommonAdapter.from_dict(data),
                                          launcher_dir=str(launches), reserve=True, create_launcher_dir=True)
            handle.flush()
        assert runner.recover_offline(wd)["recovered"] == 1
    job_outs = sorted(launches.glob("launcher_*/job.out"))
    assert len(job_outs) == 3
    st = runner.status(wd)
    assert st["counts"] == {"COMPLETED": 3}, [p.read_text()[-500:] for p in job_outs]
    assert st["n_results"] == 1
