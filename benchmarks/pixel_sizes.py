"""Detection across pixel sizes (issue 14): small atoms imaged at 0.016 nm/px against the same scenes at the
training pixel size (0.0293 nm/px) and at 0.045 nm/px.

Run: ``OMP_NUM_THREADS=1 .venv/bin/python benchmarks/pixel_sizes.py [--models paper,heatmap] [--seeds 2]
[--sections detection,resampling,localisation]`` (≈ 1.5 min on 2 cores with the defaults). Sections:

* ``detection``: random atoms (0.25-nm hard core, 0.3–2 atoms/nm² drawn per scene) over a 7.5 × 7.5 nm field,
  each scene rendered at 0.016, 0.0293 and 0.045 nm/px (same positions in nm, same dose per nm²) by
  :func:`sacmap.detection.simulate.simulate_image` with a sharp probe (0.06 nm FWHM) on a thin support
  (``texture_sd`` 0.02, ``thickness_sd`` 0.1): total atom FWHM 0.08, 0.11, 0.15 nm; Re (heavy) and Ru (weak,
  0.38 × the Pt peak); bright (6.3e5 e/nm²) and moderate (6.3e4 e/nm²) dose. Every image goes through the
  pipeline (:meth:`sacmap.detection.detector.AtomDetector.detect`, as ``sacmap detect --pixel-size``). Pooled P/R/F1 at
  0.10 nm (one-to-one Hungarian matching) and the median localisation error of matched atoms in px of the image
  and pm, for the decoder's positions mapped back ("decoder") and the pipeline's output ("pipeline": the
  Gaussian refinement, which runs on the *native* image, weighed against the decoder); "native fit" takes the
  refined positions outright (``refine`` on the original image started from the model-frame positions).
* ``resampling``: what bringing a 0.016-nm/px image to the model frame does to a small atom: peak height of a
  0.10-nm FWHM Gaussian (mean over random sub-pixel phases) and the shot-noise sd of a flat image after
  :func:`sacmap.detection.preprocess.rescale_to`, against a native 0.0293-nm/px pixel of the same dose, for
  the default anti-alias filter (skimage's σ = (1/f − 1)/2 input px) and stronger ones.
* ``localisation``: :func:`sacmap.detection.refine.refine` alone on the native 0.016-nm/px image, started 1 px
  (model frame, 0.0293 nm) rms off the true positions: median error px / pm per atom width.
* ``enlarged``: the scenes at 0.0293 nm/px read as if their pixels were 1.5 × and 2 × larger, so that the model
  frame enlarges their small atoms towards the networks' training width: pooled P/R/F1 at 0.10 nm and the number
  of detections per factor (docs/detection.md, *Measured in session 19*).
* ``real`` (with ``--data``, default ``../shared/data/ptnc-stem``): the shared validation images read at their
  own pixel size and as if at 0.02 / 0.016 nm/px (atoms then 0.19 / 0.15 nm wide, real noise and texture): F1 at
  5 px and how many were read on their own grid (:mod:`sacmap.detection.readings`).
* ``miscalibrated`` (with ``--data``): the same validation images given a pixel size 0.95 / 1.03 / 1.10 × their
  own (a calibration a few per cent off: the data are the same, but the pipeline resamples them to the model
  frame), and binned 2 × 2 (each output pixel the sum of a 2 × 2 block at twice the pixel: a real coarser
  acquisition of the same dose per nm²; positions scaled back to the original pixels for the matching): F1 at
  5 original px and how many atoms were found (docs/detection.md, *Pixel sizes*, session 23).
"""

from __future__ import annotations

import argparse
import itertools
import time
from pathlib import Path

import numpy as np

PIXELS_NM = (0.016, 0.029296875, 0.045)
FIELD_NM = 7.5
FWHMS_NM = (0.08, 0.11, 0.15)
ELEMENTS = ("Re", "Ru")
DOSES = (6.3e5, 6.3e4)
PROBE_NM = 0.06
THIN = dict(texture_sd=0.02, thickness_sd=0.1)
MATCH_NM = 0.10


def small_atom_scene(seed: int, fwhm_nm: float, element: str, dose: float, pixel_nm: float,
                     density_nm2: float | None = None):
    """One scene (image, truth) at ``pixel_nm``: the atom positions (nm) depend on ``seed`` and ``fwhm_nm`` only,
    so the same scene can be rendered at every pixel size."""
    from sacmap.detection.simulate import random_positions, simulate_image

    if density_nm2 is None:
        density_nm2 = 0.3 + 1.7 * np.random.default_rng(seed * 7 + int(round(fwhm_nm * 100))).random()
    xy = random_positions(density_nm2, (FIELD_NM, FIELD_NM), seed=seed, min_dist_nm=0.25, margin_nm=0.2)
    n = int(round(FIELD_NM / pixel_nm))
    spread = float(np.sqrt(max(fwhm_nm**2 - PROBE_NM**2, 1e-6)))
    return simulate_image(xy, shape=(n, n), pixel_size_nm=pixel_nm, elements=element, seed=seed + 1000,
                          probe_fwhm_nm=PROBE_NM, spread_fwhm_nm=spread, dose_per_nm2=dose, **THIN)


def _variants(det, img, px):
    """(x, y) px of the image: decoder mapped back, pipeline output, native fit taken outright."""
    from sacmap.detection.preprocess import coords_back
    from sacmap.detection.refine import refine
    from sacmap.detection.result import prepare

    p = prepare(img, px, det)
    amap = det.maps([p.frame])[0]
    s = det.resolved_settings()
    at = det.decode(amap, p.frame, s)
    x, y = coords_back(at["x"], at["y"], img.shape, amap.shape)
    dec = np.c_[x, y]
    pipe = det.detect(img, px)[["x_px", "y_px"]].to_numpy()  # the public path (whatever the detector does)
    fit = dec
    if len(dec):
        ref = refine(img, dec, pixel_size_nm=px)
        ok = ref["fit_ok"].to_numpy(bool)
        fit = np.where(ok[:, None], ref[["x_px", "y_px"]].to_numpy(), dec)
    return {"decoder": dec, "pipeline": pipe, "native fit": fit}


def section_detection(models, seeds) -> None:
    from sacmap.detection.detector import AtomDetector
    from sacmap.detection.evaluate import match

    print(f"\n## detection: small atoms, F1 at {MATCH_NM} nm, same scenes at three pixel sizes\n")
    print(f"seeds {list(seeds)}, FWHM {FWHMS_NM} nm, {ELEMENTS}, dose {DOSES} e/nm², probe {PROBE_NM} nm, {THIN}\n")
    print("| model | nm/px | subset | positions | P | R | F1 | median error px (pm) | truth |\n|---|---|---|---|---|---|---|---|---|")
    for model in models:
        det = AtomDetector(model)
        acc: dict = {}
        t0 = time.perf_counter()
        for fwhm, el, dose, seed in itertools.product(FWHMS_NM, ELEMENTS, DOSES, seeds):
            for px in PIXELS_NM:
                img, truth = small_atom_scene(seed, fwhm, el, dose, px)
                t = truth[["x_px", "y_px"]].to_numpy()
                for v, xy in _variants(det, img, px).items():
                    r, c = match(xy, t, MATCH_NM / px)
                    e = np.hypot(*(xy[r] - t[c]).T)
                    for sub in ("all", el, f"FWHM {fwhm}", f"dose {dose:.1e}"):
                        a = acc.setdefault((px, sub, v), [0, 0, 0, []])
                        a[0] += len(r)
                        a[1] += len(xy)
                        a[2] += len(t)
                        a[3].append(e)
        for (px, sub, v), (tp, n_pred, n_true, es) in acc.items():
            if sub != "all" and v == "native fit":
                continue
            e = np.concatenate(es)
            med = float(np.median(e)) if len(e) else float("nan")
            print(f"| {model} | {px:.4f} | {sub} | {v} | {tp / max(n_pred, 1):.3f} | {tp / max(n_true, 1):.3f} "
                  f"| {2 * tp / max(n_pred + n_true, 1):.3f} | {med:.2f} ({med * px * 1000:.1f}) | {n_true} |")
        print(f"\n({model}: {time.perf_counter() - t0:.0f} s)\n", flush=True)


def section_resampling() -> None:
    from skimage.transform import resize

    from sacmap.detection.preprocess import TRAIN_PIXEL_NM, rescale_to

    print("\n## resampling 0.016 → 0.0293 nm/px: peak of a 0.10-nm FWHM atom and shot noise\n")
    rng = np.random.default_rng(0)
    px, dose = 0.016, 6.3e4
    f = px / TRAIN_PIXEL_NM
    flat = rng.poisson(dose * px * px, (1024, 1024)) / (dose * px * px)
    out = (int(round(1024 * f)),) * 2
    native = rng.poisson(dose * TRAIN_PIXEL_NM**2, out) / (dose * TRAIN_PIXEL_NM**2)
    print(f"native 0.0293-nm/px pixel at {dose:.1e} e/nm² (signal 1): noise sd {native.std():.3f}\n")
    print("| anti-alias σ (input px) | peak / true peak | noise sd | peak / noise sd |\n|---|---|---|---|")
    sig = 0.10 / 2.3548 / px
    yy, xx = np.mgrid[:96, :96]
    phases = rng.random((40, 2))
    for label, s in (("default (1/f − 1)/2 = %.2f" % ((1 / f - 1) / 2), None), ("none", 0.0), ("0.6", 0.6),
                     ("(1/f)/2 = %.2f" % (0.5 / f), 0.5 / f), ("1.5", 1.5)):
        def rs(a, s=s):
            if s is None:
                return rescale_to(a, f)
            kw = {"anti_aliasing": s > 0, **({"anti_aliasing_sigma": s} if s > 0 else {})}
            o = (int(round(a.shape[0] * f)), int(round(a.shape[1] * f)))
            return resize(a.astype(np.float32), o, order=1, mode="reflect", preserve_range=True, **kw)

        pk = np.mean([rs(np.exp(-((xx - 48 - dx) ** 2 + (yy - 48 - dy) ** 2) / (2 * sig**2))).max()
                      for dx, dy in phases])
        sd = float(rs(flat).std())
        print(f"| {label} | {pk:.3f} | {sd:.3f} | {pk / sd:.2f} |")
    print(f"\n(native 0.0293 nm/px: peak / noise sd ≤ {1 / native.std():.2f}, less its own pixel-box and phase loss)")


def section_localisation() -> None:
    from sacmap.detection.refine import refine

    px = 0.016
    print("\n## localisation: refine on the native 0.016-nm/px image, start 1 model px (29 pm) rms off\n")
    print("| FWHM nm | element | dose | atoms | median error px (pm) | median reported 1-σ px |\n|---|---|---|---|---|---|")
    for fwhm, el, dose in itertools.product(FWHMS_NM, ELEMENTS, DOSES):
        img, truth = small_atom_scene(1, fwhm, el, dose, px, density_nm2=1.0)
        xy = truth[["x_px", "y_px"]].to_numpy()
        start = xy + np.random.default_rng(0).normal(0.0, 0.029296875 / px, xy.shape)
        r = refine(img, start, pixel_size_nm=px)
        e = np.hypot(*(r[["x_px", "y_px"]].to_numpy() - xy).T)
        print(f"| {fwhm} | {el} | {dose:.1e} | {len(xy)} | {np.median(e):.2f} ({np.median(e) * px * 1000:.1f}) "
              f"| {r.pos_err_px.median():.2f} |", flush=True)


def validation_images(data: Path):
    """(float image, pixel nm, labels (n, 2) px) of each validation image of the shared split under ``data``; None
    (and a line saying so) where ``data`` has no split.csv."""
    import pandas as pd

    from sacmap.detection.io import read_image
    from sacmap.detection.labels import read_labels

    if not (data / "split.csv").is_file():
        print(f"\n{data}: no split.csv, real images skipped")
        return None
    rows = pd.read_csv(data / "split.csv").query("split == 'validation'")
    out = []
    for im, lab in zip(rows.image, rows.labels):
        raw, px, _ = read_image(data / "images" / im)
        out.append((np.asarray(raw, float), px, read_labels(data / "labels" / lab)))
    return out


def _read_validation(models, data: Path, modes, title: str, native_column: bool = False) -> None:
    """Pooled F1 at 5 original px of the validation images per model and per mode: ``modes`` maps a row label to
    ``read(raw, px) -> (image, pixel nm, scale)`` (``scale``: original px per px of the image read)."""
    from sacmap.detection.detector import AtomDetector
    from sacmap.detection.evaluate import evaluate_xy, pooled

    images = validation_images(data)
    if images is None:
        return
    print(f"\n## {title} (F1 at 5 original px, pooled)\n")
    print("| model | read as | F1 | found / labelled |" + (" read natively |" if native_column else "")
          + "\n|---|---|---|---|" + ("---|" if native_column else ""))
    for model in models:
        det = AtomDetector(model)
        for label, read in modes.items():
            per, native = [], 0
            for raw, px, labels in images:
                image, pixel, scale = read(raw, px)
                res = det.detect_result(image, pixel)
                native += bool((res.meta.get("small_atoms") or {}).get("native_frame"))
                per.append(evaluate_xy(res.atoms[["x_px", "y_px"]].to_numpy() * scale, labels, 5))
            p = pooled(per)
            print(f"| {model} | {label} | {p['f1']:.3f} | {p['n_pred']} / {p['n_truth']} |"
                  + (f" {native} of {len(per)} |" if native_column else ""), flush=True)


def _binned(raw: np.ndarray, px: float):
    """``raw`` summed over 2 × 2 pixel blocks (a coarser acquisition of the same dose per nm²) at twice the pixel."""
    h, w = (raw.shape[0] // 2) * 2, (raw.shape[1] // 2) * 2
    return raw[:h, :w].reshape(h // 2, 2, w // 2, 2).sum(axis=(1, 3)), 2 * px, 2.0


def section_real(models, data: Path) -> None:
    """The shared validation images read at their own pixel size and as if acquired at finer pixels (their
    0.28-nm atoms then count as 0.15 / 0.19 nm wide; the noise and texture stay real): the nearest we have to
    real fine-pixel images of small atoms. F1 at 5 px (0.146 nm at the true pixel), pooled."""
    modes = {"own": lambda raw, px: (raw, px, 1.0)}
    modes.update({f"{g} nm/px": (lambda raw, px, g=g: (raw, g, 1.0)) for g in (0.02, 0.016)})
    _read_validation(models, data, modes, "real validation images read as if at finer pixels", native_column=True)


def section_miscalibrated(models, data: Path, given=(0.95, 1.03, 1.10)) -> None:
    """The validation images read with a pixel size ``given`` × their own, and binned 2 × 2 (module docstring)."""
    modes = {"own": lambda raw, px: (raw, px, 1.0)}
    modes.update({f"pixel × {g:g}": (lambda raw, px, g=g: (raw, g * px, 1.0)) for g in given})
    modes["binned 2 × 2"] = _binned
    _read_validation(models, data, modes, "real validation images with a pixel size off, and binned 2 × 2")


def section_enlarged(models, seeds, factors=(1.0, 1.5, 2.0)) -> None:
    from sacmap.detection.detector import AtomDetector
    from sacmap.detection.evaluate import match

    px = PIXELS_NM[1]
    print(f"\n## enlarged: the {px:.4f}-nm/px scenes read with the pixel size × factor, F1 at {MATCH_NM} nm\n")
    print("| model | subset | factor | P | R | F1 | detections | truth |\n|---|---|---|---|---|---|---|---|")
    for model in models:
        det = AtomDetector(model)
        acc: dict = {}
        for fwhm, el, dose, seed in itertools.product(FWHMS_NM, ELEMENTS, DOSES, seeds):
            img, truth = small_atom_scene(seed, fwhm, el, dose, px)
            t = truth[["x_px", "y_px"]].to_numpy()
            for f in factors:
                xy = det.detect(img, px * f)[["x_px", "y_px"]].to_numpy()  # positions stay in image px
                r, _ = match(xy, t, MATCH_NM / px)
                for sub in ("all", el, f"FWHM {fwhm}", f"dose {dose:.1e}"):
                    a = acc.setdefault((sub, f), [0, 0, 0])
                    a[0] += len(r)
                    a[1] += len(xy)
                    a[2] += len(t)
        subsets = list(dict.fromkeys(sub for sub, _ in acc))
        for (sub, f), (tp, n_pred, n_true) in sorted(acc.items(), key=lambda kv: (subsets.index(kv[0][0]), kv[0][1])):
            print(f"| {model} | {sub} | {f:g} | {tp / max(n_pred, 1):.3f} | {tp / max(n_true, 1):.3f} "
                  f"| {2 * tp / max(n_pred + n_true, 1):.3f} | {n_pred} | {n_true} |")


def main(argv=None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--models", default="paper,heatmap")
    ap.add_argument("--seeds", type=int, default=2, help="scenes per (FWHM, element, dose)")
    ap.add_argument("--sections", default="detection,resampling,localisation",
                    help="comma-separated: detection, resampling, localisation, enlarged, real, miscalibrated")
    ap.add_argument("--data", type=Path, default=Path(__file__).resolve().parents[1] / "../shared/data/ptnc-stem")
    a = ap.parse_args(argv)
    models = [m.strip() for m in a.models.split(",") if m.strip()]
    for s in [s.strip() for s in a.sections.split(",") if s.strip()]:
        if s == "detection":
            section_detection(models, range(1, a.seeds + 1))
        elif s == "resampling":
            section_resampling()
        elif s == "localisation":
            section_localisation()
        elif s == "enlarged":
            section_enlarged(models, range(1, a.seeds + 1))
        elif s == "real":
            section_real(models, a.data.resolve())
        elif s == "miscalibrated":
            section_miscalibrated(models, a.data.resolve())
        else:
            ap.error(f"--sections: unknown section {s!r}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
