"""Walking sources into records: any tree of VASP folders (any nesting and naming), ``*.cml`` files, ``.zip`` /
``.tar[.gz|.bz2|.xz]`` archives of them, and ASE databases.

Archives are extracted into a temporary folder with size and member-count limits; absolute paths, ``..``
components, links and device files are refused (:func:`safe_extract`).
"""

from __future__ import annotations

import logging
import os
import re
import tarfile
import tempfile
import zipfile
from contextlib import ExitStack
from pathlib import Path

import pandas as pd

from sacmap.analysis.energetics.readers.cml import read_cml
from sacmap.analysis.energetics.readers.database import is_db_source, read_ase_db
from sacmap.analysis.energetics.readers.records import RECORD_COLUMNS
from sacmap.analysis.energetics.readers.vasp import is_calc_folder, read_vasp_folder
from sacmap.analysis.errors import AnalysisInputError

log = logging.getLogger(__name__)

ARCHIVE_SUFFIXES = (".zip", ".tar", ".tar.gz", ".tgz", ".tar.bz2", ".tbz2", ".tar.xz", ".txz")
MAX_ARCHIVE_BYTES = 4 * 1024**3  # total uncompressed size accepted from one archive
MAX_ARCHIVE_MEMBERS = 200_000
MAX_ARCHIVE_DEPTH = 2  # archives inside archives inside the source


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
    if is_calc_folder(root):
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
