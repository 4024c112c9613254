"""The descriptors of one observation, with the random reference in the SAME window (nm, nm⁻²).

:func:`describe` is what ``sacmap stats``, ``sacmap run`` (statistics step) and the web app report for an image:
the scalar descriptors of :func:`~sacmap.analysis.spatial.descriptors.descriptors` over the observation's window
(density over its support area; Hanisch-corrected NND and Donnelly-corrected Clark–Evans ratio from the same
window's geometry), the random reference — ``random_runs`` uniform patterns of the same number of atoms in the
same window (:func:`random_reference_nnd`) — and, on request, the translation-corrected g(r) in that window.
"""

from __future__ import annotations

import numpy as np

from sacmap.analysis.errors import AnalysisInputError
from sacmap.analysis.spatial.descriptors import descriptors, pair_correlation, pooled_nnd
from sacmap.analysis.spatial.observation import Observation
from sacmap.analysis.spatial.samplers.point import RandomSampler
from sacmap.core.constants import MULTIMER_NM

#: random reference patterns: runs (the paper uses ≥ 40) and seed (reproducible)
RANDOM_RUNS, RANDOM_SEED = 40, 0
#: pooled random-reference NNDs are capped near this many (large fields get fewer runs of the same size)
MAX_POOLED_ATOMS = 2_000_000


def random_reference_nnd(window, n_atoms: int, runs: int = RANDOM_RUNS, seed=RANDOM_SEED) -> tuple[np.ndarray, int]:
    """Pooled NNDs (nm) of uniform random patterns of ``n_atoms`` points in ``window`` (the same density), and
    the number of runs used: ``min(runs, max(1, MAX_POOLED_ATOMS // n_atoms))``."""
    runs = min(int(runs), max(1, MAX_POOLED_ATOMS // int(n_atoms)))
    return pooled_nnd(RandomSampler().sample(int(n_atoms), window, runs=runs, seed=seed)), runs


def describe(observation: Observation, multimer_nm: float = MULTIMER_NM, random_runs: int = RANDOM_RUNS,
             seed=RANDOM_SEED, gr_rmax_nm: float | None = 2.0, gr_dr_nm: float = 0.02) -> tuple[dict, dict]:
    """``(descriptors, arrays)`` of an observation with at least 2 atoms in its window.

    ``descriptors``: the ``descriptors.json`` contract (see :func:`~sacmap.analysis.spatial.descriptors.descriptors`)
    plus ``source``, ``n_detected``, ``n_off_window``, ``warnings``, ``region.source`` (how the window was chosen)
    and, with ``random_runs > 0``, ``nnd_mean_random_same_window_nm``, ``multimer_share_random_same_window`` and
    ``random_reference`` {sampler, runs, seed, window}. ``arrays``: per-atom ``nnd_nm``, ``boundary_nm``,
    ``cluster``, ``degree``; ``random_nnd_nm`` (pooled, when a reference was drawn); ``gr_r_nm`` and ``gr``
    (when ``gr_rmax_nm`` is not None; bins of ``gr_dr_nm``).
    """
    obs = observation
    if obs.n_atoms < 2:
        off = f" ({obs.n_off_window} outside the region)" if obs.n_off_window else ""
        raise AnalysisInputError(f"{obs.source}: only {obs.n_atoms} atom(s) in the window{off}; nearest-neighbour "
                                 "statistics need ≥ 2")
    if gr_rmax_nm is not None and not (gr_rmax_nm > 0 and 0 < gr_dr_nm <= gr_rmax_nm):
        raise AnalysisInputError("g(r): r_max and dr must be positive with dr ≤ r_max (nm)")
    if int(random_runs) < 0:
        raise AnalysisInputError(f"random reference: runs must be ≥ 0, got {random_runs!r}")
    desc = descriptors(obs.xy_nm, obs.window, obs.elements, multimer_nm=multimer_nm, return_arrays=True)
    arrays = desc.pop("arrays")
    desc["region"]["source"] = obs.window_source
    desc.update(source=obs.source, n_detected=obs.n_detected, n_off_window=obs.n_off_window,
                warnings=list(obs.warnings))
    if random_runs > 0:
        rnd, runs = random_reference_nnd(obs.window, obs.n_atoms, random_runs, seed)
        arrays["random_nnd_nm"] = rnd
        desc["random_reference_runs"] = runs
        desc["nnd_mean_random_same_window_nm"] = float(rnd.mean())
        desc["multimer_share_random_same_window"] = float(np.mean(rnd <= multimer_nm))
        desc["random_reference"] = {"sampler": "random", "runs": runs, "seed": seed, "window": obs.window_source}
    if gr_rmax_nm is not None:
        arrays["gr_r_nm"], arrays["gr"] = pair_correlation(obs.xy_nm, obs.window, gr_rmax_nm, gr_dr_nm)
    return desc, arrays
