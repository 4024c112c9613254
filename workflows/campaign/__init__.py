"""The campaign engine: FireWorks workflows that relax every configuration of a spec (VASP PBE-D3(+U) through
custodian, or an embedded calculator such as CHGNet + D3), then a static run and Bader charges, and store the
results (Å, eV, e) in an ASE database (SQLite or PostgreSQL).

* :mod:`.runner` — submit / run / status / rerun / export of a campaign work directory;
* :mod:`.builders` and :mod:`.firetasks` — the Fireworks of one configuration and the tasks they run;
* :mod:`.launchpad` — the embedded (mongomock, file-backed) LaunchPad or a MongoDB launchpad file;
* :mod:`.settings` — VASP presets and the ``calculation`` block, validated through :mod:`sacmap.core.validation`;
* :mod:`.vasp_inputs`, :mod:`.vasp_run` — INCAR/KPOINTS/POSCAR/POTCAR and custodian runs (outputs parsed by
  :mod:`sacmap.analysis.energetics.readers`);
* :mod:`.bader`, :mod:`.calculators` — Bader charges and the embedded calculators;
* :mod:`.configs`, :mod:`.results` — configurations as FireWorks documents, and the results database.
"""
