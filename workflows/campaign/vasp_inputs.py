"""VASP inputs from pymatgen's ``MPRelaxSet`` (``vdw="dftd3"``) driven by a preset (``inputs/vasp/*.yaml``).

What the preset fixes (see ``pbe-d3.yaml``): the INCAR overrides (ENCUT 450 eV, EDIFF 1e-5 eV, EDIFFG 1e-4 eV,
ISIF 2, Gaussian smearing), a Γ-centred k-grid (2 along each in-plane lattice vector, 1 along the vacuum one,
whichever cell vector that is), ISPIN 2 with a MAGMOM on the metal atoms for spin-polarised configurations
(``info["spin_polarised"]``) and ISPIN 1 otherwise, and for +U presets Dudarev LDAU arrays (U on the metal's d
states, none elsewhere) in pymatgen's species order (the order of ``Poscar.site_symbols``).

POTCARs come from ``PMG_VASP_PSP_DIR`` (environment or ``~/.config/.pmgrc.yaml``). Without one,
``POTCAR.spec`` (the POTCAR symbols) is written instead, and VASP cannot run there.
"""

from __future__ import annotations

import logging
import os
from pathlib import Path

import numpy as np
from ase import Atoms

from sacmap.core.constants import is_metal
from sacmap.structures import slab_kpoint_grid

log = logging.getLogger(__name__)


def vacuum_axis(atoms: Atoms) -> int:
    """Index (0, 1, 2) of the cell vector along which the sheet has its vacuum.

    The single non-periodic direction when ``pbc`` says so; otherwise the cell vector along which the atoms'
    fractional coordinates leave the largest empty gap (Å).
    """
    nonper = [i for i, p in enumerate(atoms.pbc) if not p]
    if len(nonper) == 1:
        return nonper[0]
    frac = atoms.get_scaled_positions(wrap=True)
    lengths = atoms.cell.lengths()
    gaps = []
    for ax in range(3):
        f = np.sort(frac[:, ax])
        d = np.diff(np.concatenate([f, [f[0] + 1.0]]))
        gaps.append(float(d.max()) * lengths[ax] * _height_factor(atoms, ax))
    return int(np.argmax(gaps))


def _height_factor(atoms: Atoms, ax: int) -> float:
    """Plane spacing / |a_ax|: converts a fractional gap along ``ax`` to a distance perpendicular to the plane."""
    cell = atoms.cell.array
    normal = np.cross(cell[(ax + 1) % 3], cell[(ax + 2) % 3])
    return abs(np.dot(cell[ax], normal)) / (np.linalg.norm(normal) * np.linalg.norm(cell[ax]))


GAS_KINDS = ("gas_atom", "gas_dimer")


def kpoints_for(atoms: Atoms, settings: dict, meta: dict | None = None) -> tuple[int, int, int]:
    """Γ-centred subdivisions by the structures package's slab rule (:func:`sacmap.structures.slab_kpoint_grid`):
    the preset's ``kpoints.in_plane`` along the in-plane vectors, ``kpoints.vacuum`` along :func:`vacuum_axis`.

    Gas references (``meta["kind"]`` ``gas_atom`` / ``gas_dimer``, or a cell periodic in no direction) get the Γ
    point only (1 × 1 × 1), as the structures package records for them; custodian then runs the worker's Γ-only
    VASP command when one is configured.
    """
    if (meta or {}).get("kind") in GAS_KINDS or not any(atoms.pbc):
        return (1, 1, 1)
    kp = settings["kpoints"]
    return slab_kpoint_grid(vacuum_axis(atoms), int(kp["in_plane"]), int(kp["vacuum"]))


def metal_symbols(atoms: Atoms, meta: dict | None = None) -> list[str]:
    """Metal element symbols of a configuration (``meta["metals"]`` if given, else every atom that
    :func:`sacmap.core.constants.is_metal`)."""
    if meta and meta.get("metals"):
        return [s for s in str(meta["metals"]).split(",") if s]
    return list(dict.fromkeys(s for s in atoms.get_chemical_symbols() if is_metal(s)))


def incar_overrides(atoms: Atoms, meta: dict, settings: dict, *, static: bool = False,
                    worker_incar: dict | None = None) -> dict:
    """``user_incar_settings`` for MPRelaxSet: preset INCAR, spin, +U (per-element dicts), static additions, and
    the worker's parallelisation tags (``worker_incar``: NCORE/KPAR/NPAR/NSIM from my_fworker.yaml; outside the
    settings hash because they do not change results)."""
    metals = set(metal_symbols(atoms, meta))
    incar = dict(settings.get("incar") or {})
    if meta.get("spin_polarised"):
        incar["ISPIN"] = 2
    else:
        incar["ISPIN"] = 1
        incar["MAGMOM"] = None  # None removes the tag
    hub = settings.get("hubbard")
    symbols = list(dict.fromkeys(atoms.get_chemical_symbols()))
    if hub and metals:
        incar.update({
            "LDAU": True,
            "LDAUTYPE": int(hub["type"]),
            "LDAUL": {s: (int(hub["l"]) if s in metals else -1) for s in symbols},
            "LDAUU": {s: (float(hub["u_eV"]) if s in metals else 0.0) for s in symbols},
            "LDAUJ": {s: (float(hub["j_eV"]) if s in metals else 0.0) for s in symbols},
            "LDAUPRINT": 1,
            "LMAXMIX": 4,
        })
    else:
        incar["LDAU"] = False
        for key in ("LDAUTYPE", "LDAUL", "LDAUU", "LDAUJ", "LDAUPRINT"):
            incar[key] = None
    if static:
        incar.update((settings.get("static") or {}).get("incar") or {})
    incar.update(worker_incar or {})
    return incar


def input_set(atoms: Atoms, meta: dict, settings: dict, *, static: bool = False, worker_incar: dict | None = None):
    """The pymatgen ``MPRelaxSet`` of a configuration under a preset's settings."""
    from pymatgen.io.ase import AseAtomsAdaptor
    from pymatgen.io.vasp.inputs import Kpoints
    from pymatgen.io.vasp.sets import MPRelaxSet

    structure = AseAtomsAdaptor.get_structure(atoms)
    metals = set(metal_symbols(atoms, meta))
    m0 = float((settings.get("spin") or {}).get("metal_magmom", 2.0))
    structure.add_site_property("magmom", [m0 if sp.symbol in metals else 0.0 for sp in structure.species])
    kwargs = {}
    if settings.get("potcar_functional"):
        kwargs["user_potcar_functional"] = settings["potcar_functional"]
    return MPRelaxSet(
        structure,
        vdw=settings.get("vdw"),
        user_incar_settings=incar_overrides(atoms, meta, settings, static=static, worker_incar=worker_incar),
        user_kpoints_settings=Kpoints.gamma_automatic(kpoints_for(atoms, settings, meta)),
        **kwargs,
    )


def potcar_library_available() -> bool:
    """True when pymatgen can find a POTCAR library (``PMG_VASP_PSP_DIR``)."""
    from pymatgen.core import SETTINGS

    psp = os.environ.get("PMG_VASP_PSP_DIR") or SETTINGS.get("PMG_VASP_PSP_DIR")
    return bool(psp) and Path(psp).expanduser().is_dir()


def write_inputs(atoms: Atoms, meta: dict, settings: dict, directory: str | Path, *, static: bool = False,
                 worker_incar: dict | None = None) -> dict:
    """Write INCAR, KPOINTS, POSCAR and POTCAR (or POTCAR.spec without a POTCAR library) into ``directory``.

    Returns ``{"potcar_spec": bool, "site_symbols": [...], "kpoints": (n1, n2, n3)}``.
    """
    directory = Path(directory)
    vis = input_set(atoms, meta, settings, static=static, worker_incar=worker_incar)
    spec_only = not potcar_library_available()
    if spec_only:
        log.warning("PMG_VASP_PSP_DIR is not set: writing POTCAR.spec only; VASP cannot run without POTCARs")
    vis.write_input(str(directory), potcar_spec=spec_only)
    return {"potcar_spec": spec_only, "site_symbols": vis.poscar.site_symbols,
            "kpoints": kpoints_for(atoms, settings, meta)}
