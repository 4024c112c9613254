"""sacmap: how metal centres are organised in single-atom catalysts (SACs), and why.

Installed packages (one-way imports, bottom to top):

* :mod:`sacmap.core` — atomic writes, JSON sanitising, the detection-record schema, shared constants, the typed
  validation layer, the bundled inputs; imports nothing else of sacmap;
* :mod:`sacmap.structures` (Å) and :mod:`sacmap.detection` (px, nm) — import only the core;
* :mod:`sacmap.analysis` — energetics (eV, Å) and spatial statistics (nm); may import structures;
* :mod:`sacmap.workflows` — the campaign engine, the main job, the web app and the ``sacmap`` CLI.

See ``docs/architecture.md``.
"""

from importlib.metadata import PackageNotFoundError, version

try:
    __version__ = version("sacmap")
except PackageNotFoundError:  # a source tree that was never installed
    __version__ = "0+unknown"

__all__ = ["__version__"]
