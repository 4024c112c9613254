"""Detection speed: the whole pipeline (refinement included) per 512² and 2048² image against the targets of
issue 14 (512² < 0.5 s, 2048² < 5 s on 2 CPU cores), the refinement alone, dense images, and the CNN map vs
explicit crop-by-crop classification.

Run: ``.venv/bin/python benchmarks/detection.py [--model NAME] [--no-crops]`` (2 torch threads). All numbers are
measured in this one run, best of n (median in brackets); the shared 2-core machine varies by ±50 % with its
load, so the CPU time (all threads of the process) is printed too, and the stages of one run. The 2048² image is the 512² real image (053, Pt₁/NC, ~0.3 atoms/nm²) tiled 4 × 4 with every
other tile mirrored (:func:`mirror_tile`: no intensity step at the seams, which no real image has and which the
refinement's pair split would take for pairs). Crop-by-crop time is
measured on a random subset of pixels and extrapolated to every pixel (only for CNN weights).
"""

from __future__ import annotations

import argparse
import time
from pathlib import Path

import numpy as np
import torch

REPO = Path(__file__).resolve().parent.parent
IMAGE = REPO / "inputs/stem/053_HAADF_15nm_Sample_PtNC_21Oct20.tif"
TARGET_S = {512: 0.5, 2048: 5.0}


def mirror_tile(raw: np.ndarray, k: int) -> np.ndarray:
    """``raw`` tiled k × k, tiles in odd rows flipped up–down and in odd columns left–right: continuous seams."""
    rows = [np.concatenate([raw[::(-1) ** i, ::(-1) ** j] for j in range(k)], axis=1) for i in range(k)]
    return np.concatenate(rows, axis=0)


def best_of(fn, n, cpu: bool = False):
    """Best and median wall time (s) of ``n`` runs of ``fn``; with ``cpu``, also the process CPU time (s, all
    threads) of the best run: on the shared machine the wall time waits for other users' jobs, the CPU time less."""
    ts, cs = [], []
    for _ in range(n):
        c = time.process_time()
        t = time.perf_counter()
        fn()
        ts.append(time.perf_counter() - t)
        cs.append(time.process_time() - c)
    i = int(np.argmin(ts))
    return (ts[i], float(np.median(ts)), cs[i]) if cpu else (ts[i], float(np.median(ts)))


def stages(img, px, kw) -> str:
    """Wall / CPU seconds of the pipeline's stages on one image: read + model frame, network map, decoder,
    refinement, the rest of ``finish`` (support mask, table)."""
    from sacmap.detection import result as R
    from sacmap.detection.detector import AtomDetector

    det = AtomDetector(**kw)
    s = det.resolved_settings()
    out = {}

    def clock(name, fn):
        c, t = time.process_time(), time.perf_counter()
        v = fn()
        out[name] = (time.perf_counter() - t, time.process_time() - c)
        return v

    p = clock("prepare", lambda: R.prepare(img, px, det))
    amap = clock("map", lambda: det.maps([p.frame])[0])
    clock("decode", lambda: det.decode(amap, p.frame, s))
    orig = R._refine
    R._refine = lambda *a: clock("refine", lambda: orig(*a))
    try:
        clock("finish", lambda: R.finish(p, amap, s, det))
    finally:
        R._refine = orig
    f = out.pop("finish")
    out["decode + rest"] = (f[0] - out["refine"][0], f[1] - out["refine"][1])
    return ", ".join(f"{k} {w:.2f}/{c:.2f}" for k, (w, c) in out.items())


def crops_vs_map(raw, rng, n_crops: int = 3000) -> None:
    """The bundled CNN's exact fully convolutional map against crop-by-crop classification (CNN weights only)."""
    from sacmap.detection.model import (
        AtomCNN,
        FullyConvolutional,
        classify_crops,
        load_weights,
        probability_map,
    )
    from sacmap.detection.preprocess import preprocess

    cnn, meta = load_weights()
    fcn = FullyConvolutional(cnn)
    print(f"\nCNN map vs crop by crop: weights [{meta.get('digest')}] channels {meta.get('config', {}).get('channels')}")
    maps = {}
    for side in (512, 2048):
        pre = preprocess(mirror_tile(raw, side // 512))
        t_map, t_med = best_of(lambda pre=pre: probability_map(fcn, pre), 3 if side == 512 else 1)
        r, c = rng.integers(0, side, n_crops), rng.integers(0, side, n_crops)
        t_sub, _ = best_of(lambda pre=pre, r=r, c=c: classify_crops(cnn, pre, r, c, batch=256), 1)
        t_crop = t_sub / n_crops * side * side
        maps[side] = t_map
        print(f"{side}²: CNN map {t_map:.3f} s (median {t_med:.3f}); crop by crop (batched 256, extrapolated from "
              f"{n_crops}) {t_crop:.1f} s -> map {t_crop / t_map:.0f}x faster")
    torch.manual_seed(0)
    paper = FullyConvolutional(AtomCNN().eval())
    pre = preprocess(raw)
    t_paper, _ = best_of(lambda: probability_map(paper, pre), 2)
    print(f"512²: paper-size network (32/64/128, 128) exact map {t_paper:.3f} s vs bundled {maps[512]:.3f} s")


def main(argv=None) -> int:
    from sacmap.detection.io import read_image
    from sacmap.detection.pipeline import detect_image
    from sacmap.detection.refine import refine
    from sacmap.detection.simulate import simulate_sample

    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--model", default=None, help="detector model (passed to detect_image when given)")
    ap.add_argument("--threads", type=int, default=2)
    ap.add_argument("--no-crops", action="store_true", help="skip the CNN map vs crop-by-crop comparison")
    a = ap.parse_args(argv)
    torch.set_num_threads(a.threads)
    kw = {"model": a.model} if a.model else {}
    raw, px, _ = read_image(IMAGE)
    detect_image(raw, pixel_size_nm=px, **kw)  # warm-up (model load, allocations)
    print(f"torch threads {a.threads}; model {a.model or 'default'}; image {IMAGE.name} ({px:.4f} nm/px)")
    print("\n| image | atoms | whole pipeline s (median) | CPU s | target s | ratio to target | refinement alone s | "
          "refinement share |\n|---|---|---|---|---|---|---|---|")
    ok = True
    lines = []
    for side in (512, 2048):
        img = mirror_tile(raw, side // 512)
        n_rep = 5 if side == 512 else 3
        res = detect_image(img, pixel_size_nm=px, **kw)
        t_full, t_med, c_full = best_of(lambda img=img: detect_image(img, pixel_size_nm=px, **kw), n_rep, cpu=True)
        xy = res.atoms[["x_px", "y_px"]].to_numpy(float)
        t_ref, _ = best_of(lambda img=img, xy=xy: refine(img, xy, pixel_size_nm=px), n_rep)
        ok &= t_full < TARGET_S[side]
        print(f"| real 053, {side}² | {len(xy)} | {t_full:.3f} ({t_med:.3f}) | {c_full:.2f} | {TARGET_S[side]} | "
              f"{t_full / TARGET_S[side]:.2f} | {t_ref:.3f} | {t_ref / t_full:.0%} |", flush=True)
        lines.append(f"{side}²: {stages(img, px, kw)}")
    print("\nstages, wall/CPU s (the maps run on the torch threads, the large filters and the fits on as many, the rest on one core):\n" + "\n".join(lines))
    for dens in (1.0, 4.0, 8.0):
        img, truth, _ = simulate_sample(dens, arrangement="hardcore", seed=0, pixel_size_nm=px)
        res = detect_image(img, pixel_size_nm=px, **kw)
        t_full, t_med, c_full = best_of(lambda img=img: detect_image(img, pixel_size_nm=px, **kw), 3, cpu=True)
        xy = truth[["x_px", "y_px"]].to_numpy(float)
        t_ref, _ = best_of(lambda img=img, xy=xy: refine(img, xy, pixel_size_nm=px), 3)
        print(f"| simulated {dens:g}/nm², 512² | {len(res.atoms)} detected / {len(xy)} true | {t_full:.3f} "
              f"({t_med:.3f}) | {c_full:.2f} | 0.5 | {t_full / 0.5:.2f} | {t_ref:.3f} (all {len(xy)} true atoms) "
              "| — |", flush=True)
    print(f"\ntargets on the real image (512² < 0.5 s, 2048² < 5 s): {'met' if ok else 'NOT met'}")
    if not a.no_crops:
        try:
            crops_vs_map(raw, np.random.default_rng(0))
        except Exception as exc:  # the bundled weights may not be a crop CNN
            print(f"\nCNN map vs crop by crop skipped: {exc}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
