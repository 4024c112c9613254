"""Detection speed: full pipeline and CNN map per 512² and 2048² image vs explicit crop-by-crop classification.

Run: ``.venv/bin/python benchmarks/detection.py`` (2 torch threads). All numbers are measured in this one run;
crop-by-crop time is measured on a random subset of pixels and extrapolated to every pixel of the image.
Targets (issue 6): map ≥ 50× faster than crop by crop; whole 512² pipeline < 0.5 s on 2 cores.
"""

from __future__ import annotations

import time
from pathlib import Path

import numpy as np
import torch

REPO = Path(__file__).resolve().parent.parent
IMAGE = REPO / "inputs/stem/053_HAADF_15nm_Sample_PtNC_21Oct20.tif"


def best_of(fn, n):
    ts = []
    for _ in range(n):
        t = time.perf_counter()
        fn()
        ts.append(time.perf_counter() - t)
    return min(ts), float(np.median(ts))


def main(threads: int = 2, n_crops: int = 3000) -> None:
    from sacmap.detection.io import read_image
    from sacmap.detection.model import (
        AtomCNN,
        FullyConvolutional,
        classify_crops,
        load_weights,
        probability_map,
    )
    from sacmap.detection.pipeline import detect_image
    from sacmap.detection.preprocess import preprocess

    torch.set_num_threads(threads)
    raw, px, _ = read_image(IMAGE)
    cnn, meta = load_weights()
    fcn = FullyConvolutional(cnn)
    rng = np.random.default_rng(0)
    print(f"torch threads {threads}; bundled model {meta.get('config', {}).get('channels')} "
          f"hidden {meta.get('config', {}).get('hidden')} [{meta.get('digest')}]")
    detect_image(raw, pixel_size_nm=px)  # warm-up (model load, allocations)
    rows = []
    for side in (512, 2048):
        img = np.tile(raw, (side // 512, side // 512))
        pre = preprocess(img)
        n_rep = 5 if side == 512 else 2
        t_full, t_full_med = best_of(lambda img=img: detect_image(img, pixel_size_nm=px), n_rep)
        t_pre, _ = best_of(lambda img=img: preprocess(img), n_rep)
        t_map, t_map_med = best_of(lambda pre=pre: probability_map(fcn, pre), n_rep)
        r = rng.integers(0, side, n_crops)
        c = rng.integers(0, side, n_crops)
        t_sub, _ = best_of(lambda pre=pre, r=r, c=c: classify_crops(cnn, pre, r, c, batch=256), 1)
        t_crop = t_sub / n_crops * side * side
        rows.append((side, t_full, t_full_med, t_pre, t_map, t_map_med, t_crop))
        print(f"{side}²: full pipeline {t_full:.3f} s (median {t_full_med:.3f}); pre-processing {t_pre:.3f} s; "
              f"CNN map {t_map:.3f} s (median {t_map_med:.3f}); crop by crop (batched 256, extrapolated from "
              f"{n_crops} crops) {t_crop:.1f} s -> map {t_crop / t_map:.0f}x, full pipeline {t_crop / t_full:.0f}x "
              f"faster")
    # one-crop-at-a-time loop, as the published code
    sub = 200
    pre = preprocess(raw)
    r = rng.integers(0, 512, sub)
    c = rng.integers(0, 512, sub)
    t_loop, _ = best_of(lambda: [classify_crops(cnn, pre, r[i:i + 1], c[i:i + 1]) for i in range(sub)], 1)
    print(f"512²: one crop at a time (extrapolated from {sub}) {t_loop / sub * 512 * 512:.0f} s "
          f"-> map {t_loop / sub * 512 * 512 / rows[0][4]:.0f}x faster")
    # the paper-size network's exact map, for reference
    torch.manual_seed(0)
    paper = FullyConvolutional(AtomCNN().eval())
    t_paper, _ = best_of(lambda: probability_map(paper, pre), 2)
    print(f"512²: paper-size network (32/64/128, 128) exact map {t_paper:.3f} s vs bundled {rows[0][4]:.3f} s")
    ok = rows[0][1] < 0.5 and all(rw[6] / rw[4] >= 50 for rw in rows)
    print(f"targets (512² pipeline < 0.5 s, map >= 50x crop by crop): {'met' if ok else 'NOT met'}")


if __name__ == "__main__":
    main()
