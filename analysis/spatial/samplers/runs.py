"""Sampler runs with their descriptors, as ``sacmap sample`` writes them (coordinates in nm, densities nm⁻²)."""

from __future__ import annotations

import numpy as np

from sacmap.analysis.errors import AnalysisInputError
from sacmap.analysis.spatial.descriptors import descriptors, flatten_descriptors
from sacmap.analysis.spatial.samplers.multispecies import MultiSpeciesSampler
from sacmap.analysis.spatial.samplers.point import default_region, n_for_density
from sacmap.core.constants import MULTIMER_NM

#: descriptors averaged over runs in the summary
SUMMARY_KEYS = ("density_nm2", "nnd_mean_nm", "nnd_sd_nm", "nnd_mean_hanisch_nm", "multimer_share", "clark_evans",
                "z")


def sample_and_describe(sampler, window=None, runs: int = 1, seed=None, *, n_points: int | None = None,
                        density_nm2: float | None = None, species: dict[str, float] | None = None,
                        multimer_nm: float = MULTIMER_NM) -> dict:
    """Run ``sampler`` ``runs`` times in ``window`` and describe every run.

    Give exactly one of ``n_points`` (per run), ``density_nm2`` (atoms/nm² of the window's support) or
    ``species`` ({element: atoms/nm²}, sampled independently by :class:`MultiSpeciesSampler` with the same kind
    of sampler). Returns ``coords`` (DataFrame ``run, x_nm, y_nm[, element]``), ``stats`` (one row of flattened
    descriptors per run) and ``summary`` (the parameters, and the mean and SD over runs of :data:`SUMMARY_KEYS`).
    """
    import pandas as pd

    if sum(v is not None for v in (n_points, density_nm2, species)) != 1:
        raise AnalysisInputError("give one of a number of points, a density or species densities")
    if int(runs) < 1:
        raise AnalysisInputError(f"runs must be ≥ 1, got {runs}")
    region = default_region(window)
    params: dict = {"model": sampler.name, "region": region.describe(), "runs": int(runs), "seed": seed}
    labels = None
    if species is not None:
        if sampler.name == "dft":
            raise AnalysisInputError("species densities (--species) are available for random, attractive and "
                                     "repulsive")
        counts = {el: n_for_density(d, region) for el, d in species.items()}
        xy, labels = MultiSpeciesSampler(sampler).sample(counts, region, runs, seed)
        params["species_counts"] = counts
        n = sum(counts.values())
    else:
        n = n_for_density(density_nm2, region) if density_nm2 is not None else int(n_points)
        if n < 2:
            raise AnalysisInputError(f"{n} point(s) per run; statistics need at least 2")
        params["n_points"] = n
        xy = sampler.sample(n, region, runs, seed)
        params.update(sampler.describe(n, region))
    runs, n = xy.shape[0], xy.shape[1]
    coords = pd.DataFrame({"run": np.repeat(np.arange(runs), n), "x_nm": xy[:, :, 0].ravel(),
                           "y_nm": xy[:, :, 1].ravel()})
    if labels is not None:
        coords["element"] = np.tile(labels, runs)
    stats = pd.DataFrame([{"run": r, **flatten_descriptors(descriptors(xy[r], region, labels,
                                                                      multimer_nm=multimer_nm))}
                          for r in range(runs)])
    summary = {**params, "mean": {k: float(stats[k].mean()) for k in SUMMARY_KEYS},
               "sd": {k: float(stats[k].std(ddof=1)) if runs > 1 else 0.0 for k in SUMMARY_KEYS}}
    return {"coords": coords, "stats": stats, "summary": summary, "window": region}
