"""Shared pytest fixtures."""

from __future__ import annotations

import os
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parent.parent


def _shared() -> Path:
    env = os.environ.get("SACMAP_SHARED")
    return Path(env) if env else REPO.parent / "shared"


@pytest.fixture(scope="session")
def repo_dir() -> Path:
    return REPO


@pytest.fixture(scope="session")
def shared_dir() -> Path:
    """The read-only ``shared/`` folder beside the checkout (paper, STEM data, VASP fixtures)."""
    path = _shared()
    if not path.is_dir():
        pytest.skip(f"shared data folder not found at {path}")
    return path


def _load_benchmark(name: str):
    import importlib.util

    spec = importlib.util.spec_from_file_location(f"bench_{name}", REPO / "benchmarks" / f"{name}.py")
    mod = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(mod)
    return mod


@pytest.fixture(scope="session")
def load_benchmark():
    """``load_benchmark(name)`` → the module ``benchmarks/<name>.py`` (the benchmarks are scripts, not an installed
    package; tests score their metrics and renderers)."""
    return _load_benchmark
