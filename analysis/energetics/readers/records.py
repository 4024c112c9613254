"""The record schema every reader fills (one row per calculation; energies in eV, forces in eV/Å, lengths in Å)
and the helpers shared by the readers: finding an output file, the settings labels, finishing a record.

A record is a dict with the keys :data:`RECORD_COLUMNS`. Readers start from :func:`empty_record`, add problems
with :func:`add_problem` (never raising for a damaged calculation) and end with :func:`finish_record`, which
derives ``converged`` and ``usable`` and prefixes the problems with the calculation folder.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pandas as pd

RECORD_COLUMNS = [
    "source", "calc_dir", "reader", "energy_eV", "energy_kind", "free_energy_eV", "fmax_eV_A",
    "converged", "converged_electronic", "converged_ionic", "functional", "ivdw", "dispersion", "encut_eV",
    "ldau", "ldau_u", "ispin", "prec", "smearing", "potcar", "settings_id", "magmom", "magmoms", "charges",
    "charge_method", "n_atoms", "formula", "atoms",
    "meta", "notes", "problems", "usable",
]  # fmt: skip
#: the settings every record carries (one settings record per calculation, whatever its source); terms of one
#: equation must agree on all of them (``analysis.energetics.equations.incompatibility``)
SETTINGS_COLUMNS = ("functional", "dispersion", "ivdw", "encut_eV", "ldau", "ldau_u", "ispin", "prec", "smearing",
                    "potcar")
#: VASP's IVDW values → dispersion label (VASP wiki, IVDW)
IVDW_LABELS = {0: "none", 1: "D2", 10: "D2", 11: "D3(zero)", 12: "D3(BJ)", 13: "D4", 2: "TS", 20: "TS",
               21: "TS-HI", 202: "MBD", 4: "dDsC"}
UNKNOWN = "unknown"

COMPRESSED = ("", ".gz", ".bz2", ".xz", ".GZ", ".BZ2", ".XZ")


def find_output(folder: Path, stem: str) -> Path | None:
    """``stem`` or a compressed variant in ``folder``; else the last custodian-suffixed one (``vasprun.xml.relax2``)."""
    for suffix in COMPRESSED:
        p = folder / f"{stem}{suffix}"
        if p.is_file():
            return p
    others = sorted(p for p in folder.glob(f"{stem}.*") if p.is_file())
    return others[-1] if others else None


def empty_record(source: str, calc_dir: str, reader: str) -> dict:
    """A record with every column and the defaults of an unread calculation (NaN energies, not usable)."""
    rec = dict.fromkeys(RECORD_COLUMNS)
    rec.update(
        source=source, calc_dir=calc_dir, reader=reader, energy_eV=np.nan, free_energy_eV=np.nan,
        fmax_eV_A=np.nan, magmom=np.nan, encut_eV=np.nan, problems="", usable=False, meta={},
        functional="", ldau_u="", ivdw=0, ldau=False, ispin=1, n_atoms=0, formula="", settings_id="",
        dispersion="", prec="", smearing="", potcar="", notes="",
    )  # fmt: skip
    return rec


def add_problem(rec: dict, text: str) -> None:
    """Append ``text`` to the record's ``problems`` (``; `` separated)."""
    rec["problems"] = f"{rec['problems']}; {text}" if rec["problems"] else text


def add_note(rec: dict, text: str) -> None:
    """Append ``text`` to the record's ``notes`` (facts about its settings that do not make it unusable but that
    ``records.csv`` and ``warnings.txt`` must show, e.g. a dispersion taken as unknown without an INCAR)."""
    rec["notes"] = f"{rec['notes']}; {text}" if rec["notes"] else text


def _truthy(value) -> bool:
    return str(value).strip().strip(".").lower() in ("true", "t", "1", "yes")


def incar_ivdw(incar: dict) -> int | None:
    """IVDW of an INCAR, reading the old tags too: ``LVDW = .TRUE.`` is D2 (IVDW 1) unless ``VDW_VERSION = 3``
    (D3 zero damping, IVDW 11) or 4 (D3-BJ, IVDW 12). None when ``incar`` is empty (settings unknown)."""
    if not incar:
        return None
    if incar.get("IVDW") not in (None, ""):
        return int(float(incar["IVDW"]))
    if _truthy(incar.get("LVDW", False)):
        version = int(float(incar.get("VDW_VERSION", 2) or 2))
        return {3: 11, 4: 12}.get(version, 1)
    return 0


def potcar_label(potcar_symbols: list[str] | None, species: list[str] | None = None) -> str:
    """``"Fe:PAW_PBE Fe_pv,O:PAW_PBE O"`` from POTCAR TITEL lines (``PAW_PBE Fe_pv 06Sep2000``) or POTCAR.spec
    symbols (``Fe_pv``); the date stamp is dropped. Element from the symbol's part before ``_``."""
    out = []
    for k, sym in enumerate(potcar_symbols or []):
        parts = str(sym).split()
        if len(parts) >= 2 and parts[0].upper().startswith(("PAW", "US")):
            label, name = f"{parts[0]} {parts[1]}", parts[1]
        else:
            label = name = parts[0] if parts else ""
        el = name.split("_")[0] if name else (species[k] if species and k < len(species) else "?")
        out.append(f"{el}:{label}")
    return ",".join(out)


def settings_record(incar: dict, parameters: dict | None = None, *, potcar_symbols: list[str] | None = None,
                    species: list[str] | None = None) -> dict:
    """The settings of one VASP calculation (every reader and the campaign's store use this one function):
    ``functional`` (PBE, r2SCAN, HYBRID/HSE(...) with LHFCALC), ``ivdw`` and ``dispersion`` (IVDW, or the old
    LVDW/VDW_VERSION tags; ``unknown`` without an INCAR), ``encut_eV``, ``ldau``/``ldau_u`` (U per species),
    ``ispin``, ``prec``, ``smearing`` (``ISMEAR=0,SIGMA=0.05``), ``potcar`` (:func:`potcar_label`).
    ``parameters``: vasprun.xml's full parameter list (VASP's defaults), consulted where the INCAR is silent."""
    params = parameters or {}
    both = {**params, **incar}
    ivdw = incar_ivdw(incar) if incar else (incar_ivdw(params) if params else None)
    ldau, ldau_u = ldau_string(both, species or [])
    enc = both.get("ENCUT", params.get("ENMAX", np.nan))
    prec = str(both.get("PREC", "") or "")
    prec = {"accura": "Accurate", "accurate": "Accurate", "normal": "Normal", "high": "High", "low": "Low",
            "medium": "Medium", "single": "Single"}.get(prec.strip().lower(), prec.strip().capitalize())
    smear = ""
    if both.get("ISMEAR") not in (None, "") or both.get("SIGMA") not in (None, ""):
        smear = f"ISMEAR={int(float(both.get('ISMEAR', 1)))},SIGMA={float(both.get('SIGMA', 0.2)):g}"
    return {
        "functional": incar_functional(both) if (incar or params) else "",
        "ivdw": 0 if ivdw is None else ivdw,
        "dispersion": UNKNOWN if ivdw is None else IVDW_LABELS.get(ivdw, f"IVDW={ivdw}"),
        "encut_eV": float(enc) if enc not in (None, "") else np.nan,
        "ldau": ldau, "ldau_u": ldau_u,
        "ispin": int(float(both.get("ISPIN", 1))),
        "prec": prec, "smearing": smear, "potcar": potcar_label(potcar_symbols, species),
    }  # fmt: skip


def incar_functional(incar: dict) -> str:
    """Exchange–correlation label from INCAR tags (GGA absent / ``PE`` / ``--`` = PBE)."""
    if incar.get("METAGGA") not in (None, "", "--", "NONE", "None"):
        return str(incar["METAGGA"]).upper()
    if _truthy(incar.get("LHFCALC", False)):
        return "HYBRID" if incar.get("HFSCREEN") is None else f"HSE(HFSCREEN={incar.get('HFSCREEN')})"
    gga = incar.get("GGA")
    if gga is None or str(gga).strip().upper() in ("", "--", "PE"):
        return "PBE"
    return str(gga).upper()


def ldau_string(incar: dict, species: list[str]) -> tuple[bool, str]:
    """(LDAU on?, ``"Fe:4,O:0"``) with U (eV) per species in POSCAR species order."""
    ldau = incar.get("LDAU", False)
    ldau = _truthy(ldau) if isinstance(ldau, str) else bool(ldau)
    if not ldau:
        return False, ""
    uu = incar.get("LDAUU") or []
    if isinstance(uu, (int, float)):
        uu = [uu]
    if len(uu) != len(species):
        return True, "?" + ",".join(str(u) for u in uu)
    return True, ",".join(f"{el}:{float(u):g}" for el, u in zip(species, uu, strict=True))


def species_order(symbols: list[str]) -> list[str]:
    """Species in order of first appearance (POSCAR order)."""
    out: list[str] = []
    for s in symbols:
        if not out or out[-1] != s:
            if s not in out:
                out.append(s)
    return out


def max_force(forces) -> float:
    """Largest atomic force (eV/Å) of an ``(n, 3)`` array; NaN without forces."""
    if forces is None:
        return np.nan
    f = np.asarray(forces, dtype=float)
    return float(np.sqrt((f**2).sum(axis=1)).max()) if f.size else np.nan


def set_atoms(rec: dict, atoms) -> None:
    """The record's final structure (``atoms``, ``n_atoms``, Hill ``formula``)."""
    rec["atoms"] = atoms
    rec["n_atoms"] = len(atoms)
    rec["formula"] = atoms.get_chemical_formula(mode="hill")


def finish_record(rec: dict) -> dict:
    """Derive ``converged`` and ``usable``, name the convergence problems, prefix problems with the folder."""
    conv = rec["converged_electronic"] is True and rec["converged_ionic"] is True
    rec["converged"] = bool(conv)
    if rec["converged_electronic"] is False:
        nelm = rec["meta"].get("nelm")
        add_problem(rec, "electronic SCF not converged" + (f" (hit NELM = {nelm})" if nelm else ""))
    if rec["converged_ionic"] is False:
        add_problem(rec, "ionic relaxation not converged (stopped before EDIFFG was reached)")
    if not np.isfinite(rec["energy_eV"]):
        add_problem(rec, "no final energy")
    if rec["atoms"] is None:
        add_problem(rec, "no final structure")
    rec["usable"] = not rec["problems"]
    if rec["problems"]:
        rec["problems"] = f"{rec['calc_dir']}: {rec['problems']}"
    return rec


def records_from_atoms(atoms_list, energies=None, source: str = "memory", converged: bool = True,
                       **settings) -> pd.DataFrame:
    """Records from in-memory structures (e.g. a machine-learned relaxation or a test set).

    ``energies`` (eV; default each structure's ``calc`` energy) and ``settings`` (``functional``, ``ivdw``,
    ``dispersion``, ``encut_eV``, ``ldau_u``, ``ispin``, ``prec``, ``smearing``, ``potcar``, ``magmom`` (μB),
    ``energy_kind``...) fill the columns; a list gives one value per structure. ``calc_dir`` is ``info["id"]`` or
    the index.
    """
    def value(key, k, default):
        v = settings.get(key, default)
        return v[k] if isinstance(v, (list, tuple)) else v

    rows = []
    for k, at in enumerate(atoms_list):
        name = str(at.info.get("id", k))
        rec = empty_record(source, f"{source}:{name}", "memory")
        if energies is not None:
            e = energies[k]
        else:
            e = at.get_potential_energy() if at.calc is not None else np.nan
        rec["energy_eV"] = float(e)
        rec["energy_kind"] = value("energy_kind", k, "total")
        rec["functional"] = value("functional", k, "")
        rec["ivdw"] = int(value("ivdw", k, 0))
        rec["dispersion"] = str(value("dispersion", k, IVDW_LABELS.get(rec["ivdw"], "")))
        rec["encut_eV"] = float(value("encut_eV", k, np.nan))
        rec["ldau_u"] = str(value("ldau_u", k, ""))
        rec["ldau"] = bool(rec["ldau_u"])
        rec["ispin"] = int(value("ispin", k, 1))
        rec["magmom"] = float(value("magmom", k, np.nan))
        for key in ("prec", "smearing", "potcar"):
            rec[key] = str(value(key, k, ""))
        rec["converged_electronic"] = rec["converged_ionic"] = bool(converged)
        rec["meta"] = {"given_" + key: at.info[key] for key in ("id", "kind", "pair_id") if key in at.info}
        if "charges" in at.arrays:
            rec["charges"], rec["charge_method"] = [float(c) for c in at.arrays["charges"]], "given"
        atc = at.copy()
        atc.calc = None
        set_atoms(rec, atc)
        rows.append(finish_record(rec))
    return pd.DataFrame(rows, columns=RECORD_COLUMNS)
