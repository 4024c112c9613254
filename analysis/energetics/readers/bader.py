"""Henkelman's Bader ``ACF.dat`` beside a finished calculation (the one parser of it in sacmap; the ACF.dat of the
campaign's own Bader step is read by pymatgen's ``bader_analysis_from_path``, which runs the program).

Columns: atom index, x, y, z (Å), CHARGE (electrons in the atom's Bader volume), MIN DIST (Å), ATOMIC VOL (Å³);
older ``bader`` versions write fewer trailing columns (at least index, x, y, z, CHARGE). Footer lines
``VACUUM CHARGE``, ``VACUUM VOLUME`` and ``NUMBER OF ELECTRONS``.
"""

from __future__ import annotations

import math
import os
from pathlib import Path

from sacmap.analysis.energetics.readers.records import add_problem, find_output
from sacmap.analysis.errors import AnalysisInputError

ACF_MIN_COLUMNS = 5  # index, x, y, z, CHARGE


def parse_acf(path: str | os.PathLike) -> dict:
    """Read ``ACF.dat``: per-atom positions (Å), electrons, min distance (Å), volume (Å³), in atom order.

    Returns ``{"electrons": [...], "positions": [[x, y, z], ...], "min_dist": [...], "volume": [...],
    "vacuum_charge": float, "vacuum_volume": float, "n_electrons": float}`` (``min_dist``/``volume`` NaN where
    the file has no such column). Raises :class:`AnalysisInputError` naming the file for an unreadable file, a
    bad value, rows of different lengths, atom indices other than 1..n, or no atom rows.
    """
    path = Path(path)
    try:
        lines = path.read_text(errors="replace").splitlines()
    except OSError as exc:
        raise AnalysisInputError(f"{path}: cannot read ACF.dat ({exc})") from exc
    rows: list[list[float]] = []
    footer: dict[str, float] = {}
    n_columns = 0  # of the first atom row; every row must have as many
    for line in lines:
        parts = line.split()
        if not parts:
            continue
        if parts[0].isdigit():  # an atom row
            try:
                vals = [float(x) for x in parts]
            except ValueError:
                raise AnalysisInputError(f"{path}: unreadable ACF.dat line {line!r}") from None
            n_columns = n_columns or max(len(vals), ACF_MIN_COLUMNS)
            if len(vals) != n_columns:
                raise AnalysisInputError(
                    f"{path}: ACF.dat line has {len(vals)} columns, expected {n_columns}: {line!r}")
            rows.append(vals[:7])
        elif ":" in line:
            key, _, val = line.partition(":")
            try:
                footer[key.strip().upper()] = float(val.split()[0])
            except (ValueError, IndexError):
                pass
    if not rows:
        raise AnalysisInputError(f"{path}: no atom rows found in ACF.dat")
    if [int(r[0]) for r in rows] != list(range(1, len(rows) + 1)):
        raise AnalysisInputError(f"{path}: ACF.dat atom indices are not 1..{len(rows)}")
    electrons = [r[4] for r in rows]
    return {
        "electrons": electrons,
        "positions": [r[1:4] for r in rows],
        "min_dist": [r[5] if len(r) > 5 else math.nan for r in rows],
        "volume": [r[6] if len(r) > 6 else math.nan for r in rows],
        "vacuum_charge": footer.get("VACUUM CHARGE", 0.0),
        "vacuum_volume": footer.get("VACUUM VOLUME", 0.0),
        "n_electrons": footer.get("NUMBER OF ELECTRONS", float(sum(electrons))),
    }


def read_acf(path: str | os.PathLike) -> list[float]:
    """Bader charges (electrons per atom, column CHARGE) from ``ACF.dat``, in atom order (see :func:`parse_acf`)."""
    return parse_acf(path)["electrons"]


def attach_bader(rec: dict, folder: Path) -> None:
    """Set the record's ``charges`` (``charge_method = "bader"``) from an ``ACF.dat`` in ``folder``, if any;
    a damaged file or one for another atom count is noted in ``problems`` and ignored."""
    acf = find_output(folder, "ACF.dat")
    if acf is None:
        return
    try:
        charges = read_acf(acf)
    except AnalysisInputError as exc:
        add_problem(rec, f"ignored Bader charges: {exc}")
        return
    if rec["n_atoms"] and len(charges) != rec["n_atoms"]:
        add_problem(rec, f"ignored Bader charges: {acf} has {len(charges)} atoms, structure has {rec['n_atoms']}")
        return
    rec["charges"], rec["charge_method"] = charges, "bader"
