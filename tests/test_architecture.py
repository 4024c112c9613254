"""The layout rules of docs/architecture.md, checked on the source tree: one ``sacmap`` namespace, imports that
point one way, no import circles, every package folder installed."""

from __future__ import annotations

import ast
import sys
from pathlib import Path

import pytest

if sys.version_info >= (3, 11):
    import tomllib
else:  # pragma: no cover
    tomllib = pytest.importorskip("tomli")

ROOT = Path(__file__).resolve().parents[1]
PYPROJECT = tomllib.loads((ROOT / "pyproject.toml").read_text())
# installed name -> folder in the repository (pyproject's package-dir; ``sacmap`` itself is the folder sacmap/)
FOLDERS = {"sacmap": "sacmap", **PYPROJECT["tool"]["setuptools"]["package-dir"]}
# package -> the sacmap packages it may import (besides itself)
ALLOWED = {
    "core": {"core"},
    "structures": {"core"},
    "detection": {"core"},
    "analysis": {"core", "structures"},
    "workflows": {"core", "structures", "detection", "analysis"},
}
LEGACY = {"structures", "analysis", "detection", "workflows"}


def _modules():
    """(installed module name, path) of every module of ours."""
    for pkg, folder in FOLDERS.items():
        base = ROOT / folder
        for path in sorted(base.rglob("*.py")):
            rel = path.relative_to(base).with_suffix("")
            parts = [p for p in rel.parts if p != "__init__"]
            if pkg == "sacmap" and parts and parts[0] != "core":
                continue
            yield ".".join([pkg, *parts]), path


def _imports(path: Path, modname: str) -> list[tuple[int, str]]:
    tree = ast.parse(path.read_text(), filename=str(path))
    is_pkg = path.name == "__init__.py"
    out = []
    for node in ast.walk(tree):
        if isinstance(node, ast.Import):
            out += [(node.lineno, a.name) for a in node.names]
        elif isinstance(node, ast.ImportFrom):
            if node.level:
                base = modname.split(".")
                base = base if is_pkg else base[:-1]
                base = base[: len(base) - (node.level - 1)]
                mod = ".".join(base + ([node.module] if node.module else []))
            else:
                mod = node.module or ""
            out += [(node.lineno, f"{mod}.{a.name}" if mod == "sacmap" else mod) for a in node.names]
    return out


def _group(name: str) -> str | None:
    parts = name.split(".")
    if parts[0] != "sacmap" or len(parts) < 2:
        return None
    return parts[1]


def test_every_package_folder_is_installed():
    listed = set(PYPROJECT["tool"]["setuptools"]["packages"])
    found = set()
    for modname, path in _modules():
        if path.name == "__init__.py":
            found.add(modname)
    assert found == listed, f"not listed in pyproject: {sorted(found - listed)}; listed, no folder: {sorted(listed - found)}"


def test_no_legacy_top_level_imports():
    bad = []
    for tree_dir in (*FOLDERS.values(), "tests", "benchmarks"):
        for path in (ROOT / tree_dir).rglob("*.py"):
            for lineno, name in _imports(path, "x"):
                if name.split(".")[0] in LEGACY:
                    bad.append(f"{path.relative_to(ROOT)}:{lineno} imports {name}")
    assert not bad, "\n".join(bad)


def test_imports_point_one_way():
    bad = []
    for modname, path in _modules():
        me = _group(modname)
        if me not in ALLOWED:
            continue
        for lineno, name in _imports(path, modname):
            other = _group(name)
            if other is not None and other != "inputs" and other not in ALLOWED[me] | {me}:
                bad.append(f"{path.relative_to(ROOT)}:{lineno}: {me} imports {name}")
    assert not bad, "\n".join(bad)


def test_no_import_circles_between_modules():
    """No two modules import each other, even lazily inside functions (a circle hidden by a late import)."""
    graph: dict[str, set[str]] = {}
    names = {m for m, _ in _modules()}
    for modname, path in _modules():
        deps = set()
        for _, name in _imports(path, modname):
            while name and name not in names:
                name = name.rpartition(".")[0]
            if name and name != modname:
                deps.add(name)
        graph[modname] = deps
    circles = sorted({tuple(sorted((a, b))) for a, ds in graph.items() for b in ds
                      if a in graph.get(b, ()) and not (a.startswith(b + ".") or b.startswith(a + "."))})
    assert not circles, circles
