"""Detection accuracy of a weights file: real validation images and simulated ones (sparse, clean, dense, dimers).

Run: ``.venv/bin/python benchmarks/detection_accuracy.py [WEIGHTS] [--data ../shared/data/ptnc-stem]``
(default: the bundled weights). Prints P/R/F1 with one-to-one Hungarian matching:

* ``validation``: the 5 validation images of the shared Pt₁/NC data (5 px = 0.146 nm), when the folder exists;
* ``heldout-train``: the 3 training images held out for the threshold (034, 045, 048);
* simulated 512² / 384² images (seeds fixed): calibrated noise at 1 atom/nm² (5 px); clean (no noise, smooth
  support) and noise-free with the calibrated texture at 1 atom/nm² (5 px); the calibrated sample imaged at other
  pixel sizes (0.7×, 1.5×, 2× the training one; radius 0.146 nm); dense images at 3 px: 3 atoms/nm²
  with 20 % dimers, 8 atoms/nm² (0.2-nm hard core), and brighter atoms (2× the calibrated contrast) at 5 atoms/nm²,
  with a sharper probe (0.15 nm), at 3 atoms/nm² with 30 % dimers; isolated 0.22-nm dimers (recall at 3 px).

For the dense images the script also prints the F1 of a difference-of-Gaussians peak detector whose threshold is
tuned on the truth of that very image (an optimistic reference a real detector cannot reach: it sees the answer).
"""

from __future__ import annotations

import argparse
import time
from pathlib import Path

import numpy as np

REPO = Path(__file__).resolve().parent.parent
PX = 0.029296875


def dog_reference(pre: np.ndarray, xy: np.ndarray, radius: float) -> float:
    """Best F1 over thresholds (tuned on the truth) of DoG maxima (σ 1.5 or 2.5 px minus σ 8 px, 5-px window)."""
    from scipy import ndimage

    from sacmap.detection.evaluate import evaluate_xy

    best = 0.0
    for s in (1.5, 2.5):
        sm = ndimage.gaussian_filter(pre, s) - ndimage.gaussian_filter(pre, 8)
        mx = sm == ndimage.maximum_filter(sm, size=5)
        for t in np.quantile(sm[mx], np.linspace(0.3, 0.99, 30)):
            r, c = np.nonzero(mx & (sm > t))
            best = max(best, evaluate_xy(np.c_[c, r], xy, radius)["f1"])
    return best


def main(argv=None) -> int:
    import pandas as pd

    from sacmap.detection import simulate
    from sacmap.detection.evaluate import evaluate_xy, pooled
    from sacmap.detection.labels import read_labels
    from sacmap.detection.pipeline import detect_image, detect_images
    from sacmap.detection.preprocess import preprocess

    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("weights", nargs="?", default=None)
    ap.add_argument("--data", default=str(REPO.parent / "shared/data/ptnc-stem"))
    a = ap.parse_args(argv)
    w = a.weights
    t0 = time.perf_counter()

    def line(name, per, extra=""):
        p = pooled(per)
        print(f"{name:<34} P {p['precision']:.3f}  R {p['recall']:.3f}  F1 {p['f1']:.3f}  "
              f"(n_truth {p['n_truth']}, n_pred {p['n_pred']}){extra}")

    data = Path(a.data)
    if (data / "split.csv").is_file():
        split = pd.read_csv(data / "split.csv")
        sets = {"validation": split[split.split == "validation"],
                "heldout-train (034, 045, 048)": split[split.image.str[:3].isin(["034", "045", "048"])]}
        for name, rows in sets.items():
            res = detect_images([data / "images" / i for i in rows.image], weights=w)
            per = [evaluate_xy(r.atoms[["x_px", "y_px"]].to_numpy(), read_labels(data / "labels" / lab), 5)
                   for r, lab in zip(res, rows.labels)]
            line(f"{name} (5 px)", per)
    else:
        print(f"{data}: no split.csv, real images skipped")

    def sim(name, radius, seeds, shape=(512, 512), reference=False, px=PX, **kw):
        per, ref = [], []
        for s in seeds:
            img, truth, _ = simulate.simulate_sample(seed=s, shape=shape, pixel_size_nm=px, **kw)
            xy = truth[["x_px", "y_px"]].to_numpy()
            r = detect_image(img, pixel_size_nm=px, weights=w)
            per.append(evaluate_xy(r.atoms[["x_px", "y_px"]].to_numpy(), xy, radius))
            if reference:
                ref.append(dog_reference(preprocess(img), xy, radius))
        line(f"{name} ({radius} px)", per, f"  truth-tuned DoG F1 {np.mean(ref):.3f}" if ref else "")

    sim("1/nm², calibrated noise", 5, [0, 1], density_nm2=1.0)
    sim("1/nm², clean", 5, [0, 1], density_nm2=1.0, noise=False, texture_sd=0.0, vacuum_texture_sd=0.0)
    sim("1/nm², noise-free, textured", 5, [0, 1], density_nm2=1.0, noise=False)
    for f, n in ((0.7, 731), (1.5, 342), (2.0, 256)):  # other magnifications: same 15-nm field, resampled
        sim(f"1/nm², calibrated, {f * PX:.4f} nm/px", round(5 / f, 2), [0, 1], shape=(n, n), px=f * PX, density_nm2=1.0)
    sim("3/nm², 20 % dimers", 3, [0, 1], density_nm2=3.0, dimer_fraction=0.2, reference=True)
    sim("8/nm², 0.2-nm hard core", 3, [0], density_nm2=8.0, min_dist_nm=0.2, reference=True)
    bright = dict(shape=(384, 384), peak_pt=0.72, reference=True)
    sim("5/nm², 2× contrast", 3, [3], density_nm2=5.0, **bright)
    sim("5/nm², 2× contrast, 0.15-nm atoms", 3, [3], density_nm2=5.0, spread_fwhm_nm=0.15, **bright)
    sim("3/nm², 2× contrast, 30 % dimers", 3, [3], density_nm2=3.0, dimer_fraction=0.3, **bright)

    rng = np.random.default_rng(0)
    for clean in (False, True):
        xy = []
        for cx in np.arange(1.5, 14, 2.5):
            for cy in np.arange(1.5, 14, 2.5):
                t = rng.uniform(0, np.pi)
                d = 0.11 * np.array([np.cos(t), np.sin(t)])
                xy += [np.array([cx, cy]) + d, np.array([cx, cy]) - d]
        kw = dict(noise=False, texture_sd=0.0, vacuum_texture_sd=0.0) if clean else {}
        img, truth = simulate.simulate_image(np.asarray(xy), seed=0, **kw)
        r = detect_image(img, pixel_size_nm=PX, weights=w)
        line(f"0.22-nm dimers, {'clean' if clean else 'calibrated noise'} (3 px)",
             [evaluate_xy(r.atoms[["x_px", "y_px"]].to_numpy(), truth[["x_px", "y_px"]].to_numpy(), 3)])
    print(f"({time.perf_counter() - t0:.0f} s)")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
