"""The paper's point samplers (coordinates in nm, energies in eV), all with parameters in ``__init__`` and
``sample(n, window, runs=1, seed=None) -> (runs, n, 2)``: :mod:`.point` (random, attractive, repulsive),
:mod:`.dft` (DFT-biased, with its :meth:`~.dft.DFTBiasedSampler.fit` through :mod:`.fit`), :mod:`.registry`
(``make_sampler(name, **params)``), :mod:`.multispecies` (each species sampled independently) and :mod:`.runs`
(sampler runs with their descriptors, as ``sacmap sample`` writes them)."""
