"""Calculation settings of a campaign: the spec's ``calculation`` block, VASP presets and the settings hash.

A campaign runs every configuration with one *calculation variant* per settings set: one for an embedded
calculator or a plain VASP preset, one per U value for a +U preset. Each variant is a plain JSON-able dict
``{"calculator": name, "settings": {...}, "settings_hash": str}``; the hash (sha256 of the canonical JSON of
calculator name + settings, 16 hex digits) goes into every result so results of different settings never mix.
"""

from __future__ import annotations

import copy
import hashlib
import json
import math
from pathlib import Path
from typing import Any

from sacmap.core.resources import inputs_dir
from sacmap.core.yamlfile import read_mapping
from sacmap.workflows.errors import WorkflowInputError

#: calculator aliases accepted in a spec / on the command line
CALCULATOR_ALIASES = {"embedded": "chgnet-d3"}

CALCULATION_KEYS = {
    "calculator", "preset", "u_values", "fmax", "optimizer", "max_steps", "launchpad", "database", "model",
    "custodian",
}
CUSTODIAN_KEYS = {"max_errors": int, "polling_time_step": float, "monitor_freq": int, "walltime_s": int,
                  "handlers": list}
HANDLER_NAMES = (
    "VaspErrorHandler", "MeshSymmetryErrorHandler", "UnconvergedErrorHandler", "NonConvergingErrorHandler",
    "PotimErrorHandler", "PositiveEnergyErrorHandler", "FrozenJobErrorHandler", "StdErrHandler",
    "LargeSigmaHandler", "IncorrectSmearingHandler",
)
PRESET_KEYS = {"name", "input_set", "vdw", "incar", "kpoints", "spin", "static", "hubbard", "potcar_functional"}
OPTIMIZERS = ("BFGS", "LBFGS", "FIRE", "BFGSLineSearch")
DEFAULT_FMAX = 0.05  # eV/Å
DEFAULT_MAX_STEPS = 500


def settings_hash(calculator: str, settings: dict) -> str:
    """Stable 16-hex-digit hash of a calculator name and its settings (canonical JSON, sorted keys)."""
    text = json.dumps({"calculator": calculator, "settings": settings}, sort_keys=True, separators=(",", ":"))
    return hashlib.sha256(text.encode()).hexdigest()[:16]


def _number(value: Any, where: str, *, positive: bool = True) -> float:
    if isinstance(value, bool) or not isinstance(value, (int, float)) or not math.isfinite(value):
        raise WorkflowInputError(f"{where}: expected a number, got {value!r}")
    if positive and value <= 0:
        raise WorkflowInputError(f"{where}: must be > 0, got {value!r}")
    return float(value)


def preset_path(preset: str) -> Path:
    """Path of a VASP preset: a shipped name (``pbe-d3``, ``pbe-d3-u``) or a YAML file path."""
    p = Path(preset)
    if p.suffix in (".yaml", ".yml"):
        return p
    return inputs_dir() / "vasp" / f"{preset}.yaml"


def load_preset(preset: str) -> dict:
    """Read and validate a VASP preset (see ``inputs/vasp/pbe-d3.yaml``); returns a plain dict."""
    path = preset_path(preset)
    if not path.is_file():
        shipped = sorted(q.stem for q in (inputs_dir() / "vasp").glob("*.yaml"))
        raise WorkflowInputError(f"{path}: VASP preset {preset!r} not found (shipped presets: {shipped})")
    data = read_mapping(path, "VASP preset", PRESET_KEYS, error=WorkflowInputError)
    if data.get("input_set", "MPRelaxSet") != "MPRelaxSet":
        raise WorkflowInputError(f"{path}: input_set must be MPRelaxSet, got {data.get('input_set')!r}")
    if data.get("vdw") not in ("dftd3", "dftd3-bj", None):
        raise WorkflowInputError(f"{path}: vdw must be dftd3, dftd3-bj or null, got {data.get('vdw')!r}")
    incar = data.get("incar") or {}
    if not isinstance(incar, dict) or not all(isinstance(k, str) and k.isupper() for k in incar):
        raise WorkflowInputError(f"{path}: incar must map upper-case INCAR tags to values")
    kp = data.get("kpoints") or {}
    for key in ("in_plane", "vacuum"):
        v = kp.get(key)
        if isinstance(v, bool) or not isinstance(v, int) or v < 1:
            raise WorkflowInputError(f"{path}: kpoints.{key} must be a positive integer, got {v!r}")
    spin = data.get("spin") or {}
    _number(spin.get("metal_magmom", 2.0), f"{path}: spin.metal_magmom", positive=False)
    static = data.get("static") or {}
    if not isinstance(static.get("incar", {}), dict):
        raise WorkflowInputError(f"{path}: static.incar must be a mapping")
    hub = data.get("hubbard")
    if hub is not None:
        if not isinstance(hub, dict):
            raise WorkflowInputError(f"{path}: hubbard must be a mapping or null")
        if hub.get("type", 2) not in (1, 2, 4):
            raise WorkflowInputError(f"{path}: hubbard.type must be 1, 2 or 4 (LDAUTYPE), got {hub.get('type')!r}")
        if hub.get("l", 2) not in (1, 2, 3):
            raise WorkflowInputError(f"{path}: hubbard.l must be 1, 2 or 3, got {hub.get('l')!r}")
        _number(hub.get("j_eV", 0.0), f"{path}: hubbard.j_eV", positive=False)
        us = hub.get("u_values_eV")
        if not isinstance(us, list) or not us:
            raise WorkflowInputError(f"{path}: hubbard.u_values_eV must be a non-empty list of numbers (eV)")
        for i, u in enumerate(us):
            _number(u, f"{path}: hubbard.u_values_eV[{i}]", positive=False)
    data.setdefault("name", path.stem)
    data["_source"] = str(path)
    return data


def vasp_variants(preset: str, u_values: list | None = None, *, where: str = "calculation") -> list[dict]:
    """Calculation variants of a VASP preset: one, or one per U value (eV) for a +U preset."""
    p = load_preset(preset)
    base = {k: copy.deepcopy(v) for k, v in p.items() if not k.startswith("_")}
    hub = base.pop("hubbard", None)
    if hub is None:
        if u_values:
            raise WorkflowInputError(f"{where}.u_values: preset {p['name']!r} has no hubbard block; use pbe-d3-u")
        base["hubbard"] = None
        return [_variant("vasp", base)]
    us = hub.get("u_values_eV") if u_values is None else u_values
    if not isinstance(us, list) or not us:
        raise WorkflowInputError(f"{where}.u_values: expected a non-empty list of U values (eV), got {us!r}")
    out = []
    for i, u in enumerate(us):
        u = _number(u, f"{where}.u_values[{i}]", positive=False)
        s = copy.deepcopy(base)
        s["hubbard"] = {"type": int(hub.get("type", 2)), "l": int(hub.get("l", 2)),
                        "j_eV": float(hub.get("j_eV", 0.0)), "u_eV": u}
        out.append(_variant("vasp", s))
    return out


def embedded_variant(name: str, *, fmax: float = DEFAULT_FMAX, optimizer: str = "BFGS",
                     max_steps: int = DEFAULT_MAX_STEPS, model: str | None = None,
                     where: str = "calculation") -> dict:
    """The calculation variant of an embedded (ASE) calculator from :mod:`workflows.calculators`."""
    from sacmap.workflows.campaign.calculators import get_calculator

    try:
        entry = get_calculator(name)
    except KeyError as exc:
        raise WorkflowInputError(f"{where}.calculator: {exc.args[0]}") from None
    fmax = _number(fmax, f"{where}.fmax")
    if optimizer not in OPTIMIZERS:
        raise WorkflowInputError(f"{where}.optimizer: must be one of {OPTIMIZERS}, got {optimizer!r}")
    if isinstance(max_steps, bool) or not isinstance(max_steps, int) or max_steps < 1:
        raise WorkflowInputError(f"{where}.max_steps: must be a positive integer, got {max_steps!r}")
    settings = dict(entry.default_settings)
    if model is not None:
        settings["model"] = str(model)
    settings.update({"fmax_eV_A": fmax, "optimizer": optimizer, "max_steps": max_steps})
    return _variant(entry.name, settings)


def custodian_options(block: dict | None, *, source: str = "spec") -> dict:
    """The ``calculation.custodian`` options (VASP runs; not hashed: they do not change results):
    ``max_errors``, ``polling_time_step`` (s), ``monitor_freq`` (polls), ``walltime_s``, ``handlers`` (names of
    custodian VASP handlers to use; default all of :data:`HANDLER_NAMES`)."""
    opts = (block or {}).get("custodian") or {}
    where = f"{source}: calculation.custodian"
    if not isinstance(opts, dict):
        raise WorkflowInputError(f"{where}: must be a mapping")
    unknown = set(opts) - set(CUSTODIAN_KEYS)
    if unknown:
        raise WorkflowInputError(f"{where}: unknown field(s) {sorted(unknown)}; allowed {sorted(CUSTODIAN_KEYS)}")
    out = {}
    for key, typ in CUSTODIAN_KEYS.items():
        if key == "handlers" and key in opts:
            names = opts[key]
            bad = [n for n in names] if not isinstance(names, list) else [n for n in names if n not in HANDLER_NAMES]
            if bad or not names:
                raise WorkflowInputError(f"{where}.handlers: unknown handler(s) {bad}; choose from {HANDLER_NAMES}")
            out[key] = list(names)
        elif key in opts:
            val = _number(opts[key], f"{where}.{key}")
            if typ is int and val != int(val):
                raise WorkflowInputError(f"{where}.{key}: must be an integer, got {opts[key]!r}")
            out[key] = typ(val)
    return out


def _variant(calculator: str, settings: dict) -> dict:
    return {"calculator": calculator, "settings": settings, "settings_hash": settings_hash(calculator, settings)}


def calculation_variants(block: dict | None, *, source: str = "spec", calculator: str | None = None) -> list[dict]:
    """Validate a spec's ``calculation`` block and return its calculation variants.

    ``block`` keys: ``calculator`` (``embedded`` = ``chgnet-d3``, ``vasp`` or a name from
    :func:`workflows.calculators.available`), ``preset`` (VASP: ``pbe-d3``, ``pbe-d3-u`` or a YAML path),
    ``u_values`` (eV, +U presets), ``fmax`` (eV/Å), ``optimizer``, ``max_steps``, ``model`` (embedded),
    ``launchpad`` and ``database`` (used by the runner). ``calculator`` overrides the block's (CLI option).
    Errors name ``source`` and the field.
    """
    where = f"{source}: calculation"
    block = {} if block is None else block
    if not isinstance(block, dict):
        raise WorkflowInputError(f"{where}: must be a mapping, got {type(block).__name__}")
    unknown = set(block) - CALCULATION_KEYS
    if unknown:
        raise WorkflowInputError(f"{where}: unknown field(s) {sorted(unknown)}; allowed {sorted(CALCULATION_KEYS)}")
    custodian_options(block, source=source)
    name = calculator or block.get("calculator") or "embedded"
    if not isinstance(name, str):
        raise WorkflowInputError(f"{where}.calculator: expected a name, got {name!r}")
    name = CALCULATOR_ALIASES.get(name, name)
    if name == "vasp":
        for key in ("fmax", "optimizer", "max_steps", "model"):
            if key in block:
                raise WorkflowInputError(f"{where}.{key}: only for embedded calculators (VASP uses the preset)")
        preset = block.get("preset", "pbe-d3")
        if not isinstance(preset, str):
            raise WorkflowInputError(f"{where}.preset: expected a preset name or YAML path, got {preset!r}")
        u_values = block.get("u_values")
        if u_values is not None and not isinstance(u_values, list):
            raise WorkflowInputError(f"{where}.u_values: expected a list of U values (eV), got {u_values!r}")
        try:
            return vasp_variants(preset, u_values, where=where)
        except WorkflowInputError as exc:
            raise WorkflowInputError(f"{where}.preset: {exc}") from None
    for key in ("preset", "u_values", "custodian"):
        if key in block and calculator is None:
            raise WorkflowInputError(f"{where}.{key}: only for calculator vasp (calculator is {name!r})")
    return [embedded_variant(name, fmax=block.get("fmax", DEFAULT_FMAX), optimizer=block.get("optimizer", "BFGS"),
                             max_steps=block.get("max_steps", DEFAULT_MAX_STEPS), model=block.get("model"),
                             where=where)]
