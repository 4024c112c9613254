"""Campaign specs: a YAML file naming sets of configurations, expanded into labelled ``ase.Atoms``.

Schema (all lengths in Å; only the ``structures`` block is validated here, the other top-level blocks belong to
their packages and are passed through)::

    name: paper                      # required, used as the campaign name
    description: free text
    calculation: {...}               # workflows
    images: ... / detection: ... / statistics: ... / sampling: ...   # other packages
    structures:
      slab: {nx: 9, ny: 6, vacuum: 15.0, orientation: ab}   # all optional (these are the defaults)
      heights: {3N: 1.4, 4N: 0.0, 6N: 0.8}                   # initial metal height above the plane
      dimer_bond: 2.2                                        # metal–metal distance of dimers
      gas_box: [15.0, 15.5, 16.0]                            # box edges for gas-phase references
      sets:                                                  # a list; each set has a unique name and a type
        - {name: pristine, type: slab}
        - {name: sites, type: site, kinds: [3N, 4N, 6N]}               # bare single sites
        - {name: M_sites, type: site, kinds: [4N], metals: [Pd]}       # one metal in a single site
        - name: bare_4N-4N
          type: pair
          kinds: [4N, 4N]            # seed site first; 3N/3xN6/3×N6 accepted
          max_separation: 9.0        # default 9.0; must not exceed half the shorter cell edge
          min_separation: 0.0        # default 0
          shares_NN_bond: true       # optional filter
          occupation: bare           # bare | first | second | one | both | mixed
          metals: [Ni, Pd]           # needed unless bare; 'mixed' uses every ordered pair of distinct metals
        - {name: dimers, type: dimer, kinds: [3N, 4N, 6N], metals: [Pt], orientations: [v, a, b], bond: 2.2}
        - {name: gas, type: gas_atom, metals: [Pt, Pd]}
        - {name: gas2, type: gas_dimer, metals: [Pt], bond: 2.2}
      # per set also: description (text), spin_polarised (true/false, overrides the default flag)

Occupations of a pair: ``first`` = one metal on the seed site; ``second`` = one metal on the other site;
``one`` = both of those, without duplicates when a symmetry exchanges the two sites; ``both`` = the same metal on
both sites; ``mixed`` = two different metals (``Ni/3N-Pd/4N`` and ``Pd/3N-Ni/4N``).
"""

from __future__ import annotations

import logging
from dataclasses import dataclass, field
from pathlib import Path

import yaml

from .builders import (
    SlabSpec,
    build_dimer,
    build_gas_atom,
    build_gas_dimer,
    build_pair,
    build_single_site,
    build_slab,
)
from .errors import StructureInputError
from .lattice import DEFAULT_VACUUM, ORIENTATIONS, SITE_KINDS, parse_kind
from .occupations import DEFAULT_GAS_BOX, DEFAULT_HEIGHTS, DIMER_BOND, DIMER_ORIENTATIONS, check_metal
from .pairs import DEFAULT_MAX_SEPARATION, enumerate_pairs

log = logging.getLogger(__name__)

TOP_LEVEL_KEYS = ("name", "description", "structures", "calculation", "images", "detection", "statistics",
                  "sampling")
STRUCTURES_KEYS = ("slab", "heights", "dimer_bond", "gas_box", "sets")
SLAB_KEYS = ("nx", "ny", "vacuum", "orientation")
SET_TYPES = ("slab", "site", "pair", "dimer", "gas_atom", "gas_dimer")
OCCUPATIONS = ("bare", "first", "second", "one", "both", "mixed")
_COMMON = ("name", "type", "description", "spin_polarised")
SET_KEYS = {
    "slab": _COMMON,
    "site": _COMMON + ("kinds", "metals"),
    "pair": _COMMON + ("kinds", "max_separation", "min_separation", "shares_NN_bond", "occupation", "metals"),
    "dimer": _COMMON + ("kinds", "metals", "orientations", "bond"),
    "gas_atom": _COMMON + ("metals",),
    "gas_dimer": _COMMON + ("metals", "bond"),
}


class _Ctx:
    """Formats error messages as ``<file>: <field>: <problem>``."""

    def __init__(self, source: str):
        self.source = source

    def err(self, fld: str, msg: str) -> StructureInputError:
        return StructureInputError(f"{self.source}: {fld}: {msg}")


def _num(ctx: _Ctx, fld: str, value, lo=None, hi=None, integer=False) -> float:
    if isinstance(value, bool) or not isinstance(value, (int, float)):
        raise ctx.err(fld, f"expected a number, got {value!r}")
    if integer and int(value) != value:
        raise ctx.err(fld, f"expected an integer, got {value!r}")
    if lo is not None and value < lo:
        raise ctx.err(fld, f"{value} is below the minimum {lo}")
    if hi is not None and value > hi:
        raise ctx.err(fld, f"{value} is above the maximum {hi}")
    return int(value) if integer else float(value)


def _keys(ctx: _Ctx, fld: str, d, allowed) -> None:
    if not isinstance(d, dict):
        raise ctx.err(fld, f"expected a mapping, got {type(d).__name__}")
    unknown = [k for k in d if k not in allowed]
    if unknown:
        raise ctx.err(f"{fld}.{unknown[0]}" if fld else str(unknown[0]),
                      f"unknown key (allowed: {', '.join(allowed)})")


def _list(ctx: _Ctx, fld: str, value) -> list:
    if isinstance(value, (str, int, float)):
        return [value]
    if not isinstance(value, list) or not value:
        raise ctx.err(fld, f"expected a non-empty list, got {value!r}")
    return value


def _kinds(ctx: _Ctx, fld: str, value) -> list[str]:
    out = []
    for k, v in enumerate(_list(ctx, fld, value)):
        try:
            out.append(parse_kind(v))
        except StructureInputError:
            raise ctx.err(f"{fld}[{k}]", f"unknown site kind {v!r} (expected 3N, 4N, 6N or 3xN6, 4xN6, 6xN6)") from None
    return out


def _metals(ctx: _Ctx, fld: str, value) -> list[str]:
    out = []
    for k, v in enumerate(_list(ctx, fld, value)):
        try:
            m = check_metal(v)
        except StructureInputError as exc:
            raise ctx.err(f"{fld}[{k}]", str(exc).split(": ", 1)[1]) from None
        if m not in out:
            out.append(m)
    return out


def validate_structures(block, source: str = "<spec>") -> dict:
    """Validate a ``structures`` block; returns it normalised (canonical kinds, defaults filled in).

    Raises :class:`StructureInputError` naming ``source`` and the field."""
    ctx = _Ctx(source)
    _keys(ctx, "structures", block, STRUCTURES_KEYS)
    out: dict = {}
    slab = block.get("slab") or {}
    _keys(ctx, "structures.slab", slab, SLAB_KEYS)
    orient = str(slab.get("orientation", "ab")).lower()
    if orient not in ORIENTATIONS:
        raise ctx.err("structures.slab.orientation", f"unknown value {slab['orientation']!r} (expected ab or ac)")
    out["slab"] = {
        "nx": _num(ctx, "structures.slab.nx", slab.get("nx", 9), lo=2, hi=40, integer=True),
        "ny": _num(ctx, "structures.slab.ny", slab.get("ny", 6), lo=2, hi=40, integer=True),
        "vacuum": _num(ctx, "structures.slab.vacuum", slab.get("vacuum", DEFAULT_VACUUM), lo=8.0, hi=100.0),
        "orientation": orient,
    }
    heights = dict(DEFAULT_HEIGHTS)
    raw_h = block.get("heights") or {}
    if not isinstance(raw_h, dict):
        raise ctx.err("structures.heights", "expected a mapping site kind -> height (Å)")
    for k, v in raw_h.items():
        try:
            kk = parse_kind(k)
        except StructureInputError:
            raise ctx.err(f"structures.heights.{k}", "unknown site kind (expected 3N, 4N or 6N)") from None
        heights[kk] = _num(ctx, f"structures.heights.{k}", v, lo=-3.0, hi=4.0)
    out["heights"] = heights
    out["dimer_bond"] = _num(ctx, "structures.dimer_bond", block.get("dimer_bond", DIMER_BOND), lo=1.5, hi=4.0)
    box = block.get("gas_box", list(DEFAULT_GAS_BOX))
    box = _list(ctx, "structures.gas_box", box)
    if len(box) != 3:
        raise ctx.err("structures.gas_box", f"expected three edge lengths (Å), got {box!r}")
    out["gas_box"] = [_num(ctx, f"structures.gas_box[{k}]", v, lo=6.0, hi=60.0) for k, v in enumerate(box)]
    limit = SlabSpec(out["slab"]["nx"], out["slab"]["ny"]).separation_limit

    sets = block.get("sets")
    if not isinstance(sets, list) or not sets:
        raise ctx.err("structures.sets", "expected a non-empty list of sets")
    names = set()
    out["sets"] = []
    for i, s in enumerate(sets):
        fld = f"structures.sets[{i}]"
        if not isinstance(s, dict):
            raise ctx.err(fld, f"expected a mapping, got {s!r}")
        name = s.get("name")
        if not isinstance(name, str) or not name.strip():
            raise ctx.err(f"{fld}.name", "missing or empty set name")
        if name in names:
            raise ctx.err(f"{fld}.name", f"duplicate set name {name!r}")
        names.add(name)
        fld = f"structures.sets[{i}] ({name})"
        typ = s.get("type")
        if typ not in SET_TYPES:
            raise ctx.err(f"{fld}.type", f"unknown set type {typ!r} (expected one of {', '.join(SET_TYPES)})")
        _keys(ctx, fld, s, SET_KEYS[typ])
        n = {"name": name, "type": typ}
        if "description" in s:
            n["description"] = str(s["description"])
        if "spin_polarised" in s:
            if not isinstance(s["spin_polarised"], bool):
                raise ctx.err(f"{fld}.spin_polarised", "expected true or false")
            n["spin_polarised"] = s["spin_polarised"]
        if typ in ("site", "pair", "dimer"):
            if "kinds" not in s:
                raise ctx.err(f"{fld}.kinds", "missing (list of site kinds)")
            n["kinds"] = _kinds(ctx, f"{fld}.kinds", s["kinds"])
        if typ in ("dimer", "gas_atom", "gas_dimer"):
            if "metals" not in s:
                raise ctx.err(f"{fld}.metals", "missing (list of element symbols)")
        if "metals" in s:
            n["metals"] = _metals(ctx, f"{fld}.metals", s["metals"])
        if typ == "pair":
            if len(n["kinds"]) != 2:
                raise ctx.err(f"{fld}.kinds", f"a pair needs exactly two site kinds, got {s['kinds']!r}")
            mx = _num(ctx, f"{fld}.max_separation", s.get("max_separation", DEFAULT_MAX_SEPARATION), lo=0.0)
            if mx > limit + 1e-9 or mx <= 0:
                raise ctx.err(
                    f"{fld}.max_separation",
                    f"{mx} Å is outside what the {out['slab']['nx']}x{out['slab']['ny']} cell allows "
                    f"(0 < max_separation <= {limit:.2f} Å, half the shorter cell edge)",
                )
            mn = _num(ctx, f"{fld}.min_separation", s.get("min_separation", 0.0), lo=0.0)
            if mn > mx:
                raise ctx.err(f"{fld}.min_separation", f"{mn} Å is larger than max_separation ({mx} Å)")
            n["max_separation"], n["min_separation"] = mx, mn
            if "shares_NN_bond" in s:
                if not isinstance(s["shares_NN_bond"], bool):
                    raise ctx.err(f"{fld}.shares_NN_bond", "expected true or false")
                n["shares_NN_bond"] = s["shares_NN_bond"]
            occ = s.get("occupation", "bare")
            if occ not in OCCUPATIONS:
                raise ctx.err(f"{fld}.occupation", f"unknown value {occ!r} (expected one of {', '.join(OCCUPATIONS)})")
            n["occupation"] = occ
            if occ != "bare" and not n.get("metals"):
                raise ctx.err(f"{fld}.metals", f"occupation {occ!r} needs a list of metals")
            if occ == "bare" and n.get("metals"):
                raise ctx.err(f"{fld}.metals", "metals given but occupation is 'bare' (set occupation)")
            if occ == "mixed" and len(n["metals"]) < 2:
                raise ctx.err(f"{fld}.metals", "occupation 'mixed' needs at least two different metals")
        if typ == "dimer":
            ors = _list(ctx, f"{fld}.orientations", s.get("orientations", list(DIMER_ORIENTATIONS)))
            for k, o in enumerate(ors):
                if o not in DIMER_ORIENTATIONS:
                    raise ctx.err(f"{fld}.orientations[{k}]", f"unknown dimer orientation {o!r} (expected v, a or b)")
            n["orientations"] = list(dict.fromkeys(ors))
        if typ in ("dimer", "gas_dimer"):
            n["bond"] = _num(ctx, f"{fld}.bond", s.get("bond", out["dimer_bond"]), lo=1.5, hi=4.0)
        out["sets"].append(n)
    return out


def load_spec(path) -> dict:
    """Read and validate a campaign spec (YAML).

    Checks the top-level keys against :data:`TOP_LEVEL_KEYS` and fully validates the ``structures`` block
    (returned normalised); the other blocks are passed through untouched for their owners to validate. The
    returned dict also has ``_source`` (the file path as a string). Raises :class:`StructureInputError` (naming
    the file and the field) for bad content and ``FileNotFoundError`` for a missing file.
    """
    path = Path(path)
    text = path.read_text(encoding="utf-8")
    try:
        data = yaml.safe_load(text)
    except yaml.YAMLError as exc:
        mark = getattr(exc, "problem_mark", None)
        where = f"line {mark.line + 1}, column {mark.column + 1}: " if mark is not None else ""
        problem = getattr(exc, "problem", None) or str(exc).splitlines()[0]
        raise StructureInputError(f"{path}: malformed YAML: {where}{problem}") from None
    return validate_spec(data, str(path))


def validate_spec(data, source: str = "<spec>") -> dict:
    """Validate an already-parsed spec dict (see :func:`load_spec`)."""
    ctx = _Ctx(source)
    if not isinstance(data, dict):
        raise StructureInputError(f"{source}: top level: expected a mapping of blocks, got {type(data).__name__}")
    unknown = [k for k in data if k not in TOP_LEVEL_KEYS and k != "_source"]
    if unknown:
        raise ctx.err(str(unknown[0]), f"unknown top-level key (allowed: {', '.join(TOP_LEVEL_KEYS)})")
    if "name" in data and (not isinstance(data["name"], str) or not data["name"].strip()):
        raise ctx.err("name", "expected a non-empty string")
    out = dict(data)
    out["_source"] = source
    if "structures" in data:
        out["structures"] = validate_structures(data["structures"], source)
    return out


@dataclass
class PlannedConfiguration:
    """One configuration of a campaign before it is built: its id, set, kind and how to build it."""

    id: str
    set: str
    kind: str
    builder: object = field(repr=False)
    args: tuple = field(default=(), repr=False)
    kwargs: dict = field(default_factory=dict, repr=False)
    spin_polarised: bool | None = None

    def build(self):
        atoms = self.builder(*self.args, **self.kwargs)
        if atoms.info["id"] != self.id:  # pragma: no cover - consistency guard
            raise AssertionError(f"planned id {self.id} but built {atoms.info['id']}")
        atoms.info["set"] = self.set
        if self.spin_polarised is not None:
            atoms.info["spin_polarised"] = self.spin_polarised
        return atoms


def _as_spec(spec) -> dict:
    if isinstance(spec, (str, Path)):
        return load_spec(spec)
    if "_source" not in spec:
        return validate_spec(spec)
    return spec


def _pair_plans(st: dict, s: dict, slab: SlabSpec):
    ka, kb = s["kinds"]
    occ = s["occupation"]
    metals = s.get("metals", [])
    heights = st["heights"]
    for p in enumerate_pairs(ka, kb, s["max_separation"], s["min_separation"], cell_limit=slab.separation_limit):
        if "shares_NN_bond" in s and p.shares_NN_bond != s["shares_NN_bond"]:
            continue
        suffix = p.id.split("_", 1)[1]
        combos: list[tuple] = []
        if occ == "bare":
            combos = [(None, None)]
        elif occ in ("first", "second", "one"):
            for m in metals:
                if occ in ("first", "one"):
                    combos.append((m, None))
                if occ == "second" and p.swap_symmetric:
                    combos.append((m, None))  # the same configuration as the metal on the first site
                elif occ in ("second", "one") and not p.swap_symmetric:
                    combos.append((None, m))
        elif occ == "both":
            combos = [(m, m) for m in metals]
        else:  # mixed
            for m1 in metals:
                for m2 in metals:
                    if m1 == m2 or (p.swap_symmetric and m1 > m2):
                        continue
                    combos.append((m1, m2))
        for m1, m2 in combos:
            la = f"{m1}/{ka}" if m1 else ka
            lb = f"{m2}/{kb}" if m2 else kb
            n_metal = (m1 is not None) + (m2 is not None)
            kind = ("bare_pair", "metal_single", "metal_pair")[n_metal]
            yield PlannedConfiguration(
                id=f"{la}-{lb}_{suffix}", set=s["name"], kind=kind, builder=build_pair, args=(p, (m1, m2)),
                kwargs={"slab": slab, "heights": heights}, spin_polarised=s.get("spin_polarised"),
            )


def plan(spec) -> list[PlannedConfiguration]:
    """The configurations a spec (path or dict from :func:`load_spec`) expands to, in spec order, without
    building them. An id produced by two sets is kept once, in the first set."""
    spec = _as_spec(spec)
    st = spec.get("structures")
    if not st:
        return []
    sl = st["slab"]
    slab = SlabSpec(sl["nx"], sl["ny"], sl["vacuum"], sl["orientation"])
    heights = st["heights"]
    out: list[PlannedConfiguration] = []
    seen: dict[str, str] = {}
    for s in st["sets"]:
        typ, name, sp = s["type"], s["name"], s.get("spin_polarised")
        items: list[PlannedConfiguration] = []
        if typ == "slab":
            items.append(PlannedConfiguration("slab", name, "slab", build_slab, (slab,), spin_polarised=sp))
        elif typ == "site":
            for k in s["kinds"]:
                if s.get("metals"):
                    for m in s["metals"]:
                        items.append(PlannedConfiguration(f"{m}/{k}", name, "metal_single", build_single_site,
                                                          (k, m, slab, heights[k]), spin_polarised=sp))
                else:
                    items.append(PlannedConfiguration(k, name, "single_site", build_single_site, (k, None, slab),
                                                      spin_polarised=sp))
        elif typ == "pair":
            items.extend(_pair_plans(st, s, slab))
        elif typ == "dimer":
            for m in s["metals"]:
                for k in s["kinds"]:
                    for o in s["orientations"]:
                        items.append(PlannedConfiguration(f"{m}2/{k}_{o}", name, "dimer", build_dimer,
                                                          (k, m, o, s["bond"], slab, heights[k]), spin_polarised=sp))
        elif typ == "gas_atom":
            for m in s["metals"]:
                items.append(PlannedConfiguration(f"gas_{m}", name, "gas_atom", build_gas_atom,
                                                  (m, tuple(st["gas_box"])), spin_polarised=sp))
        elif typ == "gas_dimer":
            for m in s["metals"]:
                items.append(PlannedConfiguration(f"gas_{m}2", name, "gas_dimer", build_gas_dimer,
                                                  (m, s["bond"], tuple(st["gas_box"])), spin_polarised=sp))
        for it in items:
            if it.id in seen:
                log.info("configuration %s of set %s already in set %s; kept once", it.id, name, seen[it.id])
                continue
            seen[it.id] = name
            out.append(it)
    return out


def expand(spec, progress: bool = False) -> list:
    """Build every configuration of a spec (path, or dict from :func:`load_spec`): a list of ``ase.Atoms`` with
    the contract metadata in ``info`` plus ``set`` (the spec set it came from) and ``campaign`` (the spec name)."""
    spec = _as_spec(spec)
    items = plan(spec)
    it = items
    if progress:
        from tqdm import tqdm

        it = tqdm(items, desc="building", unit="cfg")
    out = []
    for p in it:
        atoms = p.build()
        atoms.info["campaign"] = str(spec.get("name", ""))
        out.append(atoms)
    return out


def counts_per_set(spec) -> dict[str, int]:
    """Number of configurations per set name (after de-duplication), in spec order."""
    spec = _as_spec(spec)
    counts = {s["name"]: 0 for s in (spec.get("structures") or {}).get("sets", [])}
    for p in plan(spec):
        counts[p.set] += 1
    return counts


__all__ = ["load_spec", "validate_spec", "validate_structures", "plan", "expand", "counts_per_set",
           "PlannedConfiguration", "TOP_LEVEL_KEYS", "SITE_KINDS"]
