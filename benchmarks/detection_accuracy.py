"""Detection fidelity: what the detector measures against the truth, on real and simulated images.

Run: ``.venv/bin/python benchmarks/detection_accuracy.py [WEIGHTS] [--model bundled|combined|paper|heatmap] [--data DIR]
[--sections real,fidelity,randomised,localisation,pairs,elements,oracle] [--quick]`` (default: the bundled detector, every
section but ``legacy``; ≈ 2–5 min on 2 cores). Every detection goes through ``sacmap.detection.pipeline.detect_image``, the
function behind ``sacmap detect``. Sections:

* ``real``: the 5 validation images of the shared Pt₁/NC data and the 3 held-out training images (034, 045,
  048): P/R/F1, one-to-one Hungarian matching within 5 px (0.146 nm), pooled over images.
* ``fidelity`` (issue 14 item 8): per arrangement (``random`` = complete spatial randomness, ``hardcore`` =
  0.25-nm hard core, ``multimer`` = 30 % dimers + 30 % trimers with 0.20–0.26-nm bonds) and density (0.3, 0.5,
  1, 2, 4, 6, 8 atoms/nm²) on 512² images with the calibrated noise (0.0293 nm/px; ≥ ~200 true atoms per
  row): detected vs true density, ⟨NND⟩, Clark–Evans (Donnelly edge-corrected,
  ``sacmap.analysis.spatial.descriptors.clark_evans``), multimer share (NND ≤ 0.22 nm), F1 at 0.15 nm, the F1
  over *resolvable* atoms (true atoms ≥ 0.18 nm from every other; predictions matched to, or within 0.15 nm of,
  an unresolvable true atom are left out) and the median localisation error of matched atoms (pm).
  ``--clean`` runs the same table on noise-free images with a smooth support.
* ``randomised``: 12 domain-randomised 384² images (``sacmap.detection.simulate.draw_conditions``: density,
  arrangement, 0.015–0.05 nm/px, atom widths, dose, contrast, texture, Ru/Rh/Pd/Pt and mixtures), one row each.
* ``localisation``: ``sacmap.detection.refine`` alone, started 1 px (rms per coordinate) off the true
  positions: median error in px and pm on clean and calibrated images (the goal is ≤ 0.2 px on clean ones).
* ``pairs``: the refinement of isolated pairs 0.20–0.30 nm apart (81 per image, random orientations, 2 seeds),
  clean and calibrated, from the true positions, with and without the peak prior of unresolved pairs: bias of
  the fitted separation |d| and of its projection on the true axis, scatter, and the scatter of the log ratio of
  the two fitted intensities (true: 0.25); then the pipeline on multimer images (1 atom/nm², 5 seeds): multimer
  share of the truth, the detector and the refined output, and the error of the separation of the detected true
  pairs (both atoms matched, ≤ 0.3 nm) before and after the refinement.
* ``elements``: element labels at the true positions on calibrated 1-atom/nm² Ni/Pd, Ni/Pt, Pd/Pt and Ni/Pd/Pt
  images: the paper's VAE + mixture, the crop-brightness baseline and the mixture on refined intensities.
* ``oracle``: how far a band-pass threshold could go on the calibrated fidelity images (same seeds): every local
  maximum of the verifier's band-pass (:func:`sacmap.detection.candidates.band_pass`, model frame) within 0.10 nm
  of a true atom stands for that atom (its highest), every maximum farther than 0.15 nm from all true atoms is a
  false one, and the height threshold is chosen *on the truth* to maximise F1 (one threshold per row, pooled over
  its images). It is not a bound on every detector (the networks also see shape and context), but where the
  detector's F1 equals it the support texture, not the detector, is what stops it: the table gives the atoms'
  median height and the texture maxima's 90th/99th percentiles in units of the band-passed pixel noise.
* ``legacy``: the simulated cases of the earlier benchmark (sparse, clean, other pixel sizes, dense, bright,
  dimers; F1 at 3/5 px), with the truth-tuned DoG reference.

Why 0.18 nm is the resolvability limit: the calibrated atom image has FWHM 0.28 nm (σ 0.12 nm); two equal
Gaussians show a dip only beyond 2σ ≈ 0.24 nm (Sparrow), and at 0.18 nm (1.5 σ) the pair is one blob barely
wider than one atom (its second moment grows by (d/2)² = 0.008 nm², 56 % of σ²); below that no probe-limited
image separates them. Metal–metal bonds (0.22–0.28 nm) are above it; random (Poisson) patterns put
1 − exp(−πρ·0.18²) of their atoms closer than that: 10 % at 1, 19 % at 2 and 56 % at 8 atoms/nm².
"""

from __future__ import annotations

import argparse
import time
from pathlib import Path

import numpy as np

REPO = Path(__file__).resolve().parent.parent
PX = 0.029296875
DENSITIES = (0.3, 0.5, 1.0, 2.0, 4.0, 6.0, 8.0)
ARRANGEMENTS = ("random", "hardcore", "multimer")
FIDELITY_SHAPE = (512, 512)
FIDELITY_FIELD_NM = (FIDELITY_SHAPE[1] * PX, FIDELITY_SHAPE[0] * PX)
RESOLVABLE_NM = 0.18
MATCH_NM = 0.15
CLEAN = dict(noise=False, texture_sd=0.0, vacuum_texture_sd=0.0, thickness_sd=0.0)


def _detect(img, px, weights, model):
    from sacmap.detection.pipeline import detect_image

    kw = {"model": model} if model else {}
    return detect_image(img, pixel_size_nm=px, weights=weights, **kw).atoms


def point_stats(xy_nm: np.ndarray, field_nm: tuple[float, float]) -> dict:
    """n, density (nm⁻²), mean NND (nm), Clark–Evans (Donnelly), multimer share (NND ≤ 0.22 nm) over a rectangle."""
    from scipy.spatial import cKDTree

    from sacmap.analysis.spatial.descriptors import clark_evans
    from sacmap.core.constants import MULTIMER_NM

    area, perim = field_nm[0] * field_nm[1], 2 * (field_nm[0] + field_nm[1])
    n = len(xy_nm)
    if n < 2:
        return {"n": n, "density": n / area, "nnd": np.nan, "ce": np.nan, "multimer": np.nan, "nnd_all": np.array([])}
    nnd = cKDTree(xy_nm).query(xy_nm, k=2)[0][:, 1]
    return {"n": n, "density": n / area, "nnd": float(nnd.mean()),
            "ce": clark_evans(float(nnd.mean()), n, area, perim)["clark_evans"],
            "multimer": float(np.mean(nnd <= MULTIMER_NM + 1e-9)), "nnd_all": nnd}


def fidelity_row(pairs, px: float, field_nm) -> dict:
    """Pooled fidelity of several (pred_xy_px, truth_xy_px) images (see the module docstring)."""
    from scipy.spatial import cKDTree

    from sacmap.detection.evaluate import match

    acc = {k: [] for k in ("t", "d")}
    tp = n_pred = n_truth = 0
    tp_r = fp_r = n_res = 0
    errs, errs_r = [], []
    for pred, truth in pairs:
        st_t = point_stats(truth * px, field_nm)
        st_d = point_stats(pred * px, field_nm)
        acc["t"].append(st_t)
        acc["d"].append(st_d)
        pi, ti = match(pred, truth, MATCH_NM / px)
        tp += len(pi)
        n_pred += len(pred)
        n_truth += len(truth)
        d = np.hypot(*(pred[pi] - truth[ti]).T) * px * 1000 if len(pi) else np.empty(0)
        errs.append(d)
        resolvable = st_t["nnd_all"] >= RESOLVABLE_NM if len(truth) > 1 else np.ones(len(truth), bool)
        n_res += int(resolvable.sum())
        ok = resolvable[ti]
        tp_r += int(ok.sum())
        errs_r.append(d[ok])
        # unmatched predictions count as false positives unless they sit on an unresolvable true atom
        unmatched = np.setdiff1d(np.arange(len(pred)), pi)
        if len(unmatched) and (~resolvable).any():
            dist, _ = cKDTree(truth[~resolvable]).query(pred[unmatched])
            unmatched = unmatched[dist > MATCH_NM / px]
        fp_r += len(unmatched)

    def pool(side, key):
        rows = acc[side]
        w = np.array([r["n"] for r in rows], float)
        v = np.array([r[key] for r in rows], float)
        ok = np.isfinite(v) & (w > 0)
        return float(np.average(v[ok], weights=w[ok])) if ok.any() else float("nan")

    area = len(pairs) * field_nm[0] * field_nm[1]

    def f1(t, npred, ntrue):
        p = t / npred if npred else 0.0
        r = t / ntrue if ntrue else 0.0
        return 2 * p * r / (p + r) if p + r else 0.0

    e = np.concatenate(errs) if errs else np.empty(0)
    er = np.concatenate(errs_r) if errs_r else np.empty(0)
    return {
        "n_true": n_truth, "density_true": n_truth / area, "density_det": n_pred / area,
        "nnd_true": pool("t", "nnd"), "nnd_det": pool("d", "nnd"), "ce_true": pool("t", "ce"),
        "ce_det": pool("d", "ce"), "mult_true": pool("t", "multimer"), "mult_det": pool("d", "multimer"),
        "f1": f1(tp, n_pred, n_truth), "f1_resolvable": f1(tp_r, tp_r + fp_r, n_res),
        "resolvable_share": n_res / n_truth if n_truth else float("nan"),
        "err_pm": float(np.median(e)) if len(e) else float("nan"),
        "err_res_pm": float(np.median(er)) if len(er) else float("nan"),
    }


FIDELITY_HEADER = ("| set | ρ true | ρ det | ⟨NND⟩ true / det (nm) | CE true / det | multimer true / det | F1 0.15 nm | "
                   "F1 resolvable (share) | loc. error (pm) |\n|---|---|---|---|---|---|---|---|---|")


def fidelity_line(name: str, r: dict) -> str:
    return (f"| {name} | {r['density_true']:.2f} | {r['density_det']:.2f} | {r['nnd_true']:.3f} / {r['nnd_det']:.3f} "
            f"| {r['ce_true']:.3f} / {r['ce_det']:.3f} | {r['mult_true']:.3f} / {r['mult_det']:.3f} | {r['f1']:.3f} "
            f"| {r['f1_resolvable']:.3f} ({r['resolvable_share']:.2f}) | {r['err_pm']:.0f} |")


def fidelity_images(arr: str, dens: float, clean: bool = False):
    """The fidelity table's images of one row (arrangement ``arr``, ``dens`` atoms/nm²): (image, truth) of
    enough 512² fields at :data:`PX` to hold about 200 atoms, seeds ``[10·dens, i, arrangement]``."""
    from sacmap.detection.simulate import simulate_sample

    n_img = max(1, int(np.ceil(200 / (dens * FIDELITY_FIELD_NM[0] * FIDELITY_FIELD_NM[1]))))
    for i in range(n_img):
        img, truth, _ = simulate_sample(dens, arrangement=arr, shape=FIDELITY_SHAPE, pixel_size_nm=PX,
                                        seed=[int(dens * 10), i, ARRANGEMENTS.index(arr)], **(CLEAN if clean else {}))
        yield img, truth


def section_fidelity(weights, model, clean: bool, quick: bool) -> None:
    print(f"\n## fidelity ({'clean' if clean else 'calibrated noise'}, {PX:.4f} nm/px, 512², matching 0.15 nm)\n")
    print(FIDELITY_HEADER)
    for arr in ARRANGEMENTS:
        for dens in DENSITIES if not quick else (0.5, 2.0, 6.0):
            pairs = []
            for img, truth in fidelity_images(arr, dens, clean):
                atoms = _detect(img, PX, weights, model)
                pairs.append((atoms[["x_px", "y_px"]].to_numpy(float), truth[["x_px", "y_px"]].to_numpy(float)))
            print(fidelity_line(f"{arr} {dens:g}", fidelity_row(pairs, PX, FIDELITY_FIELD_NM)), flush=True)


def randomised_image(seed: int):
    """The randomised set's image ``seed``: (conditions, 384² image, truth) of
    ``simulate.draw_conditions(seed, metals=("Ru", "Rh", "Pd", "Pt"))``."""
    from sacmap.detection.simulate import draw_conditions, simulate_sample

    cond = draw_conditions(seed, metals=("Ru", "Rh", "Pd", "Pt"))
    img, truth, _ = simulate_sample(shape=(384, 384), seed=seed, **cond)
    return cond, img, truth


def section_randomised(weights, model, n_images: int = 12) -> None:
    """Domain-randomised images (``simulate.draw_conditions``: density, arrangement, pixel size, widths, dose,
    contrast, texture, metals Ru/Rh/Pd/Pt — Ni-only images left out, their atoms sit at the texture level):
    one row per image, then pooled."""
    print(f"\n## randomised conditions ({n_images} images of 384², seeds 0..{n_images - 1}, matching 0.15 nm)\n")
    print("| seed | arrangement | ρ true | ρ det | nm/px | atom FWHM nm | metals | dose × | F1 | F1 resolvable | "
          "multimer true / det |\n|---|---|---|---|---|---|---|---|---|---|---|")
    rows = []
    for seed in range(n_images):
        cond, img, truth = randomised_image(seed)
        px, shape = cond["pixel_size_nm"], img.shape
        atoms = _detect(img, px, weights, model)
        r = fidelity_row([(atoms[["x_px", "y_px"]].to_numpy(float), truth[["x_px", "y_px"]].to_numpy(float))],
                         px, (shape[1] * px, shape[0] * px))
        rows.append(r)
        fwhm = np.hypot(cond["probe_fwhm_nm"], cond["spread_fwhm_nm"])
        els = cond["elements"] if isinstance(cond["elements"], str) else "/".join(cond["elements"])
        print(f"| {seed} | {cond['arrangement']} | {r['density_true']:.2f} | {r['density_det']:.2f} | {px:.4f} | "
              f"{fwhm:.2f} | {els} | {cond['dose_per_nm2'] / 6.3e4:.2f} | {r['f1']:.3f} | {r['f1_resolvable']:.3f} | "
              f"{r['mult_true']:.3f} / {r['mult_det']:.3f} |", flush=True)
    f1 = np.array([r["f1"] for r in rows])
    ratio = np.array([r["density_det"] / r["density_true"] for r in rows])
    print(f"\nmedian F1 {np.median(f1):.3f} (min {f1.min():.3f}); detected/true density median {np.median(ratio):.2f} "
          f"(range {ratio.min():.2f}–{ratio.max():.2f})")


def real_sets(data: Path):
    """The real images scored: {"validation": [(image, labels), ...], "heldout-train (034, 045, 048)": [...]}
    (file names under ``data``/images and /labels), or None where ``data`` has no split.csv."""
    import pandas as pd

    if not (data / "split.csv").is_file():
        return None
    split = pd.read_csv(data / "split.csv")
    sets = {"validation": split[split.split == "validation"],
            "heldout-train (034, 045, 048)": split[split.image.str[:3].isin(["034", "045", "048"])]}
    return {name: list(zip(rows.image, rows.labels)) for name, rows in sets.items()}


def section_real(weights, model, data: Path) -> None:
    from sacmap.detection.evaluate import evaluate_xy, pooled
    from sacmap.detection.labels import read_labels

    print("\n## real images (Hungarian, 5 px = 0.146 nm, pooled)\n")
    sets = real_sets(data)
    if sets is None:
        print(f"{data}: no split.csv, real images skipped")
        return
    from sacmap.detection.io import read_image

    for name, rows in sets.items():
        per = []
        for im, lab in rows:
            raw, px, _ = read_image(data / "images" / im)
            atoms = _detect(raw, px, weights, model)
            per.append(evaluate_xy(atoms[["x_px", "y_px"]].to_numpy(), read_labels(data / "labels" / lab), 5))
        p = pooled(per)
        print(f"{name:<32} P {p['precision']:.3f}  R {p['recall']:.3f}  F1 {p['f1']:.3f}  "
              f"(n_truth {p['n_truth']}, n_pred {p['n_pred']})", flush=True)


def section_localisation() -> None:
    from sacmap.detection.refine import refine
    from sacmap.detection.simulate import simulate_sample

    print("\n## localisation: detection.refine from true positions + 1 px rms jitter (512², 0.0293 nm/px)\n")
    print("| image | atoms | median error px (pm) | 90th pct px | median reported 1-σ px | time s |\n|---|---|---|---|---|---|")
    for name, dens, arr, kw in (("clean, hard-core 1/nm²", 1.0, "hardcore", CLEAN),
                                ("clean, multimer 3/nm²", 3.0, "multimer", CLEAN),
                                ("clean, hard-core 6/nm²", 6.0, "hardcore", CLEAN),
                                ("calibrated, hard-core 1/nm²", 1.0, "hardcore", {}),
                                ("calibrated, no support texture, 1/nm²", 1.0, "hardcore",
                                 dict(texture_sd=0.0, vacuum_texture_sd=0.0)),
                                ("calibrated, multimer 3/nm²", 3.0, "multimer", {})):
        img, truth, _ = simulate_sample(dens, arrangement=arr, seed=11, **kw)
        xy = truth[["x_px", "y_px"]].to_numpy()
        start = xy + np.random.default_rng(0).normal(0.0, 1.0, xy.shape)
        t = time.perf_counter()
        r = refine(img, start, pixel_size_nm=PX)
        dt = time.perf_counter() - t
        e = np.hypot(*(r[["x_px", "y_px"]].to_numpy() - xy).T)
        print(f"| {name} | {len(xy)} | {np.median(e):.3f} ({np.median(e) * PX * 1000:.1f}) | {np.quantile(e, 0.9):.2f} "
              f"| {r.pos_err_px.median():.3f} | {dt:.2f} |", flush=True)


def _pair_image(sep_nm: float, seed: int, clean: bool):
    from sacmap.detection.simulate import pair_grid, simulate_image

    return simulate_image(pair_grid(sep_nm, seed=seed), seed=seed, **(dict(CLEAN, peak_sd=0.0) if clean else {}))


def section_pairs(weights, model) -> None:
    from scipy.spatial import cKDTree

    from sacmap.detection.evaluate import match
    from sacmap.detection.pipeline import Settings, detect_image
    from sacmap.detection.refine import RefineOptions, refine
    from sacmap.detection.result import _refine
    from sacmap.detection.simulate import simulate_sample

    print("\n## pairs: refinement of isolated pairs from the true positions (81 pairs × 2 seeds per row)\n")
    print("| image | sep nm | prior | distance bias nm | projected bias nm | sd nm | log I ratio sd |\n|---|---|---|---|---|---|---|")
    for clean in (True, False):
        for sep in (0.20, 0.22, 0.25, 0.28, 0.30):
            for name, opt in (("none", RefineOptions(amp_prior=0.0)), ("peak", RefineOptions())):
                dl, dp, lr = [], [], []
                for seed in (0, 1):
                    img, truth = _pair_image(sep, seed, clean)
                    xy = truth[["x_px", "y_px"]].to_numpy()
                    axis = xy[0::2] - xy[1::2]
                    axis /= np.hypot(*axis.T)[:, None]
                    res = refine(img, xy, pixel_size_nm=PX, options=opt)
                    dv = res[["x_px", "y_px"]].to_numpy()
                    dv = dv[0::2] - dv[1::2]
                    a = np.maximum(res.intensity.to_numpy(), 1e-6)
                    dl.append(np.hypot(*dv.T) * PX)
                    dp.append((dv * axis).sum(1) * PX)
                    lr.append(np.log(a[0::2] / a[1::2]))
                dl, dp, lr = map(np.concatenate, (dl, dp, lr))
                print(f"| {'clean' if clean else 'calibrated'} | {sep:.2f} | {name} | {dl.mean() - sep:+.3f} | "
                      f"{dp.mean() - sep:+.3f} | {dl.std():.3f} | {np.std(lr):.2f} |", flush=True)
    print(f"\n### pipeline ({model or 'default'}), multimer 1 atom/nm², 5 seeds: detector vs refined output\n")
    print("| image | multimer true / det / refined | median loc. error px det / refined | detected true pairs "
          "| separation error nm det / refined (sd) |\n|---|---|---|---|---|")
    kw = {"model": model} if model else {}

    def share(xy):
        return float(np.mean(cKDTree(xy).query(xy, k=2)[0][:, 1] * PX <= 0.22 + 1e-9))

    for clean in (True, False):
        sh, err, rows = [], [], []
        for i in range(5):
            img, truth, _ = simulate_sample(1.0, arrangement="multimer", seed=[10, i, 2], **(CLEAN if clean else {}))
            t = truth[["x_px", "y_px"]].to_numpy()
            d = detect_image(img, pixel_size_nm=PX, weights=weights, settings=Settings(refine=False), **kw)
            d = d.atoms[["x_px", "y_px"]].to_numpy()
            xr, yr, *_ = _refine(np.asarray(img, float), d[:, 0], d[:, 1], PX)
            r = np.c_[xr, yr]
            sh.append((share(t), share(d), share(r)))
            pi, ti = match(d, t, MATCH_NM / PX)
            err.append((np.median(np.hypot(*(d[pi] - t[ti]).T)), np.median(np.hypot(*(r[pi] - t[ti]).T))))
            m = dict(zip(pi.tolist(), ti.tolist()))
            dd, ii = cKDTree(d).query(d, k=2)
            for a in range(len(d)):
                b = int(ii[a, 1])
                if a < b and dd[a, 1] * PX <= 0.3 and a in m and b in m and m[a] != m[b]:
                    true = np.hypot(*(t[m[a]] - t[m[b]])) * PX
                    rows.append((dd[a, 1] * PX - true, np.hypot(*(r[a] - r[b])) * PX - true))
        sh, err, rows = np.mean(sh, 0), np.mean(err, 0), np.array(rows)
        print(f"| {'clean' if clean else 'calibrated'} | {sh[0]:.3f} / {sh[1]:.3f} / {sh[2]:.3f} | {err[0]:.2f} / "
              f"{err[1]:.2f} | {len(rows)} | {rows[:, 0].mean():+.3f} ({rows[:, 0].std():.3f}) / "
              f"{rows[:, 1].mean():+.3f} ({rows[:, 1].std():.3f}) |", flush=True)


def section_elements() -> None:
    from sacmap.detection.elements import label_elements
    from sacmap.detection.refine import refine
    from sacmap.detection.simulate import simulate_sample

    print("\n## element labels at the true positions (calibrated noise, 1 atom/nm², equal shares, 2 seeds)\n")
    print("| metals | VAE + mixture (paper) | crop brightness mixture | refined-intensity mixture |\n|---|---|---|---|")
    for els in (["Ni", "Pd"], ["Ni", "Pt"], ["Pd", "Pt"], ["Ni", "Pd", "Pt"]):
        acc = []
        for seed in (1, 2):
            img, truth, _ = simulate_sample(1.0, seed=seed, elements={e: 1.0 for e in els})
            xy = truth[["x_px", "y_px"]].to_numpy()
            r = refine(img, xy, pixel_size_nm=PX)
            res = label_elements(img, xy, els, seed=0, intensities=r.intensity.to_numpy())
            y = truth.element.to_numpy()
            acc.append([np.mean(res[k] == y) for k in ("labels", "labels_intensity", "labels_refined")])
        a = np.array(acc)
        print("| " + "/".join(els) + " | " + " | ".join(f"{a[:, j].mean():.3f} ({a[:, j].min():.2f}–{a[:, j].max():.2f})"
                                                   for j in range(3)) + " |", flush=True)


def section_oracle(weights, model) -> None:
    from scipy import ndimage
    from scipy.spatial import cKDTree

    from sacmap.detection import candidates as C
    from sacmap.detection.detector import AtomDetector
    from sacmap.detection.evaluate import match
    from sacmap.detection.result import prepare

    det = AtomDetector()
    print(f"\n## band-pass oracle (calibrated noise, {PX:.4f} nm/px, 512², threshold chosen on the truth)\n")
    print("| set | true atoms | with a band-pass maximum ≤ 0.10 nm | atoms' median height / noise | texture maxima "
          "90th / 99th pct / noise | oracle F1 (recall, false) | detector F1 0.15 nm |")
    print("|---|---|---|---|---|---|---|")
    rows = [("random", 1.0), ("hardcore", 1.0), ("hardcore", 2.0), ("hardcore", 4.0), ("hardcore", 6.0),
            ("hardcore", 8.0), ("multimer", 1.0), ("multimer", 4.0)]
    for arr, dens in rows:
        best, neg, tp, n_pred = [], [], 0, 0
        for img, truth in fidelity_images(arr, dens):
            fr = np.asarray(prepare(img, PX, det).frame, np.float32)
            t = truth[["x_px", "y_px"]].to_numpy(float) * (fr.shape[1] / img.shape[1])
            bp = C.band_pass(fr, C.BAND)
            noise = C.band_noise_sd(fr, C.BAND)
            ys, xs = np.nonzero((bp == ndimage.maximum_filter(bp, size=C.PEAK_WINDOW)) & (bp > 0))
            h = bp[ys, xs] / noise
            d, j = cKDTree(t).query(np.c_[xs, ys])
            b = np.zeros(len(t))
            near = d <= 0.10 / PX
            np.maximum.at(b, j[near], h[near])
            best.append(b)
            neg.append(h[d > MATCH_NM / PX])
            atoms = _detect(img, PX, weights, model)
            r, _c = match(atoms[["x_px", "y_px"]].to_numpy(float), truth[["x_px", "y_px"]].to_numpy(float),
                          MATCH_NM / PX)
            tp, n_pred = tp + len(r), n_pred + len(atoms)
        b, ng = np.concatenate(best), np.concatenate(neg)
        ths = np.unique(np.r_[b[b > 0], ng])
        found = np.array([(b >= th).sum() for th in ths])
        false = len(ng) - np.searchsorted(np.sort(ng), ths, side="left")
        f1 = 2 * found / (found + false + len(b))
        k = int(np.argmax(f1))
        q = np.quantile(ng, [0.9, 0.99]) if len(ng) else (np.nan, np.nan)
        print(f"| {arr} {dens:g} | {len(b)} | {np.mean(b > 0):.2f} | {np.median(b[b > 0]):.1f} | {q[0]:.1f} / "
              f"{q[1]:.1f} | {f1[k]:.3f} ({found[k] / len(b):.2f}, {int(false[k])}) | "
              f"{2 * tp / (n_pred + len(b)):.3f} |", flush=True)


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


def section_legacy(weights, model) -> None:
    from sacmap.detection import simulate
    from sacmap.detection.evaluate import evaluate_xy, pooled
    from sacmap.detection.preprocess import preprocess

    print("\n## earlier simulated cases (F1, Hungarian)\n")

    def line(name, per, extra=""):
        p = pooled(per)
        print(f"{name:<34} P {p['precision']:.3f}  R {p['recall']:.3f}  F1 {p['f1']:.3f}  "
              f"(n_truth {p['n_truth']}, n_pred {p['n_pred']}){extra}", flush=True)

    def sim(name, radius, seeds, shape=(512, 512), reference=False, px=PX, **kw):
        per, ref = [], []
        for s in seeds:
            img, truth, _ = simulate.simulate_sample(seed=s, shape=shape, pixel_size_nm=px, **kw)
            xy = truth[["x_px", "y_px"]].to_numpy()
            atoms = _detect(img, px, weights, model)
            per.append(evaluate_xy(atoms[["x_px", "y_px"]].to_numpy(), xy, radius))
            if reference:
                ref.append(dog_reference(preprocess(img), xy, radius))
        line(f"{name} ({radius} px)", per, f"  truth-tuned DoG F1 {np.mean(ref):.3f}" if ref else "")

    sim("1/nm², calibrated noise", 5, [0, 1], density_nm2=1.0)
    sim("1/nm², clean", 5, [0, 1], density_nm2=1.0, noise=False, texture_sd=0.0, vacuum_texture_sd=0.0)
    sim("1/nm², noise-free, textured", 5, [0, 1], density_nm2=1.0, noise=False)
    for f, n in ((0.7, 731), (1.5, 342), (2.0, 256)):  # other magnifications: same 15-nm field, resampled
        sim(f"1/nm², calibrated, {f * PX:.4f} nm/px", round(5 / f, 2), [0, 1], shape=(n, n), px=f * PX,
            density_nm2=1.0)
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
        atoms = _detect(img, PX, weights, model)
        line(f"0.22-nm dimers, {'clean' if clean else 'calibrated noise'} (3 px)",
             [evaluate_xy(atoms[["x_px", "y_px"]].to_numpy(), truth[["x_px", "y_px"]].to_numpy(), 3)])


def main(argv=None) -> int:
    import torch

    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("weights", nargs="?", default=None)
    ap.add_argument("--model", default=None, help="detector model name (passed to detect_image when given)")
    ap.add_argument("--data", default=str(REPO.parent / "shared/data/ptnc-stem"))
    ap.add_argument("--sections", default="real,fidelity,randomised,localisation,elements",
                    help="comma-separated: real, fidelity, randomised, localisation, pairs, elements, oracle, legacy")
    ap.add_argument("--clean", action="store_true", help="fidelity table on noise-free images")
    ap.add_argument("--quick", action="store_true", help="fidelity at 0.5, 2 and 6 atoms/nm² only")
    ap.add_argument("--threads", type=int, default=2)
    a = ap.parse_args(argv)
    torch.set_num_threads(a.threads)
    t0 = time.perf_counter()
    sections = [s.strip() for s in a.sections.split(",") if s.strip()]
    print(f"# detection accuracy: weights {a.weights or 'bundled'}, model {a.model or 'default'}")
    for s in sections:
        if s == "real":
            section_real(a.weights, a.model, Path(a.data))
        elif s == "fidelity":
            section_fidelity(a.weights, a.model, a.clean, a.quick)
        elif s == "localisation":
            section_localisation()
        elif s == "pairs":
            section_pairs(a.weights, a.model)
        elif s == "elements":
            section_elements()
        elif s == "randomised":
            section_randomised(a.weights, a.model)
        elif s == "oracle":
            section_oracle(a.weights, a.model)
        elif s == "legacy":
            section_legacy(a.weights, a.model)
        else:
            ap.error(f"--sections: unknown section {s!r}")
    print(f"\n({time.perf_counter() - t0:.0f} s)")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
