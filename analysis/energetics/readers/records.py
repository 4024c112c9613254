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
    "converged", "converged_electronic", "converged_ionic", "functional", "ivdw", "encut_eV", "ldau",
    "ldau_u", "ispin", "settings_id", "magmom", "magmoms", "charges", "charge_method", "n_atoms", "formula",
    "atoms",
    "meta", "problems", "usable",
]  # fmt: skip

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
    )  # fmt: skip
    return rec


def add_problem(rec: dict, text: str) -> None:
    """Append ``text`` to the record's ``problems`` (``; `` separated)."""
    rec["problems"] = f"{rec['problems']}; {text}" if rec["problems"] else text


def incar_functional(incar: dict) -> str:
    """Exchange–correlation label from INCAR tags (GGA absent / ``PE`` / ``--`` = PBE)."""
    if incar.get("METAGGA") not in (None, "", "--", "NONE", "None"):
        return str(incar["METAGGA"]).upper()
    if bool(incar.get("LHFCALC", False)):
        return "HYBRID" if incar.get("HFSCREEN") is None else f"HSE(HFSCREEN={incar.get('HFSCREEN')})"
    gga = incar.get("GGA")
    if gga in (None, "", "--", "PE", "pe"):
        return "PBE"
    return str(gga).upper()


def ldau_string(incar: dict, species: list[str]) -> tuple[bool, str]:
    """(LDAU on?, ``"Fe:4,O:0"``) with U (eV) per species in POSCAR species order."""
    ldau = bool(incar.get("LDAU", False))
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
    ``encut_eV``, ``ldau_u``, ``energy_kind``...) fill the columns; ``calc_dir`` is ``info["id"]`` or the index.
    """
    rows = []
    for k, at in enumerate(atoms_list):
        name = str(at.info.get("id", k))
        rec = empty_record(source, f"{source}:{name}", "memory")
        if energies is not None:
            e = energies[k]
        else:
            e = at.get_potential_energy() if at.calc is not None else np.nan
        rec["energy_eV"] = float(e)
        rec["energy_kind"] = settings.get("energy_kind", "total")
        rec["functional"] = settings.get("functional", "")
        rec["ivdw"] = int(settings.get("ivdw", 0))
        rec["encut_eV"] = float(settings.get("encut_eV", np.nan))
        rec["ldau_u"] = str(settings.get("ldau_u", ""))
        rec["ldau"] = bool(rec["ldau_u"])
        rec["converged_electronic"] = rec["converged_ionic"] = bool(converged)
        rec["meta"] = {"given_" + key: at.info[key] for key in ("id", "kind", "pair_id") if key in at.info}
        if "charges" in at.arrays:
            rec["charges"], rec["charge_method"] = [float(c) for c in at.arrays["charges"]], "given"
        atc = at.copy()
        atc.calc = None
        set_atoms(rec, atc)
        rows.append(finish_record(rec))
    return pd.DataFrame(rows, columns=RECORD_COLUMNS)
