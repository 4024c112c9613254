"""Energetics from finished calculations (energies in eV, lengths in Å, charges in e).

* :mod:`.readers` — one reader per format (VASP folders, ioChem-BD CML, ASE databases, Bader ACF.dat) and the
  walk over folders and archives into one records table;
* :mod:`.recognition` — what each calculation is, from its geometry alone (site kinds, separation, metals,
  dimers, gas references), through the :mod:`sacmap.structures` lattice API;
* :mod:`.equations` — E_int (the paper's eqs. 1–5), dimer formation energies, the site–site potential and the
  Bader descriptor ⟨B⟩, with the settings checks that keep unlike terms apart;
* :mod:`.figures` — the Fig. 4a–c analogues.
"""
