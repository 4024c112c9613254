"""ioChem-BD CML exports (``*.cml``): final geometry (Å), energies (eV) and INCAR parameters; IVDW from an INCAR
beside the file (docs/energetics.md, "Reading calculations").

The layout read (namespaces :data:`CML_NS`): one ``module[@id='job']`` per OUTCAR (the last is used); INCAR
parameters as ``parameter[@dictRef='v:<name>']`` under ``module[@dictRef='cc:initialization']``; the final
geometry in ``module[@dictRef='cc:finalization']//molecule`` (``atomArray/atom`` with ``@elementType`` and
``@xFract @yFract @zFract`` or ``@x3 @y3 @z3`` in Å, the cell as ``crystal/scalar[@title='a' ... 'gamma']``);
energies as the ``cc:e0`` and ``cc:freeEnergy`` scalars (eV) of ``property[@dictRef='cc:energies']``; final
forces (eV/Å), when the export has them, as an ``array`` with ``@dictRef`` ``cc:forces`` or ``v:forces`` (3 numbers
per atom) in the finalization module.

Cartesian coordinates need the cell's orientation, which a/b/c/α/β/γ do not give: they are placed with the
cell's ``latticeVector`` elements when the molecule has them (``crystal/lattice/latticeVector`` or
``lattice/latticeVector``, Å), else with a CONTCAR/POSCAR beside the file, else only when the cell is
orthogonal (then axis-aligned, as VASP writes it); a Cartesian-only non-orthogonal cell without vectors is
flagged, never guessed. Fractional coordinates are used when every atom has them.
"""

from __future__ import annotations

import os
from pathlib import Path

import numpy as np

from sacmap.analysis.energetics.readers.bader import attach_bader
from sacmap.analysis.energetics.readers.records import (
    UNKNOWN,
    add_note,
    add_problem,
    empty_record,
    find_output,
    finish_record,
    set_atoms,
    settings_record,
    species_order,
)
from sacmap.analysis.energetics.readers.vasp import read_incar

CML_NS = {"cml": "http://www.xml-cml.org/schema", "cmlx": "http://www.xml-cml.org/schema/cmlx"}


def _cell_vectors(mol, ns) -> np.ndarray | None:
    vecs = mol.xpath(".//cml:latticeVector", namespaces=ns)
    if len(vecs) != 3:
        return None
    return np.array([[float(x) for x in v.text.split()] for v in vecs])


def _side_cell(folder: Path, n_atoms: int) -> np.ndarray | None:
    """Lattice vectors (Å) of a CONTCAR/POSCAR beside the CML with the same number of atoms."""
    from ase.io import read

    for stem in ("CONTCAR", "POSCAR"):
        p = find_output(folder, stem)
        if p is None:
            continue
        try:
            at = read(str(p), format="vasp")
        except Exception:  # noqa: BLE001 - a damaged attachment gives no cell
            continue
        if len(at) == n_atoms:
            return np.array(at.cell)
    return None


def _geometry(mol, ns, rec: dict, folder: Path):
    from ase import Atoms
    from ase.geometry import cellpar_to_cell

    atoms_el = mol.xpath("./cml:atomArray/cml:atom", namespaces=ns)
    symbols = [a.get("elementType") for a in atoms_el]
    cellpar = []
    for t in ("a", "b", "c", "alpha", "beta", "gamma"):
        el = mol.xpath(f"./cml:crystal/cml:scalar[@title='{t}']", namespaces=ns)
        cellpar.append(float(el[0].text))
    vectors = _cell_vectors(mol, ns)
    if vectors is not None and not np.allclose(np.sort(np.linalg.norm(vectors, axis=1)),
                                                np.sort(cellpar[:3]), atol=1e-3):
        add_problem(rec, "CML latticeVector lengths disagree with the cell parameters a, b, c")
        return None
    if all(a.get("xFract") is not None for a in atoms_el):
        frac = np.array([[float(a.get(k)) for k in ("xFract", "yFract", "zFract")] for a in atoms_el])
        cell = vectors if vectors is not None else cellpar_to_cell(cellpar)
        return Atoms(symbols, scaled_positions=frac, cell=cell, pbc=True)
    pos = np.array([[float(a.get(k)) for k in ("x3", "y3", "z3")] for a in atoms_el])
    if vectors is None:
        vectors = _side_cell(folder, len(symbols))
        if vectors is not None:
            add_note(rec, "Cartesian CML coordinates placed in the cell of the CONTCAR/POSCAR beside it")
    if vectors is None:
        if not np.allclose(cellpar[3:], 90.0, atol=1e-4):
            add_problem(rec, "Cartesian-only CML coordinates with a non-orthogonal cell given only by a, b, c, "
                             "alpha, beta, gamma: the cell's orientation is unknown, geometry not trusted (add "
                             "latticeVector elements or the CONTCAR)")
            return None
        vectors = np.diag(cellpar[:3])
    return Atoms(symbols, positions=pos, cell=vectors, pbc=True)


def read_cml(path: str | os.PathLike, source: str | None = None) -> dict:
    """One record from an ioChem-BD CML export (the layout in the module docstring).

    Final geometry (``cc:finalization`` molecule; see the module docstring for the cell), energy ``cc:e0``
    (sigma→0, eV), INCAR parameters from ``cc:initialization`` (ISPIN, ENCUT, GGA, LHFCALC, PREC, ISMEAR, SIGMA,
    LDAU and U per species, EDIFFG, IBRION, NSW), merged with an INCAR next to the file (which alone records
    IVDW or the old LVDW/VDW_VERSION; without one the dispersion is ``unknown`` and a note says so). Convergence:
    with forces in the file and a force criterion (EDIFFG < 0) the largest force is checked against |EDIFFG|;
    otherwise a published calculation is taken as converged (``meta['convergence'] = 'assumed'``, noted).
    """
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
        try:
            atoms = _geometry(mol[-1], ns, rec, path.parent)
            if atoms is not None:
                set_atoms(rec, atoms)
        except (TypeError, ValueError, IndexError, AttributeError) as exc:
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
    tags = {"GGA": "gga", "ISPIN": "ispin", "LDAU": "ldau", "ENCUT": "energyCutoff", "LHFCALC": "lhfcalc",
            "HFSCREEN": "hfscreen", "METAGGA": "metagga", "PREC": "prec", "ISMEAR": "ismear", "SIGMA": "sigma",
            "EDIFFG": "ediffg", "IBRION": "ibrion", "NSW": "nsw", "IVDW": "ivdw"}
    cml_incar = {tag: v for tag, name in tags.items() if (v := param(name)) is not None}
    uu = job.xpath(
        ".//cml:module[@dictRef='cc:initialization']//cml:parameter[@dictRef='v:ldauu']/*", namespaces=ns
    )
    if uu and uu[0].text:
        cml_incar["LDAUU"] = [float(u) for u in uu[0].text.split()]
    side_incar = read_incar(path.parent)
    merged = {**cml_incar, **side_incar}
    species = species_order(rec["atoms"].get_chemical_symbols()) if rec["atoms"] is not None else []
    rec.update(settings_record(merged, species=species))
    if not side_incar and "IVDW" not in cml_incar:
        rec["dispersion"] = UNKNOWN
        rec["meta"]["ivdw"] = "unknown (no INCAR beside the CML)"
        add_note(rec, "no INCAR beside the CML: dispersion (IVDW) unknown; combined only with records whose "
                      "dispersion is unknown too")
    _convergence(rec, fin, ns, merged)
    attach_bader(rec, path.parent)
    return finish_record(rec)


def _convergence(rec: dict, fin, ns, incar: dict) -> None:
    """Convergence from the final forces and EDIFFG when the file has both; else assumed (noted)."""
    from sacmap.analysis.energetics.readers.records import max_force

    rec["converged_electronic"] = True  # a CML export holds finished SCF cycles only
    forces = None
    for ref in ("cc:forces", "v:forces"):
        el = fin.xpath(f".//cml:array[@dictRef='{ref}']", namespaces=ns)
        if el and el[-1].text:
            try:
                vals = np.array([float(x) for x in el[-1].text.split()])
            except ValueError:
                add_problem(rec, f"bad {ref} array in CML")
                return
            if rec["atoms"] is not None and vals.size == 3 * len(rec["atoms"]):
                forces = vals.reshape(-1, 3)
            break
    ediffg = incar.get("EDIFFG")
    nsw, ibrion = int(float(incar.get("NSW", 1) or 0)), int(float(incar.get("IBRION", 0) or 0))
    if forces is not None:
        rec["fmax_eV_A"] = max_force(forces)
    if nsw <= 1 or ibrion == -1:
        rec["converged_ionic"] = True
        rec["meta"]["convergence"] = "single point"
    elif forces is not None and ediffg is not None and float(ediffg) < 0:
        limit = abs(float(ediffg))
        rec["converged_ionic"] = bool(rec["fmax_eV_A"] <= limit * 1.05)
        rec["meta"]["convergence"] = f"largest force {rec['fmax_eV_A']:.4f} eV/Å vs |EDIFFG| {limit:g} eV/Å"
    else:
        rec["converged_ionic"] = True
        why = "no forces" if forces is None else f"EDIFFG {ediffg} is an energy criterion"
        rec["meta"]["convergence"] = f"assumed (CML export: {why})"
        add_note(rec, f"ionic convergence assumed ({why} in the CML export)")
