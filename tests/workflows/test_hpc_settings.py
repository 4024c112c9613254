"""Issue 17 items 3, 4 and 16.7: Gamma-only gas references, per-worker settings outside the settings hash,
FireWorks categories, launchpad files as FireWorks accepts them, spec-relative paths, secrets redacted."""

from __future__ import annotations

import warnings
from pathlib import Path

import pytest
import yaml
from ase import Atoms
from pymatgen.io.vasp import Incar, Kpoints

from sacmap.core.redact import redact_text, redact_url
from sacmap.workflows.campaign import runner
from sacmap.workflows.campaign.builders import build_workflow
from sacmap.workflows.campaign.configs import config_meta, config_to_doc
from sacmap.workflows.campaign.launchpad import LaunchpadFile, fireworks_launchpad_dict
from sacmap.workflows.campaign.settings import calculation_variants
from sacmap.workflows.campaign.vasp_inputs import write_inputs
from sacmap.workflows.campaign.vasp_run import gamma_vasp_command, worker_incar
from sacmap.workflows.errors import WorkflowInputError


@pytest.fixture(autouse=True)
def _no_potcars(monkeypatch):
    monkeypatch.delenv("PMG_VASP_PSP_DIR", raising=False)
    monkeypatch.setattr("sacmap.workflows.campaign.vasp_inputs.potcar_library_available", lambda: False)
    warnings.filterwarnings("ignore", category=UserWarning)


def _gas_atom():
    at = Atoms("Pd", positions=[[7.5, 7.75, 8.0]], cell=[15.0, 15.5, 16.0], pbc=True)
    at.info.update(id="gas_Pd", kind="gas_atom", occupants="Pd", metals="Pd", spin_polarised=True)
    return at


def test_gas_reference_gets_the_gamma_point_only(make_config, tmp_path):
    (variant,) = calculation_variants({"calculator": "vasp"})
    info = write_inputs(_gas_atom(), config_meta(_gas_atom()), variant["settings"], tmp_path)
    assert info["kpoints"] == (1, 1, 1)
    assert list(Kpoints.from_file(tmp_path / "KPOINTS").kpts[0]) == [1, 1, 1]
    sheet = make_config("Ni", "Ni/4N_x")  # the slab keeps its 2 x 2 x 1 grid
    info = write_inputs(sheet, config_meta(sheet), variant["settings"], tmp_path / "s")
    assert info["kpoints"] == (2, 2, 1)


def test_worker_parallelisation_tags_reach_the_incar_but_not_the_hash(make_config, tmp_path):
    (variant,) = calculation_variants({"calculator": "vasp"})
    env = {"incar": {"NCORE": 8}, "KPAR": 2, "vasp_cmd": "srun vasp_std", "gamma_vasp_cmd": "srun vasp_gam"}
    tags = worker_incar(env)
    assert tags == {"NCORE": 8, "KPAR": 2} and gamma_vasp_command(env) == ["srun", "vasp_gam"]
    atoms = make_config("Ni", "Ni/4N_x")
    write_inputs(atoms, config_meta(atoms), variant["settings"], tmp_path, worker_incar=tags)
    incar = Incar.from_file(tmp_path / "INCAR")
    assert incar["NCORE"] == 8 and incar["KPAR"] == 2 and incar["ENCUT"] == 450
    # the same calculation on another cluster (other tags) has the same settings hash
    assert calculation_variants({"calculator": "vasp"})[0]["settings_hash"] == variant["settings_hash"]
    with pytest.raises(WorkflowInputError, match=r"\['ENCUT'\] are not parallelisation tags"):
        worker_incar({"incar": {"ENCUT": 520}})
    with pytest.raises(WorkflowInputError, match="env.NCORE: 0 must be at least 1"):
        worker_incar({"NCORE": 0})


def test_fworker_file_is_used_by_campaign_run(tmp_path):
    fw = tmp_path / "my_fworker.yaml"
    fw.write_text(yaml.safe_dump({"name": "c1", "category": "sacmap-light",
                                  "env": {"vasp_cmd": "mpirun vasp_std", "scratch_dir": "/tmp/x"}}))
    worker = runner.load_fworker(fw)
    assert worker.name == "c1" and worker.env["vasp_cmd"] == "mpirun vasp_std"
    assert worker.query["spec._category"] == "sacmap-light"
    with pytest.raises(WorkflowInputError, match="not found"):
        runner.load_fworker(tmp_path / "nope.yaml")


def test_store_fireworks_are_routed_to_a_light_worker(tmp_path, make_config):
    """With a light worker (category sacmap-light) only the store steps run; a compute worker leaves them."""
    at = make_config(None, "4N_x")
    (variant,) = calculation_variants({"calculator": "vasp"})
    wf = build_workflow(config_to_doc(at), variant, db="x.db", campaign="c")
    cats = {fw.name.rsplit(" ", 1)[-1]: fw.spec.get("_category") for fw in wf.fws}
    assert cats == {"relax": "sacmap-compute", "static": "sacmap-compute", "store": "sacmap-light"}
    wf = build_workflow(config_to_doc(at), variant, db="x.db", campaign="c", categories={"light": None})
    assert "_category" not in next(fw for fw in wf.fws if fw.name.endswith("store")).spec
    # embedded: a light worker finds nothing to run before the relaxation is done
    light = tmp_path / "light.yaml"
    light.write_text(yaml.safe_dump({"name": "light", "category": "sacmap-light"}))
    wd = tmp_path / "camp"
    runner.submit_configs([at], wd, name="c", calculation={"calculator": "emt"})
    assert runner.run(wd, progress=False, fworker=light) == {"READY": 1, "WAITING": 1}
    compute = tmp_path / "compute.yaml"
    compute.write_text(yaml.safe_dump({"name": "compute", "category": "sacmap-compute"}))
    assert runner.run(wd, progress=False, fworker=compute) == {"COMPLETED": 1, "READY": 1}
    assert runner.run(wd, progress=False, fworker=light) == {"COMPLETED": 2}


def test_launchpad_files_as_fireworks_accepts_them(tmp_path):
    lp = tmp_path / "lp" / "my_launchpad.yaml"
    lp.parent.mkdir()
    old = {"host": "db.example.org", "port": 27017, "name": "fw", "username": "u", "password": "p",
           "ssl": False, "ssl_ca_certs": "ca.pem", "ssl_certfile": None, "ssl_keyfile": None,
           "ssl_pem_passphrase": None, "authsource": "admin", "uri_mode": False, "mongoclient_kwargs": {},
           "logdir": None, "strm_lvl": "INFO", "user_indices": [], "wf_user_indices": []}
    from sacmap.core.validation import parse

    parse(LaunchpadFile, old, source=lp)  # the keys of a FireWorks 1.x `lpad init` file are accepted
    data = fireworks_launchpad_dict(old, lp)
    assert data["mongoclient_kwargs"] == {"tls": False} and "ssl" not in data and "ssl_ca_certs" not in data
    data = fireworks_launchpad_dict({**old, "ssl": True, "ssl_certfile": "client.pem"}, lp)
    kw = data["mongoclient_kwargs"]
    assert kw["tls"] is True and kw["tlsCAFile"] == str(lp.parent / "ca.pem")  # relative to the launchpad file
    assert kw["tlsCertificateKeyFile"] == str(lp.parent / "client.pem")
    data = fireworks_launchpad_dict({"host": "h", "ssl_ca_file": "/etc/ca.pem"}, lp)  # FireWorks 2 lpad init
    assert data["mongoclient_kwargs"] == {"tls": True, "tlsCAFile": "/etc/ca.pem"}


def test_paths_in_a_spec_are_relative_to_the_spec_file(tmp_path, monkeypatch, make_config):
    spec_dir = tmp_path / "specs"
    spec_dir.mkdir()
    (spec_dir / "db").mkdir()
    elsewhere = tmp_path / "elsewhere"
    elsewhere.mkdir()
    monkeypatch.chdir(elsewhere)
    block = {"calculator": "emt", "database": "db/results.db"}
    info = runner.submit_configs([make_config(None, "4N_x")], tmp_path / "w", name="c", calculation=block,
                                 spec_dir=spec_dir)
    assert info["db"] == str(spec_dir / "db" / "results.db")
    with pytest.raises(FileNotFoundError, match=str(spec_dir / "lp.yaml")):
        runner.submit_configs([make_config(None, "4N_x")], tmp_path / "w2", name="c",
                              calculation={"calculator": "emt", "launchpad": "lp.yaml"}, spec_dir=spec_dir)


def test_paper_spec_launchpad_and_walltime():
    from sacmap.core.resources import resolve_spec
    from sacmap.structures import load_spec

    spec = load_spec("paper")
    calc = spec["calculation"]
    assert calc["custodian"]["walltime_s"] == 172800 and calc["custodian"]["max_restarts"] >= 1
    lp = (Path(str(resolve_spec("paper"))).parent / calc["launchpad"]).resolve()
    assert lp.is_file() and lp.name == "my_launchpad.yaml"


def test_secrets_are_redacted():
    url = "postgresql://sacmap:s3cr3t@db.example.org/campaign"
    assert redact_url(url) == "postgresql://sacmap:***@db.example.org/campaign"
    msg = (f'connection to {url} failed: FATAL password authentication failed; password=s3cr3t '
           '{"password": "s3cr3t"} password: "s 3"')
    out = redact_text(msg)
    assert "s3cr3t" not in out and '"s 3"' not in out and "password authentication failed" in out


def test_a_copied_work_folder_uses_its_own_database(tmp_path, make_config):
    """Issue 16 item 5: campaign.json keeps a database inside the work folder relative to it, and the embedded
    runner hands the tasks that database, so a copy resumes against (and writes into) its own results.db."""
    import json
    import shutil

    from sacmap.workflows.campaign import results

    a, b = make_config(None, "4N_x"), make_config("Pd", "Pd/4N_x")
    wd = tmp_path / "A"
    runner.submit_configs([a], wd, name="c", calculation={"calculator": "emt"})
    assert json.loads((wd / "campaign.json").read_text())["db"] == "results.db"
    assert runner.run(wd, progress=False) == {"COMPLETED": 2}
    copy = tmp_path / "B"
    shutil.copytree(wd, copy)
    assert runner.load_state(copy)["db"] == str(copy / "results.db")
    info = runner.submit_configs([a, b], copy, name="c", calculation={"calculator": "emt"})  # not refused
    assert info["added"] == 1 and info["skipped"] == 1
    assert runner.run(copy, progress=False) == {"COMPLETED": 4}
    assert results.connect(str(copy / "results.db")).count() == 2
    assert results.connect(str(wd / "results.db")).count() == 1  # the original is left alone


def test_unconverged_embedded_relaxation_continues_then_fails_with_the_reason(tmp_path, make_config):
    """An embedded relaxation that runs out of optimizer steps is never stored: it continues from its last
    structure in a new Firework (up to max_restarts), then fails naming the largest force."""
    at = make_config("Pd", "Pd/4N_x", rattle=0.1)
    wd = tmp_path / "camp"
    block = {"calculator": "emt", "max_steps": 1, "fmax": 1e-4, "max_restarts": 2}
    runner.submit_configs([at], wd, name="c", calculation=block)
    counts = runner.run(wd, progress=False)
    st = runner.status(wd)
    assert counts == {"COMPLETED": 2, "FIZZLED": 1, "WAITING": 1} and st["n_results"] == 0
    assert [r["restart"] for r in st["restarts"]] == [1, 2]
    (failure,) = st["failures"]
    assert "not converged after 1 optimizer step(s)" in failure["message"] and "after 2 restart(s)" in failure["message"]
    # a Pd2 dimer stretched to 3.0 Å: 2 steps per launch are too few, the continuations finish it
    dimer = Atoms("Pd2", positions=[[7.0, 7.0, 7.0], [10.0, 7.0, 7.0]], cell=[15.0, 15.5, 16.0], pbc=True)
    dimer.info.update(id="gas_Pd2", kind="gas_dimer", occupants="Pd2", metals="Pd,Pd")
    wd2 = tmp_path / "camp2"
    runner.submit_configs([dimer], wd2, name="c", calculation={"calculator": "emt", "max_steps": 2,
                                                               "max_restarts": 10})
    runner.run(wd2, progress=False)
    st = runner.status(wd2)
    assert st["n_results"] == 1 and not st["failures"]
    from sacmap.workflows.campaign import results

    (row,) = list(results.connect(st["db"]).select())
    assert row.converged and row.n_restarts == len(st["restarts"]) >= 1 and row.fmax_eV_A <= 0.05


def test_an_unreachable_postgresql_database_never_shows_its_password(tmp_path, make_config):
    """Issue 16 item 7: submit, run and status with a PostgreSQL URL whose server is down: no traceback from
    status, and the password appears in no message (status, failures, energies)."""
    pytest.importorskip("psycopg2")
    from sacmap.analysis.energetics.equations import energetics_from_sources
    from sacmap.analysis.errors import AnalysisInputError

    url = "postgresql://bob:s3cr3tpw@127.0.0.1:1/db"  # port 1: connection refused at once
    wd = tmp_path / "camp"
    info = runner.submit_configs([make_config(None, "4N_x")], wd, name="c", calculation={"calculator": "emt"}, db=url)
    assert info["db"] == url
    assert runner.run(wd, progress=False, max_fireworks=1).get("FIZZLED") == 1
    st = runner.status(wd)
    assert st["n_results"] is None and "refused" in st["db_error"]
    text = repr(st).replace(url, "")  # the state itself keeps the URL; every message must not
    assert "s3cr3tpw" not in st["db_error"] and "s3cr3tpw" not in st["failures"][0]["message"]
    assert "s3cr3tpw" not in text
    with pytest.raises(AnalysisInputError) as exc:
        energetics_from_sources([url])
    assert "s3cr3tpw" not in str(exc.value) and "bob:***@127.0.0.1" in str(exc.value)


def test_walltime_handler_gets_the_spec_buffer():
    from sacmap.workflows.campaign.vasp_run import default_handlers

    (wt,) = [h for h in default_handlers(walltime_s=172800, walltime_buffer_s=1800)
             if type(h).__name__ == "WalltimeHandler"]
    assert wt.wall_time == 172800 and wt.buffer_time == 1800
    assert not [h for h in default_handlers() if type(h).__name__ == "WalltimeHandler"]
