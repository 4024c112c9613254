"""Read finished calculations into tidy records (one row per calculation; energies in eV, forces in eV/Å).

Three kinds of source give the same columns (:data:`RECORD_COLUMNS`):

* VASP calculation folders (``vasprun.xml`` preferred; ``OUTCAR`` + ``OSZICAR`` + ``CONTCAR`` otherwise; gzip,
  bzip2 or xz compressed files too), read with pymatgen and ASE;
* ioChem-BD CML exports (``*.cml``: final geometry, energies and INCAR parameters; IVDW from an INCAR beside it);
* our ASE results database (``ase.db`` SQLite path or ``postgresql://`` URL, keys as in docs/contracts.md).

Any tree of such folders (any nesting and naming) and ``.zip`` / ``.tar[.gz|.bz2|.xz]`` archives of them are
walked by :func:`load_records`. Archives are extracted into a temporary folder with size and member-count limits;
absolute paths, ``..`` components, links and device files are refused.

Energy: VASP's ``energy(sigma->0)`` (``energy_kind = "e_0_energy"``), the energy the paper's equations use; from
vasprun.xml it is pymatgen's ``Vasprun.final_energy`` (which also corrects VASP 5's ``e_0_energy`` bug), from an
OUTCAR ASE's ``energy`` (sigma→0 of the last *completed* ionic step), from CML ``cc:e0``.

Problems (truncated files, unconverged runs, missing energies) never raise: the record gets a ``problems`` text
naming the folder and the exact problem and ``usable = False``. Only bad *sources* (a path that does not exist,
an unsafe archive, an unreadable database) raise :class:`~analysis.errors.AnalysisInputError`.
"""

from __future__ import annotations

import logging
import os
import re
import tarfile
import tempfile
import warnings
import zipfile
from contextlib import ExitStack
from pathlib import Path

import numpy as np
import pandas as pd

from sacmap.analysis.errors import AnalysisInputError

log = logging.getLogger(__name__)

RECORD_COLUMNS = [
    "source", "calc_dir", "reader", "energy_eV", "energy_kind", "free_energy_eV", "fmax_eV_A",
    "converged", "converged_electronic", "converged_ionic", "functional", "ivdw", "encut_eV", "ldau",
    "ldau_u", "ispin", "settings_id", "magmom", "magmoms", "charges", "charge_method", "n_atoms", "formula",
    "atoms",
    "meta", "problems", "usable",
]  # fmt: skip

COMPRESSED = ("", ".gz", ".bz2", ".xz", ".GZ", ".BZ2", ".XZ")
ARCHIVE_SUFFIXES = (".zip", ".tar", ".tar.gz", ".tgz", ".tar.bz2", ".tbz2", ".tar.xz", ".txz")
MAX_ARCHIVE_BYTES = 4 * 1024**3  # total uncompressed size accepted from one archive
MAX_ARCHIVE_MEMBERS = 200_000
MAX_ARCHIVE_DEPTH = 2  # archives inside archives inside the source
CML_NS = {"cml": "http://www.xml-cml.org/schema", "cmlx": "http://www.xml-cml.org/schema/cmlx"}


# ----------------------------------------------------------------------------------------------- helpers
def _find(folder: Path, stem: str) -> Path | None:
    """``stem`` or a compressed variant in ``folder``; else the last custodian-suffixed one (``vasprun.xml.relax2``)."""
    for suffix in COMPRESSED:
        p = folder / f"{stem}{suffix}"
        if p.is_file():
            return p
    others = sorted(p for p in folder.glob(f"{stem}.*") if p.is_file())
    return others[-1] if others else None


def _empty_record(source: str, calc_dir: str, reader: str) -> dict:
    rec = dict.fromkeys(RECORD_COLUMNS)
    rec.update(
        source=source, calc_dir=calc_dir, reader=reader, energy_eV=np.nan, free_energy_eV=np.nan,
        fmax_eV_A=np.nan, magmom=np.nan, encut_eV=np.nan, problems="", usable=False, meta={},
        functional="", ldau_u="", ivdw=0, ldau=False, ispin=1, n_atoms=0, formula="", settings_id="",
    )  # fmt: skip
    return rec


def _problem(rec: dict, text: str) -> None:
    rec["problems"] = f"{rec['problems']}; {text}" if rec["problems"] else text


def _functional(incar: dict) -> str:
    """Exchange–correlation label from INCAR tags (GGA absent / ``PE`` / ``--`` = PBE)."""
    if incar.get("METAGGA") not in (None, "", "--", "NONE", "None"):
        return str(incar["METAGGA"]).upper()
    if bool(incar.get("LHFCALC", False)):
        return "HYBRID" if incar.get("HFSCREEN") is None else f"HSE(HFSCREEN={incar.get('HFSCREEN')})"
    gga = incar.get("GGA")
    if gga in (None, "", "--", "PE", "pe"):
        return "PBE"
    return str(gga).upper()


def _ldau_string(incar: dict, species: list[str]) -> tuple[bool, str]:
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


def _species_order(symbols: list[str]) -> list[str]:
    out: list[str] = []
    for s in symbols:
        if not out or out[-1] != s:
            if s not in out:
                out.append(s)
    return out


def _fmax(forces) -> float:
    if forces is None:
        return np.nan
    f = np.asarray(forces, dtype=float)
    return float(np.sqrt((f**2).sum(axis=1)).max()) if f.size else np.nan


def read_acf(path: str | os.PathLike) -> list[float]:
    """Bader charges (electrons per atom, column CHARGE) from Henkelman's ``ACF.dat``, in atom order."""
    path = Path(path)
    charges: list[float] = []
    try:
        text = path.read_text(errors="replace").splitlines()
    except OSError as exc:
        raise AnalysisInputError(f"{path}: cannot read ACF.dat ({exc})") from exc
    for line in text:
        parts = line.split()
        if len(parts) >= 5 and parts[0].isdigit():
            try:
                charges.append(float(parts[4]))
            except ValueError as exc:
                raise AnalysisInputError(f"{path}: bad CHARGE value on line {line!r}") from exc
    if not charges:
        raise AnalysisInputError(f"{path}: no atom rows found in ACF.dat")
    return charges


def _attach_bader(rec: dict, folder: Path) -> None:
    acf = _find(folder, "ACF.dat")
    if acf is None:
        return
    try:
        charges = read_acf(acf)
    except AnalysisInputError as exc:
        _problem(rec, f"ignored Bader charges: {exc}")
        return
    if rec["n_atoms"] and len(charges) != rec["n_atoms"]:
        _problem(rec, f"ignored Bader charges: {acf} has {len(charges)} atoms, structure has {rec['n_atoms']}")
        return
    rec["charges"], rec["charge_method"] = charges, "bader"


def _set_atoms(rec: dict, atoms) -> None:
    rec["atoms"] = atoms
    rec["n_atoms"] = len(atoms)
    rec["formula"] = atoms.get_chemical_formula(mode="hill")


def _finish(rec: dict) -> dict:
    conv = rec["converged_electronic"] is True and rec["converged_ionic"] is True
    rec["converged"] = bool(conv)
    if rec["converged_electronic"] is False:
        nelm = rec["meta"].get("nelm")
        _problem(rec, "electronic SCF not converged" + (f" (hit NELM = {nelm})" if nelm else ""))
    if rec["converged_ionic"] is False:
        _problem(rec, "ionic relaxation not converged (stopped before EDIFFG was reached)")
    if not np.isfinite(rec["energy_eV"]):
        _problem(rec, "no final energy")
    if rec["atoms"] is None:
        _problem(rec, "no final structure")
    rec["usable"] = not rec["problems"]
    if rec["problems"]:
        rec["problems"] = f"{rec['calc_dir']}: {rec['problems']}"
    return rec


# ------------------------------------------------------------------------------------------------- VASP
def _read_incar(folder: Path) -> dict:
    from pymatgen.io.vasp.inputs import Incar

    p = _find(folder, "INCAR")
    if p is None:
        return {}
    try:
        return dict(Incar.from_file(p))
    except Exception as exc:  # noqa: BLE001 - a broken INCAR is a record problem, not a crash
        log.warning("%s: unreadable INCAR (%s)", p, exc)
        return {}


def _read_vasprun(path: Path, rec: dict, folder: Path) -> None:
    from lxml.etree import XMLSyntaxError
    from pymatgen.io.ase import AseAtomsAdaptor
    from pymatgen.io.vasp.outputs import Vasprun

    kw = dict(parse_dos=False, parse_eigen=False, parse_projected_eigen=False, parse_potcar_file=False)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        try:
            vr = Vasprun(str(path), **kw)
        except XMLSyntaxError as exc:
            _problem(rec, f"truncated {path.name}: the XML ends before the run finished ({exc})")
            try:
                vr = Vasprun(str(path), exception_on_bad_xml=False, **kw)
            except Exception:  # noqa: BLE001
                return
            # a partial run cannot be trusted, whatever pymatgen claims about convergence
            rec["meta"]["truncated"] = True
        except Exception as exc:  # noqa: BLE001
            _problem(rec, f"unreadable {path.name} ({type(exc).__name__}: {exc})")
            return
    incar = dict(vr.incar)
    params = dict(vr.parameters)
    species = _species_order(list(vr.atomic_symbols))
    rec["functional"] = _functional(incar)
    rec["ivdw"] = int(incar.get("IVDW", 0) or 0)
    rec["encut_eV"] = float(incar.get("ENCUT", params.get("ENMAX", np.nan)))
    rec["ldau"], rec["ldau_u"] = _ldau_string(incar, species)
    rec["ispin"] = int(params.get("ISPIN", incar.get("ISPIN", 1)))
    if not vr.ionic_steps:
        _problem(rec, f"{path.name} holds no completed ionic step")
        return
    if not rec["meta"].get("truncated"):
        rec["converged_ionic"] = bool(vr.converged_ionic)
        rec["converged_electronic"] = bool(vr.converged_electronic)
        rec["meta"]["nelm"] = int(params.get("NELM", 60))
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        rec["energy_eV"] = float(vr.final_energy)
    rec["free_energy_eV"] = float(vr.ionic_steps[-1].get("e_fr_energy", np.nan))
    rec["energy_kind"] = "e_0_energy"
    rec["fmax_eV_A"] = _fmax(vr.ionic_steps[-1].get("forces"))
    _set_atoms(rec, AseAtomsAdaptor.get_atoms(vr.final_structure))
    # magnetic moments are not in vasprun.xml: take them from an OUTCAR beside it, if any
    outcar = _find(folder, "OUTCAR")
    if outcar is not None and rec["ispin"] == 2:
        try:
            from ase.io import read

            at = read(str(outcar), index=-1, format="vasp-out")
            rec["magmom"] = float(at.get_magnetic_moment())
            rec["magmoms"] = [float(m) for m in at.get_magnetic_moments()]
        except Exception:  # noqa: BLE001 - magnetisation is optional
            pass




def _outcar_text_tail(path: Path) -> str:
    from monty.io import zopen

    with zopen(str(path), "rt", errors="replace") as fh:
        return fh.read()


def _read_outcar(path: Path, rec: dict, folder: Path) -> None:
    from ase.io import read
    from pymatgen.io.vasp.outputs import Oszicar

    incar = _read_incar(folder)
    text = _outcar_text_tail(path)
    if "General timing and accounting" not in text:
        _problem(rec, f"truncated {path.name}: no 'General timing and accounting' footer (run did not finish)")
        rec["converged_ionic"] = False
    try:
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            at = read(str(path), index=-1, format="vasp-out")
    except Exception as exc:  # noqa: BLE001
        _problem(rec, f"unreadable {path.name} ({type(exc).__name__}: {exc}); no completed ionic step")
        return
    species = _species_order(at.get_chemical_symbols())
    if not incar:
        _problem(rec, "no INCAR beside the OUTCAR: settings unknown")
    rec["functional"] = _functional(incar) if incar else ""
    rec["ivdw"] = int(incar.get("IVDW", 0) or 0)
    rec["encut_eV"] = float(incar.get("ENCUT", np.nan))
    rec["ldau"], rec["ldau_u"] = _ldau_string(incar, species)
    rec["ispin"] = int(incar.get("ISPIN", 1))
    calc = at.calc
    rec["energy_eV"] = float(calc.results.get("energy", np.nan))
    rec["free_energy_eV"] = float(calc.results.get("free_energy", np.nan))
    rec["energy_kind"] = "e_0_energy"
    rec["fmax_eV_A"] = _fmax(calc.results.get("forces"))
    if "magmoms" in calc.results:
        rec["magmoms"] = [float(m) for m in calc.results["magmoms"]]
    if "magmom" in calc.results:
        rec["magmom"] = float(calc.results["magmom"])
    contcar = _find(folder, "CONTCAR")
    if contcar is not None:
        try:
            at_c = read(str(contcar), format="vasp")
            if len(at_c) == len(at):
                at = at_c
        except Exception:  # noqa: BLE001 - fall back to the OUTCAR geometry
            pass
    at.calc = None
    _set_atoms(rec, at)
    # ionic convergence: VASP prints this line when EDIFFG is met; single points (NSW <= 1 / IBRION -1) count
    nsw, ibrion = int(incar.get("NSW", 0) or 0), int(incar.get("IBRION", -1 if int(incar.get("NSW", 0) or 0) <= 1 else 0))
    if rec["converged_ionic"] is None:
        rec["converged_ionic"] = bool("reached required accuracy" in text or nsw <= 1 or ibrion == -1)
    # electronic convergence of the last ionic step: number of SCF steps against NELM
    nelm = int(incar.get("NELM", 60))
    oszicar = _find(folder, "OSZICAR")
    n_scf = None
    if oszicar is not None:
        try:
            steps = Oszicar(str(oszicar)).electronic_steps
            n_scf = len(steps[-1]) if steps else None
        except Exception:  # noqa: BLE001
            n_scf = None
    if n_scf is None:
        last = text.rsplit("FREE ENERGIE OF THE ION-ELECTRON SYSTEM", 1)[0]
        its = re.findall(r"Iteration\s+(\d+)\(\s*(\d+)\)", last)
        n_scf = int(its[-1][1]) if its else None
    rec["meta"]["nelm"] = nelm
    rec["converged_electronic"] = None if n_scf is None else bool(n_scf < nelm)
    if n_scf is None:
        _problem(rec, "cannot tell electronic convergence (no OSZICAR and no SCF iterations in OUTCAR)")


def read_vasp_folder(folder: str | os.PathLike, source: str | None = None) -> dict:
    """One record (dict with :data:`RECORD_COLUMNS`) from a VASP calculation folder.

    Raises :class:`AnalysisInputError` only if the folder holds neither vasprun.xml nor OUTCAR.
    """
    folder = Path(folder)
    vasprun, outcar = _find(folder, "vasprun.xml"), _find(folder, "OUTCAR")
    if vasprun is None and outcar is None:
        raise AnalysisInputError(f"{folder}: no vasprun.xml or OUTCAR (plain or .gz) in this folder")
    rec = _empty_record(source or str(folder), str(folder), "vasprun" if vasprun else "outcar")
    if vasprun is not None:
        _read_vasprun(vasprun, rec, folder)
    else:
        _read_outcar(outcar, rec, folder)
    _attach_bader(rec, folder)
    return _finish(rec)


# -------------------------------------------------------------------------------------------------- CML
def read_cml(path: str | os.PathLike, source: str | None = None) -> dict:
    """One record from an ioChem-BD CML export (layout: /work/shared/reference/workflows.md, "ioChem-BD").

    Final geometry (``cc:finalization`` molecule, cell from a, b, c, α, β, γ), energy ``cc:e0`` (sigma→0, eV),
    INCAR parameters from ``cc:initialization``; IVDW from an INCAR next to the file. The CML holds no record of
    convergence: a published calculation is taken as converged (``meta['convergence'] = 'assumed'``).
    """
    from ase import Atoms
    from ase.geometry import cellpar_to_cell
    from lxml import etree

    path = Path(path)
    rec = _empty_record(source or str(path), str(path), "cml")
    parser = etree.XMLParser(resolve_entities=False, no_network=True, huge_tree=False, load_dtd=False)
    try:
        root = etree.parse(str(path), parser).getroot()
    except (etree.XMLSyntaxError, OSError) as exc:
        _problem(rec, f"unreadable CML ({exc})")
        return _finish(rec)
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
        _problem(rec, "no cc:finalization module (calculation did not finish)")
        return _finish(rec)
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
            _set_atoms(rec, atoms)
        except (TypeError, ValueError, IndexError) as exc:
            _problem(rec, f"bad final geometry in CML ({exc})")
    energies = fin.xpath(".//cml:property[@dictRef='cc:energies']//cml:scalar", namespaces=ns)
    by_ref = {e.get("dictRef"): e.text for e in energies}
    try:
        if by_ref.get("cc:e0") is not None:
            rec["energy_eV"], rec["energy_kind"] = float(by_ref["cc:e0"]), "e_0_energy"
        if by_ref.get("cc:freeEnergy") is not None:
            rec["free_energy_eV"] = float(by_ref["cc:freeEnergy"])
    except ValueError as exc:
        _problem(rec, f"bad energy value in CML ({exc})")
    incar = {
        "GGA": param("gga"), "ISPIN": param("ispin"), "LDAU": param("ldau"), "ENCUT": param("energyCutoff"),
    }  # fmt: skip
    uu = job.xpath(
        ".//cml:module[@dictRef='cc:initialization']//cml:parameter[@dictRef='v:ldauu']/*", namespaces=ns
    )
    side_incar = _read_incar(path.parent)
    rec["functional"] = _functional({"GGA": incar["GGA"], **{k: side_incar[k] for k in ("METAGGA", "LHFCALC")
                                                              if k in side_incar}})
    rec["ivdw"] = int(side_incar.get("IVDW", 0) or 0)
    if not side_incar:
        rec["meta"]["ivdw"] = "unknown (no INCAR beside the CML)"
    rec["encut_eV"] = float(incar["ENCUT"]) if incar["ENCUT"] else float(side_incar.get("ENCUT", np.nan))
    rec["ispin"] = int(float(incar["ISPIN"])) if incar["ISPIN"] else int(side_incar.get("ISPIN", 1))
    ldau_on = str(incar["LDAU"]).strip().lower() in ("true", ".true.", "t", "1") if incar["LDAU"] else False
    if ldau_on and rec["atoms"] is not None:
        u_vals = uu[0].text.split() if uu and uu[0].text else []
        rec["ldau"], rec["ldau_u"] = _ldau_string(
            {"LDAU": True, "LDAUU": [float(u) for u in u_vals]}, _species_order(rec["atoms"].get_chemical_symbols())
        )
    rec["converged_electronic"] = rec["converged_ionic"] = True
    rec["meta"]["convergence"] = "assumed (CML export records no convergence)"
    _attach_bader(rec, path.parent)
    return _finish(rec)


# --------------------------------------------------------------------------------------------- ASE db
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

    if not str(url).startswith(("postgresql://", "postgres://")) and not Path(url).is_file():
        raise FileNotFoundError(f"{url}: database file not found")
    try:
        db = ase.db.connect(str(url))
        rows = list(db.select(selection) if selection else db.select())
    except Exception as exc:  # noqa: BLE001
        raise AnalysisInputError(f"{url}: cannot read as an ASE database ({type(exc).__name__}: {exc})") from exc
    out = []
    for row in rows:
        kv = dict(row.key_value_pairs)
        calc_dir = str(kv.get("calc_dir") or f"{url}#id={row.id}")
        rec = _empty_record(str(url), calc_dir, "ase-db")
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
        # settings: the calculator label and hash stand for functional/cut-off/U when no explicit keys exist
        rec["functional"] = str(kv.get("functional") or kv.get("calculator_name") or row.get("calculator") or "")
        # one settings hash per calculation variant (workflows.settings): rows of different hashes never mix
        rec["settings_id"] = str(kv.get("settings_hash", ""))
        rec["ivdw"] = int(kv.get("ivdw", 0))
        rec["encut_eV"] = float(kv.get("encut_eV", np.nan))
        rec["ldau_u"] = str(kv.get("ldau_u", ""))
        if not rec["ldau_u"] and kv.get("hubbard_u_eV") is not None:
            rec["ldau_u"] = f"U:{float(kv['hubbard_u_eV']):g}"
        rec["ldau"] = bool(rec["ldau_u"])
        rec["ispin"] = int(kv.get("ispin", 2 if kv.get("spin_polarised") else 1))
        _set_atoms(rec, row.toatoms())
        data = row.data or {}
        if data.get("charges") is not None and len(data["charges"]) == len(rec["atoms"]):
            rec["charges"] = [float(c) for c in data["charges"]]
            rec["charge_method"] = str(data.get("charge_method", "unknown"))
        if rec["converged_electronic"] is None or rec["converged_ionic"] is None:
            _problem(rec, "database row has no convergence keys")
        out.append(_finish(rec))
    return out


# --------------------------------------------------------------------------------------- trees, archives
def _is_archive(p: Path) -> bool:
    return p.is_file() and p.name.lower().endswith(ARCHIVE_SUFFIXES)


def safe_extract(archive: str | os.PathLike, dest: str | os.PathLike, max_bytes: int = MAX_ARCHIVE_BYTES,
                 max_members: int = MAX_ARCHIVE_MEMBERS) -> Path:
    """Extract a .zip / .tar[.gz|.bz2|.xz] into ``dest`` refusing path traversal, links and oversize content.

    Raises :class:`AnalysisInputError` naming the archive and the offending member.
    """
    archive, dest = Path(archive), Path(dest)
    dest.mkdir(parents=True, exist_ok=True)
    root = dest.resolve()

    def check_name(name: str) -> Path:
        if name.startswith(("/", "\\")) or re.match(r"^[A-Za-z]:", name) or ".." in Path(name).parts:
            raise AnalysisInputError(f"{archive}: unsafe member path {name!r} (absolute or '..')")
        target = (root / name).resolve()
        if root != target and root not in target.parents:
            raise AnalysisInputError(f"{archive}: member {name!r} would be written outside the extraction folder")
        return target

    if zipfile.is_zipfile(archive):
        with zipfile.ZipFile(archive) as zf:
            infos = zf.infolist()
            if len(infos) > max_members:
                raise AnalysisInputError(f"{archive}: {len(infos)} members exceed the limit of {max_members}")
            total = sum(i.file_size for i in infos)
            if total > max_bytes:
                raise AnalysisInputError(f"{archive}: uncompressed size {total} B exceeds the limit {max_bytes} B")
            for info in infos:
                target = check_name(info.filename)
                if (info.external_attr >> 16) & 0o170000 == 0o120000:
                    raise AnalysisInputError(f"{archive}: member {info.filename!r} is a symbolic link")
                if info.is_dir():
                    target.mkdir(parents=True, exist_ok=True)
                    continue
                target.parent.mkdir(parents=True, exist_ok=True)
                written = 0
                with zf.open(info) as src, open(target, "wb") as dst:
                    while chunk := src.read(1 << 20):
                        written += len(chunk)
                        if written > info.file_size or written > max_bytes:
                            raise AnalysisInputError(f"{archive}: member {info.filename!r} is larger than declared")
                        dst.write(chunk)
        return dest
    try:
        tf = tarfile.open(archive, "r:*")
    except (tarfile.TarError, OSError) as exc:
        raise AnalysisInputError(f"{archive}: not a readable zip or tar archive ({exc})") from exc
    with tf:
        members = []
        total = 0
        for m in tf:
            if len(members) >= max_members:
                raise AnalysisInputError(f"{archive}: more than {max_members} members")
            check_name(m.name)
            if m.issym() or m.islnk():
                raise AnalysisInputError(f"{archive}: member {m.name!r} is a link")
            if not (m.isfile() or m.isdir()):
                raise AnalysisInputError(f"{archive}: member {m.name!r} is a device or special file")
            total += m.size
            if total > max_bytes:
                raise AnalysisInputError(f"{archive}: uncompressed size exceeds the limit {max_bytes} B")
            members.append(m)
        tf.extractall(dest, members=members, filter="data")
    return dest


def _is_calc_folder(d: Path) -> bool:
    return _find(d, "vasprun.xml") is not None or _find(d, "OUTCAR") is not None


def _walk(root: Path, stack: ExitStack, depth: int, tasks: list[tuple], prefix: tuple[str, str] | None) -> None:
    """Depth-first walk collecting ``(reader, path, prefix)`` tasks: a folder with vasprun/OUTCAR is one VASP
    calculation (its sub-folders are walked too), ``*.cml`` files elsewhere are read, archives are extracted.
    ``prefix`` = (temp dir, archive path) rewrites folder names inside archives."""
    if root.is_file():
        if _is_archive(root):
            if depth >= MAX_ARCHIVE_DEPTH:
                log.warning("%s: archive nested too deep, skipped", root)
                return
            tmp = Path(stack.enter_context(tempfile.TemporaryDirectory(prefix="sacmap-archive-")))
            safe_extract(root, tmp)
            shown = str(root) if prefix is None else str(root).replace(prefix[0], prefix[1])
            _walk(tmp, stack, depth + 1, tasks, (str(tmp), f"{shown}!"))
            return
        if root.name.lower().endswith(".cml"):
            tasks.append(("cml", root, prefix))
            return
        if root.name.startswith(("vasprun.xml", "OUTCAR")):
            tasks.append(("vasp", root.parent, prefix))
            return
        raise AnalysisInputError(f"{root}: not a calculation folder, archive, .cml file or database")
    if _is_calc_folder(root):
        tasks.append(("vasp", root, prefix))
    else:
        for cml in sorted(root.glob("*.cml")):
            tasks.append(("cml", cml, prefix))
    for child in sorted(root.iterdir()):
        if child.is_symlink():
            continue
        if child.is_dir() or _is_archive(child):
            _walk(child, stack, depth, tasks, prefix)


def load_records(sources, progress: bool = False) -> pd.DataFrame:
    """Tidy records (one row per calculation, :data:`RECORD_COLUMNS`) from folders, trees, archives, CML files
    and ASE databases (``*.db`` path or ``postgresql://`` URL). Unusable rows are kept with ``problems`` set;
    ``progress`` shows a tqdm bar over the calculations found.
    """
    if isinstance(sources, (str, os.PathLike)):
        sources = [sources]
    records: list[dict] = []
    with ExitStack() as stack:
        tasks: list[tuple] = []
        for src in sources:
            s = str(src)
            if is_db_source(s):
                tasks.append(("db", s, None))
                continue
            p = Path(s)
            if not p.exists():
                raise FileNotFoundError(f"{s}: no such file or folder")
            n0 = len(tasks)
            _walk(p, stack, 0, tasks, None)
            tasks[n0:] = [(*t, s) for t in tasks[n0:]]
        it = tasks
        if progress:
            from tqdm import tqdm

            it = tqdm(tasks, desc="reading", unit="calc")
        for task in it:
            reader, path, prefix = task[:3]
            if reader == "db":
                records.extend(read_ase_db(path))
                continue
            source = task[3]
            rec = read_cml(path, source) if reader == "cml" else read_vasp_folder(path, source)
            if prefix is not None:  # report folders relative to the archive, not the temp dir
                rec["calc_dir"] = rec["calc_dir"].replace(prefix[0], prefix[1])
                rec["problems"] = rec["problems"].replace(prefix[0], prefix[1])
            records.append(rec)
    df = pd.DataFrame(records, columns=RECORD_COLUMNS)
    for _, row in df[~df["usable"]].iterrows() if len(df) else []:
        log.warning("flagged: %s", row["problems"])
    return df


def records_from_atoms(atoms_list, energies=None, source: str = "memory", converged: bool = True,
                       **settings) -> pd.DataFrame:
    """Records from in-memory structures (e.g. a machine-learned relaxation or a test set).

    ``energies`` (eV; default each structure's ``calc`` energy) and ``settings`` (``functional``, ``ivdw``,
    ``encut_eV``, ``ldau_u``, ``energy_kind``...) fill the columns; ``calc_dir`` is ``info["id"]`` or the index.
    """
    rows = []
    for k, at in enumerate(atoms_list):
        name = str(at.info.get("id", k))
        rec = _empty_record(source, f"{source}:{name}", "memory")
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
        _set_atoms(rec, atc)
        rows.append(_finish(rec))
    return pd.DataFrame(rows, columns=RECORD_COLUMNS)
