"""sacmap analysis: energetics from finished calculations (Å, eV; :mod:`sacmap.analysis.energetics`) and spatial
statistics / samplers (nm; :mod:`sacmap.analysis.spatial`).

May import :mod:`sacmap.core` and :mod:`sacmap.structures`; nothing else of sacmap.
"""
