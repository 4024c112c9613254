"""The sacmap web app: upload HAADF-STEM images, detect metal atoms, get descriptors, plots and downloads.

Layers (each in its own module):

* :mod:`sacmap.workflows.app.pipeline` — the ONLY place that calls the science: ``detection`` for reading images and
  finding atoms, ``analysis`` for the spatial descriptors and the NND histogram; it writes one image's files.
* :mod:`sacmap.workflows.app.jobs` — batches: upload storage, a single worker thread, progress, per-image errors, ZIP.
* :mod:`sacmap.workflows.app.server` — the FastAPI application (JSON API + one static HTML/JS page, no CDN assets).

Start it with ``sacmap app [--host 127.0.0.1] [--port 7860]``.
"""

from sacmap.workflows.app.server import create_app

__all__ = ["create_app"]
