"""What the pipeline leaves in the image: significant residual peaks far from every detected atom (issue 14).

Run: ``OMP_NUM_THREADS=2 .venv/bin/python benchmarks/residual_peaks.py [--data ../shared/data/ptnc-stem]``
(≈ 8 min on 2 cores). It measures whether an iterative residual search (fit, subtract, add the residual's peaks,
refit) could recover the atoms crowded fields lose, before anyone builds one into the pipeline.

Per image: the detector's atoms (:class:`sacmap.detection.detector.AtomDetector`, ``combined``) are drawn back as
the Gaussians the refinement fitted (integrated ``intensity``, ``sigma_px``, positions; px of the image), the model
is subtracted, the remainder's slow background removed (median over 10 σ₀, σ₀ the median fitted σ), and the rest
band-passed (G(σ₀) − G(3σ₀)) and divided by its robust sd (1.4826 × MAD) to a z map. Candidates are the local
maxima of z farther than 0.15 nm from every detected atom; "true" counts those within the matching radius of a
true atom the detector missed (one-to-one). The local *minima* of z under the same conditions (``−n``) estimate how
many of the candidates the support alone makes: a missed atom is only ever bright, texture and fit errors go both
ways. Images: the second renderer's broad crowded and faint rows (``independent_renderer.scene``, seed 7),
calibrated :func:`sacmap.detection.simulate.simulate_sample` fields (512², 0.0293 nm/px), and the 16 real
Pt₁/NC images against their expert labels (5 px); on the real images "false" includes atoms the labels miss.
"""

from __future__ import annotations

import argparse
import time
from pathlib import Path

import numpy as np

Z_LEVELS = (3, 4, 5, 6)
SEP_NM = 0.15


def residual_z(image: np.ndarray, atoms) -> tuple[np.ndarray, float]:
    """(z map, σ₀ px) of ``image`` less the refined atoms ``atoms`` (DataFrame of the detector, image px), drawn
    as the refinement draws its model (:func:`sacmap.detection.gaussfit._splat`, within its window for σ₀)."""
    from scipy import ndimage

    from sacmap.detection.gaussfit import _splat, robust_sd, splat_half

    img = np.asarray(image, float)
    s0 = float(np.nanmedian(atoms["sigma_px"])) if len(atoms) else 3.0
    sig = atoms["sigma_px"].fillna(s0).to_numpy(float)
    P = np.c_[atoms["x_px"].to_numpy(float), atoms["y_px"].to_numpy(float),
              atoms["intensity"].fillna(0.0).to_numpy(float) / (2 * np.pi * sig**2), np.log(sig)]
    res = img - _splat(img.shape, P, splat_half(s0)).reshape(img.shape)
    res -= ndimage.median_filter(res, int(10 * s0) | 1)
    band = ndimage.gaussian_filter(res, s0) - ndimage.gaussian_filter(res, 3 * s0)
    return band / max(robust_sd(band), 1e-12), s0


def _extrema(z: np.ndarray, s0: float, atoms_xy: np.ndarray, sep_px: float, sign: int):
    """(x, y) px and |z| of the local maxima of ``sign`` × z ≥ min(Z_LEVELS) farther than ``sep_px`` from atoms."""
    from scipy.spatial import cKDTree
    from skimage.feature import peak_local_max

    pk = peak_local_max(sign * z, min_distance=max(1, int(s0)), threshold_abs=min(Z_LEVELS),
                        exclude_border=max(1, int(s0)))
    xy = pk[:, ::-1].astype(float)
    if len(atoms_xy) and len(xy):
        far = cKDTree(atoms_xy).query(xy)[0] > sep_px
        xy, pk = xy[far], pk[far]
    return xy, sign * z[pk[:, 0], pk[:, 1]]


def row(name: str, det, image, px: float, truth_px: np.ndarray, tol_px: float) -> str:
    from sacmap.detection.evaluate import match

    atoms = det.detect(image, px)
    xy = atoms[["x_px", "y_px"]].to_numpy(float)
    z, s0 = residual_z(image, atoms)
    cand, zc = _extrema(z, s0, xy, SEP_NM / px, 1)
    _, zn = _extrema(z, s0, xy, SEP_NM / px, -1)
    _, found = match(xy, truth_px, tol_px)
    missed = truth_px[np.setdiff1d(np.arange(len(truth_px)), found)]
    cells = []
    for k in Z_LEVELS:
        c = cand[zc >= k]
        tp = len(match(c, missed, tol_px)[0]) if len(c) and len(missed) else 0
        cells.append(f"{tp} / {len(c)} / {int((zn >= k).sum())}")
    return f"| {name} | {len(truth_px)} | {len(xy)} | {len(missed)} | " + " | ".join(cells) + " |"


def main(argv=None) -> int:
    import sys

    import pandas as pd

    sys.path.insert(0, str(Path(__file__).resolve().parent))
    import independent_renderer as ir

    from sacmap.detection.detector import AtomDetector
    from sacmap.detection.io import read_image
    from sacmap.detection.labels import read_labels
    from sacmap.detection.simulate import simulate_sample

    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--data", type=Path, default=Path(__file__).resolve().parents[1] / "../shared/data/ptnc-stem")
    a = ap.parse_args(argv)
    det = AtomDetector("combined")
    t0 = time.perf_counter()
    print("| image | true | detected | missed | " + " | ".join(f"z ≥ {k}: true / candidates / −n" for k in Z_LEVELS)
          + " |\n|---|---|---|---|" + "---|" * len(Z_LEVELS))
    for cond in [(0.03, 0.28, 2e5, 0.8), (0.03, 0.28, 5e4, 0.5), (0.03, 0.25, 1e5, 0.3), (0.03, 0.1, 1e5, 0.3)]:
        for arrangement, density in ir.ARRANGEMENTS:
            img, xy, _ = ir.scene(*cond, arrangement, density)
            print(row(f"renderer {cond[1]} nm, {cond[2]:.0e}, peak {cond[3]}, {arrangement} {density:g}", det, img,
                      cond[0], xy / cond[0], SEP_NM / cond[0]), flush=True)
    px = 0.029296875
    for arrangement in ("random", "hardcore", "multimer"):
        for density in (1.0, 4.0, 8.0):
            img, truth, _ = simulate_sample(density, arrangement=arrangement, shape=(512, 512), pixel_size_nm=px,
                                            seed=[int(density * 10), 0, 0])
            print(row(f"calibrated {arrangement} {density:g}", det, img, px,
                      truth[["x_px", "y_px"]].to_numpy(float), SEP_NM / px), flush=True)
    if (a.data / "split.csv").is_file():
        rows = pd.read_csv(a.data / "split.csv")
        for im, lab in zip(rows.image, rows.labels):
            raw, ipx, _ = read_image(a.data / "images" / im)
            print(row(f"real {im[:3]}", det, raw, ipx, read_labels(a.data / "labels" / lab), 5.0), flush=True)
    else:
        print(f"\n{a.data}: no split.csv, real images skipped")
    print(f"\n({time.perf_counter() - t0:.0f} s)")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
