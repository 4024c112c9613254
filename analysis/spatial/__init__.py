"""Spatial statistics of metal centres and the paper's point samplers. Every length is in nm, every area in nm²,
every density in atoms/nm²; pixel coordinates (px) appear only where a detection record is read.

Modules:

* :mod:`~sacmap.analysis.spatial.window` — :class:`Region`, the observation window: a rectangle or a boolean
  support mask with its pixel size (pixel ``(row i, col j)`` centred at ``(x, y) = (j, i) · p``);
* :mod:`~sacmap.analysis.spatial.io` — reading coordinate CSVs (nm or px columns), mask files and ``W,H`` /
  ``X0,Y0,X1,Y1`` rectangles;
* :mod:`~sacmap.analysis.spatial.observation` — :class:`Observation`, one observed pattern: points, labels and
  window. ``Observation.from_detection`` reads a detection record and chooses the window ONE way: an explicit
  mask or region, else the record's support mask (``<stem>_support.png``), else the image rectangle (shape ×
  pixel size), else the points' bounding box; atoms outside the window are excluded and counted;
* :mod:`~sacmap.analysis.spatial.descriptors` — density, nearest-neighbour distances (NND), multimers and
  nuclearity, Clark–Evans ratio, per-species NND, g(r);
* :mod:`~sacmap.analysis.spatial.describe` — :func:`describe`, the descriptors of an observation with the random
  reference (uniform patterns of the same size in the SAME window) and g(r): what ``sacmap stats``, ``sacmap run``
  and the web app report;
* :mod:`~sacmap.analysis.spatial.summary` — K, L, g(r), G, F, J and cross-type K, L, G with spatstat's edge
  corrections (each result names its correction);
* :mod:`~sacmap.analysis.spatial.envelopes` — Monte-Carlo global envelope tests (global rank envelope / ERL,
  MAD, DCLF) against CSR, the repulsive, hard-core and DFT-biased samplers and random labelling;
* :mod:`~sacmap.analysis.spatial.plots` — the NND histogram, nuclearity bars, g(r), global envelopes;
* :mod:`~sacmap.analysis.spatial.samplers` — random, attractive, repulsive and DFT-biased samplers behind one
  interface (``sample(n, window, runs, seed) -> (runs, n, 2)`` nm) and one registry (``make_sampler``), the
  multi-species wrapper, the fit of the DFT-biased sampler, and sampler runs with their descriptors.

Windows and edge corrections: one window serves the density (its support area), the random reference, g(r) and
the fits. Edge corrections ask the window for its area and perimeter, the distance of a point to its boundary and
its set covariance ``|W ∩ (W + v)|``: the Hanisch-corrected mean NND weights each atom by the area of the window
eroded by its NND, the Clark–Evans expectation is Donnelly's (perimeter term; on masks with holes the
Kaplan–Meier mean NND instead), and g(r) uses the translation correction. Rectangles answer analytically, masks through a distance transform and an FFT autocorrelation.
"""
