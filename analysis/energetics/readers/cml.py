"""ioChem-BD CML exports (``*.cml``): final geometry (Å), energies (eV) and INCAR parameters; IVDW from an INCAR
beside the file (docs/energetics.md, "Reading calculations").

The layout read (namespaces :data:`CML_NS`): one ``module[@id='job']`` per OUTCAR (the last is used); INCAR
parameters as ``parameter[@dictRef='v:<name>']`` under ``module[@dictRef='cc:initialization']``; the final
geometry in ``module[@dictRef='cc:finalization']//molecule`` (``atomArray/atom`` with ``@elementType`` and
``@xFract @yFract @zFract`` or ``@x3 @y3 @z3`` in Å, the cell as ``crystal/scalar[@title='a' ... 'gamma']``);
energies as the ``cc:e0`` and ``cc:freeEnergy`` scalars (eV) of ``property[@dictRef='cc:energies']``.
"""

from __future__ import annotations

import os
from pathlib import Path

import numpy as np

from sacmap.analysis.energetics.readers.bader import attach_bader
from sacmap.analysis.energetics.readers.records import (
    add_problem,
    empty_record,
    finish_record,
    incar_functional,
    ldau_string,
    set_atoms,
    species_order,
)
from sacmap.analysis.energetics.readers.vasp import read_incar

CML_NS = {"cml": "http://www.xml-cml.org/schema", "cmlx": "http://www.xml-cml.org/schema/cmlx"}


def read_cml(path: str | os.PathLike, source: str | None = None) -> dict:
    """One record from an ioChem-BD CML export (the layout in the module docstring).

    Final geometry (``cc:finalization`` molecule, cell from a, b, c, α, β, γ), energy ``cc:e0`` (sigma→0, eV),
    INCAR parameters from ``cc:initialization``; IVDW from an INCAR next to the file. The CML holds no record of
    convergence: a published calculation is taken as converged (``meta['convergence'] = 'assumed'``).
    """
    from ase import Atoms
    from ase.geometry import cellpar_to_cell
    from lxml import etree

    path = Path(path)
    rec = empty_record(source or str(path), str(path), "cml")
    parser = etree.XMLParser(resolve_entities=False, no_network=True, huge_tree=False, load_dtd=False)
    try:
        root = etree.parse(str(path), parser).getroot()
    except (etree.XMLSyntaxError, OSError) as exc:
        add_problem(rec, f"unreadable CML ({exc})")
        return finish_record(rec)
    ns = CML_NS
    jobs = root.xpath("//cml:module[@id='job']", namespaces=ns) or [root]
    job = jobs[-1]

    def param(name):
        el = job.xpath(
            f".//cml:module[@dictRef='cc:initialization']//cml:parameter[@dictRef='v:{name}']/*", namespaces=ns
        )
        return el[0].text.strip() if el and el[0].text else None

    fin = job.xpath(".//cml:module[@dictRef='cc:finalization']", namespaces=ns)
    if not fin:
        add_problem(rec, "no cc:finalization module (calculation did not finish)")
        return finish_record(rec)
    fin = fin[-1]
    mol = fin.xpath(".//cml:molecule", namespaces=ns)
    if mol:
        mol = mol[-1]
        atoms_el = mol.xpath("./cml:atomArray/cml:atom", namespaces=ns)
        try:
            symbols = [a.get("elementType") for a in atoms_el]
            cellpar = []
            for t in ("a", "b", "c", "alpha", "beta", "gamma"):
                el = mol.xpath(f"./cml:crystal/cml:scalar[@title='{t}']", namespaces=ns)
                cellpar.append(float(el[0].text))
            cell = cellpar_to_cell(cellpar)
            if all(a.get("xFract") is not None for a in atoms_el):
                frac = np.array([[float(a.get(k)) for k in ("xFract", "yFract", "zFract")] for a in atoms_el])
                atoms = Atoms(symbols, scaled_positions=frac, cell=cell, pbc=True)
            else:
                pos = np.array([[float(a.get(k)) for k in ("x3", "y3", "z3")] for a in atoms_el])
                atoms = Atoms(symbols, positions=pos, cell=cell, pbc=True)
            set_atoms(rec, atoms)
        except (TypeError, ValueError, IndexError) as exc:
            add_problem(rec, f"bad final geometry in CML ({exc})")
    energies = fin.xpath(".//cml:property[@dictRef='cc:energies']//cml:scalar", namespaces=ns)
    by_ref = {e.get("dictRef"): e.text for e in energies}
    try:
        if by_ref.get("cc:e0") is not None:
            rec["energy_eV"], rec["energy_kind"] = float(by_ref["cc:e0"]), "e_0_energy"
        if by_ref.get("cc:freeEnergy") is not None:
            rec["free_energy_eV"] = float(by_ref["cc:freeEnergy"])
    except ValueError as exc:
        add_problem(rec, f"bad energy value in CML ({exc})")
    incar = {
        "GGA": param("gga"), "ISPIN": param("ispin"), "LDAU": param("ldau"), "ENCUT": param("energyCutoff"),
    }  # fmt: skip
    uu = job.xpath(
        ".//cml:module[@dictRef='cc:initialization']//cml:parameter[@dictRef='v:ldauu']/*", namespaces=ns
    )
    side_incar = read_incar(path.parent)
    rec["functional"] = incar_functional({"GGA": incar["GGA"], **{k: side_incar[k] for k in ("METAGGA", "LHFCALC")
                                                              if k in side_incar}})
    rec["ivdw"] = int(side_incar.get("IVDW", 0) or 0)
    if not side_incar:
        rec["meta"]["ivdw"] = "unknown (no INCAR beside the CML)"
    rec["encut_eV"] = float(incar["ENCUT"]) if incar["ENCUT"] else float(side_incar.get("ENCUT", np.nan))
    rec["ispin"] = int(float(incar["ISPIN"])) if incar["ISPIN"] else int(side_incar.get("ISPIN", 1))
    ldau_on = str(incar["LDAU"]).strip().lower() in ("true", ".true.", "t", "1") if incar["LDAU"] else False
    if ldau_on and rec["atoms"] is not None:
        u_vals = uu[0].text.split() if uu and uu[0].text else []
        rec["ldau"], rec["ldau_u"] = ldau_string(
            {"LDAU": True, "LDAUU": [float(u) for u in u_vals]}, species_order(rec["atoms"].get_chemical_symbols())
        )
    rec["converged_electronic"] = rec["converged_ionic"] = True
    rec["meta"]["convergence"] = "assumed (CML export records no convergence)"
    attach_bader(rec, path.parent)
    return finish_record(rec)
