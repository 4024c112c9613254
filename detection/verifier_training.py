"""Training the candidate verifier (``data/verifier.json``) from one command.

    python -m sacmap.detection.verifier_training --data ../shared/data/ptnc-stem -o verifier.json

Training data: the band-pass candidates (:mod:`sacmap.detection.candidates`) that the bundled networks
(``combined``, before verification) leave on

* ``n_sim`` simulated 384² images, seeds ``seed``·1000 + i (5 000 … by default; the benchmarks use 0–11, the
  fidelity table ``[10·density, i, arrangement]`` and the heat-map training 777 000 …), in turn one of the
  domain-randomised conditions (:func:`sacmap.detection.simulate.draw_conditions`, Ru/Rh/Pd/Pt), the heat-map
  training draw (:func:`sacmap.detection.heatmap_training.random_sim_params`) and the calibrated simulator at a
  log-uniform 0.3–8 atoms/nm² (random, hard-core, multimer-rich in turn); every ``empty_every``-th image (10) is a
  domain-randomised field with no atoms, where every candidate is texture (without them the verifier took faint
  atom-free fields' bumps for atoms: their "detected atoms" are texture too, so a bump looks like them);
* ``n_crowded`` (120) crowded images (:func:`sacmap.detection.heatmap_training.crowded_sim_params`: 2–9
  atoms/nm², broad atoms, weak texture, moderate dose; every 6th with no atoms) and ``n_faint`` (60) faint sparse
  ones at fine pixel sizes (:func:`~sacmap.detection.heatmap_training.faint_sim_params`), seeds following the
  ``n_sim`` images', their candidates counted ``extra_weight`` (2) times: without them the verifier rejected
  the missed atoms of crowded broad-atom fields (their image-level features lay where our dense training images
  never were) and had no faint fine-pixel field to learn that a crowd of candidates there is texture;
* ``n_dense`` (60) calibrated dense images (3–8 atoms/nm² log-uniform, random, hard-core and multimer-rich in turn,
  384² at the reference pixel size), seeds following the faint ones', counted ``extra_weight`` times: without them
  the dense calibrated fields' image-level features lay between the crowded and the atom-free training fields, and
  each network decided them its own way (two fits of one training set: hard-core 8/nm² at 2.43 or 4.83 atoms/nm²
  before the refinement; with them 5.26–5.56; docs/detection.md, *The verifier's retrain spread*);
* the real training images of ``shared/data/ptnc-stem`` less the three held out from the networks' training
  (034, 045, 048) and the validation split, each candidate counted ``real_weight`` times.

A candidate is an atom (label 1) when, matched one-to-one (Hungarian, the benchmark's scoring) within the
matching radius (0.15 nm; 5 px of the image on the real images, the benchmark's radius), it takes a true atom
that the detected atoms left unmatched (:func:`label_candidates`).
"""

from __future__ import annotations

import argparse
import sys
import time
from dataclasses import asdict, dataclass
from pathlib import Path

import numpy as np

from sacmap.core.errors import InputError
from sacmap.detection.errors import DetectionInputError

MATCH_NM = 0.15
REAL_MATCH_PX = 5.0
#: the calibrated training images' arrangements, in turn
ARRANGEMENTS = ("random", "hardcore", "multimer")


@dataclass
class VerifierTrainConfig:
    """Options of :func:`train_verifier` (defaults: the bundled file's)."""

    n_sim: int = 300
    seed: int = 5
    real_weight: int = 3
    hidden: tuple = (32, 16)
    alpha: float = 1e-3
    max_iter: int = 300
    threshold: float = 0.8
    n_members: int = 5
    empty_every: int = 10  # every this-many-th simulated image has no atoms (0: none)
    n_crowded: int = 120  # further images of heatmap_training.crowded_sim_params (every 6th with no atoms)
    n_faint: int = 60  # further images of heatmap_training.faint_sim_params
    n_dense: int = 60  # further calibrated images at 3-8 atoms/nm² (random, hard-core, multimer-rich in turn)
    extra_weight: int = 2  # weight of the crowded, faint and dense images' candidates

    def as_dict(self) -> dict:
        d = asdict(self)
        d["hidden"] = list(self.hidden)
        return d


def _drawn_image(params: dict, seed: int):
    """An image of drawn simulator keywords (``heatmap_training`` draws: ``simulate_sample`` keywords plus
    ``pixel_size_nm`` and ``density_nm2``), as wide as 384 px of the reference pixel size: (image, nm/px, truth)."""
    from sacmap.detection.simulate import REFERENCE_PIXEL_NM, simulate_sample

    kw = dict(params)
    px, dens = kw.pop("pixel_size_nm"), kw.pop("density_nm2")
    n = max(64, int(round(384 * REFERENCE_PIXEL_NM / px)))
    img, truth, _ = simulate_sample(dens, shape=(n, n), pixel_size_nm=px, seed=seed, **kw)
    return img, px, truth


def _calibrated_image(seed: int, arrangement: str, low: float, high: float = 8.0):
    """A 384² image of the calibrated simulator at the reference pixel size, ``arrangement`` at a density drawn
    log-uniform in [``low``, ``high``] atoms/nm² from ``seed``: (image, nm/px, truth)."""
    from sacmap.detection.simulate import REFERENCE_PIXEL_NM, simulate_sample

    dens = float(np.exp(np.random.default_rng(seed).uniform(np.log(low), np.log(high))))
    img, truth, _ = simulate_sample(dens, arrangement=arrangement, shape=(384, 384), pixel_size_nm=REFERENCE_PIXEL_NM,
                                    seed=seed)
    return img, REFERENCE_PIXEL_NM, truth


def simulated_image(i: int, cfg: VerifierTrainConfig):
    """The ``i``-th training image: (image, pixel nm/px, truth (n, 2) px, kind). ``i`` < ``n_sim``: the three
    kinds in turn (module docstring); then ``n_crowded`` crowded, ``n_faint`` faint and ``n_dense`` dense calibrated
    images."""
    from sacmap.detection.heatmap_training import crowded_sim_params, faint_sim_params, random_sim_params
    from sacmap.detection.simulate import draw_conditions, simulate_sample

    seed = cfg.seed * 1000 + i
    if i >= cfg.n_sim + cfg.n_crowded + cfg.n_faint:
        arr = ARRANGEMENTS[(i - cfg.n_sim - cfg.n_crowded - cfg.n_faint) % 3]
        img, px, truth = _calibrated_image(seed, arr, 3.0)
        kind = f"dense calibrated {arr}"
    elif i >= cfg.n_sim:
        rng = np.random.default_rng(seed)
        crowded = i < cfg.n_sim + cfg.n_crowded
        kw = crowded_sim_params(rng) if crowded else faint_sim_params(rng)
        if crowded and (i - cfg.n_sim) % 6 == 5:
            kw["density_nm2"] = 0.0
        dens = kw["density_nm2"]
        img, px, truth = _drawn_image(kw, seed)
        kind = ("crowded" if crowded else "faint") + (" no atoms" if dens == 0 else "")
    elif cfg.empty_every and i % cfg.empty_every == cfg.empty_every - 1:  # the support alone: no candidate is
        cond = {**draw_conditions(seed, metals=("Ru", "Rh", "Pd", "Pt")), "density_nm2": 0.0}
        img, truth, _ = simulate_sample(shape=(384, 384), seed=seed, **cond)
        px, kind = cond["pixel_size_nm"], "no atoms"
    elif i % 3 == 0:
        cond = draw_conditions(seed, metals=("Ru", "Rh", "Pd", "Pt"))
        img, truth, _ = simulate_sample(shape=(384, 384), seed=seed, **cond)
        px, kind = cond["pixel_size_nm"], "randomised"
    elif i % 3 == 1:
        img, px, truth = _drawn_image(random_sim_params(np.random.default_rng(seed)), seed)
        kind = "heat-map draw"
    else:
        arr = ARRANGEMENTS[(i // 3) % 3]
        img, px, truth = _calibrated_image(seed, arr, 0.3)
        kind = f"calibrated {arr}"
    return img, px, truth[["x_px", "y_px"]].to_numpy(float), kind


def label_candidates(cand_xy: np.ndarray, atoms_xy: np.ndarray, truth_xy: np.ndarray, radius: float) -> np.ndarray:
    """1 for the candidates that would each add a matched atom: the true atoms left unmatched by a one-to-one
    (Hungarian, :func:`sacmap.detection.evaluate.match`) matching of the detected atoms within ``radius``, matched
    one-to-one to the candidates within ``radius``; 0 for the rest (all in one frame, px). One-to-one, as the
    benchmarks score: two candidates at one missed atom are one atom and one false detection, and a true atom
    whose only detection within ``radius`` went to its neighbour is still missing."""
    from sacmap.detection.evaluate import match

    y = np.zeros(len(cand_xy), int)
    if not len(cand_xy) or not len(truth_xy):
        return y
    free = np.setdiff1d(np.arange(len(truth_xy)), match(atoms_xy, truth_xy, radius)[1])
    if len(free):
        y[match(cand_xy, np.asarray(truth_xy)[free], radius)[0]] = 1
    return y


def image_candidates(detector, raw, px, truth_xy, radius_img_px=None) -> dict:
    """One image's candidates as :meth:`AtomDetector.verified` sees them, all in the model frame (px):
    ``atoms`` (n, 2) the networks' atoms, ``xy`` (m, 2) and ``X`` (m, len(FEATURES)) the candidates and their
    features, ``truth`` (k, 2), ``radius`` the matching radius (``radius_img_px`` in image px; None = 0.15 nm) and
    ``sep`` the verifier's spacing."""
    from sacmap.detection.candidates import candidate_features
    from sacmap.detection.preprocess import TRAIN_PIXEL_NM, coords_to_frame

    s = detector.resolved_settings()
    (p, amap, at, heat, frame), = detector.network_atoms([raw], px)
    axy = np.c_[at["x"], at["y"]]
    xy, X = candidate_features(frame, axy, heat, amap, s.px(s.verify_sep_nm))  # as AtomDetector.verified
    tx, ty = coords_to_frame(truth_xy[:, 0], truth_xy[:, 1], raw.shape, frame.shape)
    r = MATCH_NM / TRAIN_PIXEL_NM if radius_img_px is None else radius_img_px * frame.shape[1] / raw.shape[1]
    return {"atoms": axy, "xy": xy.astype(float), "X": X, "truth": np.c_[tx, ty], "radius": r,
            "sep": s.px(s.verify_sep_nm)}


def image_samples(detector, raw, px, truth_xy, radius_img_px=None):
    """(features, labels) of one image's candidates (:func:`image_candidates`, :func:`label_candidates`)."""
    c = image_candidates(detector, raw, px, truth_xy, radius_img_px)
    return c["X"], label_candidates(c["xy"], c["atoms"], c["truth"], c["radius"])


def training_set(data_dir, cfg: VerifierTrainConfig, *, progress=None):
    """(X, y, weight, record) over the simulated and the real training images."""
    import pandas as pd

    from sacmap.detection.detector import AtomDetector
    from sacmap.detection.heatmap_training import HOLDOUT
    from sacmap.detection.io import read_image
    from sacmap.detection.labels import read_labels

    data_dir = Path(data_dir)
    split_csv = data_dir / "split.csv"
    if not split_csv.is_file():
        raise DetectionInputError(f"{split_csv}: not found (the real images' train/validation split)")
    try:
        split = pd.read_csv(split_csv)
        real = split[(split.split == "train") & ~split.image.astype(str).str[:3].isin(HOLDOUT)]
        pairs = list(zip(real.image, real.labels))
    except (ValueError, AttributeError, KeyError, pd.errors.ParserError) as exc:
        raise DetectionInputError(f"{split_csv}: not a split table with columns image, labels, split ({exc})") from exc
    for im, lab in pairs:  # every input present before anything is simulated
        for f in (data_dir / "images" / im, data_dir / "labels" / lab):
            if not f.is_file():
                raise DetectionInputError(f"{split_csv}: {f} not found")
    det = AtomDetector("combined")
    Xs, ys, ws = [], [], []
    n_all = cfg.n_sim + cfg.n_crowded + cfg.n_faint + cfg.n_dense
    for i in range(n_all):
        img, px, txy, _ = simulated_image(i, cfg)
        X, y = image_samples(det, img, px, txy)
        Xs.append(X), ys.append(y), ws.append(np.full(len(y), 1 if i < cfg.n_sim else cfg.extra_weight, int))
        if progress and ((i + 1) % 25 == 0 or i + 1 == n_all):
            progress(f"simulated {i + 1}/{n_all}")
    for im, lab in pairs:
        raw, px, _ = read_image(data_dir / "images" / im)
        X, y = image_samples(det, raw, px, read_labels(data_dir / "labels" / lab), REAL_MATCH_PX)
        Xs.append(X), ys.append(y), ws.append(np.full(len(y), cfg.real_weight, int))
    X, y, w = np.concatenate(Xs), np.concatenate(ys), np.concatenate(ws)
    record = {"n_sim": cfg.n_sim, "n_crowded": cfg.n_crowded, "n_faint": cfg.n_faint, "n_dense": cfg.n_dense,
              "real_images": [str(s)[:3] for s in real.image], "n_candidates": int(len(y)),
              "n_atoms": int(y.sum()), "weights": [f.name for f in det.files]}
    return X, y, w, record


def train_verifier(data_dir, output, cfg: VerifierTrainConfig | None = None, *, progress=None) -> Path:
    """Fit the verifier on :func:`training_set` and write it to ``output`` (JSON, atomically)."""
    from sacmap.detection.heatmap_training import protect_training_inputs
    from sacmap.detection.verifier import CandidateVerifier

    cfg = cfg or VerifierTrainConfig()
    t0 = time.time()
    with protect_training_inputs(output, data_dir):
        X, y, w, record = training_set(data_dir, cfg, progress=progress)
        v = CandidateVerifier(cfg.hidden, cfg.alpha, cfg.max_iter, seed=0, threshold=cfg.threshold,
                              n_members=cfg.n_members).fit(X, y, w)
        v.meta = {"config": cfg.as_dict(), "training": record, "seconds": round(time.time() - t0, 1),
                  "command": "python -m sacmap.detection.verifier_training"}
        return v.save(output)


def build_parser() -> argparse.ArgumentParser:
    ap = argparse.ArgumentParser(prog="python -m sacmap.detection.verifier_training",
                                 description=__doc__.split("\n")[0])
    ap.add_argument("--data", required=True, help="the real images folder (images/, labels/, split.csv)")
    ap.add_argument("-o", "--output", required=True, help="verifier file to write (JSON)")
    ap.add_argument("--n-sim", type=int, default=VerifierTrainConfig.n_sim, help="simulated training images")
    return ap


def main(argv=None) -> int:
    a = build_parser().parse_args(argv)
    try:
        if a.n_sim < 1:
            raise DetectionInputError(f"--n-sim {a.n_sim}: must be at least 1")
        out = train_verifier(a.data, a.output, VerifierTrainConfig(n_sim=a.n_sim),
                             progress=lambda m: print(m, file=sys.stderr, flush=True))
    except InputError as exc:  # DetectionInputError, OutputCollision: one line, exit status 2
        print(f"error: {exc}", file=sys.stderr)
        return 2
    print(f"wrote {out}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
