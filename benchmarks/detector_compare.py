"""Compare detectors (the heat-map model, the paper's CNN, weights files) on real and simulated images.

Run: ``.venv/bin/python benchmarks/detector_compare.py [MODEL ...] [--data ../shared/data/ptnc-stem] [--quick]``
(names: ``bundled``, ``paper``, ``heatmap``, ``combined``, else weights files; default ``bundled paper``). For each model it prints

* real images (Hungarian matching within 5 px = 0.146 nm, pooled): the 5 validation images and the 3 training
  images held out for the checkpoint and the threshold (034, 045, 048);
* simulated sets (fixed seeds, :func:`sacmap.detection.simulate.simulate_sample`): per set the true and detected
  density (atoms/nm² of the image), Clark–Evans ratio (edge-corrected, ``analysis.spatial.descriptors``),
  multimer share (nearest neighbour ≤ 0.22 nm) and F1 at 0.15 nm — random (CSR) patterns at 0.3, 1, 2, 4 atoms/nm²,
  hard-core + multimer-rich images at 3, 6 and 8 atoms/nm², the calibrated sample at 0.016 and 0.045 nm/px,
  Ni/Pd mixtures and isolated 0.22-nm dimers.
"""

from __future__ import annotations

import argparse
import time
from pathlib import Path

import numpy as np

REPO = Path(__file__).resolve().parent.parent
PX = 0.029296875


def descriptors(xy_nm: np.ndarray, field_nm: tuple[float, float]) -> dict:
    """density (/nm²), Clark–Evans (Donnelly edge correction) and multimer share (NND ≤ 0.22 nm) of a pattern."""
    from sacmap.analysis.spatial.descriptors import clark_evans, nearest_neighbour_distances, nuclearity

    area, per = field_nm[0] * field_nm[1], 2 * (field_nm[0] + field_nm[1])
    n = len(xy_nm)
    if n < 3:
        return {"density": n / area, "ce": float("nan"), "multimer": float("nan")}
    nnd, _ = nearest_neighbour_distances(np.asarray(xy_nm, float))
    return {"density": n / area, "ce": clark_evans(float(nnd.mean()), n, area, per)["clark_evans"],
            "multimer": nuclearity(np.asarray(xy_nm, float), 0.22, nnd)["multimer_share"]}


SETS = [  # name, seeds, simulate_sample keywords
    ("random 0.3/nm²", (0, 1), dict(density_nm2=0.3, min_dist_nm=0.0)),
    ("random 1/nm²", (0, 1), dict(density_nm2=1.0, min_dist_nm=0.0)),
    ("random 2/nm²", (0, 1), dict(density_nm2=2.0, min_dist_nm=0.0)),
    ("random 4/nm²", (0,), dict(density_nm2=4.0, min_dist_nm=0.0)),
    ("hard-core+multimer 3/nm²", (0,), dict(density_nm2=3.0, min_dist_nm=0.25, dimer_fraction=0.3,
                                            trimer_fraction=0.3)),
    ("hard-core+multimer 6/nm²", (0,), dict(density_nm2=6.0, min_dist_nm=0.25, dimer_fraction=0.3,
                                            trimer_fraction=0.3)),
    ("hard-core 8/nm² (0.2 nm)", (0,), dict(density_nm2=8.0, min_dist_nm=0.2)),
    ("1/nm² at 0.016 nm/px", (0,), dict(density_nm2=1.0, pixel_size_nm=0.016, shape=(900, 900))),
    ("1/nm² at 0.045 nm/px", (0,), dict(density_nm2=1.0, pixel_size_nm=0.045, shape=(340, 340))),
    ("Ni/Pd 2/nm² hard-core", (0,), dict(density_nm2=2.0, min_dist_nm=0.25, elements={"Ni": 1, "Pd": 1},
                                         peak_pt=0.9)),
]


def main(argv=None) -> int:
    import pandas as pd

    from sacmap.detection import simulate
    from sacmap.detection.detector import COMBINATIONS, MODELS
    from sacmap.detection.evaluate import evaluate_xy, pooled
    from sacmap.detection.labels import read_labels
    from sacmap.detection.pipeline import detect_image, detect_images

    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("models", nargs="*", default=["bundled", "paper"])
    ap.add_argument("--data", default=str(REPO.parent / "shared/data/ptnc-stem"))
    ap.add_argument("--quick", action="store_true", help="real images and three simulated sets only")
    ap.add_argument("--no-refine", action="store_true", help="skip the Gaussian refinement")
    a = ap.parse_args(argv)
    from sacmap.detection.pipeline import Settings

    settings = Settings(refine=not a.no_refine)
    data = Path(a.data)
    sims = {}
    for name, seeds, kw in (SETS[1:3] + SETS[5:6] if a.quick else SETS):
        sims[name] = [simulate.simulate_sample(seed=s, **{"shape": (512, 512), **kw}) for s in seeds]
    pairs = []
    rng = np.random.default_rng(0)
    for cx in np.arange(1.5, 14, 2.5):
        for cy in np.arange(1.5, 14, 2.5):
            t = rng.uniform(0, np.pi)
            d = 0.11 * np.array([np.cos(t), np.sin(t)])
            pairs += [np.array([cx, cy]) + d, np.array([cx, cy]) - d]
    dimers = simulate.simulate_image(np.asarray(pairs), seed=0)
    for model in a.models:
        named = model == "bundled" or model in MODELS or model in COMBINATIONS
        kw = {"model": model} if named else {"weights": model}
        print(f"== {model}")
        t0 = time.perf_counter()
        if (data / "split.csv").is_file():
            split = pd.read_csv(data / "split.csv")
            for name, rows in (("validation", split[split.split == "validation"]),
                               ("held-out train 034/045/048", split[split.image.str[:3].isin(["034", "045", "048"])])):
                res = detect_images([data / "images" / i for i in rows.image], settings=settings, **kw)
                per = [evaluate_xy(r.atoms[["x_px", "y_px"]].to_numpy(), read_labels(data / "labels" / lab), 5)
                       for r, lab in zip(res, rows.labels)]
                p = pooled(per)
                print(f"  {name:<30} P {p['precision']:.3f} R {p['recall']:.3f} F1 {p['f1']:.3f} "
                      f"(pred {p['n_pred']}, labelled {p['n_truth']})")
        print(f"  {'set':<28} {'density true/det':>17} {'CE true/det':>12} {'multimer true/det':>18} {'F1':>6}")
        for name, items in sims.items():
            rows = []
            for img, truth, _ in items:
                px = truth.attrs["pixel_size_nm"]
                field = (img.shape[1] * px, img.shape[0] * px)
                r = detect_image(img, pixel_size_nm=px, settings=settings, **kw)
                det = r.atoms[["x_nm", "y_nm"]].to_numpy()
                tru = truth[["x_nm", "y_nm"]].to_numpy()
                f1 = evaluate_xy(det / px, tru / px, 0.15 / px)["f1"]
                rows.append((descriptors(tru, field), descriptors(det, field), f1))
            def m(k, i, rows=rows):
                return np.mean([r[i][k] for r in rows])

            print(f"  {name:<28} {m('density', 0):7.2f} / {m('density', 1):5.2f}   {m('ce', 0):5.2f} / "
                  f"{m('ce', 1):4.2f}   {m('multimer', 0):7.3f} / {m('multimer', 1):5.3f}   "
                  f"{np.mean([r[2] for r in rows]):.3f}")
        img, truth = dimers
        r = detect_image(img, pixel_size_nm=PX, settings=settings, **kw)
        e = evaluate_xy(r.atoms[["x_px", "y_px"]].to_numpy(), truth[["x_px", "y_px"]].to_numpy(), 3)
        print(f"  isolated 0.22-nm dimers (3 px): P {e['precision']:.3f} R {e['recall']:.3f} F1 {e['f1']:.3f}")
        print(f"  ({time.perf_counter() - t0:.0f} s)")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
