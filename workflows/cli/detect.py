"""``sacmap detect``: atom detection in HAADF-STEM images, and its evaluate / train / simulate verbs.

    sacmap detect IMAGE_OR_DIR... -o OUTDIR [--pixel-size NM] [--threshold 0.8] [--elements Ni,Pd]
                  [--weights FILE] [--device cpu|cuda]
    sacmap detect evaluate --pred PRED.csv|DIR --truth TRUTH.csv|DIR [--radius-px 5] [-o report.json]
    sacmap detect train --data DIR --split split.csv -o weights.pt [--epochs N] [--seed S] [--threads 2]
    sacmap detect simulate -o OUTDIR [--n-images N] [--density 1.0] [--dimer-fraction F] [--elements Ni,Pd]
"""

from __future__ import annotations

import argparse
import json
import sys

VERBS = ("evaluate", "train", "simulate")


def register(subparsers) -> None:
    p = subparsers.add_parser(
        "detect", add_help=False,
        help="detect atoms in HAADF-STEM images (also: detect evaluate | train | simulate)",
        description="Detect metal atoms in HAADF-STEM images. Verbs: evaluate, train, simulate "
        "('sacmap detect VERB -h').",
    )
    p.add_argument("-h", "--help", action="store_true", dest="detect_help", help="show this help")
    _add_run_options(p)  # options may come before the images
    p.add_argument("rest", nargs=argparse.REMAINDER)
    p.set_defaults(func=_dispatch)


RUN_OPTIONS = ("outdir", "pixel_size", "threshold", "elements", "weights", "device", "split_area", "batch",
               "no_overlay", "threads")


def _add_run_options(p: argparse.ArgumentParser) -> None:
    p.add_argument("-o", "--outdir", default=None, help="output folder (required)")
    p.add_argument("--pixel-size", type=float, default=None, help="pixel size in nm (overrides the file)")
    p.add_argument("--threshold", type=float, default=0.8, help="probability threshold (default 0.8)")
    p.add_argument("--elements", default=None, help="comma-separated element symbols in increasing Z, e.g. Ni,Pd")
    p.add_argument("--weights", default=None, help="weights file (default: bundled model)")
    p.add_argument("--device", default="cpu", choices=["cpu", "cuda"])
    p.add_argument("--split-area", type=float, default=200.0,
                   help="components larger than this (px² at 0.0293 nm/px) are tested for multimers (default 200; "
                   "~100 splits more 0.22-nm dimers at some cost in precision)")
    p.add_argument("--batch", type=int, default=4, help="images per CNN batch")
    p.add_argument("--no-overlay", action="store_true", help="skip the PNG overlays")
    p.add_argument("--threads", type=int, default=2, help="torch CPU threads")


def _run_parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(
        prog="sacmap detect",
        description="Detect atoms in images (TIFF with pixel-size tags, PNG/JPEG with --pixel-size, dm3/dm4/emd/ser "
        "with rosettasciio) and write <stem>.csv/.json/.png/_support.png per image. "
        "Other verbs: 'sacmap detect evaluate|train|simulate -h'.",
    )
    p.add_argument("inputs", nargs="+", metavar="IMAGE_OR_DIR")
    _add_run_options(p)
    return p


def _evaluate_parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(prog="sacmap detect evaluate",
                                description="Precision/recall/F1 with one-to-one (Hungarian) matching within a radius.")
    p.add_argument("--pred", required=True, help="prediction CSV (x_px, y_px) or folder of them")
    p.add_argument("--truth", required=True, help="label CSV (x_px, y_px or ImageJ X, Y) or folder of them")
    p.add_argument("--radius-px", type=float, default=5.0)
    p.add_argument("-o", "--output", default=None, help="write the full report as JSON")
    return p


def _train_parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(prog="sacmap detect train", description="Train the atom CNN on labelled images.")
    p.add_argument("--data", required=True, help="folder with images/ and labels/ (or the files directly)")
    p.add_argument("--split", required=True, help="CSV with columns image, labels, split")
    p.add_argument("--which", default="train", help="split value to train on (default: train)")
    p.add_argument("-o", "--output", required=True, help="weights file to write (.pt)")
    p.add_argument("--epochs", type=int, default=None)
    p.add_argument("--seed", type=int, default=None)
    p.add_argument("--threads", type=int, default=2)
    p.add_argument("--channels", default=None, help="conv widths, e.g. 16,32,32 (paper: 32,64,128)")
    p.add_argument("--hidden", type=int, default=None, help="FC width (paper: 128)")
    p.add_argument("--mining-rounds", type=int, default=None, help="hard-negative mining rounds (default 2)")
    p.add_argument("--smooth-px", type=float, default=0.0, help="Gaussian pre-smoothing sigma (px)")
    p.add_argument("--holdout", type=int, default=3,
                   help="training images held out to tune the threshold (0: no tuning)")
    p.add_argument("--extra", action="append", default=None, metavar="DIR",
                   help="extra labelled images (*.tif + <stem>.csv, e.g. from 'detect simulate'); repeatable")
    p.add_argument("--real-weight", type=int, default=None,
                   help="repeat the crops of expert-labelled images N times per epoch against the --extra ones")
    p.add_argument("--select-on-real", action="store_true",
                   help="choose the epoch on held-out positions of expert-labelled images only (not --extra)")
    p.add_argument("--refit-all", action="store_true",
                   help="after tuning, retrain on all images (the tuned threshold then transfers only roughly)")
    return p


def _simulate_parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(prog="sacmap detect simulate",
                                description="Synthetic HAADF-STEM images with known atom positions.")
    p.add_argument("-o", "--outdir", required=True)
    p.add_argument("--n-images", type=int, default=1)
    p.add_argument("--size", type=int, default=512, help="image side (px)")
    p.add_argument("--pixel-size", type=float, default=0.0293, help="nm/px")
    p.add_argument("--density", type=float, default=1.0, help="atoms per nm² of support")
    p.add_argument("--dimer-fraction", type=float, default=0.0, help="share of atoms placed as 0.22-nm dimers")
    p.add_argument("--trimer-fraction", type=float, default=0.0, help="share of atoms placed as 0.22-nm trimers")
    p.add_argument("--min-dist", type=float, default=0.25,
                   help="closest spacing (nm) of atoms of different units (default 0.25)")
    p.add_argument("--atom-fwhm", type=float, default=None,
                   help="FWHM (nm) of the atom image beyond the probe (default: calibrated, 0.26)")
    p.add_argument("--atom-peak", type=float, default=None,
                   help="Pt atom peak height relative to the carbon support (default: calibrated, 0.36)")
    p.add_argument("--elements", default=None, help="comma-separated symbols, equal shares at random")
    p.add_argument("--vacuum-fraction", type=float, default=0.0, help="share of the field that is vacuum")
    p.add_argument("--clean", action="store_true", help="noise-free expectation (no shot or scan-line noise)")
    p.add_argument("--seed", type=int, default=0)
    return p


def _dispatch(args) -> int:
    rest = list(args.rest)
    if getattr(args, "detect_help", False) or not rest or rest[0] in ("-h", "--help"):
        if getattr(args, "detect_help", False):
            rest = ["-h"]
        _run_parser().print_help()
        return 0 if rest else 2
    verb = rest[0]
    if verb == "evaluate":
        return _evaluate(_evaluate_parser().parse_args(rest[1:]))
    if verb == "train":
        return _train(_train_parser().parse_args(rest[1:]))
    if verb == "simulate":
        return _simulate(_simulate_parser().parse_args(rest[1:]))
    parser = _run_parser()
    ns = argparse.Namespace(**{k: getattr(args, k) for k in RUN_OPTIONS if hasattr(args, k)})
    a = parser.parse_args(rest, namespace=ns)
    if not a.outdir:
        parser.error("the following arguments are required: -o/--outdir")
    return _detect(a)


def _elements(text):
    if not text:
        return None
    els = [e.strip() for e in text.split(",") if e.strip()]
    return els or None


def _detect(a) -> int:
    import torch

    from sacmap.detection.pipeline import Settings, detect_files

    torch.set_num_threads(max(1, a.threads))
    summaries = detect_files(a.inputs, a.outdir, pixel_size_nm=a.pixel_size, threshold=a.threshold,
                             elements=_elements(a.elements), weights=a.weights, device=a.device,
                             settings=Settings(split_area_px=a.split_area), overlay=not a.no_overlay,
                             batch=a.batch, progress=True)
    for s in summaries:
        dens = f"{s['density_nm2']:.3f}/nm²" if s["density_nm2"] is not None else "n/a"
        warn = f"  WARNING: {s['warning']}" if s.get("warning") else ""
        print(f"{s['image']}: {s['n_atoms']} atoms, support {s['support_area_nm2']:.1f} nm², density {dens}{warn}")
    print(f"wrote {len(summaries)} result set(s) to {a.outdir}")
    return 0


def _evaluate(a) -> int:
    from sacmap.detection.evaluate import evaluate_files

    rep = evaluate_files(a.pred, a.truth, a.radius_px)
    for r in rep["per_image"]:
        print(f"{r['pred']}: P {r['precision']:.3f}  R {r['recall']:.3f}  F1 {r['f1']:.3f}  "
              f"(TP {r['tp']}, pred {r['n_pred']}, truth {r['n_truth']})")
    p = rep["pooled"]
    print(f"pooled (radius {a.radius_px:g} px): P {p['precision']:.3f}  R {p['recall']:.3f}  F1 {p['f1']:.3f}  "
          f"(TP {p['tp']}, pred {p['n_pred']}, truth {p['n_truth']})")
    if a.output:
        from pathlib import Path

        from sacmap.detection.pipeline import _atomic

        out = Path(a.output)
        out.parent.mkdir(parents=True, exist_ok=True)
        _atomic(out, lambda t: Path(t).write_text(json.dumps(rep, indent=1)))
    return 0


def _train(a) -> int:
    import time

    from sacmap.detection.errors import DetectionInputError
    from sacmap.detection.model import save_weights, weights_digest
    from sacmap.detection.training import TrainConfig, load_pairs, load_split, train_and_calibrate

    cfg = TrainConfig(threads=a.threads)
    if a.epochs is not None:
        cfg.epochs = a.epochs
    if a.seed is not None:
        cfg.seed = a.seed
    if a.channels:
        cfg.channels = tuple(int(c) for c in a.channels.split(","))
    if a.hidden:
        cfg.hidden = a.hidden
    if a.mining_rounds is not None:
        cfg.mining_rounds = a.mining_rounds
    if a.real_weight is not None:
        if a.real_weight < 1:
            raise DetectionInputError(f"--real-weight {a.real_weight}: must be >= 1")
        cfg.real_weight = a.real_weight
    cfg.select_on_real = bool(a.select_on_real)
    pre_kw = {"smooth_px": a.smooth_px}
    t0 = time.perf_counter()
    images = load_split(a.data, a.split, a.which, pre_kw)
    extra = []
    for folder in a.extra or []:
        extra += load_pairs(folder, pre_kw)
    cnn, info = train_and_calibrate(images, cfg, n_holdout=a.holdout, refit_all=a.refit_all, extra=extra,
                                    progress=True)
    history = info["history"]
    sel = next((h for h in reversed(history) if h.get("selected")), history[-1])
    cmd = " ".join(["sacmap", "detect", *sys.argv[2:]]) if len(sys.argv) > 2 else "sacmap detect train"
    meta = {"config": cfg.as_dict(), "preprocess": pre_kw, "images": [li.name for li in images],
            "n_atoms": int(sum(len(li.xy) for li in images)), "selected_epoch": sel["epoch"],
            **{k: v for k, v in info.items()}, "train_seconds": round(time.perf_counter() - t0, 1),
            "command": cmd}
    meta["digest"] = weights_digest(cnn)
    save_weights(cnn, a.output, meta)
    msg = (f"trained on {len(info['trained_on'])} images ({len(images)} real, {meta['n_atoms']} real atoms) "
           f"in {meta['train_seconds']} s")
    if "tuned_threshold" in info:
        msg += (f"; held-out {','.join(info['holdout_images'])}: best threshold {info['tuned_threshold']:.2f} "
                f"(P {info['holdout_precision']:.3f} R {info['holdout_recall']:.3f} F1 {info['holdout_f1']:.3f}), "
                f"mapped to 0.8")
    print(msg + f"; wrote {a.output} [{meta['digest']}]")
    return 0


def _simulate(a) -> int:
    from sacmap.detection.errors import DetectionInputError

    try:
        from sacmap.detection.simulate import simulate_dataset
    except ImportError as exc:
        raise DetectionInputError(f"detect simulate: simulator unavailable ({exc})") from exc
    if (a.size < 21 or a.pixel_size <= 0 or a.density < 0 or not 0 <= a.dimer_fraction <= 1
            or not 0 <= a.trimer_fraction <= 1 - a.dimer_fraction or a.min_dist < 0
            or (a.atom_fwhm is not None and a.atom_fwhm < 0) or (a.atom_peak is not None and a.atom_peak <= 0)):
        raise DetectionInputError("detect simulate: need --size >= 21, --pixel-size > 0, --density >= 0, "
                                  "0 <= --dimer-fraction + --trimer-fraction <= 1, --min-dist >= 0, --atom-fwhm >= 0, "
                                  "--atom-peak > 0")
    extra = {} if a.atom_fwhm is None else {"spread_fwhm_nm": a.atom_fwhm}
    if a.atom_peak is not None:
        extra["peak_pt"] = a.atom_peak
    els = _elements(a.elements)
    elements = {e: 1.0 for e in els} if els else None
    paths = simulate_dataset(a.outdir, a.n_images, seed=a.seed, shape=(a.size, a.size), pixel_size_nm=a.pixel_size,
                             density_nm2=a.density, dimer_fraction=a.dimer_fraction,
                             trimer_fraction=a.trimer_fraction, min_dist_nm=a.min_dist, elements=elements,
                             vacuum_fraction=a.vacuum_fraction, noise=not a.clean, progress=True, **extra)
    print(f"wrote {len(paths)} image(s) + truth CSVs to {a.outdir}")
    return 0
