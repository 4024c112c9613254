"""sacmap workflows: the products that orchestrate the other packages.

* :mod:`.campaign` — the FireWorks/custodian campaign engine, VASP inputs, Bader, the results database,
  calculators;
* :mod:`.job` — the main job ``sacmap run`` and its HTML report;
* :mod:`.app` — the web app;
* :mod:`.cli` — the ``sacmap`` command line (thin handlers over the packages).

Imports :mod:`sacmap.core`, :mod:`sacmap.structures`, :mod:`sacmap.detection` and :mod:`sacmap.analysis`;
nothing imports it back.
"""
