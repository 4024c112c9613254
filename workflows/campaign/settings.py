"""Calculation settings of a campaign: the spec's ``calculation`` block, VASP presets and the settings hash.

A campaign runs every configuration with one *calculation variant* per settings set: one for an embedded
calculator or a plain VASP preset, one per U value for a +U preset. Each variant is a plain JSON-able dict
``{"calculator": name, "settings": {...}, "settings_hash": str}``; the hash (sha256 of the canonical JSON of
calculator name + settings, 16 hex digits) goes into every result so results of different settings never mix.
"""

from __future__ import annotations

import copy
import dataclasses
import hashlib
import json
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from sacmap.core.resources import inputs_dir
from sacmap.core.validation import dump, non_empty, option, parse
from sacmap.core.yamlfile import read_mapping
from sacmap.workflows.errors import WorkflowInputError

#: calculator aliases accepted in a spec / on the command line
CALCULATOR_ALIASES = {"embedded": "chgnet-d3"}

HANDLER_NAMES = (
    "VaspErrorHandler", "MeshSymmetryErrorHandler", "UnconvergedErrorHandler", "NonConvergingErrorHandler",
    "PotimErrorHandler", "PositiveEnergyErrorHandler", "FrozenJobErrorHandler", "StdErrHandler",
    "LargeSigmaHandler", "IncorrectSmearingHandler",
)
OPTIMIZERS = ("BFGS", "LBFGS", "FIRE", "BFGSLineSearch", "PreconLBFGS")
DEFAULT_FMAX = 0.05  # eV/Å
DEFAULT_MAX_STEPS = 500


def _incar_tags(incar: dict) -> dict:
    if not all(isinstance(k, str) and k.isupper() for k in incar):
        raise ValueError("must map upper-case INCAR tags to values")
    return incar


# ------------------------------------------------------------------------------------- VASP preset schema
@dataclass(frozen=True, kw_only=True)
class PresetKpoints:
    """Γ-centred k-grid of a preset (the rule is :func:`sacmap.structures.slab_kpoint_grid`)."""

    in_plane: int = option(lo=1, doc="subdivisions along each in-plane lattice vector")
    vacuum: int = option(lo=1, doc="subdivisions along the vacuum direction")
    gamma_centred: bool = option(True, choices=(True,), doc="Γ-centred grids only")


@dataclass(frozen=True, kw_only=True)
class PresetSpin:
    metal_magmom: float = option(2.0, unit="μB", doc="initial moment on each metal of a spin-polarised config")


@dataclass(frozen=True, kw_only=True)
class PresetStatic:
    incar: dict[str, Any] = option(factory=dict, check=_incar_tags, doc="INCAR additions of the static run")


@dataclass(frozen=True, kw_only=True)
class PresetHubbard:
    type: int = option(2, choices=(1, 2, 4), doc="LDAUTYPE")
    l: int = option(2, choices=(1, 2, 3), doc="LDAUL on the metal")  # noqa: E741 - VASP's name
    j_eV: float = option(0.0, unit="eV")
    u_values_eV: list[float] = option(check=non_empty, unit="eV", doc="one calculation per U value")


@dataclass(frozen=True, kw_only=True)
class Preset:
    """A VASP preset file (``inputs/vasp/*.yaml``)."""

    kpoints: PresetKpoints = option(doc="k-point subdivisions")
    name: str = option("", doc="default: the file name")
    input_set: str = option("MPRelaxSet", choices=("MPRelaxSet",))
    vdw: str | None = option(None, choices=("dftd3", "dftd3-bj"))
    incar: dict[str, Any] = option(factory=dict, check=_incar_tags, doc="INCAR overrides of MPRelaxSet")
    spin: PresetSpin = option(factory=PresetSpin)
    static: PresetStatic = option(factory=PresetStatic)
    hubbard: PresetHubbard | None = None
    potcar_functional: str | None = None


# ------------------------------------------------------------------------------ campaign calculation block
@dataclass(frozen=True, kw_only=True)
class CustodianOptions:
    """``calculation.custodian`` (VASP runs; not hashed: they do not change results)."""

    max_errors: int = option(5, lo=0, lo_open=True)
    polling_time_step: float = option(10.0, lo=0, lo_open=True, unit="s")
    monitor_freq: int = option(30, lo=0, lo_open=True, doc="polls between handler checks")
    walltime_s: int = option(None, lo=0, lo_open=True, unit="s",
                             doc="wall time of the job: custodian's WalltimeHandler stops VASP cleanly before it")
    handlers: list[str] = option(None, choices=HANDLER_NAMES, check=non_empty,
                                 doc="custodian VASP handlers to use (default all)")
    max_restarts: int = option(3, lo=0, doc="continuations of an unconverged relaxation from its CONTCAR")
    walltime_buffer_s: int = option(300, lo=0, unit="s",
                                    doc="WalltimeHandler writes the STOPCAR this long before walltime_s (at least "
                                        "one ionic step)")


@dataclass(frozen=True, kw_only=True)
class Categories:
    """``calculation.categories``: FireWorks categories of the steps (not hashed)."""

    compute: str | None = option("sacmap-compute", doc="relaxations and static runs")
    light: str | None = option("sacmap-light", doc="store steps (seconds each): a light worker")


@dataclass(frozen=True, kw_only=True)
class EmbeddedOptions:
    """Relaxation options of an embedded (ASE) calculator."""

    fmax: float = option(DEFAULT_FMAX, lo=0, lo_open=True, unit="eV/Å")
    optimizer: str = option("BFGS", choices=OPTIMIZERS)
    max_steps: int = option(DEFAULT_MAX_STEPS, lo=1)
    model: str | None = None


@dataclass(frozen=True, kw_only=True)
class Calculation:
    """A campaign spec's ``calculation`` block; ``None`` = not given (VASP-only and embedded-only keys)."""

    calculator: str | None = option(None, doc="embedded (= chgnet-d3), vasp, or a registered calculator")
    preset: str | None = option(None, doc="VASP preset name or YAML path (default pbe-d3)")
    u_values: list[float] | None = option(None, unit="eV")
    fmax: float | None = option(None, lo=0, lo_open=True, unit="eV/Å")
    optimizer: str | None = option(None, choices=OPTIMIZERS)
    max_steps: int | None = option(None, lo=1)
    model: str | None = None
    launchpad: str | None = None
    database: str | None = None
    custodian: CustodianOptions | None = None
    categories: Categories | None = None
    max_restarts: int | None = option(None, lo=0, doc="continuations of an unconverged relaxation (embedded and "
                                      "VASP; custodian.max_restarts wins for VASP); default 3")


PRESET_KEYS = {f.name for f in dataclasses.fields(Preset)}


def settings_hash(calculator: str, settings: dict) -> str:
    """Stable 16-hex-digit hash of a calculator name and its settings (canonical JSON, sorted keys)."""
    text = json.dumps({"calculator": calculator, "settings": settings}, sort_keys=True, separators=(",", ":"))
    return hashlib.sha256(text.encode()).hexdigest()[:16]


def preset_path(preset: str) -> Path:
    """Path of a VASP preset: a shipped name (``pbe-d3``, ``pbe-d3-u``) or a YAML file path."""
    p = Path(preset)
    if p.suffix in (".yaml", ".yml"):
        return p
    return inputs_dir() / "vasp" / f"{preset}.yaml"


def load_preset(preset: str) -> dict:
    """Read a VASP preset (see ``inputs/vasp/pbe-d3.yaml``), validated as a :class:`Preset`; returns the plain
    mapping as written (+ ``name``, default the file name, and ``_source``)."""
    path = preset_path(preset)
    if not path.is_file():
        shipped = sorted(q.stem for q in (inputs_dir() / "vasp").glob("*.yaml"))
        raise WorkflowInputError(f"{path}: VASP preset {preset!r} not found (shipped presets: {shipped})")
    data = read_mapping(path, "VASP preset", PRESET_KEYS, error=WorkflowInputError)
    parse(Preset, data, source=path, error=WorkflowInputError)
    # the settings (and their hash) are the preset as written: a default added to the schema changes no hash
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
    hub = PresetHubbard(**hub)  # checked by load_preset; the schema's defaults fill what the file leaves out
    us = hub.u_values_eV if u_values is None else u_values
    if not us:
        raise WorkflowInputError(f"{where}.u_values: expected a non-empty list of U values (eV), got {us!r}")
    out = []
    for u in us:
        u = float(u)  # numbers: checked by the Preset / Calculation schemas
        s = copy.deepcopy(base)
        s["hubbard"] = {"type": int(hub.type), "l": int(hub.l), "j_eV": float(hub.j_eV), "u_eV": u}
        out.append(_variant("vasp", s))
    return out


def embedded_variant(name: str, *, fmax: float = DEFAULT_FMAX, optimizer: str = "BFGS",
                     max_steps: int = DEFAULT_MAX_STEPS, model: str | None = None,
                     source: str = "spec", where: str = "calculation") -> dict:
    """The calculation variant of an embedded (ASE) calculator from :mod:`sacmap.workflows.campaign.calculators`;
    the options are validated as :class:`EmbeddedOptions` (errors ``<source>: <where>.<field>: <problem>``)."""
    from sacmap.workflows.campaign.calculators import get_calculator

    try:
        entry = get_calculator(name)
    except KeyError as exc:
        raise WorkflowInputError(f"{source}: {where}.calculator: {exc.args[0]}") from None
    opts = parse(EmbeddedOptions, {"fmax": fmax, "optimizer": optimizer, "max_steps": max_steps, "model": model},
                 source=source, where=where, error=WorkflowInputError)
    settings = dict(entry.default_settings)
    if opts.model is not None:
        settings["model"] = opts.model
    settings.update({"fmax_eV_A": opts.fmax, "optimizer": opts.optimizer, "max_steps": opts.max_steps})
    return _variant(entry.name, settings)


def parse_calculation(block: dict | None, *, source: str = "spec") -> Calculation:
    """A spec's ``calculation`` block validated as :class:`Calculation` (errors name ``source`` and the field)."""
    return parse(Calculation, block, source=source, where="calculation", error=WorkflowInputError)


def custodian_options(block: dict | None, *, source: str = "spec") -> dict:
    """The ``calculation.custodian`` options given in the block (VASP runs; not hashed: they do not change
    results): ``max_errors``, ``polling_time_step`` (s), ``monitor_freq`` (polls), ``walltime_s``, ``handlers``
    (names of custodian VASP handlers to use; default all of :data:`HANDLER_NAMES`). See :class:`CustodianOptions`."""
    calc = parse_calculation(block, source=source)
    given = ((block or {}).get("custodian")) or {}
    if calc.custodian is None:
        return {}
    return {k: v for k, v in dump(calc.custodian).items() if k in given}


#: dispersion labels of the embedded calculators' settings (the analysis readers' labels for VASP's IVDW)
EMBEDDED_DISPERSION = {"d3-zero-pbe": ("D3(zero)", 11), "d3-bj-pbe": ("D3(BJ)", 12)}


def settings_record(calculator: str, settings: dict) -> dict:
    """The settings record stored with every result row (the same keys the analysis readers give a VASP folder or
    CML export: ``functional, dispersion, ivdw, encut_eV, ldau, ldau_u, ispin, prec, smearing, potcar``) for an
    embedded calculator; for VASP the record is read from the run itself (``vasp_run.parse_vasp_dir``).

    An embedded model is its own "functional" (``chgnet:0.3.0``, ``tblite:GFN2-xTB``), so its rows never combine
    with DFT rows; D3 added to a model is ``D3(zero)`` (IVDW 11), GFN2-xTB's built-in D4 ``D4``.
    """
    base = calculator[:-3] if calculator.endswith("-d3") else calculator
    model = settings.get("model") or settings.get("method") or settings.get("xc") or ""
    disp, ivdw = EMBEDDED_DISPERSION.get(settings.get("dispersion"), ("none", 0))
    if calculator == "tblite":
        disp, ivdw = "D4", 13
    return {"functional": f"{base}:{model}" if model else base, "dispersion": disp, "ivdw": ivdw,
            "encut_eV": None, "ldau": False, "ldau_u": "", "ispin": 1, "prec": "", "smearing": "", "potcar": ""}


def categories_option(block: dict | None, *, source: str = "spec") -> dict:
    """The ``calculation.categories`` given in the block (``{"compute": ..., "light": ...}``; {} if none)."""
    calc = parse_calculation(block, source=source)
    given = ((block or {}).get("categories")) or {}
    if calc.categories is None:
        return {}
    return {k: v for k, v in dump(calc.categories).items() if k in given}


def _variant(calculator: str, settings: dict) -> dict:
    return {"calculator": calculator, "settings": settings, "settings_hash": settings_hash(calculator, settings)}


def calculation_variants(block: dict | None, *, source: str = "spec", calculator: str | None = None) -> list[dict]:
    """Validate a spec's ``calculation`` block and return its calculation variants.

    ``block`` keys: ``calculator`` (``embedded`` = ``chgnet-d3``, ``vasp`` or a name from
    :func:`sacmap.workflows.campaign.calculators.available`), ``preset`` (VASP: ``pbe-d3``, ``pbe-d3-u`` or a YAML path),
    ``u_values`` (eV, +U presets), ``fmax`` (eV/Å), ``optimizer``, ``max_steps``, ``model`` (embedded),
    ``launchpad`` and ``database`` (used by the runner). ``calculator`` overrides the block's (CLI option).
    Errors name ``source`` and the field.
    """
    where = f"{source}: calculation"
    calc = parse_calculation(block, source=source)
    name = calculator or calc.calculator or "embedded"
    name = CALCULATOR_ALIASES.get(name, name)
    if name == "vasp":
        for key in ("fmax", "optimizer", "max_steps", "model"):
            if getattr(calc, key) is not None:
                raise WorkflowInputError(f"{where}.{key}: only for embedded calculators (VASP uses the preset)")
        try:
            return vasp_variants(calc.preset or "pbe-d3", calc.u_values, where=where)
        except WorkflowInputError as exc:
            raise WorkflowInputError(f"{where}.preset: {exc}") from None
    for key in ("preset", "u_values", "custodian"):
        if getattr(calc, key) is not None and calculator is None:
            raise WorkflowInputError(f"{where}.{key}: only for calculator vasp (calculator is {name!r})")
    defaults = EmbeddedOptions()
    return [embedded_variant(name, fmax=defaults.fmax if calc.fmax is None else calc.fmax,
                             optimizer=calc.optimizer or defaults.optimizer,
                             max_steps=defaults.max_steps if calc.max_steps is None else calc.max_steps,
                             model=calc.model, source=source, where="calculation")]
