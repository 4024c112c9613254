"""Training data and training loop for the atom CNN.

Training crops are cut from the *whole pre-processed image* (zero-padded by 10 px), exactly what the fully
convolutional inference sees: no crop-wise re-normalisation (the published code re-normalised training crops only).

* positives: 21×21 crops centred on a fraction (default 90 %) of the expert positions; the rest are a crop-level
  validation set used to keep the best epoch;
* negatives, as many as positives, drawn afresh every epoch: 75 % uniform over pixels ≥ 10 px from every labelled
  atom, 25 % exactly 18 px from a random atom in a random direction (also ≥ 10 px from every atom); optional
  hard negatives (false detections of an earlier model) replace part of the uniform ones;
* augmentation: the 8 flips/rotations by 90°, an intensity gain and a little Gaussian noise.

Axes: labels are (x = column, y = row); the exclusion map is indexed [row, column] (tested).
"""

from __future__ import annotations

import logging
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
import pandas as pd
from scipy import ndimage

from sacmap.detection.errors import DetectionInputError
from sacmap.detection.evaluate import evaluate_xy, pooled
from sacmap.detection.labels import read_labels

log = logging.getLogger(__name__)

CROP = 21
HALF = CROP // 2


@dataclass
class LabelledImage:
    """A pre-processed image in the model frame and its expert positions (x = column, y = row, px)."""

    name: str
    image: np.ndarray
    xy: np.ndarray  # (n, 2) x=column, y=row in the model frame
    pixel_size_nm: float = 15.0 / 512
    scale: float = 1.0  # model px per original px
    shape_in: tuple = ()
    hard_negatives: np.ndarray = field(default_factory=lambda: np.empty((0, 2)))
    exact: bool = False  # positions are exact (simulated truth): near-miss negatives may be drawn


def _find(data_dir: Path, name: str, sub: str) -> Path:
    for cand in (data_dir / sub / name, data_dir / name):
        if cand.is_file():
            return cand
    raise DetectionInputError(f"{data_dir}: {name} not found (looked in {sub}/ and the folder itself)")


def load_split(data_dir, split_csv, which: str = "train", preprocess_kw: dict | None = None) -> list[LabelledImage]:
    """Read the images of one split (``split`` column == ``which``), pre-processed in the model frame
    (``preprocess_kw`` passed to :func:`sacmap.detection.preprocess.preprocess`)."""
    from sacmap.detection.io import read_image
    from sacmap.detection.preprocess import coords_to_frame, to_model_frame

    data_dir = Path(data_dir)
    split_csv = Path(split_csv)
    try:
        split = pd.read_csv(split_csv)
    except Exception as exc:
        raise DetectionInputError(f"{split_csv}: unreadable split CSV ({exc})") from exc
    missing = {"image", "labels", "split"} - set(split.columns)
    if missing:
        raise DetectionInputError(f"{split_csv}: missing columns {sorted(missing)}")
    out = []
    for row in split[split["split"] == which].itertuples():
        img_path = _find(data_dir, row.image, "images")
        raw, px, meta = read_image(img_path)
        xy = read_labels(_find(data_dir, row.labels, "labels"))
        img, (_, s) = to_model_frame(raw, px, meta.get("pixel_size_y_nm"), **(preprocess_kw or {}))
        xy_m = np.c_[coords_to_frame(xy[:, 0], xy[:, 1], raw.shape, img.shape)]
        out.append(LabelledImage(Path(row.image).stem, img, xy_m, px, s, raw.shape))
    if not out:
        raise DetectionInputError(f"{split_csv}: no images with split == {which!r}")
    return out


def load_pairs(folder, preprocess_kw: dict | None = None, exact: bool = True) -> list[LabelledImage]:
    """Images ``*.tif`` of a folder with labels in ``<stem>.csv`` / ``<stem>_truth.csv`` (e.g. simulated data from
    ``sacmap detect simulate``), pre-processed in the model frame. ``exact``: the positions are exact (simulated
    truth), so near-miss negatives (:class:`TrainConfig` ``near_frac``) are drawn around them."""
    from sacmap.detection.io import read_image
    from sacmap.detection.preprocess import coords_to_frame, to_model_frame

    folder = Path(folder)
    out = []
    for img_path in sorted(folder.glob("*.tif")):
        lab = next((p for p in (folder / f"{img_path.stem}.csv", folder / f"{img_path.stem}_truth.csv")
                    if p.is_file()), None)
        if lab is None:
            continue
        raw, px, meta = read_image(img_path)
        xy = read_labels(lab)
        img, (_, s) = to_model_frame(raw, px, meta.get("pixel_size_y_nm"), **(preprocess_kw or {}))
        xy_m = np.c_[coords_to_frame(xy[:, 0], xy[:, 1], raw.shape, img.shape)]
        out.append(LabelledImage(img_path.stem, img, xy_m, px, s, raw.shape, exact=exact))
    if not out:
        raise DetectionInputError(f"{folder}: no *.tif with a matching labels CSV")
    return out


def distance_to_atoms(shape: tuple[int, int], xy: np.ndarray) -> np.ndarray:
    """Euclidean distance (px) from every pixel [row, column] to the nearest atom at (x=column, y=row)."""
    mask = np.ones(shape, bool)
    if len(xy):
        rc = np.rint(xy[:, ::-1]).astype(int)
        ok = (rc[:, 0] >= 0) & (rc[:, 0] < shape[0]) & (rc[:, 1] >= 0) & (rc[:, 1] < shape[1])
        mask[rc[ok, 0], rc[ok, 1]] = False
        if not ok.all():  # atoms just outside: fall back to an exact brute-force distance
            rr, cc = np.mgrid[: shape[0], : shape[1]]
            d = np.full(shape, np.inf)
            for x, y in xy:
                d = np.minimum(d, np.hypot(rr - y, cc - x))
            return d
    else:
        return np.full(shape, np.inf)
    return ndimage.distance_transform_edt(mask)


def _around_atoms(shape, xy, n: int, rng: np.random.Generator, radius_px: tuple, min_dist_px: float,
                  dist: np.ndarray) -> list:
    """Up to ``n`` integer pixels (column, row): a random atom, a random direction, a distance in ``radius_px``
    (lo, hi; drawn uniformly only when lo < hi), kept when inside the image and ≥ ``min_dist_px`` from every atom
    (``dist``); at most 50 tries per point."""
    pts: list = []
    tries = 0
    while len(pts) < n and len(xy) and tries < 50 * max(n, 1):
        tries += 1
        a = xy[rng.integers(len(xy))]
        t = rng.uniform(0, 2 * np.pi)
        rad = rng.uniform(*radius_px) if radius_px[1] > radius_px[0] else radius_px[0]
        c, r = int(np.rint(a[0] + rad * np.cos(t))), int(np.rint(a[1] + rad * np.sin(t)))
        if 0 <= r < shape[0] and 0 <= c < shape[1] and dist[r, c] >= min_dist_px:
            pts.append((c, r))
    return pts


def sample_near_misses(shape, xy, n: int, rng: np.random.Generator, *, near_px=(3.0, 10.0),
                       dist: np.ndarray | None = None) -> np.ndarray:
    """``n`` near-miss negative centres (x=column, y=row, integer px): a random atom, a random direction and a
    distance uniform in ``near_px``, kept when the pixel is ≥ ``near_px[0]`` from *every* atom — off-centre crops
    of an atom and the gaps between close atoms (the midpoint of a 0.22-nm dimer is 3.75 px from each atom).
    Only meaningful for exact positions (simulated truth); expert labels scatter by ~2 px."""
    dist = distance_to_atoms(shape, xy) if dist is None else dist
    pts = _around_atoms(shape, xy, n, rng, tuple(near_px), near_px[0], dist)
    return np.asarray(pts, dtype=int).reshape(-1, 2)


def sample_negatives(shape, xy, n: int, rng: np.random.Generator, *, min_dist_px: float = 10.0,
                     contrastive_dist_px: float = 18.0, contrastive_frac: float = 0.25,
                     dist: np.ndarray | None = None) -> np.ndarray:
    """``n`` negative centres (x=column, y=row, integer px): 75 % uniform ≥ ``min_dist_px`` from all atoms,
    25 % exactly ``contrastive_dist_px`` from a random atom in a random direction (and ≥ ``min_dist_px`` from all).
    In images too dense to have pixels ≥ ``min_dist_px`` from every atom, the farthest 5 % of pixels are used.
    """
    dist = distance_to_atoms(shape, xy) if dist is None else dist
    n_con = int(round(n * contrastive_frac)) if len(xy) else 0
    pts = _around_atoms(shape, xy, n_con, rng, (contrastive_dist_px, contrastive_dist_px), min_dist_px, dist)
    far = np.flatnonzero(dist.ravel() >= min_dist_px)
    if len(far) < 0.01 * dist.size:  # dense image: fall back to the farthest pixels
        far = np.flatnonzero(dist.ravel() >= np.quantile(dist, 0.95))
    if len(far) == 0:
        raise DetectionInputError("no pixel is far enough from the labelled atoms to draw negatives")
    idx = rng.choice(far, size=n - len(pts), replace=True)
    r, c = np.divmod(idx, shape[1])
    pts += list(zip(c.tolist(), r.tolist()))
    return np.asarray(pts, dtype=int).reshape(-1, 2)


def crops_at(image: np.ndarray, xy: np.ndarray, padded: np.ndarray | None = None) -> np.ndarray:
    """21×21 crops of the zero-padded image centred on integer-rounded (x=column, y=row); (n, 21, 21) float32."""
    padded = np.pad(np.asarray(image, np.float32), HALF) if padded is None else padded
    rc = np.rint(np.asarray(xy, float)[:, ::-1]).astype(int).reshape(-1, 2)
    rc = np.clip(rc, [0, 0], [image.shape[0] - 1, image.shape[1] - 1])
    if len(rc) == 0:
        return np.empty((0, CROP, CROP), np.float32)
    return np.stack([padded[r:r + CROP, c:c + CROP] for r, c in rc])


def augment(crops: np.ndarray, rng: np.random.Generator, *, gain=(0.75, 1.3), noise_sd=0.03) -> np.ndarray:
    """Random flip/rot90 (8 symmetries), intensity gain and Gaussian noise per crop (returns a new array)."""
    out = np.empty_like(crops)
    k = rng.integers(0, 4, len(crops))
    flip = rng.random(len(crops)) < 0.5
    for i, c in enumerate(crops):
        c = np.rot90(c, k[i])
        out[i] = c[:, ::-1] if flip[i] else c
    if gain is not None:
        out *= rng.uniform(*gain, size=(len(crops), 1, 1)).astype(np.float32)
    if noise_sd:
        sd = rng.uniform(0, noise_sd, size=(len(crops), 1, 1)).astype(np.float32)
        out += sd * rng.standard_normal(out.shape).astype(np.float32)
    return out


@dataclass
class TrainConfig:
    """Hyper-parameters of :func:`train_cnn` (defaults are the bundled model's)."""

    channels: tuple = (16, 32, 32)
    hidden: int = 32
    epochs: int = 30
    batch: int = 64
    lr: float = 1e-3
    weight_decay: float = 1e-4
    pos_frac: float = 0.9
    neg_ratio: float = 3.0
    hard_frac: float = 0.5
    gain: tuple = (0.75, 1.3)
    noise_sd: float = 0.03
    pos_jitter_px: int = 0
    near_frac: float = 0.0  # share of the negatives of exact-truth images drawn as near misses
    near_px: tuple = (3.0, 10.0)  # distance range of near-miss negatives from an atom (px)
    soft_sigma_px: float = 0.0  # > 0: crop targets exp(-d²/2σ²) of the distance d to the nearest atom (px)
    select_on_real: bool = False  # crop-level validation (epoch choice) on expert-labelled images only
    real_weight: int = 1  # repeat the crops of expert-labelled (not exact) images this many times per epoch
    mining_rounds: int = 2  # extra rounds of training with hard negatives mined by the previous model
    mining_threshold: float = 0.5
    seed: int = 777
    threads: int = 2

    @classmethod
    def from_options(cls, **options) -> TrainConfig:
        """A config from command-line or form options; an option given as None keeps its default."""
        return cls(**{k: v for k, v in options.items() if v is not None})

    def as_dict(self) -> dict:
        from dataclasses import asdict

        d = asdict(self)
        d["channels"] = list(self.channels)
        d["gain"] = list(self.gain) if self.gain is not None else None
        d["near_px"] = list(self.near_px)
        return d


def train_cnn(images: list[LabelledImage], config: TrainConfig | None = None, *, progress: bool = False):
    """Train an :class:`~sacmap.detection.model.AtomCNN` on labelled images; deterministic for a given ``config.seed``.

    Returns ``(cnn, history)`` with the weights of the epoch of lowest crop-level validation loss and a list of
    per-epoch dicts (train_loss, val_loss, val_acc).
    """
    import torch
    from torch.nn import functional as F

    from sacmap.detection.model import AtomCNN

    cfg = config or TrainConfig()
    torch.set_num_threads(cfg.threads)
    torch.manual_seed(cfg.seed)
    rng = np.random.default_rng(cfg.seed)

    prepared = []
    pos_train, pos_val = [], []
    real_val = cfg.select_on_real and any(not li.exact for li in images)
    for li in images:
        padded = np.pad(li.image, HALF)
        dist = distance_to_atoms(li.image.shape, li.xy)
        perm = rng.permutation(len(li.xy))
        n_tr = int(round(cfg.pos_frac * len(li.xy))) if cfg.pos_frac < 1 else len(li.xy)
        if real_val and li.exact:  # the epoch is chosen on expert-labelled images only
            n_tr = len(li.xy)
        tr, va = li.xy[perm[:n_tr]], li.xy[perm[n_tr:]]
        pos_train.append((len(prepared), tr))
        pos_val.append((len(prepared), va))
        prepared.append((li, padded, dist))

    def pos_crops(items, jitter=0):
        out = []
        for k, xy in items:
            li, padded, _ = prepared[k]
            if len(xy) == 0:
                continue
            if jitter:
                xy = xy + rng.integers(-jitter, jitter + 1, size=xy.shape)
            out.append(crops_at(li.image, xy, padded))
        return np.concatenate(out) if out else np.empty((0, CROP, CROP), np.float32)

    def targets_at(k, pts):
        """Atom probability targets of crops centred at integer ``pts`` of image ``k``: 0 (hard labels), or
        exp(-d²/2σ²) of the exact distance d to the nearest atom with ``soft_sigma_px`` = σ > 0."""
        li = prepared[k][0]
        if not cfg.soft_sigma_px or len(li.xy) == 0 or len(pts) == 0:
            return np.zeros(len(pts), np.float32)
        from scipy.spatial import cKDTree

        d, _ = cKDTree(li.xy).query(np.asarray(pts, float))
        return np.exp(-0.5 * (d / cfg.soft_sigma_px) ** 2).astype(np.float32)

    def neg_crops(counts, items=None):
        out, tgt = [], []
        for (k, _), n in zip(items if items is not None else pos_train, counts):
            li, padded, dist = prepared[k]
            if n == 0:
                continue
            n_hard = min(int(round(cfg.hard_frac * n)), len(li.hard_negatives)) if cfg.hard_frac else 0
            n_near = int(round(cfg.near_frac * n)) if (li.exact or cfg.soft_sigma_px) else 0
            neg = sample_negatives(li.image.shape, li.xy, n - n_hard - n_near, rng, dist=dist)
            if n_near:
                lo = cfg.near_px[0] if not cfg.soft_sigma_px else 0.5
                near = sample_near_misses(li.image.shape, li.xy, n_near, rng, near_px=(lo, cfg.near_px[1]),
                                          dist=dist)
                neg = np.concatenate([neg, near])
            if n_hard:
                pick = li.hard_negatives[rng.choice(len(li.hard_negatives), n_hard, replace=False)]
                neg = np.concatenate([neg, np.rint(pick).astype(int)])
            out.append(crops_at(li.image, neg, padded))
            tgt.append(targets_at(k, neg))
        if not out:
            return np.empty((0, CROP, CROP), np.float32), np.empty(0, np.float32)
        return np.concatenate(out), np.concatenate(tgt)

    def soft_ce(logits, t):
        return F.cross_entropy(logits, torch.stack([1 - t, t], 1))

    # fixed crop-level validation set: held-out positives + as many negatives
    val_pos = pos_crops(pos_val)
    n_val = [len(xy) for _, xy in pos_val]
    val_neg, val_t = neg_crops(n_val) if sum(n_val) else (np.empty((0, CROP, CROP), np.float32), np.empty(0))
    x_val = torch.from_numpy(np.concatenate([val_pos, val_neg])[:, None].copy())
    y_val = torch.from_numpy(np.r_[np.ones(len(val_pos)), val_t].astype(np.float32))

    cnn = AtomCNN(tuple(cfg.channels), cfg.hidden)
    opt = torch.optim.Adam(cnn.parameters(), lr=cfg.lr, weight_decay=cfg.weight_decay, amsgrad=True)
    sched = torch.optim.lr_scheduler.CosineAnnealingLR(opt, T_max=max(cfg.epochs, 1))
    history = []
    best = (np.inf, None, -1)
    bar = range(cfg.epochs)
    if progress:
        from tqdm import tqdm

        bar = tqdm(bar, desc="train", unit="epoch")
    for epoch in bar:
        items = [(k, xy) for k, xy in pos_train for _ in range(1 if prepared[k][0].exact else cfg.real_weight)]
        pos = pos_crops(items, cfg.pos_jitter_px)
        counts = [int(round(cfg.neg_ratio * len(xy))) for _, xy in items]
        neg, neg_t = neg_crops(counts, items)
        x = augment(np.concatenate([pos, neg]), rng, gain=cfg.gain, noise_sd=cfg.noise_sd)
        y = np.r_[np.ones(len(pos)), neg_t].astype(np.float32)
        order = rng.permutation(len(x))
        x_t = torch.from_numpy(x[order][:, None].copy())
        y_t = torch.from_numpy(y[order])
        cnn.train()
        tot = 0.0
        for s in range(0, len(x_t), cfg.batch):
            xb, yb = x_t[s:s + cfg.batch], y_t[s:s + cfg.batch]
            if len(xb) < 2:
                continue
            opt.zero_grad()
            loss = soft_ce(cnn(xb), yb)
            loss.backward()
            opt.step()
            tot += float(loss.detach()) * len(xb)
        sched.step()
        rec = {"epoch": epoch + 1, "train_loss": tot / max(len(x_t), 1)}
        if len(x_val):
            cnn.eval()
            with torch.no_grad():
                logits = cnn(x_val)
                rec["val_loss"] = float(soft_ce(logits, y_val))
                rec["val_acc"] = float((logits.argmax(1) == (y_val > 0.5)).float().mean())
            if rec["val_loss"] < best[0]:
                best = (rec["val_loss"], {k: v.clone() for k, v in cnn.state_dict().items()}, epoch + 1)
        history.append(rec)
        log.debug("epoch %s", rec)
    if best[1] is not None:
        cnn.load_state_dict(best[1])
    cnn.eval()
    for rec in history:
        rec["selected"] = rec["epoch"] == best[2]
    return cnn, history


def mine_hard_negatives(cnn, images: list[LabelledImage], *, threshold: float = 0.5, min_dist_px: float = 10.0,
                        exact_min_dist_px: float | None = None, max_per_image: int = 20000) -> int:
    """Set ``hard_negatives`` of each image to the pixels where ``cnn`` gives p > ``threshold`` although they are
    ≥ ``min_dist_px`` from every labelled atom (false detections: support texture, edges); for exact-truth images
    ``exact_min_dist_px`` (if given) replaces ``min_dist_px`` (blobs spreading between close atoms). Returns the
    total."""
    from sacmap.detection.model import FullyConvolutional, probability_map

    fcn = FullyConvolutional(cnn)
    maps = probability_map(fcn, [li.image for li in images], tile=128)
    total = 0
    for li, p in zip(images, maps):
        dist = distance_to_atoms(li.image.shape, li.xy)
        dmin = exact_min_dist_px if (li.exact and exact_min_dist_px is not None) else min_dist_px
        r, c = np.nonzero((p > threshold) & (dist >= dmin))
        if len(r) > max_per_image:
            keep = np.random.default_rng(0).choice(len(r), max_per_image, replace=False)
            r, c = r[keep], c[keep]
        li.hard_negatives = np.c_[c, r].astype(float)
        total += len(r)
    return total


def train_detector(images: list[LabelledImage], config: TrainConfig | None = None, *, progress: bool = False):
    """:func:`train_cnn`, then ``config.mining_rounds`` times: mine hard negatives with the current model and train
    again from scratch with ``hard_frac`` of the negatives drawn from them. Returns ``(cnn, history)``."""
    from dataclasses import replace

    cfg = config or TrainConfig()
    first = replace(cfg, hard_frac=0.0) if cfg.mining_rounds else cfg
    cnn, history = train_cnn(images, first, progress=progress)
    for k in range(cfg.mining_rounds):
        n = mine_hard_negatives(cnn, images, threshold=cfg.mining_threshold,
                                exact_min_dist_px=cfg.near_px[0] if cfg.near_frac else None)
        log.info("mining round %d: %d hard-negative pixels", k + 1, n)
        cnn, h = train_cnn(images, replace(cfg, seed=cfg.seed + k + 1), progress=progress)
        for rec in h:
            rec["round"] = k + 1
        history += h
    for li in images:
        li.hard_negatives = np.empty((0, 2))
    return cnn, history


def sweep_thresholds(cnn, images: list[LabelledImage], thresholds=None, *, radius_px: float = 5.0,
                     settings=None) -> list[dict]:
    """Pooled P/R/F1 (Hungarian, ``radius_px``) at each threshold on labelled images, decoded by the deployment
    decoder (:func:`sacmap.detection.detector.decode` with ``settings``, default
    :class:`~sacmap.detection.pipeline.Settings`), so the tuned threshold is the one the pipeline then uses."""
    import dataclasses

    from sacmap.detection.detector import decode
    from sacmap.detection.model import FullyConvolutional, probability_map
    from sacmap.detection.result import Settings

    base = settings or Settings()
    thresholds = thresholds if thresholds is not None else np.round(np.arange(0.3, 0.96, 0.05), 2)
    maps = probability_map(FullyConvolutional(cnn), [li.image for li in images], tile=128)
    out = []
    for t in thresholds:
        s = dataclasses.replace(base, threshold=float(t))
        per = []
        for li, p in zip(images, maps):
            a = decode("cnn", p, li.image, s)
            per.append(evaluate_xy(np.c_[a["x"], a["y"]], li.xy, radius_px))
        out.append({"threshold": float(t), **pooled(per)})
    return out


def train_and_calibrate(images: list[LabelledImage], config: TrainConfig | None = None, *, n_holdout: int = 3,
                        target_threshold: float | None = None, refit_all: bool = False, extra=None, progress: bool = False):
    """Train with the operating threshold chosen on held-out *training* images.

    1. ``n_holdout`` images (chosen with ``config.seed``) are set aside; a detector is trained on the rest and
       the localisation threshold maximising pooled F1 on the held-out images is found (:func:`sweep_thresholds`);
    2. only with ``refit_all``: the detector is retrained on all images with the same configuration (measured:
       the tuned threshold does not transfer between training runs — the refitted model's probabilities sit
       lower, validation recall fell from ~0.65 to 0.49 — so by default the model that was tuned is kept);
    3. its atom logit is shifted so that the tuned threshold becomes ``target_threshold`` (default
       :data:`sacmap.detection.model.CNN_TARGET_THRESHOLD`), stored with the weights as their operating
       threshold (see :func:`sacmap.detection.model.recalibrate`).

    ``extra`` images (e.g. simulated) are always trained on and never held out.
    Returns ``(cnn, info)`` with ``info`` holding the histories, the sweep and the calibration.
    """
    extra = list(extra or [])
    from sacmap.detection.model import CNN_TARGET_THRESHOLD, recalibrate

    if target_threshold is None:
        target_threshold = CNN_TARGET_THRESHOLD
    cfg = config or TrainConfig()
    info: dict = {}
    if n_holdout and len(images) > n_holdout:
        rng = np.random.default_rng(cfg.seed)
        hold_idx = set(rng.choice(len(images), n_holdout, replace=False).tolist())
        hold = [li for i, li in enumerate(images) if i in hold_idx]
        fit = [li for i, li in enumerate(images) if i not in hold_idx]
        cnn_sel, hist_sel = train_detector(fit + extra, cfg, progress=progress)
        sweep = sweep_thresholds(cnn_sel, hold)
        best = max(sweep, key=lambda r: r["f1"])
        info.update(holdout_images=[li.name for li in hold], selection_history=hist_sel, sweep=sweep,
                    tuned_threshold=best["threshold"], holdout_f1=best["f1"], holdout_precision=best["precision"],
                    holdout_recall=best["recall"])
    if refit_all or "tuned_threshold" not in info:
        cnn, history = train_detector(images + extra, cfg, progress=progress)
        info["trained_on"] = [li.name for li in images + extra]
    else:
        cnn, history = cnn_sel, info.pop("selection_history")
        info["trained_on"] = [li.name for li in fit + extra]
    info["history"] = history
    if "tuned_threshold" in info:
        info["logit_shift"] = recalibrate(cnn, info["tuned_threshold"], target_threshold)
        info["target_threshold"] = target_threshold
    return cnn, info


def train_weights(data_dir, split_csv, output, *, which: str = "train", config: TrainConfig | None = None,
                  smooth_px: float = 0.0, holdout: int = 3, refit_all: bool = False, extra_dirs=(),
                  command: str = "", progress: bool = False) -> dict:
    """Train a detector on the ``which`` images of ``split_csv`` (see :func:`load_split`) plus the simulated pairs
    of ``extra_dirs`` (:func:`load_pairs`), with ``holdout`` images tuning the threshold
    (:func:`train_and_calibrate`), and write the weights with their metadata to ``output``
    (:func:`sacmap.detection.model.save_weights`).

    ``smooth_px``: Gaussian pre-smoothing σ (px) stored with the weights for inference; ``command``: the command
    line recorded in the metadata. Returns the metadata written (config, images, selected epoch, the tuning and
    histories, ``train_seconds``, ``digest``); :func:`training_report` gives it as one line of text.
    """
    import time

    from sacmap.detection.detector import FRAME_RESAMPLE
    from sacmap.detection.model import save_weights, weights_digest

    cfg = config or TrainConfig()
    pre_kw = {"smooth_px": smooth_px, "resample": FRAME_RESAMPLE["cnn"]}  # recorded: the transform inference uses
    t0 = time.perf_counter()
    images = load_split(data_dir, split_csv, which, pre_kw)
    extra = [li for folder in extra_dirs for li in load_pairs(folder, pre_kw)]
    cnn, info = train_and_calibrate(images, cfg, n_holdout=holdout, refit_all=refit_all, extra=extra,
                                    progress=progress)
    history = info["history"]
    sel = next((h for h in reversed(history) if h.get("selected")), history[-1])
    meta = {"config": cfg.as_dict(), "preprocess": pre_kw, "images": [li.name for li in images],
            "n_atoms": int(sum(len(li.xy) for li in images)), "selected_epoch": sel["epoch"], **info,
            "train_seconds": round(time.perf_counter() - t0, 1), "command": command}
    if "target_threshold" in info:
        meta["threshold"] = info["target_threshold"]  # the operating threshold the pipeline reads
    meta["digest"] = weights_digest(cnn)
    save_weights(cnn, output, meta)
    return meta


def training_report(meta: dict, output) -> str:
    """One line of text for the metadata of :func:`train_weights` written to ``output``."""
    msg = (f"trained on {len(meta['trained_on'])} images ({len(meta['images'])} real, {meta['n_atoms']} real atoms) "
           f"in {meta['train_seconds']} s")
    if "tuned_threshold" in meta:
        msg += (f"; held-out {','.join(meta['holdout_images'])}: best threshold {meta['tuned_threshold']:.2f} "
                f"(P {meta['holdout_precision']:.3f} R {meta['holdout_recall']:.3f} F1 {meta['holdout_f1']:.3f}), "
                f"mapped to {meta['target_threshold']:g}")
    return msg + f"; wrote {output} [{meta['digest']}]"
