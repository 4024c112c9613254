"""Relaxation of one configuration with an embedded calculator (ASE optimizer, trajectory kept)."""

from __future__ import annotations

import time
from pathlib import Path

import numpy as np
from ase import Atoms

from sacmap.workflows.campaign.calculators import get_calculator


def _optimizer(name: str):
    """The ASE optimizer class called ``name``. ``PreconLBFGS`` is ASE's preconditioned LBFGS with the exponential
    preconditioner (A = 3) and an Armijo line search: on the 215-atom sheets it reaches the same fmax in about half
    the steps of BFGS (benchmarks/workflows.py)."""
    if name == "PreconLBFGS":
        from ase.optimize.precon import Exp, PreconLBFGS

        def make(atoms, **kw):  # a fresh preconditioner per relaxation (it caches per structure)
            return PreconLBFGS(atoms, precon=Exp(A=3), use_armijo=True, **kw)

        return make
    from ase import optimize

    return getattr(optimize, name)


def relax(atoms: Atoms, calculator: str, settings: dict, directory: str | Path) -> dict:
    """Relax ``atoms`` (positions only; cell fixed) to ``settings["fmax_eV_A"]`` and return the result.

    Writes ``relax.traj`` (every step) and ``relax.log`` into ``directory``. Returns a dict with ``atoms`` (the
    relaxed structure), ``energy_eV`` (total energy), ``forces`` (eV/Å), ``fmax_eV_A``, ``converged``, ``n_steps``,
    ``magmoms`` (μB, when the model predicts them), ``charges`` + ``charge_method`` only when the calculator gives
    atomic charges (never invented), and ``seconds``.
    """
    entry = get_calculator(calculator)
    directory = Path(directory)
    directory.mkdir(parents=True, exist_ok=True)
    calc = entry.factory(settings)
    work = atoms.copy()
    work.calc = calc
    t0 = time.perf_counter()
    opt = _optimizer(settings.get("optimizer", "BFGS"))(
        work, trajectory=str(directory / "relax.traj"), logfile=str(directory / "relax.log")
    )
    converged = bool(opt.run(fmax=float(settings["fmax_eV_A"]), steps=int(settings.get("max_steps", 500))))
    energy = float(work.get_potential_energy())
    forces = work.get_forces()
    out: dict = {
        "atoms": work.copy(),
        "energy_eV": energy,
        "forces": forces,
        "fmax_eV_A": float(np.sqrt((forces**2).sum(axis=1)).max()) if len(work) else 0.0,
        "converged": converged,
        "n_steps": int(opt.get_number_of_steps()),
        "seconds": time.perf_counter() - t0,
    }
    magmoms = _find_result(calc, "magmoms")
    if magmoms is not None:
        out["magmoms"] = np.asarray(magmoms, float).ravel().tolist()
    if entry.charge_method is not None and "charges" in getattr(calc, "implemented_properties", ()):
        out["charges"] = np.asarray(work.get_charges(), float).tolist()
        out["charge_method"] = entry.charge_method
    return out


def _find_result(calc, key: str):
    """A result of ``calc`` or of one of its sub-calculators (SumCalculator), else None."""
    res = getattr(calc, "results", {}) or {}
    if key in res:
        return res[key]
    subs = getattr(calc, "calcs", None) or getattr(getattr(calc, "mixer", None), "calcs", None) or []
    for sub in subs:
        val = _find_result(sub, key)
        if val is not None:
            return val
    return None
