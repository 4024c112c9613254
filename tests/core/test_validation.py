"""The typed validation layer: defaults, coercion, every kind of refusal naming file and field, round trips."""

from __future__ import annotations

import re
from dataclasses import dataclass

import pytest

from sacmap.core.errors import InputError
from sacmap.core.validation import check_value, describe, dump, non_empty, option, parse


class MyError(InputError):
    pass


@dataclass(frozen=True)
class Slab:
    nx: int = option(9, lo=2, hi=40)
    vacuum: float = option(15.0, lo=8.0, hi=100.0, unit="Å")
    orientation: str = option("ab", choices=("ab", "ac"))


@dataclass(frozen=True)
class Block:
    slab: Slab = option(factory=Slab)
    kinds: list[str] = option(factory=list, choices=("3N", "4N", "6N"))
    box: tuple[float, float, float] = option((15.0, 15.5, 16.0), lo=6.0)
    threshold: float = option(0.8, lo=0.0, hi=1.0, lo_open=True)
    seed: int | None = None
    name: str = option("x", aliases=("title",))

    def __post_init__(self):
        if self.slab.nx > 30 and self.kinds:
            raise ValueError("large slabs take no site kinds")


def test_defaults_and_round_trip():
    b = parse(Block, {"slab": {"nx": 3}, "kinds": "4N", "box": [10, 11, 12], "title": "t"})
    assert b == Block(slab=Slab(nx=3), kinds=["4N"], box=(10.0, 11.0, 12.0), name="t")
    assert isinstance(b.box[0], float) and isinstance(b.slab.nx, int)
    assert parse(Block, dump(b)) == b
    assert parse(Block, None) == Block()


@pytest.mark.parametrize("data, where, problem", [
    ({"slab": {"nx": 1}}, "f.yaml: blk.slab.nx", "below the minimum 2"),
    ({"slab": {"nx": 2.5}}, "f.yaml: blk.slab.nx", "expected an integer"),
    ({"slab": {"q": 1}}, "f.yaml: blk.slab.q", "unknown key"),
    ({"kinds": ["4N", "5N"]}, "f.yaml: blk.kinds[1]", "'5N'"),
    ({"box": [7, 8]}, "f.yaml: blk.box", "expected 3 values"),
    ({"box": [1, 20, 20]}, "f.yaml: blk.box[0]", "below the minimum"),
    ({"threshold": 0}, "f.yaml: blk.threshold", "not above the minimum"),
    ({"threshold": float("nan")}, "f.yaml: blk.threshold", "finite"),
    ({"threshold": "0.5"}, "f.yaml: blk.threshold", "expected a number"),
    ({"threshold": True}, "f.yaml: blk.threshold", "expected a number"),
    ({"seed": "x"}, "f.yaml: blk.seed", "expected a number"),
    ({"slab": 3}, "f.yaml: blk.slab", "expected a mapping"),
    ({"slab": {"nx": 35}, "kinds": ["4N"]}, "f.yaml: blk", "large slabs"),
])
def test_refusals_name_file_and_field(data, where, problem):
    with pytest.raises(MyError) as exc:
        parse(Block, data, source="f.yaml", where="blk", error=MyError)
    msg = str(exc.value)
    assert msg.startswith(where + ":"), msg
    assert problem in msg
    assert "\n" not in msg


def test_top_level_must_be_mapping():
    with pytest.raises(InputError, match=r"^s.yaml: \(top level\): expected a mapping"):
        parse(Block, [1, 2], source="s.yaml")


def test_check_value_for_options():
    assert check_value("0.5", float, name="--threshold", lo=0, hi=1) == 0.5
    with pytest.raises(InputError, match="--batch: 0 is below the minimum 1"):
        check_value(0, int, name="--batch", lo=1)


def test_describe_lists_units_and_bounds():
    rows = {r["name"]: r for r in describe(Slab)}
    assert rows["vacuum"]["unit"] == "Å" and rows["nx"]["lo"] == 2 and rows["orientation"]["choices"] == ("ab", "ac")


def _metal(symbol):
    if symbol not in ("Ni", "Pd", "Pt"):
        raise ValueError(f"not a supported metal: {symbol!r}")
    return symbol.capitalize()


@dataclass(frozen=True)
class Metals:
    metals: list[str] = option(factory=list, each=_metal)


def test_each_checks_every_item_and_names_it():
    assert parse(Metals, {"metals": ["Ni", "Pd"]}).metals == ["Ni", "Pd"]
    assert parse(Metals, {"metals": "Pt"}).metals == ["Pt"]
    with pytest.raises(InputError, match=r"^m.yaml: metals\[1\]: not a supported metal: 'Xx'$"):
        parse(Metals, {"metals": ["Ni", "Xx"]}, source="m.yaml")


@dataclass(frozen=True)
class Open:
    p: float = option(0.5, lo=0.0, lo_open=True, hi=1.0, hi_open=True)
    items: list[int] = option(factory=lambda: [1], check=non_empty)


@pytest.mark.parametrize("data, problem", [
    ({"p": 1.0}, "1 is not below 1 (the upper limit, excluded)"),
    ({"p": 0.0}, "0 is not above the minimum 0"),
    ({"items": []}, "expected a non-empty list"),
])
def test_open_bounds_and_non_empty(data, problem):
    assert parse(Open, {"p": 0.999}).p == 0.999
    with pytest.raises(InputError, match=r"^o.yaml: (p|items): " + re.escape(problem) + "$"):
        parse(Open, data, source="o.yaml")
    with pytest.raises(InputError, match="--p: 1 is not below 1"):
        check_value("1", float, name="--p", lo=0, hi=1, hi_open=True)
