"""Bader charges of a VASP static run (CHGCAR, AECCAR0 + AECCAR2 as reference, POTCAR for ZVAL).

Preferred: pymatgen's ``bader_analysis_from_path`` with Henkelman's ``bader`` executable on PATH (HPC).
Fallback: the pure-Python ``pybader`` API (extra ``bader``; its console script named ``bader`` is never called).
Charges are net atomic charges in e, ``ZVAL - N_Bader`` (positive = electrons lost); without a POTCAR (no ZVAL)
only the Bader electron counts are returned. Nothing is invented: without a Bader program the result is ``None``.
The ``ACF.dat`` of Henkelman's run is read by pymatgen inside ``bader_analysis_from_path``; an ``ACF.dat`` found
beside a finished calculation later is read by :func:`sacmap.analysis.energetics.readers.parse_acf`.
"""

from __future__ import annotations

import logging
import shutil
import warnings
from pathlib import Path

import numpy as np

log = logging.getLogger(__name__)


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
