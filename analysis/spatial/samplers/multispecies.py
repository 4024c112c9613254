"""Several species sampled independently (the paper's multi-species rule); coordinates in nm."""

from __future__ import annotations

import numpy as np

from sacmap.analysis.errors import AnalysisInputError
from sacmap.analysis.spatial.samplers.point import default_region, run_seeds
from sacmap.analysis.spatial.samplers.registry import make_sampler


class MultiSpeciesSampler:
    """Each species drawn independently by one sampler (``sampler``: a sampler object, or a name from the
    registry, e.g. ``random``, ``repulsive``, ``attractive``, with ``params`` for it), species ``k`` from child
    stream ``k`` of the seed. :meth:`sample` takes ``counts`` {element: points per run}."""

    def __init__(self, sampler="random", **params):
        self.sampler = sampler
        self.params = params
        if hasattr(sampler, "sample"):
            if params:
                raise AnalysisInputError("multi-species sampler: parameters go to the sampler object itself")
            self._sampler = sampler
        else:
            self._sampler = make_sampler(sampler, **params)

    def sample(self, counts: dict, window=None, runs: int = 1, seed=None) -> tuple[np.ndarray, np.ndarray]:
        """``(xy (runs, n_total, 2) in nm, labels (n_total,))``, species in the order of ``counts``."""
        if not counts:
            raise AnalysisInputError("multi-species sampler: no species given")
        region = default_region(window)
        parts, labels = [], []
        for (el, n), ss in zip(counts.items(), run_seeds(seed, len(counts))):
            parts.append(self._sampler.sample(int(n), region, runs, ss))
            labels += [str(el)] * int(n)
        return np.concatenate(parts, axis=1), np.asarray(labels)
