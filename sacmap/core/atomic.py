"""The one atomic writer of sacmap: a temporary file in the target's folder, then ``os.replace``, so a reader (or
a rerun after a crash) never sees a half-written file and a failed write leaves the previous file in place.

Files get the permissions an ordinary ``open()`` would give them (``0o666`` less the process umask), not the
``0o600`` of :func:`tempfile.mkstemp`, so results in a shared group folder stay readable by colleagues.

Inputs are never overwritten: while :func:`protect_inputs` holds a command's input files, every writer here refuses
(:class:`~sacmap.core.errors.OutputCollision`, one line, exit 2) to replace one of them, whatever the output
folder or file name the user chose.
"""

from __future__ import annotations

import contextlib
import json
import os
import tempfile
import threading
from collections.abc import Callable, Iterable, Iterator
from pathlib import Path

from sacmap.core.errors import OutputCollision
from sacmap.core.jsonable import jsonable


def _read_umask() -> int:
    mask = os.umask(0)
    os.umask(mask)
    return mask


# Read once, at import: os.umask can only be read by setting it, and setting it while other threads (the web
# app's worker, FireWorks) create files would give those files the wrong permissions.
_FILE_MODE = 0o666 & ~_read_umask()


_PROTECTED: dict[tuple[int, int] | str, str] = {}
_PROTECTED_LOCK = threading.Lock()


def _identity(path: Path) -> tuple[int, int] | str:
    """(device, inode) of an existing file (the same file under any name or link), else its resolved path."""
    try:
        st = os.stat(path)
        return (st.st_dev, st.st_ino)
    except OSError:
        return str(Path(path).resolve())


@contextlib.contextmanager
def protect_inputs(paths: Iterable[str | os.PathLike]) -> Iterator[None]:
    """While the block runs, no writer of this module replaces any of ``paths`` (existing files; folders and
    missing paths are ignored): such a write raises :class:`~sacmap.core.errors.OutputCollision` naming the file.

    Used by the CLI around every command (its file arguments) and by commands that expand folders into input
    files. Nested and concurrent blocks add to one process-wide set.
    """
    keys = []
    with _PROTECTED_LOCK:
        for p in paths:
            p = Path(p)
            if p.is_file():
                key = _identity(p)
                if key not in _PROTECTED:
                    _PROTECTED[key] = str(p)
                    keys.append(key)
    try:
        yield
    finally:
        with _PROTECTED_LOCK:
            for key in keys:
                _PROTECTED.pop(key, None)


def check_not_input(path: str | os.PathLike) -> None:
    """Raise :class:`~sacmap.core.errors.OutputCollision` when ``path`` is a protected input (see
    :func:`protect_inputs`)."""
    if not _PROTECTED:
        return
    p = Path(path)
    if p.exists() and _identity(p) in _PROTECTED:
        raise OutputCollision(f"{p}: refusing to overwrite an input file of this command; choose another output "
                              f"folder or name")


def output_dir(path: str | os.PathLike) -> Path:
    """Make sure ``path`` is a folder this process can write (created with its parents when missing), before a
    command starts on its inputs; returns it.

    Raises :class:`OSError` naming the path (one line for the CLI, exit 2): :class:`FileExistsError` when it is a
    file, :class:`PermissionError` when it (or the first existing folder above it) cannot be written or lies on a
    read-only file system.
    """
    import errno

    path = Path(path)
    if path.exists() and not path.is_dir():
        raise FileExistsError(errno.EEXIST, "exists and is not a folder", str(path))
    try:
        path.mkdir(parents=True, exist_ok=True)
    except FileExistsError:
        raise FileExistsError(errno.EEXIST, "a part of the path is a file, not a folder", str(path)) from None
    except OSError as exc:
        blocked = next((p for p in [path, *path.parents] if p.exists()), path)
        reason = exc.strerror or str(exc)
        raise PermissionError(exc.errno or errno.EACCES, f"cannot write here ({reason})", str(blocked)) from None
    try:
        fd, probe = tempfile.mkstemp(dir=path, prefix=".sacmap-write-test.")
        os.close(fd)
        os.unlink(probe)
    except OSError as exc:
        raise PermissionError(exc.errno or errno.EACCES, f"cannot write here ({exc.strerror or exc})",
                              str(path)) from None
    return path


def atomic_write_with(path: str | os.PathLike, write: Callable[[Path], object], *, fsync: bool = False) -> Path:
    """Write ``path`` atomically through ``write(tmp)``, which fills a temporary path in the same folder.

    The temporary path keeps ``path``'s suffix (``.png``, ``.tif``, ``.extxyz``, ...), so writers that pick a
    format from the file name (matplotlib, tifffile, ase.io) behave as they would on ``path``. Parent folders are
    created; the temporary file is removed on any error. A protected input (:func:`protect_inputs`) is never
    replaced. Returns ``path``.
    """
    path = Path(path)
    check_not_input(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp_name = tempfile.mkstemp(dir=path.parent, prefix=f".{path.stem}.", suffix=f".tmp{path.suffix}")
    os.close(fd)
    tmp = Path(tmp_name)
    try:
        write(tmp)
        if fsync:
            with open(tmp, "rb+") as fh:
                os.fsync(fh.fileno())
        os.chmod(tmp, _FILE_MODE)
        os.replace(tmp, path)
    except BaseException:
        tmp.unlink(missing_ok=True)
        raise
    return path


def atomic_write(path: str | os.PathLike, data: str | bytes, *, fsync: bool = False) -> Path:
    """Write ``data`` (text as UTF-8, or bytes) to ``path`` atomically; returns the path.

    ``fsync`` forces the bytes to disk before the rename (for stores that must survive a power loss or SIGKILL).
    """
    raw = data.encode("utf-8") if isinstance(data, str) else bytes(data)
    return atomic_write_with(path, lambda tmp: tmp.write_bytes(raw), fsync=fsync)


def write_json(path: str | os.PathLike, data, *, indent: int = 2) -> Path:
    """Atomic JSON of ``data`` after :func:`~sacmap.core.jsonable.jsonable` (NaN/inf written as null)."""
    return atomic_write(path, json.dumps(jsonable(data), indent=indent) + "\n")


def write_csv(path: str | os.PathLike, frame) -> Path:
    """Atomic CSV of a :class:`pandas.DataFrame` (no index column)."""
    return atomic_write(path, frame.to_csv(index=False))


def save_figure(fig, path: str | os.PathLike, *, close: bool = True, **savefig_kw) -> Path:
    """Atomic ``fig.savefig(path, **savefig_kw)`` (the format from the suffix); the figure is closed after."""
    try:
        return atomic_write_with(path, lambda tmp: fig.savefig(tmp, **savefig_kw))
    finally:
        if close:
            import matplotlib.pyplot as plt

            plt.close(fig)
