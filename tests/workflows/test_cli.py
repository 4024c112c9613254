"""The CLI skeleton: help, version, error handling."""

import subprocess
import sys

from sacmap.workflows import cli


def test_help_lists_groups(capsys):
    assert cli.main([]) == 2
    out = capsys.readouterr().out
    assert "sacmap" in out


def test_version():
    proc = subprocess.run([sys.executable, "-m", "sacmap.workflows.cli", "--version"], capture_output=True, text=True)
    assert proc.returncode == 0
    assert proc.stdout.startswith("sacmap ")


def test_unknown_command_fails():
    proc = subprocess.run([sys.executable, "-m", "sacmap.workflows.cli", "no-such-command"], capture_output=True, text=True)
    assert proc.returncode != 0
