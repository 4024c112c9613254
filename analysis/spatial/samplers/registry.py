"""The samplers by name: one registry and one factory (``sacmap sample``, the main job and the multi-species
wrapper all build their samplers here). Lengths in nm, energies in eV."""

from __future__ import annotations

from sacmap.analysis.errors import AnalysisInputError
from sacmap.analysis.spatial.samplers.dft import DFTBiasedSampler
from sacmap.analysis.spatial.samplers.point import (
    AttractiveSampler,
    HardCoreSampler,
    RandomSampler,
    RepulsiveSampler,
)

#: name → sampler class (each has ``sample(n, window, runs=1, seed=None) -> (runs, n, 2)`` in nm)
SAMPLERS: dict[str, type] = {
    "random": RandomSampler,
    "attractive": AttractiveSampler,
    "repulsive": RepulsiveSampler,
    "dft": DFTBiasedSampler,
    "hardcore": HardCoreSampler,
}


def make_sampler(name: str, **params):
    """The sampler called ``name`` with its parameters, e.g. ``make_sampler("repulsive", c_nm=0.2)``."""
    try:
        cls = SAMPLERS[name]
    except KeyError:
        raise AnalysisInputError(f"unknown sampler {name!r} (expected one of {', '.join(SAMPLERS)})") from None
    try:
        return cls(**params)
    except TypeError as exc:
        raise AnalysisInputError(f"sampler {name!r}: {exc}") from None
