"""Submit, run, inspect and resume campaigns (the Python API behind ``sacmap campaign ...``).

A campaign lives in a work directory holding ``campaign.json`` (name, database URL, launchpad file or embedded,
calculation variants), the embedded LaunchPad store (``launchpad.json``) unless a MongoDB launchpad file is
used, the results database (``results.db`` by default) and the calculation folders
``calcs/<config>/<hash8>/<step>``.
"""

from __future__ import annotations

import contextlib
import json
import logging
import os
from collections import Counter
from pathlib import Path

from ase import Atoms

from sacmap.core.atomic import write_json
from sacmap.workflows.campaign import results
from sacmap.workflows.campaign.configs import config_to_doc, safe_name
from sacmap.workflows.campaign.launchpad import STORE_NAME, EmbeddedLaunchPad, open_launchpad
from sacmap.workflows.campaign.settings import calculation_variants, categories_option, custodian_options
from sacmap.workflows.errors import WorkflowInputError

log = logging.getLogger(__name__)
STATE_FILE = "campaign.json"
FW_STATES = ["COMPLETED", "READY", "WAITING", "RESERVED", "RUNNING", "FIZZLED", "DEFUSED", "PAUSED", "ARCHIVED"]


def load_state(workdir: str | Path) -> dict:
    """The campaign state of a work directory (``campaign.json``)."""
    path = Path(workdir).resolve() / STATE_FILE
    if not path.is_file():
        raise WorkflowInputError(f"{path}: no campaign here; run `sacmap campaign submit SPEC -w {workdir}` first")
    try:
        state = json.loads(path.read_text())
    except json.JSONDecodeError as exc:
        raise WorkflowInputError(f"{path}: corrupt campaign state: {exc}") from exc
    db = str(state.get("db", ""))
    if db and "://" not in db and not Path(db).is_absolute():  # a database inside the work folder: relocatable
        state["db"] = str(path.parent / db)
    return state


def _stored_db(db_url: str, workdir: Path) -> str:
    """The database as campaign.json keeps it: relative to the work folder when it lies inside it (a moved or
    copied work folder then uses its own database), else unchanged."""
    if "://" in db_url:
        return db_url
    with contextlib.suppress(ValueError):
        return str(Path(db_url).relative_to(workdir))
    return db_url


def _launchpad(workdir: Path, state: dict):
    return open_launchpad(workdir, state.get("launchpad"))


def _spec_relative(block: dict, spec_dir: Path | None) -> dict:
    """The block with its relative paths (launchpad file, SQLite database, preset YAML) resolved against the spec
    file's folder, so a spec means the same files from any current directory."""
    if spec_dir is None:
        return block
    out = dict(block)
    for key in ("launchpad", "database", "preset"):
        val = out.get(key)
        if not isinstance(val, str) or val == "embedded" or "://" in val:
            continue
        if key == "preset" and Path(val).suffix not in (".yaml", ".yml"):
            continue  # a shipped preset name
        path = Path(val).expanduser()
        if not path.is_absolute():
            out[key] = str((spec_dir / path).resolve())
    return out


def submit_configs(configs: list[Atoms], workdir: str | Path, *, name: str, calculation: dict | None = None,
                   calculator: str | None = None, launchpad: str | Path | None = None, db: str | None = None,
                   source: str = "spec", spec_dir: str | Path | None = None) -> dict:
    """Add one workflow per (configuration, calculation variant) to the campaign's LaunchPad.

    Keys (config_id + settings hash) already on the LaunchPad are skipped, so submitting twice adds nothing.
    ``calculation`` is the spec's ``calculation`` block; ``calculator``, ``launchpad`` and ``db`` override it
    (paths given there are relative to the current directory). Relative paths in the block (``launchpad``,
    ``database``, a preset YAML) are resolved against ``spec_dir``, the spec file's folder, when given.
    Returns ``{"added": n, "skipped": n, "db": url, "launchpad": file or None, "variants": [...]}``.
    """
    from sacmap.workflows.campaign.builders import build_workflow, calc_key

    workdir = Path(workdir).resolve()
    workdir.mkdir(parents=True, exist_ok=True)
    block = _spec_relative(dict(calculation or {}), Path(spec_dir).resolve() if spec_dir else None)
    variants = calculation_variants(block, source=source, calculator=calculator)
    cust = custodian_options(block, source=source)
    cats = categories_option(block, source=source)
    lp_file = launchpad or block.get("launchpad")
    if str(lp_file) == "embedded":
        lp_file = None
    if lp_file:
        lp_file = str(Path(lp_file).expanduser().resolve())
    db_url = results.normalise_url(db or block.get("database") or "results.db", base=workdir)
    old = (workdir / STATE_FILE)
    if old.is_file():
        prev = load_state(workdir)
        if prev.get("launchpad") != lp_file or prev.get("db") != db_url:
            raise WorkflowInputError(
                f"{old}: this work directory already holds campaign {prev.get('name')!r} with launchpad "
                f"{prev.get('launchpad') or 'embedded'} and database {results.redact_url(str(prev.get('db')))}; "
                "use another work folder"
            )
    docs = [config_to_doc(a, where=f"{source}: configuration {i}") for i, a in enumerate(configs)]
    ids = [d["meta"]["config_id"] for d in docs]
    dup = sorted({i for i in ids if ids.count(i) > 1})
    if dup:
        raise WorkflowInputError(f"{source}: duplicate configuration ids {dup[:5]}")
    state = {"name": name, "db": db_url, "launchpad": lp_file, "variants": variants}
    added = skipped = 0
    with _launchpad(workdir, state) as handle:
        lp = handle.lp
        for doc in docs:
            for var in variants:
                key = calc_key(doc["meta"]["config_id"], var["settings_hash"])
                if lp.workflows.count_documents({"metadata.sacmap_key": key}):
                    skipped += 1
                    continue
                lp.add_wf(build_workflow(doc, var, db=db_url, campaign=name, custodian=cust, categories=cats,
                                         max_restarts=block.get("max_restarts")))
                added += 1
        handle.flush()
    write_json(workdir / STATE_FILE, {**state, "db": _stored_db(db_url, workdir)})
    return {"added": added, "skipped": skipped, "db": db_url, "launchpad": lp_file, "variants": variants}


def load_fworker(path: str | Path | None = None):
    """The FireWorks worker of this machine: ``path`` (a my_fworker.yaml), else FireWorks' own lookup
    (``FWORKER_LOC`` / ``CONFIG_FILE_DIR`` of FW_config.yaml), else a plain local worker. Its ``env``
    (``vasp_cmd``, ``gamma_vasp_cmd``, ``scratch_dir``, ``incar: {NCORE, KPAR, NPAR}``) reaches the FireTasks as
    ``fw_spec["_fw_env"]`` and never enters a settings hash; ``$SACMAP_VASP_CMD`` fills a missing ``vasp_cmd``.
    """
    from fireworks import FWorker
    from fireworks.fw_config import FWORKER_LOC

    src = path or FWORKER_LOC
    if src:
        p = Path(src).expanduser()
        if not p.is_file():
            raise WorkflowInputError(f"{p}: FireWorks worker file (my_fworker.yaml) not found")
        try:
            import yaml

            data = yaml.safe_load(p.read_text()) or {}
            if not isinstance(data, dict):
                raise ValueError("must be a mapping")
            # FireWorks' FWorker.from_dict needs every key; a hand-written file may leave the defaults out
            data = {"name": "sacmap-worker", "category": "", "query": "{}", "env": {}, **data}
            data["env"] = data["env"] or {}
            worker = FWorker.from_dict(data)
        except Exception as exc:  # noqa: BLE001 - yaml / key errors of a hand-written file
            raise WorkflowInputError(f"{p}: not a FireWorks worker file ({type(exc).__name__}: {exc})") from None
        from sacmap.workflows.campaign.vasp_run import worker_incar

        worker_incar(worker.env)  # refuse physics tags in env.incar before anything runs
    else:
        worker = FWorker(name="sacmap-local")
    env = dict(worker.env or {})
    if os.environ.get("SACMAP_VASP_CMD") and not env.get("vasp_cmd"):
        env["vasp_cmd"] = os.environ["SACMAP_VASP_CMD"]
    worker.env = env
    return worker


def _launch_dir(workdir: Path, doc: dict) -> Path:
    s = doc.get("spec", {})
    meta = s.get("sacmap", {}).get("config", {}).get("meta", {})
    h = s.get("sacmap", {}).get("calc", {}).get("settings_hash", "nohash")
    base = workdir / "calcs" / safe_name(meta.get("config_id", f"fw{doc['fw_id']}")) / h[:8]
    step = s.get("sacmap_step", "fw")
    path, n = base / step, 1
    while path.exists() and any(path.iterdir()):
        path, n = base / f"{step}.{n}", n + 1
    path.mkdir(parents=True, exist_ok=True)
    return path


def run(workdir: str | Path, *, progress: bool = True, max_fireworks: int | None = None,
        fworker: str | Path | None = None) -> dict:
    """Run every READY Firework of the campaign sequentially in this process (rapidfire), flushing the
    embedded store after each one. Fireworks left RUNNING by a killed embedded run are reset first.
    ``fworker``: a my_fworker.yaml (:func:`load_fworker`); its category and query select the Fireworks run.

    Returns the state counts after the run (:func:`status`'s ``counts``).
    """
    import fireworks.core.rocket as fw_rocket
    from fireworks.core.rocket_launcher import launch_rocket
    from tqdm import tqdm

    fw_rocket.ROCKET_STREAM_LOGLEVEL = "WARNING"  # per-task INFO lines would drown the progress bar

    workdir = Path(workdir).resolve()
    state = load_state(workdir)
    fworker = load_fworker(fworker)
    # the database of this work folder (campaign.json, resolved here), not the URL frozen into the Firework specs
    # at submit time: a moved or copied work folder writes into its own database
    fworker.env = {**fworker.env, "sacmap_db": state["db"]}
    with _launchpad(workdir, state) as handle:
        lp = handle.lp
        if isinstance(handle, EmbeddedLaunchPad):  # one process owns this store: RUNNING means killed
            offline = {r["fw_id"] for r in lp.offline_runs.find({"completed": False, "deprecated": False},
                                                                {"fw_id": 1})}  # reserved for offline nodes
            for fw_id in lp.get_fw_ids({"state": {"$in": ["RUNNING", "RESERVED"]}}):
                if fw_id not in offline:
                    lp.rerun_fw(fw_id)
            handle.flush()
        else:
            lp.detect_lostruns(rerun=True)
        todo = lp.fireworks.count_documents({"state": {"$in": ["READY", "WAITING"]}})
        bar = tqdm(total=todo, disable=not progress, unit="fw", desc=f"campaign {state['name']}")
        done = 0
        cwd = os.getcwd()
        try:
            while max_fireworks is None or done < max_fireworks:
                doc = lp.fireworks.find_one(
                    {**fworker.query, "state": "READY"},
                    {"fw_id": 1, "name": 1, "spec.sacmap.config.meta.config_id": 1,
                     "spec.sacmap.calc.settings_hash": 1, "spec.sacmap_step": 1},
                    sort=[("spec._priority", -1), ("fw_id", 1)],
                )
                if doc is None:
                    break
                launch_dir = _launch_dir(workdir, doc)
                os.chdir(launch_dir)
                try:
                    launch_rocket(lp, fworker, fw_id=doc["fw_id"], strm_lvl="ERROR")
                finally:
                    os.chdir(cwd)
                    handle.flush()
                with contextlib.suppress(OSError):  # nothing ran there (duplicate taken over by DupeFinder)
                    launch_dir.rmdir()
                done += 1
                bar.set_postfix_str(doc.get("name", "")[:40])
                bar.update(1)
        finally:
            bar.close()
        counts = _counts(lp)
    return counts


def reserve_offline(workdir: str | Path, *, max_fireworks: int | None = None,
                    fworker: str | Path | None = None) -> list[Path]:
    """Reserve READY Fireworks for offline compute nodes: each gets its launch folder
    (``calcs/<config>/<hash8>/<step>``) holding ``FW.json`` and ``FW_offline.json`` (FireWorks' own
    ``setup_offline_job``, as ``qlaunch -r`` writes them). Run each there with ``sacmap campaign offline-run DIR``
    (or ``python -m sacmap.workflows.campaign.offline singleshot --offline`` in a job), then
    :func:`recover_offline`. Returns the launch folders."""
    from fireworks.queue.queue_launcher import setup_offline_job

    workdir = Path(workdir).resolve()
    state = load_state(workdir)
    worker = load_fworker(fworker)
    out: list[Path] = []
    with _launchpad(workdir, state) as handle:
        lp = handle.lp
        cwd = os.getcwd()
        try:
            while max_fireworks is None or len(out) < max_fireworks:
                doc = lp.fireworks.find_one(
                    {**worker.query, "state": "READY"},
                    {"fw_id": 1, "spec.sacmap.config.meta.config_id": 1, "spec.sacmap.calc.settings_hash": 1,
                     "spec.sacmap_step": 1}, sort=[("spec._priority", -1), ("fw_id", 1)])
                if doc is None:
                    break
                launch_dir = _launch_dir(workdir, doc)
                fw, launch_id = lp.reserve_fw(worker, str(launch_dir), fw_id=doc["fw_id"])
                os.chdir(launch_dir)
                setup_offline_job(lp, fw, launch_id)
                out.append(launch_dir)
        finally:
            os.chdir(cwd)
            handle.flush()
    return out


def recover_offline(workdir: str | Path) -> dict:
    """Read the outcome of every finished offline run back into the LaunchPad (``LaunchPad.recover_offline``, what
    ``lpad recover_offline`` does): completed launches make their children READY, failed ones are FIZZLED with
    their error. Returns ``{"recovered": n, "pending": n, "counts": {state: n}}``."""
    workdir = Path(workdir).resolve()
    state = load_state(workdir)
    recovered = pending = 0
    with _launchpad(workdir, state) as handle:
        lp = handle.lp
        for run in list(lp.offline_runs.find({"completed": False, "deprecated": False}, {"launch_id": 1})):
            launch = lp.launches.find_one({"launch_id": run["launch_id"]}, {"launch_dir": 1})
            data = Path(launch["launch_dir"]) / "FW_offline.json" if launch else None
            if data is None or not data.is_file() or '"state"' not in data.read_text():
                pending += 1  # not run yet (or still running)
                continue
            lp.recover_offline(run["launch_id"], ignore_errors=False, print_errors=False)
            recovered += 1
        handle.flush()
        counts = _counts(lp)
    return {"recovered": recovered, "pending": pending, "counts": counts}


def _counts(lp) -> dict:
    c = Counter(d["state"] for d in lp.fireworks.find({}, {"state": 1}))
    return {s: c[s] for s in FW_STATES if c[s]}


def _failure_message(lp, fw_id: int) -> str:
    fw = lp.get_fw_by_id(fw_id)
    for launch in reversed(fw.launches or []):
        data = (launch.action.stored_data if launch.action else {}) or {}
        exc = data.get("_exception") or {}
        trace = exc.get("_stacktrace") or ""
        lines = [ln.strip() for ln in trace.strip().splitlines() if ln.strip()]
        if lines:
            return lines[-1]
    return "no launch recorded"


def status(workdir: str | Path) -> dict:
    """``{"name", "db", "launchpad", "counts": {state: n}, "failures": [{"fw_id", "name", "message"}],
    "restarts": [{"fw_id", "name", "state", "restart", "reason", "from"}], "n_results": rows in the database (None
    when it cannot be read), "db_error": why not ('' when it can; secrets redacted)}``.

    A failure's message is the last line of its error: for VASP the custodian error class, the handler and the
    errors it found (:func:`sacmap.workflows.campaign.vasp_run.custodian_failure`), or why a relaxation stayed
    unconverged after its restarts. ``restarts`` lists the continuations of unconverged relaxations.
    """
    workdir = Path(workdir).resolve()
    state = load_state(workdir)
    with _launchpad(workdir, state) as handle:
        lp = handle.lp
        counts = _counts(lp)
        failures = [{"fw_id": d["fw_id"], "name": d["name"], "message": results.redact_text(
                        _failure_message(lp, d["fw_id"]))}
                    for d in lp.fireworks.find({"state": "FIZZLED"}, {"fw_id": 1, "name": 1})]
        restarts = [{"fw_id": d["fw_id"], "name": d["name"], "state": d["state"],
                     "restart": d["spec"].get("sacmap_restart"), "reason": d["spec"].get("sacmap_restart_reason", ""),
                     "from": d["spec"].get("sacmap_restart_from", "")}
                    for d in lp.fireworks.find({"spec.sacmap_restart": {"$gt": 0}},
                                               {"fw_id": 1, "name": 1, "state": 1, "spec.sacmap_restart": 1,
                                                "spec.sacmap_restart_reason": 1, "spec.sacmap_restart_from": 1})]
    n_results, db_error = None, ""
    try:
        n_results = results.connect(state["db"]).count(campaign=state["name"])
    except WorkflowInputError as exc:
        db_error = results.redact_text(str(exc))
    except Exception as exc:  # noqa: BLE001 - an unreachable PostgreSQL server, a locked SQLite file...
        db_error = results.redact_text(f"{type(exc).__name__}: {str(exc).strip().splitlines()[0]}")
    return {"name": state["name"], "db": state["db"], "launchpad": state.get("launchpad") or "embedded",
            "counts": counts, "failures": failures, "restarts": restarts, "n_results": n_results,
            "db_error": db_error}


def rerun_failed(workdir: str | Path) -> int:
    """Reset every FIZZLED Firework to READY (its children follow); returns how many."""
    workdir = Path(workdir).resolve()
    state = load_state(workdir)
    with _launchpad(workdir, state) as handle:
        ids = handle.lp.get_fw_ids({"state": "FIZZLED"})
        for fw_id in ids:
            handle.lp.rerun_fw(fw_id)
        handle.flush()
    return len(ids)


def export(workdir: str | Path, out: str | Path) -> int:
    """Write the campaign's results (contract keys) to a CSV file; returns the number of rows."""
    state = load_state(workdir)
    return results.export_csv(results.connect(state["db"]), out, campaign=state["name"])


def load_spec_configs(spec_path: str | Path) -> tuple[dict, list[Atoms]]:
    """Campaign spec (validated by ``sacmap.structures.load_spec``) and its configurations (``sacmap.structures.expand``)."""
    try:
        from sacmap import structures
        load_spec, expand = structures.load_spec, structures.expand
    except (ImportError, AttributeError) as exc:
        raise WorkflowInputError(f"{spec_path}: the structures package (load_spec/expand) is not available") \
            from exc
    spec = load_spec(spec_path)
    return spec, expand(spec)


def submit_spec(spec_path: str | Path, workdir: str | Path, *, calculator: str | None = None,
                launchpad: str | Path | None = None, db: str | None = None) -> dict:
    """Load a campaign spec, expand its configurations and submit them (:func:`submit_configs`).

    Returns :func:`submit_configs`'s dict plus ``name``, ``n_configs``, ``launchpad_shown`` (the MongoDB file or
    ``embedded (<workdir>/launchpad.json)``), ``db_shown`` (password redacted) and ``warnings`` (e.g. VASP
    variants without a POTCAR library).
    """
    spec_path = Path(spec_path)
    spec, configs = load_spec_configs(spec_path)
    name = str(spec.get("name", spec_path.stem))
    src = Path(str(spec.get("_source", spec_path)))
    spec_dir = src.parent if src.is_file() else (spec_path.parent if spec_path.is_file() else None)
    info = submit_configs(configs, workdir, name=name, calculation=spec.get("calculation"), calculator=calculator,
                          launchpad=launchpad, db=db, source=str(spec_path), spec_dir=spec_dir)
    info["name"] = name
    info["n_configs"] = len(configs)
    info["launchpad_shown"] = info["launchpad"] or f"embedded ({Path(workdir) / STORE_NAME})"
    info["db_shown"] = results.redact_url(info["db"])
    info["warnings"] = []
    if any(v["calculator"] == "vasp" for v in info["variants"]):
        from sacmap.workflows.campaign.vasp_inputs import potcar_library_available

        if not potcar_library_available():
            info["warnings"].append("PMG_VASP_PSP_DIR is not set: only POTCAR.spec files will be written and VASP "
                                    "cannot run")
    return info


def run_campaign(spec: dict, workdir: str | Path, *, calculator: str | None = None,
                 launchpad: str | Path | None = None, db: str | None = None, progress: bool = True,
                 configs: list[Atoms] | None = None) -> str:
    """Submit + run a whole campaign; resumable (a rerun skips finished work). Returns the database URL.

    ``spec`` is a validated campaign spec (``sacmap.structures.load_spec``); ``configs`` defaults to
    ``structures.expand(spec)``.
    """
    if configs is None:
        from sacmap import structures

        configs = structures.expand(spec)
    src = Path(str(spec.get("_source", "")))
    info = submit_configs(configs, workdir, name=str(spec.get("name", "campaign")),
                          calculation=spec.get("calculation"), calculator=calculator, launchpad=launchpad, db=db,
                          source=str(spec.get("_source", "spec")), spec_dir=src.parent if src.is_file() else None)
    counts = run(workdir, progress=progress)
    if counts.get("FIZZLED"):
        log.warning("campaign %s: %d Firework(s) failed; see `sacmap campaign status -w %s`",
                    spec.get("name"), counts["FIZZLED"], workdir)
    return info["db"]


with contextlib.suppress(ImportError):  # make the FireTasks known to FireWorks' deserialiser early
    import sacmap.workflows.campaign.firetasks  # noqa: F401
