"""Pluggable registry of embedded (ASE) calculators.

Each entry builds an ASE calculator from a settings dict. ``chgnet-d3`` (CHGNet 0.3.0, weights shipped in the
wheel, plus Grimme D3 zero damping from ``dftd3``) is the default: it works offline on any CPU. ``sevennet-d3``,
``tblite`` (GFN2-xTB; gives atomic charges) and ``gpaw`` (LCAO DFT) are optional behind the extras ``sevennet``,
``xtb`` and a manual GPAW install. ``emt`` is ASE's toy EMT potential, only for testing the machinery fast; its
energies mean nothing for N-doped graphene.

Add a calculator with :func:`register`.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field

from sacmap.workflows.campaign.calculators import factories


@dataclass(frozen=True)
class CalculatorEntry:
    """An embedded calculator: ``factory(settings) -> ase Calculator``.

    ``charge_method`` names the atomic charges the calculator gives (e.g. ``"mulliken-gfn2"``), or ``None`` when
    it gives none: then no charges are recorded. ``default_settings`` enter the settings hash.
    """

    name: str
    factory: Callable[[dict], object]
    description: str
    extra: str | None = None
    charge_method: str | None = None
    default_settings: dict = field(default_factory=dict)


_REGISTRY: dict[str, CalculatorEntry] = {}


def register(entry: CalculatorEntry) -> None:
    """Add (or replace) a calculator in the registry."""
    _REGISTRY[entry.name] = entry


def get_calculator(name: str) -> CalculatorEntry:
    """Registry entry by name; ``KeyError`` with the list of known names otherwise."""
    try:
        return _REGISTRY[name]
    except KeyError:
        raise KeyError(f"unknown calculator {name!r}; known: vasp, embedded, {', '.join(available())}") from None


def available() -> list[str]:
    """Names of the registered embedded calculators."""
    return sorted(_REGISTRY)


register(CalculatorEntry(
    "chgnet-d3", factories.chgnet_d3,
    "CHGNet (MPtrj, PBE/PBE+U-like) + D3 zero damping (PBE parameters): the embedded default",
    default_settings={"model": "0.3.0", "dispersion": "d3-zero-pbe"},
))
register(CalculatorEntry(
    "chgnet", factories.chgnet_plain, "CHGNet without a dispersion term", default_settings={"model": "0.3.0"},
))
register(CalculatorEntry(
    "sevennet-d3", factories.sevennet_d3, "SevenNet 7net-0 + D3 zero damping (cross-check)", extra="sevennet",
    default_settings={"model": "7net-0", "dispersion": "d3-zero-pbe"},
))
register(CalculatorEntry(
    "tblite", factories.tblite_gfn2, "GFN2-xTB via tblite (includes D4); gives atomic charges", extra="xtb",
    charge_method="mulliken-gfn2", default_settings={"method": "GFN2-xTB"},
))
register(CalculatorEntry(
    "gpaw", factories.gpaw_lcao, "GPAW LCAO dzp PBE + D3 zero damping (slow; spot checks only)",
    extra="gpaw (manual install)", default_settings={"mode": "lcao", "basis": "dzp", "xc": "PBE",
                                                       "dispersion": "d3-zero-pbe", "kpts": [2, 2, 1]},
))
register(CalculatorEntry(
    "emt", factories.emt, "ASE EMT toy potential: tests of the machinery only, not physics",
    default_settings={"model": "ase-emt"},
))
