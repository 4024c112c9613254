"""Our results database (``ase.db`` SQLite path or ``postgresql://`` URL; keys as in docs/contracts.md, "Results
database") read into records: energies in eV, forces in eV/Å, moments in μB."""

from __future__ import annotations

from pathlib import Path

import numpy as np

from sacmap.analysis.energetics.readers.records import (
    add_note,
    add_problem,
    empty_record,
    finish_record,
    set_atoms,
)
from sacmap.analysis.errors import AnalysisInputError
from sacmap.core.redact import redact_text, redact_url


def is_db_source(source: str) -> bool:
    s = str(source)
    return s.startswith(("postgresql://", "postgres://", "mysql://", "mariadb://")) or s.endswith(
        (".db", ".sqlite", ".sqlite3")
    )


def read_ase_db(url: str, selection: str | None = None) -> list[dict]:
    """Records from our results database (``ase.db``; keys per docs/contracts.md).

    The row's atoms are the relaxed structure; ``energy_eV`` / ``converged*`` / ``fmax_eV_A`` / ``magmom`` come
    from the key-value pairs (row.energy if ``energy_eV`` is missing); the builder metadata goes to ``meta``.
    """
    import ase.db

    shown = redact_url(url)  # records, messages and tables never show the password
    if not str(url).startswith(("postgresql://", "postgres://")) and not Path(url).is_file():
        raise FileNotFoundError(f"{shown}: database file not found")
    try:
        db = ase.db.connect(str(url))
        rows = list(db.select(selection) if selection else db.select())
    except Exception as exc:  # noqa: BLE001
        raise AnalysisInputError(
            f"{shown}: cannot read as an ASE database ({type(exc).__name__}: {redact_text(str(exc))})") from None
    out = []
    for row in rows:
        kv = dict(row.key_value_pairs)
        calc_dir = str(kv.get("calc_dir") or f"{shown}#id={row.id}")
        rec = empty_record(shown, calc_dir, "ase-db")
        rec["meta"] = {k: v for k, v in kv.items()}
        rec["meta"]["db_id"] = row.id
        e = kv.get("energy_eV", row.get("energy"))
        rec["energy_eV"] = float(e) if e is not None else np.nan
        rec["energy_kind"] = kv.get("energy_kind", "unknown")
        rec["fmax_eV_A"] = float(kv.get("fmax_eV_A", np.nan))
        for key in ("converged_electronic", "converged_ionic"):
            rec[key] = bool(kv[key]) if key in kv else (bool(kv["converged"]) if "converged" in kv else None)
        # "calculator" and "magmom" are reserved ase.db columns: they come from the row's single-point calculator
        mag = row.get("magmom")
        rec["magmom"] = float(mag) if mag is not None else np.nan
        if row.get("magmoms") is not None:
            rec["magmoms"] = [float(m) for m in row.get("magmoms")]
        # settings: the settings record the campaign writes (functional, dispersion, IVDW, ENCUT, U, ISPIN, PREC,
        # smearing, POTCAR set); rows of older campaigns only have the calculator name and settings hash
        calc_name = str(row.get("calculator") or kv.get("calculator_name") or "")
        rec["meta"]["calculator"] = calc_name
        rec["functional"] = str(kv.get("functional") or calc_name)
        # one settings hash per calculation variant (sacmap.workflows.campaign.settings): rows of different hashes never mix
        rec["settings_id"] = str(kv.get("settings_hash", ""))
        rec["ivdw"] = int(kv.get("ivdw", 0))
        rec["dispersion"] = str(kv.get("dispersion") or ("unknown" if "ivdw" not in kv else ""))
        if rec["dispersion"] == "unknown":
            add_note(rec, "database row without a settings record (written before sacmap stored one): dispersion "
                          "unknown")
        rec["encut_eV"] = float(kv.get("encut_eV", np.nan))
        rec["ldau_u"] = str(kv.get("ldau_u", ""))
        if not rec["ldau_u"] and kv.get("hubbard_u_eV") is not None:
            rec["ldau_u"] = f"U:{float(kv['hubbard_u_eV']):g}"
        rec["ldau"] = bool(rec["ldau_u"])
        rec["ispin"] = int(kv.get("ispin", 2 if kv.get("spin_polarised") else 1))
        for key in ("prec", "smearing", "potcar"):
            rec[key] = str(kv.get(key, ""))
        set_atoms(rec, row.toatoms())
        data = row.data or {}
        if data.get("charges") is not None and len(data["charges"]) == len(rec["atoms"]):
            rec["charges"] = [float(c) for c in data["charges"]]
            rec["charge_method"] = str(data.get("charge_method", "unknown"))
        if rec["converged_electronic"] is None or rec["converged_ionic"] is None:
            add_problem(rec, "database row has no convergence keys")
        out.append(finish_record(rec))
    return out
