"""The shipped FireWorks templates (inputs/fireworks) are valid for FireWorks and for sacmap."""

from __future__ import annotations

import yaml
from fireworks import FWorker
from fireworks.user_objects.queue_adapters.common_adapter import CommonAdapter

from sacmap.core.resources import inputs_dir
from sacmap.workflows.campaign.launchpad import LAUNCHPAD_KEYS, MongoLaunchPad
from sacmap.workflows.campaign.vasp_run import vasp_command

FW = inputs_dir() / "fireworks"


def test_launchpad_template_has_auth_and_tls():
    data = yaml.safe_load((FW / "my_launchpad.yaml").read_text())
    assert set(data) <= LAUNCHPAD_KEYS
    assert data["username"] and data["password"] and data["authsource"]
    assert data["mongoclient_kwargs"]["tls"] is True and "tlsCAFile" in data["mongoclient_kwargs"]


def test_fworker_template_gives_the_vasp_command():
    worker = FWorker.from_file(str(FW / "my_fworker.yaml"))
    assert vasp_command(worker.env) == ["srun", "--mpi=pmix", "vasp_std"]
    assert worker.env["scratch_dir"]


def test_qadapter_template_renders_a_slurm_script(tmp_path):
    data = yaml.safe_load((FW / "my_qadapter.yaml").read_text())
    assert data["_fw_q_type"] == "SLURM"
    qa = CommonAdapter.from_dict(data)
    script = qa.get_script_str(str(tmp_path))
    assert "#SBATCH --nodes=1" in script and "#SBATCH --time=48:00:00" in script
    assert "rlaunch -c /path/to/fw_config rapidfire" in script and "module load vasp" in script


def test_bad_launchpad_file_names_the_field(tmp_path):
    import pytest

    from sacmap.workflows.errors import WorkflowInputError

    bad = tmp_path / "lp.yaml"
    bad.write_text("host: x\nport: 27017\npasword: oops\n")
    with pytest.raises(WorkflowInputError, match=r"lp.yaml: unknown launchpad field\(s\) \['pasword'\]"):
        MongoLaunchPad(bad)
    bad.write_text("- just a list\n")
    with pytest.raises(WorkflowInputError, match="must be a mapping"):
        MongoLaunchPad(bad)
    bad.write_text("port: 27017\n")
    with pytest.raises(WorkflowInputError, match=r"lp.yaml: host: required key missing"):
        MongoLaunchPad(bad)
    bad.write_text("host: x\nport: 99999\n")
    with pytest.raises(WorkflowInputError, match=r"lp.yaml: port: 99999 is above the maximum 65535"):
        MongoLaunchPad(bad)


def test_launchpad_template_parses_into_the_schema():
    from sacmap.core.validation import parse
    from sacmap.workflows.campaign.launchpad import LaunchpadFile

    data = yaml.safe_load((FW / "my_launchpad.yaml").read_text())
    lp = parse(LaunchpadFile, data, source="my_launchpad.yaml")
    assert lp.host == "mongodb.example.org" and lp.port == 27017 and lp.mongoclient_kwargs["tls"] is True
