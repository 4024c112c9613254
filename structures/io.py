"""Writing and reading built configurations: one extxyz + one POSCAR per configuration, and ``index.csv``.

File names are the configuration ids made filesystem-safe by :func:`safe_name` (``/`` → ``__``, so
``Ni/4N-4N_d5.36_a`` is written as ``Ni__4N-4N_d5.36_a.extxyz`` and ``Ni__4N-4N_d5.36_a.POSCAR``); ``index.csv`` keeps
the id itself and names the file stem in its ``file`` column. Every file is written atomically (temporary file
in the same folder, then ``os.replace``).
"""

from __future__ import annotations

import csv
import io
import math
import re
from pathlib import Path

from ase import Atoms

from sacmap.core.atomic import atomic_write

from .errors import StructureInputError

INDEX_COLUMNS = (
    "id", "kind", "site_kinds", "separation_A", "shares_NN_bond", "occupants", "n_atoms", "formula",
    "n_C_between", "metals", "pair_id", "spin_polarised", "swap_symmetric", "set", "kpts", "file",
)
_STR_KEYS = ("id", "kind", "site_kinds", "occupants", "metals", "pair_id", "formula", "set", "kpts", "campaign",
             "sites", "orientation", "slab")
_BOOL_KEYS = ("shares_NN_bond", "spin_polarised", "swap_symmetric")
_INT_KEYS = ("n_C_between", "n_atoms", "saturated_H", "vacuum_axis")
_SAFE = re.compile(r"[^A-Za-z0-9._+=-]")


def safe_name(config_id: str) -> str:
    """Filesystem-safe file stem for a configuration id: ``/`` → ``__`` (``Ni/4N-4N_d5.36_a`` →
    ``Ni__4N-4N_d5.36_a``), anything outside ``[A-Za-z0-9._+=-]`` → ``_``. (Not ``@``: ``ase.io.read`` reads
    ``name@3`` as "frame 3 of name".)"""
    return _SAFE.sub("_", str(config_id).replace("/", "__"))


def _to_text(atoms: Atoms, fmt: str) -> str:
    from ase.io import write

    buf = io.StringIO()
    if fmt == "extxyz":
        a = atoms.copy()
        # ASE's extxyz writer cannot round-trip empty strings; they are restored on reading
        a.info = {k: v for k, v in atoms.info.items() if not (isinstance(v, str) and v == "")}
        write(buf, a, format="extxyz")
    else:
        write(buf, atoms, format="vasp", direct=True, sort=False)
    return buf.getvalue()


def _fmt(v) -> str:
    if isinstance(v, bool):
        return "true" if v else "false"
    if isinstance(v, float):
        return "" if math.isnan(v) else f"{v:.4f}"
    return "" if v is None else str(v)


def write_configurations(atoms_list, outdir, poscar: bool = True, progress: bool = False) -> Path:
    """Write ``<safe id>.extxyz`` (and ``<safe id>.POSCAR``) per configuration and ``index.csv`` into ``outdir``.

    Returns the path of ``index.csv``. Ids must be unique (else :class:`StructureInputError`). Existing files of
    other configurations in ``outdir`` are left alone; ``index.csv`` lists exactly ``atoms_list``.
    """
    outdir = Path(outdir)
    outdir.mkdir(parents=True, exist_ok=True)
    seen: dict[str, str] = {}
    rows = []
    it = atoms_list
    if progress:
        from tqdm import tqdm

        it = tqdm(atoms_list, desc="writing", unit="cfg")
    for atoms in it:
        cid = atoms.info.get("id")
        if not cid:
            raise StructureInputError("write_configurations: a configuration has no info['id']")
        stem = safe_name(cid)
        if stem in seen:
            raise StructureInputError(f"write_configurations: duplicate id {cid!r} (file {stem})")
        seen[stem] = cid
        atomic_write(outdir / f"{stem}.extxyz", _to_text(atoms, "extxyz"))
        if poscar:
            atomic_write(outdir / f"{stem}.POSCAR", _to_text(atoms, "vasp"))
        row = {c: _fmt(atoms.info.get(c)) for c in INDEX_COLUMNS}
        row["n_atoms"] = str(len(atoms))
        row["formula"] = atoms.get_chemical_formula(mode="hill")
        row["file"] = stem
        rows.append(row)
    buf = io.StringIO()
    w = csv.DictWriter(buf, fieldnames=list(INDEX_COLUMNS), lineterminator="\n")
    w.writeheader()
    w.writerows(rows)
    index = outdir / "index.csv"
    atomic_write(index, buf.getvalue())
    return index


def read_index(outdir):
    """``index.csv`` of a build folder as a ``pandas.DataFrame`` (``separation_A`` float with NaN, booleans as
    bool, counts as int, empty strings for empty text)."""
    import pandas as pd

    path = Path(outdir)
    if path.is_dir():
        path = path / "index.csv"
    if not path.exists():
        raise FileNotFoundError(f"{path}: no index.csv (run `sacmap structures build` first)")
    df = pd.read_csv(path, dtype=str, keep_default_na=False)
    missing = [c for c in ("id", "kind", "site_kinds", "separation_A", "n_atoms") if c not in df.columns]
    if missing:
        raise StructureInputError(f"{path}: missing column {missing[0]!r}")
    df["separation_A"] = pd.to_numeric(df["separation_A"].replace("", "nan"), errors="coerce")
    for c in _BOOL_KEYS:
        if c in df.columns:
            df[c] = df[c].str.lower().isin(("true", "1", "t", "yes"))
    for c in ("n_C_between", "n_atoms"):
        if c in df.columns:
            df[c] = pd.to_numeric(df[c].replace("", "-1")).astype(int)
    return df


def read_configuration(outdir, config_id: str) -> Atoms:
    """Read one configuration (by id or by file stem) from a build folder, with its metadata restored (empty
    strings, typed values)."""
    from ase.io import read

    outdir = Path(outdir)
    path = outdir / f"{safe_name(config_id)}.extxyz"
    if not path.exists():
        raise StructureInputError(f"{outdir}: no configuration with id {config_id!r} (looked for {path.name})")
    with open(path, encoding="utf-8") as fh:
        atoms = read(fh, format="extxyz")
    return restore_info(atoms)


def restore_info(atoms: Atoms) -> Atoms:
    """Put back the metadata keys the extxyz round trip drops or retypes (in place; returns ``atoms``)."""
    info = atoms.info
    for k in ("site_kinds", "occupants", "metals", "pair_id", "set", "campaign"):
        info.setdefault(k, "")
    info.setdefault("separation_A", float("nan"))
    info.setdefault("shares_NN_bond", False)
    info.setdefault("n_C_between", -1)
    for k in _STR_KEYS:
        if k in info and not isinstance(info[k], str):
            info[k] = str(info[k])
    for k in _BOOL_KEYS:
        if k in info:
            info[k] = bool(info[k])
    for k in _INT_KEYS:
        if k in info:
            info[k] = int(info[k])
    if "separation_A" in info:
        info["separation_A"] = float(info["separation_A"])
    return atoms
