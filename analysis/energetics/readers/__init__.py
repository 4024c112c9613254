"""Read finished calculations into tidy records (one row per calculation; energies in eV, forces in eV/Å).

Every source gives the same columns (:data:`RECORD_COLUMNS`, :mod:`.records`):

* VASP calculation folders (:mod:`.vasp`: ``vasprun.xml`` preferred; ``OUTCAR`` + ``OSZICAR`` + ``CONTCAR``
  otherwise; compressed files too);
* ioChem-BD CML exports (:mod:`.cml`);
* our ASE results database (:mod:`.database`: ``ase.db`` SQLite path or ``postgresql://`` URL);
* Bader charges from an ``ACF.dat`` beside a calculation (:mod:`.bader`);
* any tree of such folders and ``.zip`` / ``.tar[.gz|.bz2|.xz]`` archives, walked by :func:`load_records`
  (:mod:`.sources`).

Problems (truncated files, unconverged runs, missing energies) never raise: the record gets a ``problems`` text
naming the folder and the exact problem and ``usable = False``. Only bad *sources* (a path that does not exist,
an unsafe archive, an unreadable database) raise :class:`~sacmap.analysis.errors.AnalysisInputError`.
"""

from sacmap.analysis.energetics.readers.bader import parse_acf, read_acf
from sacmap.analysis.energetics.readers.cml import read_cml
from sacmap.analysis.energetics.readers.database import is_db_source, read_ase_db
from sacmap.analysis.energetics.readers.records import RECORD_COLUMNS, records_from_atoms
from sacmap.analysis.energetics.readers.sources import load_records, safe_extract
from sacmap.analysis.energetics.readers.vasp import (
    VasprunData,
    oszicar_magmom,
    read_vasp_folder,
    read_vasprun,
)

__all__ = [
    "RECORD_COLUMNS", "VasprunData", "is_db_source", "load_records", "oszicar_magmom", "parse_acf", "read_acf",
    "read_ase_db", "read_cml", "read_vasp_folder", "read_vasprun", "records_from_atoms", "safe_extract",
]
