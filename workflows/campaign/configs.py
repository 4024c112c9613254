"""Configurations as JSON-able dicts (for FireWorks specs) and their metadata (contracts.md keys)."""

from __future__ import annotations

import math
import re

import numpy as np
from ase import Atoms

from sacmap.core.constants import is_metal
from sacmap.workflows.errors import WorkflowInputError

#: configuration metadata copied into every result row (contracts.md), with types and defaults
META_KEYS: dict[str, tuple[type, object]] = {
    "kind": (str, ""),
    "site_kinds": (str, ""),
    "separation_A": (float, float("nan")),
    "shares_NN_bond": (bool, False),
    "n_C_between": (int, -1),
    "occupants": (str, ""),
    "metals": (str, ""),
    "pair_id": (str, ""),
}


def config_meta(atoms: Atoms, *, where: str = "configuration") -> dict:
    """Contract metadata of a configuration: ``config_id`` + :data:`META_KEYS` + ``spin_polarised``.

    ``atoms.info`` must hold ``id``; other keys fall back to defaults (``metals`` from the chemical symbols).
    """
    info = atoms.info
    cid = info.get("id")
    if not isinstance(cid, str) or not cid:
        raise WorkflowInputError(f"{where}: atoms.info['id'] (the configuration id) is missing")
    meta: dict = {"config_id": cid}
    for key, (typ, default) in META_KEYS.items():
        value = info.get(key, default)
        try:
            meta[key] = typ(value) if value is not None else default
        except (TypeError, ValueError):
            raise WorkflowInputError(f"{where} {cid}: info[{key!r}] = {value!r} is not a {typ.__name__}") from None
    if not meta["metals"]:
        meta["metals"] = ",".join(dict.fromkeys(s for s in atoms.get_chemical_symbols() if is_metal(s)))
    meta["spin_polarised"] = bool(info.get("spin_polarised", False))
    return meta


def atoms_to_dict(atoms: Atoms) -> dict:
    """Positions (Å), cell (Å), numbers, pbc and initial magnetic moments (μB) as plain lists."""
    d = {
        "numbers": [int(z) for z in atoms.numbers],
        "positions": np.round(atoms.positions, 6).tolist(),  # 1e-6 Å: keeps specs and the store small
        "cell": np.round(atoms.cell.array, 8).tolist(),
        "pbc": [bool(p) for p in atoms.pbc],
    }
    if atoms.has("initial_magmoms"):
        d["magmoms"] = atoms.get_initial_magnetic_moments().tolist()
    return d


def atoms_from_dict(d: dict) -> Atoms:
    """Inverse of :func:`atoms_to_dict`."""
    atoms = Atoms(numbers=d["numbers"], positions=d["positions"], cell=d["cell"], pbc=d["pbc"])
    if "magmoms" in d:
        atoms.set_initial_magnetic_moments(d["magmoms"])
    return atoms


def config_to_doc(atoms: Atoms, *, where: str = "configuration") -> dict:
    """A configuration as ``{"meta": config_meta, "atoms": atoms_to_dict}`` (NaN stored as null)."""
    meta = config_meta(atoms, where=where)
    if isinstance(meta["separation_A"], float) and math.isnan(meta["separation_A"]):
        meta["separation_A"] = None
    return {"meta": meta, "atoms": atoms_to_dict(atoms)}


def meta_from_doc(doc: dict) -> dict:
    """Metadata back from :func:`config_to_doc` (null separation → NaN)."""
    meta = dict(doc["meta"])
    if meta.get("separation_A") is None:
        meta["separation_A"] = float("nan")
    return meta


def safe_name(config_id: str) -> str:
    """A file-system-safe folder name for a configuration id (``Ni/4N-4N_d5.12_a`` → ``Ni_4N-4N_d5.12_a``)."""
    return re.sub(r"[^A-Za-z0-9._-]+", "_", config_id).strip("._") or "config"
