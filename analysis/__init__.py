"""sacmap analysis: energetics from finished calculations (Å, eV) and spatial statistics / samplers (nm).

May import :mod:`structures`; nothing else of sacmap.
"""
