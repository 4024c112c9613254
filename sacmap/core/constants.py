"""Constants shared by more than one sacmap package (one definition each)."""

from __future__ import annotations

#: Elements never counted as metal centres (ASE's ghost ``X`` included): the sheet (C, N), H and other
#: non-metals, metalloid Si, noble gases. Everything else in a configuration is a metal.
NON_METALS: frozenset[str] = frozenset({
    "X", "H", "He", "B", "C", "N", "O", "F", "Ne", "Si", "P", "S", "Cl", "Ar", "Se", "Br", "Kr", "I", "Xe", "Rn",
})

#: The paper's multimer cut-off (nm): atoms with a neighbour at most this close belong to a multimer (most DFT
#: metal–metal bonds are ≈ 2.2 Å).
MULTIMER_NM: float = 0.22


def is_metal(symbol: str) -> bool:
    """True for every element symbol not in :data:`NON_METALS`."""
    return symbol not in NON_METALS
