"""Bader charges of a VASP static run (CHGCAR, AECCAR0 + AECCAR2 as reference, POTCAR for ZVAL).

Preferred: pymatgen's ``bader_analysis_from_path`` with Henkelman's ``bader`` executable on PATH (HPC).
Fallback: the pure-Python ``pybader`` API (extra ``bader``; its console script named ``bader`` is never called).
Charges are net atomic charges in e, ``ZVAL - N_Bader`` (positive = electrons lost); without a POTCAR (no ZVAL)
only the Bader electron counts are returned. Nothing is invented: without a Bader program the result is ``None``.
"""

from __future__ import annotations

import logging
import shutil
import warnings
from pathlib import Path

import numpy as np

from sacmap.workflows.errors import WorkflowInputError

log = logging.getLogger(__name__)


def parse_acf(path: str | Path) -> dict:
    """Read Henkelman's ``ACF.dat``: per-atom x, y, z (Å), charge (electrons), min distance (Å), volume (Å³).

    Returns ``{"electrons": [...], "positions": [[x, y, z], ...], "min_dist": [...], "volume": [...],
    "vacuum_charge": float, "vacuum_volume": float, "n_electrons": float}``.
    """
    path = Path(path)
    rows, footer = [], {}
    for line in path.read_text().splitlines():
        parts = line.split()
        if not parts or set(line.strip()) <= set("-"):
            continue
        if parts[0] == "#":
            continue
        if ":" in line:
            key, _, val = line.partition(":")
            try:
                footer[key.strip().upper()] = float(val.split()[0])
            except (ValueError, IndexError):
                pass
            continue
        try:
            vals = [float(x) for x in parts]
        except ValueError as exc:
            raise WorkflowInputError(f"{path}: unreadable ACF.dat line {line!r}") from exc
        if len(vals) < 7:
            raise WorkflowInputError(f"{path}: ACF.dat line has {len(vals)} columns, expected 7: {line!r}")
        rows.append(vals[:7])
    if not rows:
        raise WorkflowInputError(f"{path}: no atoms in ACF.dat")
    arr = np.array(rows)
    if not np.array_equal(arr[:, 0], np.arange(1, len(arr) + 1)):
        raise WorkflowInputError(f"{path}: ACF.dat atom indices are not 1..{len(arr)}")
    return {
        "electrons": arr[:, 4].tolist(),
        "positions": arr[:, 1:4].tolist(),
        "min_dist": arr[:, 5].tolist(),
        "volume": arr[:, 6].tolist(),
        "vacuum_charge": footer.get("VACUUM CHARGE", 0.0),
        "vacuum_volume": footer.get("VACUUM VOLUME", 0.0),
        "n_electrons": footer.get("NUMBER OF ELECTRONS", float(arr[:, 4].sum())),
    }


def zvals(directory: str | Path) -> list[float] | None:
    """Valence electrons (ZVAL) per atom from POTCAR + POSCAR in ``directory``; None without a POTCAR."""
    from pymatgen.io.vasp import Poscar, Potcar

    directory = Path(directory)
    pot = next((p for p in (directory / "POTCAR", directory / "POTCAR.gz") if p.is_file()), None)
    if pot is None:
        return None
    potcar = Potcar.from_file(str(pot))
    poscar = Poscar.from_file(str(directory / "POSCAR"), check_for_potcar=False)
    out: list[float] = []
    for p, n in zip(potcar, poscar.natoms):
        out += [float(p.zval)] * n
    return out


def _real_bader() -> str | None:
    """Path of Henkelman's ``bader`` executable (a binary), not pybader's Python console script."""
    exe = shutil.which("bader")
    if not exe:
        return None
    try:
        head = Path(exe).read_bytes()[:256]
    except OSError:
        return None
    if head.startswith(b"#!") and b"python" in head:
        return None
    return exe


def bader_charges(directory: str | Path) -> dict | None:
    """Bader analysis of a finished static run; None (and a log line) when no Bader program is available.

    Returns ``{"charges": [...] or None, "electrons": [...], "charge_method": str}``.
    """
    directory = Path(directory)
    if not any(directory.glob("CHGCAR*")):
        log.warning("%s: no CHGCAR; Bader charges not computed", directory)
        return None
    zv = zvals(directory)
    if _real_bader():
        from pymatgen.command_line.bader_caller import bader_analysis_from_path

        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            summary = bader_analysis_from_path(str(directory))
        electrons = [float(x) for x in summary["charge"]]
        method = "bader-henkelman" + ("" if summary.get("reference_used") else "-noref")
    else:
        try:
            from pybader.interface import Bader
        except ImportError:
            log.warning("%s: neither Henkelman's bader nor pybader is available; no Bader charges", directory)
            return None
        from pymatgen.io.vasp import Poscar

        bader = Bader.from_file(str(next(directory.glob("CHGCAR*"))))
        bader()
        electrons = [float(x) for x in np.asarray(bader.atoms_charge).ravel()]
        n_atoms = len(Poscar.from_file(str(directory / "POSCAR"), check_for_potcar=False).structure)
        if len(electrons) != n_atoms:
            raise RuntimeError(f"{directory}: pybader returned {len(electrons)} charges for {n_atoms} atoms")
        method = "bader-pybader-noref"
    charges = None if zv is None else [z - e for z, e in zip(zv, electrons)]
    return {"charges": charges, "electrons": electrons, "charge_method": method}
