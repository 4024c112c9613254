"""The results database: an ASE database (SQLite file or ``postgresql://`` URL), one row per finished calculation.

Row layout (docs/contracts.md): the relaxed structure as the row's atoms, with a single-point calculator whose
name is the calculator (``row.calculator``) and whose results hold the final energy (eV), forces (eV/Å) and,
when known, the total magnetic moment (``row.magmom``, μB) and per-atom moments (``row.magmoms``);
``calculator`` and ``magmom`` are reserved ASE column names, so they live there and not among the key-value
pairs. Key-value pairs: ``config_id, kind, site_kinds, separation_A, shares_NN_bond, n_C_between, occupants,
metals, pair_id, settings_hash, energy_eV, energy_kind, fmax_eV_A, converged, converged_electronic,
converged_ionic, calc_dir, campaign`` (+ ``preset``, ``hubbard_u_eV`` for VASP). ``data`` holds ``charges`` and
``charge_method`` only when charges exist, plus ``settings`` (the hashed settings).

The key of a calculation is (``config_id``, ``settings_hash``): :func:`find` looks it up before anything is
computed, :func:`store` never writes a second row for a key.
"""

from __future__ import annotations

import csv
import io
import math
import os
from pathlib import Path

import numpy as np

from sacmap.core.atomic import atomic_write
from sacmap.core.redact import redact_text, redact_url  # noqa: F401  (re-exported: results.redact_url)
from sacmap.workflows.errors import WorkflowInputError

ROW_KEYS = [
    "config_id", "kind", "site_kinds", "separation_A", "shares_NN_bond", "n_C_between", "occupants", "metals",
    "pair_id", "calculator", "settings_hash", "energy_eV", "energy_kind", "fmax_eV_A", "converged",
    "converged_electronic", "converged_ionic", "magmom", "calc_dir", "campaign",
    # the settings record (sacmap.analysis.energetics.readers.records.SETTINGS_COLUMNS) and the run history
    "functional", "dispersion", "ivdw", "encut_eV", "ldau_u", "ispin", "prec", "smearing", "potcar",
    "n_restarts", "n_corrections",
]


def normalise_url(url: str | os.PathLike, *, base: Path | None = None) -> str:
    """A database URL: ``postgresql://...`` unchanged, anything else an absolute SQLite path (``.db``)."""
    url = str(url)
    if url.startswith(("postgresql://", "postgres://")):
        return url.replace("postgres://", "postgresql://", 1)
    if "://" in url:
        raise WorkflowInputError(f"database URL {url!r}: only SQLite paths and postgresql:// URLs are supported")
    path = Path(url).expanduser()
    if not path.is_absolute() and base is not None:
        path = base / path
    if path.suffix != ".db":
        raise WorkflowInputError(f"database path {url!r}: an ASE SQLite database must end in .db")
    return str(path.resolve())


def connect(url: str):
    """``ase.db.connect`` for a SQLite path or PostgreSQL URL (PostgreSQL needs psycopg2)."""
    import ase.db

    if url.startswith("postgresql://"):
        try:
            import psycopg2  # noqa: F401
        except ImportError as exc:
            raise WorkflowInputError(f"database {redact_url(url)}: PostgreSQL needs psycopg2 "
                                     "(pip install 'sacmap[postgres]')") from exc
        try:  # ASE >= 3.23 keeps its PostgreSQL backend in the separate ase-db-backends package
            import ase_db_backends  # noqa: F401
        except ImportError:
            import importlib.util

            if importlib.util.find_spec("ase.db.postgresql") is None:
                raise WorkflowInputError(f"database {redact_url(url)}: PostgreSQL needs the ase-db-backends package "
                                         "(pip install ase-db-backends)") from None
    else:
        Path(url).parent.mkdir(parents=True, exist_ok=True)
    return ase.db.connect(url)


def find(db, config_id: str, settings_hash: str):
    """The finished row of a calculation key, or ``None``."""
    for row in db.select(config_id=config_id, settings_hash=settings_hash, limit=1):
        return row
    return None


def store(db, result: dict, meta: dict, *, calculator: str, settings_hash: str, settings: dict,
          campaign: str, extra: dict | None = None) -> int:
    """Write one finished calculation unless its key is already there; returns the row id.

    ``result`` holds ``atoms`` (relaxed), ``energy_eV``, ``forces``, ``energy_kind``, ``converged``
    (+ optional ``converged_electronic``, ``converged_ionic``, ``magmom``, ``magmoms``, ``charges``,
    ``charge_method``, ``calc_dir``, ``fmax_eV_A``). ``meta`` is :func:`sacmap.workflows.campaign.configs.config_meta`.
    """
    from ase.calculators.singlepoint import SinglePointCalculator

    old = find(db, meta["config_id"], settings_hash)
    if old is not None:
        return old.id
    atoms = result["atoms"].copy()
    forces = np.asarray(result["forces"], float)
    props = {"energy": float(result["energy_eV"]), "forces": forces}
    if result.get("magmom") is not None:
        props["magmom"] = float(result["magmom"])
    if result.get("magmoms") is not None and len(result["magmoms"]) == len(atoms):
        props["magmoms"] = np.asarray(result["magmoms"], float)
    spc = SinglePointCalculator(atoms, **props)
    spc.name = calculator
    atoms.calc = spc
    fmax = result.get("fmax_eV_A")
    if fmax is None:
        fmax = float(np.sqrt((forces**2).sum(axis=1)).max()) if len(forces) else 0.0
    conv = bool(result["converged"])
    kvp = {
        "config_id": meta["config_id"],
        **{k: meta[k] for k in ("kind", "site_kinds", "occupants", "metals", "pair_id")},
        "separation_A": float(meta["separation_A"]),
        "shares_NN_bond": bool(meta["shares_NN_bond"]),
        "n_C_between": int(meta["n_C_between"]),
        "settings_hash": settings_hash,
        "energy_eV": float(result["energy_eV"]),
        "energy_kind": result["energy_kind"],
        "fmax_eV_A": float(fmax),
        "converged": conv,
        "converged_electronic": bool(result.get("converged_electronic", conv)),
        "converged_ionic": bool(result.get("converged_ionic", conv)),
        "calc_dir": str(result.get("calc_dir", "")),
        "campaign": campaign,
    }
    kvp.update(extra or {})
    data: dict = {"settings": settings}
    if result.get("charges") is not None:
        data["charges"] = [float(q) for q in result["charges"]]
        data["charge_method"] = result["charge_method"]
    for key in ("n_steps", "seconds", "static_energy_eV", "bader", "corrections", "launches"):
        if result.get(key) is not None:
            data[key] = result[key]
    return db.write(atoms, key_value_pairs=kvp, data=data)


def rows_as_records(db, **selection) -> list[dict]:
    """Rows as flat dicts with the contract keys (+ ``id``, ``formula``, ``natoms``, ``has_charges``)."""
    out = []
    for row in db.select(**selection):
        rec = {"id": row.id, "formula": row.formula, "natoms": row.natoms}
        for key in ROW_KEYS:
            rec[key] = row.get(key)
        rec["has_charges"] = "charges" in (row.data or {})
        out.append(rec)
    return out


def export_csv(db, path: str | Path, **selection) -> int:
    """Write all rows (contract keys) to a CSV file atomically; returns the number of rows."""
    path = Path(path)
    recs = rows_as_records(db, **selection)
    cols = ["id", *ROW_KEYS, "formula", "natoms", "has_charges"]
    buf = io.StringIO(newline="")
    w = csv.DictWriter(buf, fieldnames=cols)
    w.writeheader()
    for rec in recs:
        w.writerow({k: ("" if isinstance(v, float) and math.isnan(v) else v) if v is not None else ""
                    for k, v in rec.items()})
    atomic_write(path, buf.getvalue())
    return len(recs)
