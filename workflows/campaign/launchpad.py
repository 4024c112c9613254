"""FireWorks LaunchPads: embedded (mongomock, one JSON store file) or a real MongoDB from ``my_launchpad.yaml``.

Embedded mode keeps the whole FireWorks database in ``<workdir>/launchpad.json``. mongomock-persistence would
write that file only when the interpreter exits (a SIGKILL loses everything), and two processes on one file
overwrite each other. So :class:`EmbeddedLaunchPad` loads the file itself, never registers the exit-time write,
is written by :meth:`EmbeddedLaunchPad.flush` (atomically: temp file + ``os.replace``) after every Firework, and
holds an exclusive ``flock`` on ``launchpad.lock`` while open: strictly one sequential process per store. Parallel
or multi-node runs use a real MongoDB through a launchpad file with exactly the same workflows.
"""

from __future__ import annotations

import contextlib
import dataclasses
import fcntl
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from sacmap.core.atomic import atomic_write
from sacmap.core.redact import redact_text
from sacmap.core.validation import dump, option, parse
from sacmap.core.yamlfile import read_mapping
from sacmap.workflows.errors import WorkflowInputError

STORE_NAME = "launchpad.json"
LOCK_NAME = "launchpad.lock"
LOG_LEVELS = ("DEBUG", "INFO", "WARNING", "ERROR", "CRITICAL")


def _non_blank(text: str) -> str:
    if not text.strip():
        raise ValueError("must not be empty")
    return text


@dataclass(frozen=True, kw_only=True)
class LaunchpadFile:
    """A FireWorks ``my_launchpad.yaml`` (MongoDB): the fields sacmap accepts, passed to ``LaunchPad.from_dict``."""

    host: str = option(check=_non_blank, doc="MongoDB host, or a mongodb+srv:// URI with uri_mode: true")
    port: int = option(27017, lo=1, hi=65535)
    name: str | None = option(None, doc="database name")
    username: str | None = None
    password: str | None = None
    authsource: str | None = option(None, doc="database holding the user")
    uri_mode: bool = False
    logdir: str | None = option(None, doc="FireWorks log folder (null: none)")
    strm_lvl: str | None = option(None, choices=LOG_LEVELS)
    user_indices: list[Any] | None = None
    wf_user_indices: list[Any] | None = None
    mongoclient_kwargs: dict[str, Any] | None = option(None, doc="passed to pymongo.MongoClient (TLS, timeouts)")
    # keys of older FireWorks launchpad files (FireWorks 1.x LaunchPad arguments; FireWorks 2 ignores them):
    # translated into pymongo's TLS options so they keep their meaning
    ssl: bool | None = option(None, doc="TLS on (FireWorks 1.x key)")
    ssl_ca_certs: str | None = option(None, doc="CA file (with ssl: true)")
    ssl_ca_file: str | None = option(None, doc="CA file (written by `lpad init`)")
    ssl_certfile: str | None = option(None, doc="client certificate (with ssl: true)")
    ssl_keyfile: str | None = option(None, doc="client key (with ssl: true)")
    ssl_pem_passphrase: str | None = None
    ssl_cert_reqs: str | None = None


LAUNCHPAD_KEYS = {f.name for f in dataclasses.fields(LaunchpadFile)}
LEGACY_TLS_KEYS = ("ssl", "ssl_ca_certs", "ssl_ca_file", "ssl_certfile", "ssl_keyfile", "ssl_pem_passphrase",
                   "ssl_cert_reqs")
TLS_FILE_KEYS = ("tlsCAFile", "tlsCertificateKeyFile", "tlsCRLFile", "ssl_ca_certs", "ssl_certfile", "ssl_keyfile")


def fireworks_launchpad_dict(given: dict, path: Path) -> dict:
    """The ``LaunchPad.from_dict`` mapping of a launchpad file: FireWorks' keys as given (FireWorks' defaults for
    the rest), the FireWorks 1.x TLS keys (``ssl``, ``ssl_ca_certs``, ``ssl_certfile``, ``ssl_keyfile``,
    ``ssl_pem_passphrase``; ``ssl_ca_file`` of ``lpad init``) turned into pymongo's ``tls*`` options as FireWorks
    1.x did (``ssl: false`` switches TLS off and its file keys are unused), and relative certificate paths
    resolved against the launchpad file's folder."""
    data = {k: v for k, v in given.items() if k not in LEGACY_TLS_KEYS}
    kwargs = dict(data.get("mongoclient_kwargs") or {})
    ssl_on = given.get("ssl")
    ca = given.get("ssl_ca_certs") or given.get("ssl_ca_file")
    if ssl_on or (ssl_on is None and given.get("ssl_ca_file")):
        kwargs.setdefault("tls", True)
        if ca:
            kwargs.setdefault("tlsCAFile", ca)
        if given.get("ssl_certfile"):
            kwargs.setdefault("tlsCertificateKeyFile", given["ssl_certfile"])
        if given.get("ssl_pem_passphrase"):
            kwargs.setdefault("tlsCertificateKeyFilePassword", given["ssl_pem_passphrase"])
        if str(given.get("ssl_cert_reqs") or "").upper() in ("CERT_NONE", "NONE"):
            kwargs.setdefault("tlsAllowInvalidCertificates", True)
    elif ssl_on is False:
        kwargs.setdefault("tls", False)
    for key in TLS_FILE_KEYS:
        if isinstance(kwargs.get(key), str):
            f = Path(kwargs[key]).expanduser()
            kwargs[key] = str(f if f.is_absolute() else (path.parent / f).resolve())
    if kwargs or "mongoclient_kwargs" in data:
        data["mongoclient_kwargs"] = kwargs
    return data


def _init_if_empty(lp) -> None:
    """Create FireWorks' id counters in a new, empty database (what ``lpad reset`` does, without wiping)."""
    if lp.fw_id_assigner.count_documents({}) == 0 and lp.fireworks.count_documents({}) == 0:
        lp.reset("", require_password=False)


class EmbeddedLaunchPad:
    """A LaunchPad on a mongomock store persisted to ``<directory>/launchpad.json``.

    Use as a context manager (or call :meth:`close`): it holds the lock while open. ``.lp`` is the FireWorks
    ``LaunchPad``.
    """

    def __init__(self, directory: str | Path, *, strm_lvl: str = "WARNING") -> None:
        import bson.json_util
        import mongomock
        import mongomock.gridfs
        import mongomock_persistence  # noqa: F401  (adds to_dict/from_dict to mongomock's store classes)
        from fireworks.core import launchpad as lpmod
        from mongomock.store import DatabaseStore, ServerStore

        self.directory = Path(directory).resolve()
        self.directory.mkdir(parents=True, exist_ok=True)
        self.path = self.directory / STORE_NAME
        self._lock_fh = open(self.directory / LOCK_NAME, "a+")  # noqa: SIM115
        try:
            fcntl.flock(self._lock_fh, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            self._lock_fh.close()
            raise WorkflowInputError(
                f"{self.path}: another sacmap process is using this embedded launchpad (one process only; use "
                "a MongoDB launchpad for parallel runs)"
            ) from None
        dct = {}
        if self.path.exists():
            text = self.path.read_text()
            try:
                dct = bson.json_util.loads(text) if text.strip() else {}
            except ValueError as exc:
                self.close()
                raise WorkflowInputError(f"{self.path}: corrupt launchpad store: {exc}") from exc
        store = ServerStore.__new__(ServerStore)  # no exit-time writer: we flush ourselves
        store._databases = {k: DatabaseStore.from_dict(v) for k, v in dct.items()}
        self._store = store
        mongomock.gridfs.enable_gridfs_integration()
        orig = lpmod.MongoClient

        def client(*args, **kwargs):
            return mongomock.MongoClient(*args, _store=store, **kwargs)

        lpmod.MongoClient = client
        try:
            self.lp = lpmod.LaunchPad(name="sacmap", strm_lvl=strm_lvl)
        finally:
            lpmod.MongoClient = orig
        _init_if_empty(self.lp)
        # Rocket's background ping thread would race the main thread on mongomock's unlocked collections (and
        # pings serve lost-run detection, which the single embedded process does itself): no pings here.
        self.lp.ping_launch = lambda *args, **kwargs: None
        self.flush()

    def flush(self) -> None:
        """Write the store to ``launchpad.json`` atomically."""
        import bson.json_util

        text = bson.json_util.dumps({k: v.to_dict() for k, v in self._store._databases.items()})
        atomic_write(self.path, text, fsync=True)

    def close(self) -> None:
        if self._lock_fh is not None and not self._lock_fh.closed:
            with contextlib.suppress(OSError):
                fcntl.flock(self._lock_fh, fcntl.LOCK_UN)
            self._lock_fh.close()

    def __enter__(self) -> EmbeddedLaunchPad:
        return self

    def __exit__(self, *exc) -> None:
        self.close()


class MongoLaunchPad:
    """A LaunchPad on a real MongoDB described by a ``my_launchpad.yaml`` file (same interface as embedded)."""

    def __init__(self, path: str | Path, *, strm_lvl: str = "WARNING") -> None:
        from fireworks import LaunchPad

        self.path = Path(path).resolve()
        if not self.path.is_file():
            raise FileNotFoundError(f"launchpad file not found: {self.path}")
        given = read_mapping(self.path, "launchpad", LAUNCHPAD_KEYS, error=WorkflowInputError)
        parsed = parse(LaunchpadFile, given, source=self.path, error=WorkflowInputError)
        # FireWorks' own defaults for what the file leaves out
        data = fireworks_launchpad_dict({k: v for k, v in dump(parsed).items() if k in given}, self.path)
        data["strm_lvl"] = data.get("strm_lvl") or strm_lvl
        try:
            self.lp = LaunchPad.from_dict(data)
            _init_if_empty(self.lp)
        except Exception as exc:  # pymongo: bad TLS files, unreachable host, authentication...
            raise WorkflowInputError(f"{self.path}: cannot use this MongoDB launchpad: {redact_text(str(exc))}") \
                from None

    def flush(self) -> None:  # MongoDB persists every write itself
        pass

    def close(self) -> None:
        with contextlib.suppress(Exception):
            self.lp.connection.close()

    def __enter__(self) -> MongoLaunchPad:
        return self

    def __exit__(self, *exc) -> None:
        self.close()


def open_launchpad(workdir: str | Path, launchpad_file: str | Path | None = None, *, strm_lvl: str = "WARNING"):
    """The campaign's LaunchPad: a MongoDB one from ``launchpad_file``, else (also for the value ``"embedded"``)
    the embedded store under ``workdir``."""
    if launchpad_file and str(launchpad_file) != "embedded":
        return MongoLaunchPad(launchpad_file, strm_lvl=strm_lvl)
    return EmbeddedLaunchPad(workdir, strm_lvl=strm_lvl)
