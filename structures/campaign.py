"""Campaign specs: a YAML file naming sets of configurations, expanded into labelled ``ase.Atoms``.

A spec is given as a path or as the name of a bundled spec (``paper``, ``demo``). The schema is the dataclasses
below (:class:`CampaignSpec`, :class:`StructuresBlock`, :class:`SlabBlock`, one class per set type in
:data:`SET_CLASSES`), parsed by :func:`sacmap.core.validation.parse`: every refusal names the file and the field
(``spec.yaml: structures.sets[0] (pairs).kinds[1]: unknown site kind '5N' ...``). All lengths in Å; only the
``structures`` block is validated here, the other top-level blocks belong to their packages and are passed
through::

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
from dataclasses import dataclass, field, fields, replace
from pathlib import Path
from typing import Any

import yaml

from sacmap.core.resources import bundled_specs, resolve_spec
from sacmap.core.validation import dump, non_empty, option, parse
from sacmap.core.yamlfile import read_text

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

SET_TYPES = ("slab", "site", "pair", "dimer", "gas_atom", "gas_dimer")
OCCUPATIONS = ("bare", "first", "second", "one", "both", "mixed")


# ------------------------------------------------------------------------------------------ item validators
def _kind(value) -> str:
    """Canonical site kind (``3N``/``4N``/``6N``) of one list item, or ``ValueError``."""
    try:
        return parse_kind(value)
    except StructureInputError:
        raise ValueError(f"unknown site kind {value!r} (expected 3N, 4N, 6N or 3xN6, 4xN6, 6xN6)") from None


def _metal(value) -> str:
    try:
        return check_metal(value)
    except StructureInputError as exc:
        raise ValueError(str(exc).split(": ", 1)[1]) from None


def _unique(values: list) -> list:
    """Non-empty, duplicates dropped (first kept)."""
    return list(dict.fromkeys(non_empty(values)))


def _orientation(value: str) -> str:
    o = value.lower()
    if o not in ORIENTATIONS:
        raise ValueError(f"unknown value {value!r} (expected ab or ac)")
    return o


def _heights(values: dict) -> dict:
    """Site kind -> height (Å), keys canonical, the defaults filled in for kinds not given."""
    out = dict(DEFAULT_HEIGHTS)
    for k, v in values.items():
        try:
            out[parse_kind(k)] = v
        except StructureInputError:
            raise ValueError(f"unknown site kind {k!r} (expected 3N, 4N or 6N)") from None
    return out


def _set_name(value: str) -> str:
    if not value.strip():
        raise ValueError("empty set name")
    return value


def _spec_name(value: str) -> str:
    if not value.strip():
        raise ValueError("expected a non-empty string")
    return value


# ------------------------------------------------------------------------------------------ the spec schema
@dataclass(frozen=True)
class SlabBlock:
    """``structures.slab``: the periodic N-doped graphene sheet."""

    nx: int = option(9, lo=2, hi=40, doc="rectangular graphene units along the first in-plane vector")
    ny: int = option(6, lo=2, hi=40, doc="rectangular graphene units along the second in-plane vector")
    vacuum: float = option(DEFAULT_VACUUM, lo=8.0, hi=100.0, unit="Å", doc="cell length along the normal")
    orientation: str = option("ab", check=_orientation, doc="ab: vacuum along c; ac: the paper's, vacuum along b")


@dataclass(frozen=True, kw_only=True)
class StructuresBlock:
    """The ``structures`` block of a campaign spec; each item of ``sets`` is parsed by its ``type``
    (:data:`SET_CLASSES`)."""

    slab: SlabBlock = option(factory=SlabBlock)
    heights: dict[str, float] = option(factory=lambda: dict(DEFAULT_HEIGHTS), lo=-3.0, hi=4.0, unit="Å",
                                       check=_heights, doc="initial metal height above the plane per site kind")
    dimer_bond: float = option(DIMER_BOND, lo=1.5, hi=4.0, unit="Å", doc="metal–metal distance of dimers")
    gas_box: tuple[float, float, float] = option(DEFAULT_GAS_BOX, lo=6.0, hi=60.0, unit="Å",
                                                 doc="box edges of the gas-phase references")
    sets: list[Any] = option(check=non_empty, doc="configuration sets (mappings with a name and a type)")


@dataclass(frozen=True, kw_only=True)
class _Set:
    name: str = option(check=_set_name, doc="unique set name")
    type: str = option(choices=SET_TYPES)
    description: str | None = option(None, doc="free text")
    spin_polarised: bool | None = option(None, doc="overrides the default spin flag of the configurations")


@dataclass(frozen=True, kw_only=True)
class SlabSet(_Set):
    """The bare sheet."""


@dataclass(frozen=True, kw_only=True)
class SiteSet(_Set):
    """Single sites, bare or with one metal each."""

    kinds: list[str | int] = option(each=_kind, check=non_empty, doc="site kinds")
    metals: list[str] | None = option(None, each=_metal, check=_unique, doc="element symbols (none: bare)")


@dataclass(frozen=True, kw_only=True)
class PairSet(_Set):
    """Every symmetry-inequivalent placement of two sites within a separation range, and their occupations."""

    kinds: list[str | int] = option(each=_kind, check=non_empty, doc="seed site kind, other site kind")
    max_separation: float = option(DEFAULT_MAX_SEPARATION, lo=0.0, unit="Å",
                                   doc="at most half the shorter cell edge")
    min_separation: float = option(0.0, lo=0.0, unit="Å")
    shares_NN_bond: bool | None = option(None, doc="only pairs that do (true) or do not (false) share an N–N bond")
    occupation: str = option("bare", choices=OCCUPATIONS)
    metals: list[str] | None = option(None, each=_metal, check=_unique, doc="element symbols (unless bare)")

    def __post_init__(self):
        if len(self.kinds) != 2:
            raise ValueError(f"kinds: a pair needs exactly two site kinds, got {self.kinds!r}")
        if self.min_separation > self.max_separation:
            raise ValueError(f"min_separation: {self.min_separation} Å is larger than max_separation "
                             f"({self.max_separation} Å)")
        occ = self.occupation
        if occ != "bare" and not self.metals:
            raise ValueError(f"metals: occupation {occ!r} needs a list of metals")
        if occ == "bare" and self.metals:
            raise ValueError("metals: metals given but occupation is 'bare' (set occupation)")
        if occ == "mixed" and len(self.metals) < 2:
            raise ValueError("metals: occupation 'mixed' needs at least two different metals")


@dataclass(frozen=True, kw_only=True)
class DimerSet(_Set):
    """Metal dimers in single sites."""

    kinds: list[str | int] = option(each=_kind, check=non_empty, doc="site kinds")
    metals: list[str] = option(each=_metal, check=_unique, doc="element symbols")
    orientations: list[str] = option(factory=lambda: list(DIMER_ORIENTATIONS), choices=DIMER_ORIENTATIONS,
                                     check=_unique, doc="v: upright; a, b: along an in-plane axis")
    bond: float | None = option(None, lo=1.5, hi=4.0, unit="Å", doc="default: structures.dimer_bond")


@dataclass(frozen=True, kw_only=True)
class GasAtomSet(_Set):
    """Isolated metal atoms in a box."""

    metals: list[str] = option(each=_metal, check=_unique, doc="element symbols")


@dataclass(frozen=True, kw_only=True)
class GasDimerSet(_Set):
    """Isolated metal dimers in a box."""

    metals: list[str] = option(each=_metal, check=_unique, doc="element symbols")
    bond: float | None = option(None, lo=1.5, hi=4.0, unit="Å", doc="default: structures.dimer_bond")


SET_CLASSES: dict[str, type[_Set]] = {"slab": SlabSet, "site": SiteSet, "pair": PairSet, "dimer": DimerSet,
                                      "gas_atom": GasAtomSet, "gas_dimer": GasDimerSet}


@dataclass(frozen=True)
class CampaignSpec:
    """The top level of a campaign spec. Only ``name`` and ``description`` are checked here; ``structures`` is
    parsed into :class:`StructuresBlock`, the other blocks belong to their packages and are passed through."""

    name: str | None = option(None, check=_spec_name, doc="campaign name")
    description: str | None = option(None, doc="free text")
    structures: Any = option(None, doc="see StructuresBlock")
    calculation: Any = option(None, doc="the campaign engine's settings (sacmap.workflows.campaign.settings)")
    images: Any = option(None, doc="the main job (sacmap.workflows.job.spec)")
    detection: Any = option(None, doc="the main job")
    statistics: Any = option(None, doc="the main job")
    sampling: Any = option(None, doc="the main job")
    simulated_images: Any = option(None, doc="the main job: synthetic images at known positions")


TOP_LEVEL_KEYS = tuple(f.name for f in fields(CampaignSpec))


def _parse_set(raw, i: int, st: StructuresBlock, source: str) -> dict:
    """One item of ``structures.sets`` as a plain mapping, defaults filled in and unset optional keys left out."""
    where = f"structures.sets[{i}]"
    if not isinstance(raw, dict):
        raise StructureInputError(f"{source}: {where}: expected a mapping, got {raw!r}")
    name = raw.get("name")
    if isinstance(name, str) and name.strip():
        where = f"{where} ({name})"
    typ = raw.get("type")
    cls = SET_CLASSES.get(typ) if isinstance(typ, str) else None
    if cls is None:  # reports the bad name, or the missing or unknown type
        parse(_Set, {k: raw[k] for k in ("name", "type") if k in raw}, source=source, where=where,
              error=StructureInputError)
    s = parse(cls, raw, source=source, where=where, error=StructureInputError)
    if isinstance(s, PairSet):
        limit = SlabSpec(st.slab.nx, st.slab.ny).separation_limit
        if s.max_separation > limit + 1e-9 or s.max_separation <= 0:
            raise StructureInputError(
                f"{source}: {where}.max_separation: {s.max_separation} Å is outside what the "
                f"{st.slab.nx}x{st.slab.ny} cell allows (0 < max_separation <= {limit:.2f} Å, half the shorter "
                "cell edge)")
    if isinstance(s, (DimerSet, GasDimerSet)) and s.bond is None:
        s = replace(s, bond=st.dimer_bond)
    return {k: v for k, v in dump(s).items() if v is not None}


def validate_structures(block, source: str = "<spec>") -> dict:
    """Validate a ``structures`` block (:class:`StructuresBlock`, each set by its type); returns it as a plain
    mapping, normalised (canonical kinds, defaults filled in).

    Raises :class:`StructureInputError` naming ``source`` and the field."""
    st = parse(StructuresBlock, block, source=source, where="structures", error=StructureInputError)
    out = dump(replace(st, sets=[]))
    out["sets"] = []
    names: set[str] = set()
    for i, raw in enumerate(st.sets):
        s = _parse_set(raw, i, st, source)
        if s["name"] in names:
            raise StructureInputError(f"{source}: structures.sets[{i}].name: duplicate set name {s['name']!r}")
        names.add(s["name"])
        out["sets"].append(s)
    return out


def load_spec(path) -> dict:
    """Read and validate a campaign spec (YAML), given as a path or as the name of a bundled spec (``paper``,
    ``demo``: :func:`sacmap.core.resources.resolve_spec`).

    Checks the top level (:class:`CampaignSpec`) and fully validates the ``structures`` block (returned
    normalised); the other blocks are passed through untouched for their owners to validate. The returned dict
    also has ``_source`` (the spec file's path as a string; relative paths inside the spec resolve against its
    folder). Raises :class:`StructureInputError` (naming the file and the field) for bad content and
    ``FileNotFoundError`` for a missing file.
    """
    path = resolve_spec(path)
    if not path.is_file():
        names = ", ".join(bundled_specs())
        raise FileNotFoundError(f"{path}: campaign spec not found (give a YAML file or a bundled spec: {names})")
    text = read_text(path, error=StructureInputError)
    try:
        data = yaml.safe_load(text)
    except yaml.YAMLError as exc:
        mark = getattr(exc, "problem_mark", None)
        where = f"line {mark.line + 1}, column {mark.column + 1}: " if mark is not None else ""
        problem = getattr(exc, "problem", None) or str(exc).splitlines()[0]
        raise StructureInputError(f"{path}: malformed YAML: {where}{problem}") from None
    if data is None:
        raise StructureInputError(f"{path}: empty file (expected a campaign spec: a YAML mapping)")
    return validate_spec(data, str(path))


def validate_spec(data, source: str = "<spec>") -> dict:
    """Validate an already-parsed spec dict (see :func:`load_spec`)."""
    given = {k: v for k, v in data.items() if k != "_source"} if isinstance(data, dict) else data
    parse(CampaignSpec, given, source=source, error=StructureInputError)
    out = dict(given)
    out["_source"] = source
    if "structures" in given:
        out["structures"] = validate_structures(given["structures"], source)
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


def select_sets(spec, names: list[str] | None) -> dict:
    """The spec (path or dict from :func:`load_spec`) restricted to the sets named (all of them for ``None`` or
    an empty list); an unknown name raises :class:`StructureInputError` listing the sets there are."""
    spec = _as_spec(spec)
    if not names:
        return spec
    st = spec.get("structures") or {}
    have = [s["name"] for s in st.get("sets", [])]
    unknown = [n for n in names if n not in have]
    if unknown:
        raise StructureInputError(f"{spec['_source']}: --set {unknown[0]!r}: no such set (have: {', '.join(have)})")
    return dict(spec, structures=dict(st, sets=[s for s in st["sets"] if s["name"] in names]))


def build_campaign(spec, outdir, *, sets: list[str] | None = None, poscar: bool = True,
                   progress: bool = False) -> tuple[int, Path]:
    """Build every configuration of a spec (path, bundled name or dict; only ``sets`` if given) and write them to
    ``outdir`` (:func:`~sacmap.structures.io.write_configurations`). Returns (number written, ``index.csv``)."""
    from .io import write_configurations

    atoms = expand(select_sets(spec, sets), progress=progress)
    return len(atoms), write_configurations(atoms, outdir, poscar=poscar, progress=progress)


def counts_per_set(spec) -> dict[str, int]:
    """Number of configurations per set name (after de-duplication), in spec order."""
    spec = _as_spec(spec)
    counts = {s["name"]: 0 for s in (spec.get("structures") or {}).get("sets", [])}
    for p in plan(spec):
        counts[p.set] += 1
    return counts


__all__ = ["load_spec", "validate_spec", "validate_structures", "plan", "expand", "counts_per_set", "select_sets",
           "build_campaign",
           "PlannedConfiguration", "CampaignSpec", "StructuresBlock", "SlabBlock", "SET_CLASSES", "TOP_LEVEL_KEYS",
           "SITE_KINDS"]
