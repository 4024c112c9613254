"""How much of a detected count rests on the candidate verifier's random starts (issue 14, item 7).

Run: ``OMP_NUM_THREADS=1 .venv/bin/python benchmarks/verifier_spread.py [VERIFIER.json ...] [--sections
fidelity,randomised,real] [--rows "hardcore 8,multimer 6"]`` (≈ 4 min on one core for the three sections; the
networks run once per image, each verifier file then takes seconds).

For the images of ``benchmarks/detection_accuracy.py`` (the calibrated fidelity rows at 0.0293 nm/px, the 12
randomised images, the real validation and held-out images) it takes the networks' atoms and the band-pass
candidates as ``combined`` does before verification (:func:`sacmap.detection.verifier_training.image_candidates`)
and, for each verifier file (default: the bundled one), adds the candidates that the ensemble accepts, and those
that each of its members alone would accept (:meth:`CandidateVerifier.member_proba`, the same threshold and the
same 0.15-nm greedy spacing). Per row: the true density, the networks' density, and per verifier the density
after the ensemble's additions, the members' lowest–highest, and F1 at 0.15 nm (5 px on the real images) of the
ensemble's atoms. These are the atoms *before* the refinement and its wide and faint rules, so F1 and densities
differ from the pipeline's by a few hundredths where those rules act (the bundled file: calibrated hard-core 8/nm²
0.817 here, 0.812 in the fidelity table; randomised seed 3 0.542 against 0.545).

Why: the five networks of one file disagree most where the image-level features of a dense field lie between the
training's crowded fields and its atom-free ones, and two trainings of one recipe on the same candidates can land
on either side (docs/detection.md, *The verifier's retrain spread*).
"""

from __future__ import annotations

import argparse
import time
from pathlib import Path

import numpy as np
from detection_accuracy import ARRANGEMENTS, DENSITIES, PX, REPO, fidelity_images, randomised_image, real_sets


def images(sections, data: Path, rows=None):
    """(row name, image, nm/px, truth (k, 2) px, matching radius in image px or None for 0.15 nm) of the sets."""
    if "fidelity" in sections:
        for arr in ARRANGEMENTS:
            for dens in DENSITIES:
                name = f"{arr} {dens:g}"
                if rows and name not in rows:
                    continue
                for img, truth in fidelity_images(arr, dens):
                    yield name, img, PX, truth[["x_px", "y_px"]].to_numpy(float), None
    if "randomised" in sections:
        for seed in range(12):
            if rows and f"seed {seed}" not in rows:
                continue
            cond, img, truth = randomised_image(seed)
            yield f"seed {seed}", img, cond["pixel_size_nm"], truth[["x_px", "y_px"]].to_numpy(float), None
    if "real" in sections:
        from sacmap.detection.io import read_image
        from sacmap.detection.labels import read_labels

        for name, pairs in (real_sets(data) or {}).items():
            for im, lab in pairs:
                row = f"{name.split()[0]} {str(im)[:3]}"
                if rows and row not in rows:
                    continue
                raw, px, _ = read_image(data / "images" / im)
                yield row, raw, px, read_labels(data / "labels" / lab), 5.0


def additions(verifier, c: dict) -> tuple[np.ndarray, list[int]]:
    """The candidates of ``c`` (:func:`~sacmap.detection.verifier_training.image_candidates`) the ensemble
    accepts (boolean mask), and how many each member alone would accept."""
    from sacmap.detection.detector import _spaced

    if not len(c["xy"]):
        return np.zeros(0, bool), [0] * len(verifier.members_)
    per = verifier.member_proba(c["X"])
    t = verifier.threshold
    ens = per.mean(axis=0)
    keep = _spaced(c["xy"], ens, ens >= t, c["sep"])
    return keep, [int(_spaced(c["xy"], p, p >= t, c["sep"]).sum()) for p in per]


def main(argv=None) -> int:
    import torch

    from sacmap.detection.detector import VERIFIER, AtomDetector, load_verifier
    from sacmap.detection.evaluate import match
    from sacmap.detection.verifier_training import image_candidates

    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("verifiers", nargs="*", help="verifier files (JSON) to compare; default the bundled one")
    ap.add_argument("--data", default=str(REPO.parent / "shared/data/ptnc-stem"))
    ap.add_argument("--sections", default="fidelity,randomised,real", help="comma-separated: fidelity, randomised, real")
    ap.add_argument("--rows", default="", help="comma-separated row names only (e.g. 'hardcore 8,seed 3,validation 078')")
    ap.add_argument("--threads", type=int, default=1)
    a = ap.parse_args(argv)
    sections = {s.strip() for s in a.sections.split(",") if s.strip()}
    if sections - {"fidelity", "randomised", "real"}:
        ap.error(f"--sections: unknown {sorted(sections - {'fidelity', 'randomised', 'real'})}")
    rows = {r.strip() for r in a.rows.split(",") if r.strip()} or None
    torch.set_num_threads(a.threads)
    files = [Path(f) for f in a.verifiers] or [VERIFIER]
    vers = [load_verifier(str(f)) for f in files]
    det = AtomDetector("combined")
    t0 = time.perf_counter()
    print("# verifier spread: per row the density (atoms/nm²) before the refinement, true / networks, then per "
          "verifier: with the ensemble's additions [members' lowest–highest] and F1\n")
    print("| row | ρ true | ρ networks | " + " | ".join(f"{f.name}: ρ [members] F1" for f in files) + " |")
    print("|---|---|---|" + "---|" * len(files))
    pooled: dict = {}
    for name, img, px, truth, radius in images(sections, Path(a.data), rows):
        c = image_candidates(det, img, px, truth, radius)
        r = pooled.setdefault(name, {"area": 0.0, "true": 0, "net": 0, "v": [[0, 0, None] for _ in vers]})
        r["area"] += img.shape[0] * img.shape[1] * px * px
        r["true"] += len(c["truth"])
        r["net"] += len(c["atoms"])
        for k, v in enumerate(vers):
            keep, per = additions(v, c)
            xy = np.r_[c["atoms"], c["xy"][keep]] if keep.any() else c["atoms"]
            m = len(match(xy, c["truth"], c["radius"])[0]) if len(xy) and len(c["truth"]) else 0
            acc = r["v"][k]
            acc[0] += m
            acc[1] += len(xy)
            acc[2] = np.add(acc[2], per) if acc[2] is not None else np.asarray(per)
    for name, r in pooled.items():
        cells = []
        for m, n, per in r["v"]:
            lo, hi = (r["net"] + per.min(), r["net"] + per.max())
            f1 = 2 * m / max(1, n + r["true"])
            cells.append(f"{n / r['area']:.2f} [{lo / r['area']:.2f}–{hi / r['area']:.2f}] {f1:.3f}")
        print(f"| {name} | {r['true'] / r['area']:.2f} | {r['net'] / r['area']:.2f} | " + " | ".join(cells) + " |",
              flush=True)
    print(f"\n({time.perf_counter() - t0:.0f} s)")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
