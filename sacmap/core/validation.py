"""The one typed validation layer of sacmap: specs and settings are dataclasses, parsed from untrusted mappings
(YAML, JSON, form fields, CLI options) by a single validator, :func:`parse`.

Declare a block as a (frozen) dataclass whose fields carry their constraints through :func:`option`::

    @dataclass(frozen=True)
    class Slab:
        nx: int = option(9, lo=2, hi=40, doc="rectangular units along a")
        vacuum: float = option(15.0, lo=8.0, hi=100.0, unit="Å")
        orientation: str = option("ab", choices=("ab", "ac"))

    slab = parse(Slab, {"nx": 9}, source="paper.yaml", where="structures.slab", error=StructureInputError)

:func:`parse` refuses unknown keys, checks types (``bool`` / ``int`` / ``float`` / ``str`` / ``Path`` /
``list[...]`` / ``tuple[...]`` / ``dict[str, ...]`` / ``X | None`` / nested dataclasses / ``Literal``), ranges and
choices, fills defaults, and raises the caller's :class:`~sacmap.core.errors.InputError` subclass with one line
``<source>: <where>.<field>: <problem>``. :func:`dump` gives the plain mapping back (JSON/YAML-ready), so
``parse(cls, dump(x)) == x`` for every valid ``x``.
"""

from __future__ import annotations

import dataclasses
import math
import types
import typing
from collections.abc import Callable, Mapping
from pathlib import Path
from typing import Any, Literal, Union, get_args, get_origin, get_type_hints

from sacmap.core.errors import InputError

_MISSING = dataclasses.MISSING


def option(default: Any = _MISSING, *, lo: float | None = None, hi: float | None = None, lo_open: bool = False,
           hi_open: bool = False, choices: tuple | None = None, check: Callable[[Any], Any] | None = None,
           doc: str = "", unit: str = "", factory: Callable[[], Any] | None = None, aliases: tuple[str, ...] = (),
           each: Callable[[Any], Any] | None = None) -> Any:
    """A dataclass field with validation metadata.

    ``lo``/``hi``: inclusive bounds for numbers (``lo_open``: strictly above ``lo``; ``hi_open``: strictly below
    ``hi``), also applied to every item of a list of numbers; ``choices``: allowed values; ``check``: a callable returning the normalised value or
    raising ``ValueError`` with the problem; ``each``: the same for every item of a list (the message names the
    item, ``field[i]``), applied before ``check``; ``doc``/``unit``: documentation (units: Å, nm, eV, px, ...);
    ``factory``: default factory for mutable defaults; ``aliases``: other accepted key names.
    """
    meta = {"lo": lo, "hi": hi, "lo_open": lo_open, "hi_open": hi_open, "choices": choices, "check": check,
            "doc": doc, "unit": unit, "aliases": tuple(aliases), "each": each}
    if factory is not None:
        return dataclasses.field(default_factory=factory, metadata=meta)
    return dataclasses.field(default=default, metadata=meta)


def non_empty(values):
    """A ``check`` for :func:`option`: a list (or mapping) with at least one item."""
    if not values:
        raise ValueError("expected a non-empty list")
    return values


class _Problem(Exception):
    def __init__(self, where: str, text: str):
        super().__init__(text)
        self.where = where
        self.text = text


def _join(where: str, name: str) -> str:
    if name.startswith("["):
        return f"{where}{name}"
    return f"{where}.{name}" if where else name


def _is_dataclass_type(tp) -> bool:
    return isinstance(tp, type) and dataclasses.is_dataclass(tp)


def _convert(tp, value, where: str, meta: Mapping):
    origin = get_origin(tp)
    if tp is Any:
        return value
    if origin in (Union, types.UnionType):
        args = get_args(tp)
        if value is None and type(None) in args:
            return None
        problems = []
        for arg in args:
            if arg is type(None):
                continue
            try:
                return _convert(arg, value, where, meta)
            except _Problem as exc:
                problems.append(exc)
        if len(problems) == 1:
            raise problems[0]
        raise _Problem(where, f"unexpected value {value!r}")
    if origin is Literal:
        allowed = get_args(tp)
        if value not in allowed:
            raise _Problem(where, f"unknown value {value!r} (expected one of {', '.join(map(repr, allowed))})")
        return value
    if _is_dataclass_type(tp):
        return _parse_mapping(tp, value, where)
    if origin in (list, tuple):
        args = get_args(tp)
        if isinstance(value, (str, int, float)) and not isinstance(value, bool):
            value = [value]  # a single item where a list is expected
        if not isinstance(value, (list, tuple)):
            raise _Problem(where, f"expected a list, got {type(value).__name__}")
        if origin is tuple and args and args[-1] is not Ellipsis:
            if len(value) != len(args):
                raise _Problem(where, f"expected {len(args)} values, got {len(value)}")
            items = [_convert(a, v, f"{where}[{i}]", meta) for i, (a, v) in enumerate(zip(args, value))]
        else:
            item_tp = args[0] if args else Any
            items = [_convert(item_tp, v, f"{where}[{i}]", meta) for i, v in enumerate(value)]
        return tuple(items) if origin is tuple else items
    if origin is dict:
        key_tp, val_tp = (get_args(tp) or (Any, Any))
        if not isinstance(value, Mapping):
            raise _Problem(where, f"expected a mapping, got {type(value).__name__}")
        return {_convert(key_tp, k, where, {}): _convert(val_tp, v, _join(where, str(k)), meta)
                for k, v in value.items()}
    if tp is bool:
        if not isinstance(value, bool):
            raise _Problem(where, f"expected true or false, got {value!r}")
        return value
    if tp in (int, float):
        if isinstance(value, bool) or not isinstance(value, (int, float)):
            if isinstance(value, str) and meta.get("from_text"):
                try:
                    value = float(value.strip())
                except ValueError:
                    raise _Problem(where, f"expected a number, got {value!r}") from None
            else:
                raise _Problem(where, f"expected a number, got {value!r}")
        if not math.isfinite(value):
            raise _Problem(where, f"expected a finite number, got {value!r}")
        if tp is int:
            if int(value) != value:
                raise _Problem(where, f"expected an integer, got {value!r}")
            value = int(value)
        else:
            value = float(value)
        lo, hi = meta.get("lo"), meta.get("hi")
        if lo is not None and (value <= lo if meta.get("lo_open") else value < lo):
            raise _Problem(where, f"{value:g} is {'not above' if meta.get('lo_open') else 'below'} the minimum {lo:g}")
        if hi is not None and meta.get("hi_open") and value >= hi:
            raise _Problem(where, f"{value:g} is not below {hi:g} (the upper limit, excluded)")
        if hi is not None and value > hi:
            raise _Problem(where, f"{value:g} is above the maximum {hi:g}")
        return value
    if tp is str:
        if not isinstance(value, str):
            raise _Problem(where, f"expected text, got {value!r}")
        return value
    if tp is Path:
        if not isinstance(value, (str, Path)) or not str(value):
            raise _Problem(where, f"expected a path, got {value!r}")
        return Path(value)
    raise TypeError(f"validation: unsupported field type {tp!r} at {where}")  # a programming error


def _apply_meta(value, where: str, meta: Mapping):
    choices, check = meta.get("choices"), meta.get("check")
    if choices is not None and value is not None:
        items = value if isinstance(value, (list, tuple)) else [value]
        for i, v in enumerate(items):
            if v not in choices:
                at = f"{where}[{i}]" if isinstance(value, (list, tuple)) else where
                raise _Problem(at, f"unknown value {v!r} (expected one of {', '.join(map(str, choices))})")
    each = meta.get("each")
    if each is not None and isinstance(value, (list, tuple)):
        items = []
        for i, v in enumerate(value):
            try:
                items.append(each(v))
            except (ValueError, TypeError) as exc:
                raise _Problem(f"{where}[{i}]", str(exc)) from None
        value = type(value)(items)
    if check is not None and value is not None:
        try:
            value = check(value)
        except (ValueError, TypeError) as exc:
            raise _Problem(where, str(exc)) from None
    return value


def _parse_mapping(cls, data, where: str):
    if data is None:
        data = {}
    if not isinstance(data, Mapping):
        raise _Problem(where or "(top level)", f"expected a mapping, got {type(data).__name__}")
    hints = get_type_hints(cls)
    fields = {f.name: f for f in dataclasses.fields(cls) if f.init}
    names = {}
    for f in fields.values():
        names[f.name] = f.name
        for alias in f.metadata.get("aliases", ()):
            names[alias] = f.name
    unknown = [k for k in data if k not in names]
    if unknown:
        raise _Problem(_join(where, str(unknown[0])), f"unknown key (allowed: {', '.join(fields)})")
    kwargs = {}
    for key, value in data.items():
        name = names[key]
        f = fields[name]
        at = _join(where, str(key))
        kwargs[name] = _apply_meta(_convert(hints[name], value, at, f.metadata), at, f.metadata)
    missing = [n for n, f in fields.items() if n not in kwargs and f.default is _MISSING
               and f.default_factory is _MISSING]
    if missing:
        raise _Problem(_join(where, missing[0]), "required key missing")
    try:
        return cls(**kwargs)
    except (ValueError, TypeError) as exc:  # __post_init__ cross-field checks
        raise _Problem(where or "(top level)", str(exc)) from None


def parse(cls: type, data: Any, *, source: str | Path = "<input>", where: str = "",
          error: type[InputError] = InputError):
    """Validate ``data`` into an instance of the dataclass ``cls``.

    ``source`` names the file (or ``--option``, form, ...) in messages and ``where`` the block inside it; errors
    are raised as ``error`` (an :class:`InputError` subclass) with the message ``<source>: <field>: <problem>``.
    Cross-field rules go in the dataclass's ``__post_init__`` (raise ``ValueError``).
    """
    try:
        return _parse_mapping(cls, data, where)
    except _Problem as exc:
        raise error(f"{source}: {exc.where}: {exc.text}") from None


def check_value(value: Any, tp: Any, *, name: str, source: str = "option", error: type[InputError] = InputError,
                **constraints):
    """Validate one value (a CLI option, a form field) with the same rules as a dataclass field.

    ``constraints`` are those of :func:`option` (``lo``, ``hi``, ``lo_open``, ``hi_open``, ``choices``,
    ``check``). Unlike
    :func:`parse` (where a YAML ``"0.5"`` is text, not a number), numbers may be given as text here.
    """
    meta = {"lo": None, "hi": None, "lo_open": False, "hi_open": False, "choices": None, "check": None,
            "from_text": True,
            **constraints}
    try:
        return _apply_meta(_convert(tp, value, name, meta), name, meta)
    except _Problem as exc:
        raise error(f"{source}: {exc.where}: {exc.text}") from None


def dump(obj) -> Any:
    """The plain (JSON/YAML-ready) form of a parsed dataclass: mappings, lists, numbers, text; paths as text."""
    if dataclasses.is_dataclass(obj) and not isinstance(obj, type):
        return {f.name: dump(getattr(obj, f.name)) for f in dataclasses.fields(obj)}
    if isinstance(obj, (list, tuple)):
        return [dump(v) for v in obj]
    if isinstance(obj, dict):
        return {k: dump(v) for k, v in obj.items()}
    if isinstance(obj, Path):
        return str(obj)
    return obj


def describe(cls: type) -> list[dict]:
    """One row per field of ``cls``: name, type, default, bounds, choices, unit, doc (for docs and ``--help``)."""
    hints = get_type_hints(cls)
    rows = []
    for f in dataclasses.fields(cls):
        m = f.metadata
        default = f.default if f.default is not _MISSING else (
            f.default_factory() if f.default_factory is not _MISSING else None)
        rows.append({"name": f.name, "type": typing._type_repr(hints[f.name]) if hasattr(typing, "_type_repr")
                     else str(hints[f.name]), "default": dump(default), "lo": m.get("lo"), "hi": m.get("hi"),
                     "choices": m.get("choices"), "unit": m.get("unit", ""), "doc": m.get("doc", "")})
    return rows
