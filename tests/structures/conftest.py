"""Fixtures shared by the structures tests: the paper campaign built once per session."""

from __future__ import annotations

import pytest

from sacmap.structures import expand, load_spec


@pytest.fixture(scope="session")
def paper_spec(repo_dir):
    return load_spec(repo_dir / "inputs" / "campaigns" / "paper.yaml")


@pytest.fixture(scope="session")
def paper_configs(paper_spec):
    """Every configuration of inputs/campaigns/paper.yaml (built once; ~10-20 s)."""
    return expand(paper_spec)


@pytest.fixture(scope="session")
def geo():
    """The independent geometry helpers of tests/structures/helpers.py (loaded by path: no package here)."""
    import importlib.util
    from pathlib import Path

    spec = importlib.util.spec_from_file_location("sacmap_structures_test_helpers", Path(__file__).with_name("helpers.py"))
    mod = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(mod)
    return mod
