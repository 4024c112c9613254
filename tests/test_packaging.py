"""A wheel that works: build it from the repository, check what it holds, install it (not editable) into a fresh
venv and run the installed ``sacmap`` from a folder outside the repository — the bundled paper campaign is
listed, and a VASP submission of it writes INCAR and KPOINTS from the bundled preset (no VASP, no POTCARs).

The fresh venv borrows the dependencies of the test interpreter's environment through a ``.pth`` line holding
that environment's site-packages: a path in a ``.pth`` file is added to ``sys.path`` without running the
``.pth`` files found there, so the editable finder of a development install stays inactive and ``sacmap`` can
only come from the wheel. About 10-15 s (building the wheel, submitting the 419 configurations).
"""

from __future__ import annotations

import os
import re
import shutil
import subprocess
import sys
import sysconfig
import zipfile
from pathlib import Path

import pytest

if sys.version_info >= (3, 11):
    import tomllib
else:  # pragma: no cover
    tomllib = pytest.importorskip("tomli")

REPO = Path(__file__).resolve().parent.parent
#: top-level folders of the repository and the path each one is installed at (pyproject's package-dir)
PACKAGE_DIRS = {folder: pkg.replace(".", "/") for pkg, folder in {
    "sacmap": "sacmap", **tomllib.loads((REPO / "pyproject.toml").read_text())["tool"]["setuptools"]["package-dir"],
}.items()}
_NOT_COPIED = shutil.ignore_patterns(".git", ".venv", "build", "dist", "*.egg-info", "__pycache__", ".pytest_cache",
                                     ".ruff_cache", "demo-out", "out", ".gl", ".whl", "*.pyc")


def _run(cmd: list[str], cwd: Path, env: dict, timeout: float = 600) -> subprocess.CompletedProcess:
    return subprocess.run(cmd, cwd=cwd, env=env, capture_output=True, text=True, timeout=timeout)


@pytest.fixture(scope="module")
def wheel(tmp_path_factory) -> Path:
    """The wheel built from a copy of the working tree (an in-tree build would write build/ into the repo)."""
    pytest.importorskip("setuptools", minversion="77")
    pytest.importorskip("wheel")
    root = tmp_path_factory.mktemp("wheel")
    src = root / "src"
    shutil.copytree(REPO, src, ignore=_NOT_COPIED)
    res = _run([sys.executable, "-m", "pip", "wheel", "--no-deps", "--no-build-isolation", "-q", "-w",
                str(root / "dist"), str(src)], cwd=root, env=dict(os.environ))
    assert res.returncode == 0, res.stdout + res.stderr
    (whl,) = (root / "dist").glob("sacmap-*.whl")
    return whl


@pytest.fixture(scope="module")
def venv(wheel, tmp_path_factory) -> Path:
    """A fresh venv (from the base interpreter) with the wheel installed, non-editable; dependencies seen
    through a ``.pth`` line pointing at this environment's site-packages."""
    root = tmp_path_factory.mktemp("venv")
    env_dir = root / "venv"
    base = getattr(sys, "_base_executable", None) or sys.executable
    res = _run([base, "-m", "venv", "--without-pip", str(env_dir)], cwd=root, env=dict(os.environ))
    assert res.returncode == 0, res.stderr
    py = env_dir / "bin" / "python"
    purelib = Path(_run([str(py), "-c", "import sysconfig; print(sysconfig.get_paths()['purelib'])"], cwd=root,
                        env=_clean_env()).stdout.strip())
    ours = {sysconfig.get_paths()["purelib"], sysconfig.get_paths()["platlib"]}
    (purelib / "zz_borrowed_dependencies.pth").write_text("\n".join(sorted(ours)) + "\n")
    res = _run([sys.executable, "-m", "pip", "--python", str(py), "install", "--no-deps", "--no-index", "-q",
                str(wheel)], cwd=root, env=_clean_env())
    assert res.returncode == 0, res.stdout + res.stderr
    return env_dir


def _clean_env() -> dict:
    env = {k: v for k, v in os.environ.items() if k not in ("PYTHONPATH", "PYTHONHOME", "SACMAP_INPUTS",
                                                             "VIRTUAL_ENV", "PMG_VASP_PSP_DIR", "SACMAP_VASP_CMD",
                                                             "SACMAP_ALLOW_POTCAR_SPEC")}
    env["MPLBACKEND"] = "Agg"
    return env


def test_wheel_holds_one_namespace_and_the_package_data(wheel):
    names = zipfile.ZipFile(wheel).namelist()
    top = {n.split("/", 1)[0] for n in names}
    assert top == {"sacmap", f"{wheel.name.split('-')[0]}-{wheel.name.split('-')[1]}.dist-info"}, sorted(top)
    # every package folder of the repository (a folder with __init__.py) and every module in it is installed
    for folder, pkg in PACKAGE_DIRS.items():
        for init in (REPO / folder).rglob("*.py"):
            rel = init.relative_to(REPO / folder)
            if "__pycache__" in rel.parts or not (init.parent / "__init__.py").is_file():
                continue
            assert f"{pkg}/{rel.as_posix()}" in names, f"{folder}/{rel} is not in the wheel (pyproject packages?)"
    presets = {n for n in names if re.fullmatch(r"sacmap/inputs/vasp/[^/]+\.yaml", n)}
    assert {"sacmap/inputs/vasp/pbe-d3.yaml", "sacmap/inputs/vasp/pbe-d3-u.yaml"} <= presets
    specs = {n for n in names if re.fullmatch(r"sacmap/inputs/campaigns/[^/]+\.yaml", n)}
    assert {"sacmap/inputs/campaigns/paper.yaml", "sacmap/inputs/campaigns/demo.yaml"} <= specs
    assert any(re.fullmatch(r"sacmap/detection/data/[^/]+\.pt", n) for n in names), "detector weights missing"
    assert {"sacmap/inputs/stem/053_HAADF_15nm_Sample_PtNC_21Oct20.tif",
            "sacmap/inputs/fireworks/my_launchpad.yaml"} <= set(names)
    assert any(n.startswith("sacmap/workflows/app/static/") for n in names)


def test_installed_sacmap_comes_from_the_wheel(venv, tmp_path):
    py = venv / "bin" / "python"
    code = ("import sacmap, sacmap.structures, sacmap.workflows.cli; from sacmap.core.resources import "
            "inputs_dir, bundled_specs; print(sacmap.__file__); print(sacmap.structures.__file__); "
            "print(inputs_dir()); print(sorted(bundled_specs())); print(sacmap.__version__); "
            "from pathlib import Path; from sacmap.structures import load_spec; "
            "from sacmap.workflows.job.spec import job_settings; s = load_spec('demo'); "
            "print(*job_settings(s, Path(s['_source']))['images'], sep=chr(10))")
    res = _run([str(py), "-c", code], cwd=tmp_path, env=_clean_env())
    assert res.returncode == 0, res.stderr
    lines = res.stdout.splitlines()
    for line in lines[:3]:
        assert Path(line).resolve().is_relative_to(venv.resolve()), lines
    assert lines[3] == "['demo', 'paper']"
    assert lines[4] == "0.1.0"
    # `sacmap run demo` finds the bundled images: `images: [../stem]` resolves against the installed spec
    images = [Path(p) for p in lines[5:]]
    assert [p.suffix for p in images] == [".tif", ".tif"] and all(p.is_file() for p in images)
    assert all(p.is_relative_to(venv.resolve()) for p in images), images


def test_installed_cli_lists_and_submits_the_paper_campaign(venv, tmp_path):
    sacmap = str(venv / "bin" / "sacmap")
    env = _clean_env()
    res = _run([sacmap, "structures", "list", "paper"], cwd=tmp_path, env=env)
    assert res.returncode == 0, res.stderr
    assert res.stdout.strip().splitlines()[-1].split() == ["total", "419"]

    res = _run([sacmap, "campaign", "submit", "paper", "--calculator", "vasp", "--launchpad", "embedded",
                "-w", "camp"], cwd=tmp_path, env=env)
    assert res.returncode == 0, res.stderr
    assert "submitted 419 workflow(s)" in res.stdout, res.stdout
    assert (tmp_path / "camp" / "launchpad.json").is_file()
    # run one Firework: the inputs are written from the bundled preset, then VASP refuses to start (no POTCAR)
    res = _run([sacmap, "campaign", "run", "-w", "camp", "--max", "1", "--no-progress"], cwd=tmp_path, env=env)
    assert res.returncode == 1 and "1 failed" in res.stdout, res.stdout + res.stderr
    (calc,) = [p.parent for p in (tmp_path / "camp" / "calcs").rglob("INCAR")]
    incar = (calc / "INCAR").read_text()
    assert re.search(r"^ENCUT\s*=\s*450", incar, re.M) and re.search(r"^IVDW\s*=\s*11", incar, re.M), incar
    assert (calc / "KPOINTS").read_text().splitlines()[3].split() == ["2", "2", "1"]
    assert (calc / "POSCAR").is_file() and (calc / "POTCAR.spec").is_file()
    status = _run([sacmap, "campaign", "status", "-w", "camp"], cwd=tmp_path, env=env)
    assert "no POTCAR" in status.stdout, status.stdout
