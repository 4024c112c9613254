"""Relax one small configuration with CHGNet (CPU) and store it for the recognition-after-relaxation test.

A Ni/3N-Pd/4N pair (no shared N-N bond, the closest such placement) in a 6 x 4 sheet (95 atoms), FIRE to
fmax 0.1 eV/Å (at most 150 steps). The builder's metadata is kept in ``info`` (prefixed ``built_``) so the
test compares recognition of the relaxed geometry against it. Run from the repository root (minutes on 2 cores):
``.venv/bin/python tests/data/analysis/relaxed/make_relaxed.py``.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np
import torch
from ase.io import write
from ase.optimize import FIRE

from sacmap.structures.builders import METADATA_KEYS, SlabSpec, build_pair
from sacmap.structures.pairs import enumerate_pairs

HERE = Path(__file__).resolve().parent


def main() -> None:
    from chgnet.model import CHGNetCalculator

    torch.set_num_threads(2)
    slab = SlabSpec(6, 4)
    p = [q for q in enumerate_pairs("3N", "4N", 7.0, cell_limit=slab.separation_limit) if not q.shares_NN_bond][0]
    built = build_pair(p, ("Ni", "Pd"), slab=slab)
    at = built.copy()
    at.calc = CHGNetCalculator(use_device="cpu")
    opt = FIRE(at, logfile=None)
    opt.run(fmax=0.1, steps=150)
    energy = float(at.get_potential_energy())
    fmax = float(np.linalg.norm(at.get_forces(), axis=1).max())
    out = at.copy()
    out.calc = None
    out.info = {f"built_{k}": built.info[k] for k in METADATA_KEYS}
    out.info.update(relax_steps=int(opt.nsteps), relax_fmax_eV_A=fmax, chgnet_energy_eV=energy,
                    max_displacement_A=float(np.linalg.norm(out.positions - built.positions, axis=1).max()))
    write(HERE / "Ni3N-Pd4N_chgnet.extxyz", out, format="extxyz")
    print(out.info)


if __name__ == "__main__":
    main()
