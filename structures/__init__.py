"""sacmap structures: ASE builders for N-doped graphene slabs with 3×N6/4×N6/6×N6 sites, metals, dimers, references.

All lengths in Å. Imports nothing else of sacmap.
"""
