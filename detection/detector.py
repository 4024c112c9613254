"""``AtomDetector``: the one detector object (scikit-learn style: parameters in ``__init__``, ``detect``).

    from sacmap.detection.detector import AtomDetector
    det = AtomDetector()                          # the default model (DEFAULT_MODEL), thresholds from the weights
    atoms = det.detect(image, pixel_nm=0.0293)    # DataFrame: x_px, y_px (image px), score, intensity, ...
    AtomDetector(model="paper").detect(...)       # the paper's crop CNN (exact fully convolutional map)
    AtomDetector(threshold=0.6)                   # a caller's operating threshold

Everything a weights file needs at inference is read from the file's metadata (saved with the weights): the
operating threshold (``meta["threshold"]``, chosen on held-out training images when the weights were made; for
the older CNN files ``meta["target_threshold"]``), the pre-processing keywords (``meta["preprocess"]``) and, for
the heat-map model, the decoder's minimum peak spacing (``meta["decoder"]["min_sep_nm"]``). Training and
inference share one image → model-frame transform (:func:`sacmap.detection.preprocess.to_model_frame`) and
one decoder per model kind (:func:`sacmap.detection.heatmap.find_peaks`, :func:`sacmap.detection.localise.localise`).

Models (:data:`MODELS`): ``"heatmap"`` (``data/heatmap.pt``, the heat-map network of
:mod:`sacmap.detection.heatmap`), ``"paper"`` (``data/detector.pt``, the paper's CNN layout), the combination
``"combined"`` (:data:`COMBINATIONS`: the heat-map peaks of height ≥ 0.35 plus the paper CNN's atoms farther than
0.15 nm from all of them, :func:`sacmap.detection.combine.union_atoms`; each part with its own weights,
pre-processing and threshold; then the band-pass candidates that the verifier ``data/verifier.json`` accepts,
:meth:`AtomDetector.verified`, the atoms both networks miss in dense, noisy images), ``"bundled"`` (the default:
:data:`DEFAULT_MODEL`), or a path to a weights file of either kind.
"""

from __future__ import annotations

import dataclasses
import functools
from pathlib import Path

import numpy as np

from sacmap.detection.errors import DetectionInputError
from sacmap.detection.model import DATA_DIR

#: Named models: name → bundled weights file: ``"heatmap"`` the heat-map network (``data/heatmap.pt``,
#: :mod:`sacmap.detection.heatmap`), ``"paper"`` the paper's crop CNN (``data/detector.pt``, the reference).
MODELS = {"heatmap": DATA_DIR / "heatmap.pt", "paper": DATA_DIR / "detector.pt"}
#: The heat map of crowded fields: trained by the same command with crowded broad-atom fields in the mix
#: (``--crowded-frac 0.3 --real-frac 0.45``, ``data/MODEL_CARD.md``). A combination reads an image with it instead
#: of ``heatmap.pt`` where its networks' first atoms are at least ``Settings.crowded_density`` per nm².
CROWDED_HEATMAP = DATA_DIR / "heatmap_crowded.pt"
#: Named combinations: name → (primary, secondary) of :data:`MODELS`. The primary gives the threshold a caller
#: moves and the pre-processing record; the atoms are the secondary's peaks of height ≥ ``Settings.combine_score``
#: (and its lower peaks within ``Settings.combine_partner_nm`` of one of those) plus the primary's atoms farther
#: than ``Settings.combine_sep_nm`` from every one of them (the heat map keeps
#: close pairs apart where the CNN has one atom between them; the CNN adds the faint atoms the heat map misses).
COMBINATIONS = {"combined": ("paper", "heatmap")}
#: The model ``"bundled"`` (the default everywhere) stands for: the combination, which keeps the paper CNN's
#: validation and randomised-image F1 and nearly all of the heat map's dense-image fidelity (``data/MODEL_CARD.md``,
#: *Combination*).
DEFAULT_MODEL = "combined"
#: How each model kind's frame resamples an image to the model's pixel size (``resample`` of
#: :func:`sacmap.detection.preprocess.to_model_frame`) where its weights' ``meta["preprocess"]`` does not say:
#: the heat map was trained on bilinear frames; the paper CNN, trained at its native pixel size only, reads an
#: image shrunk by area averaging (:mod:`sacmap.detection.preprocess`: measured on fine-pixel fields, where the
#: bilinear frame made it miss faint atoms; docs/detection.md *Pixel sizes*).
FRAME_RESAMPLE = {"heatmap": "linear", "cnn": "area"}
#: fewest atoms in the first frame from which the atoms' width decides on a less shrunk one (``_small_atom_frame``)
SMALL_ATOM_MIN_ATOMS = 5
#: least contrast-to-pixel-noise of the atoms (brighter half) for the native frame (``_small_atom_frame``): the
#: second renderer's small atoms that gained from it had 2.8-7.0, the moderate-dose scenes of
#: benchmarks/pixel_sizes.py that lost 0.69-0.92 and one randomised 0.0245-nm/px image that lost 2.09 (session 14)
SMALL_ATOM_MIN_CONTRAST = 2.5
#: an image shrunk further than this (largest zoom factor) that the small-atom rule left in the shrunk frame is
#: read a second time on its own grid, and the reading its compact peaks support is kept (``readings.compare``)
SECOND_READING_BELOW = 0.9
#: ... when its significant detections come out narrower than this (model px, σ) in the shrunk frame: the width of
#: the networks' training atoms (0.28 nm FWHM at 0.0293 nm/px, σ 4.06). A bound of 2 (the small-atom rule's) left
#: the 5 validation images read as 0.016-nm/px ones (σ₀ 5.5-7 px of theirs) shrunk: F1 0.575 against 0.634
#: (session 15)
SECOND_READING_SIGMA = 4.0
#: the crowded reading (``Settings.crowded_density``) also needs the first reading's significant detections
#: (:func:`sacmap.detection.readings.significant`) at least this broad (FWHM nm, from σ₀ of
#: :func:`~sacmap.detection.refine.estimate_sigma`): the crowded heat map was trained on broad atoms (spread 0.16-0.32
#: nm FWHM plus the probe), and where the detections are narrower it over-counts. Session 18, on every benchmark image
#: the density gate let through: the rows it served read 0.237-0.435 nm, those it hurt by more than 0.02 F1 (small
#: atoms, faint fine-pixel fields) 0.100-0.212 nm, except two at 0.246 / 0.330 (docs/detection.md, *Crowded fields*)
CROWDED_MIN_FWHM_NM = 0.22


def _named(model):
    """``model`` with ``None`` and ``"bundled"`` resolved to :data:`DEFAULT_MODEL`."""
    return DEFAULT_MODEL if model in (None, "bundled") else model


def combination(model=None, weights=None) -> tuple[str, str] | None:
    """(primary, secondary) model names when ``model`` (``"bundled"`` resolved) names a combination, else None."""
    m = _named(model)
    return COMBINATIONS.get(m) if weights is None and isinstance(m, str) else None


def model_files(model=None, weights=None) -> list[Path]:
    """Every weights file a model uses (both parts of a combination, primary first)."""
    parts = combination(model, weights)
    return [model_path(p) for p in parts] if parts else [model_path(model, weights)]


def model_path(model=None, weights=None) -> Path:
    """Weights file of ``weights`` (a path, wins) or of ``model`` (a name of :data:`MODELS` or a path); for a
    combination its primary's (:func:`model_files` lists all)."""
    if weights is not None:
        return Path(weights)
    m = _named(model)
    if isinstance(m, str) and m in COMBINATIONS:
        m = COMBINATIONS[m][0]
    if isinstance(m, str) and m in MODELS:
        return MODELS[m]
    p = Path(m)
    if p.suffix or p.exists():
        return p
    raise DetectionInputError(f"model {model!r}: use one of {', '.join([*MODELS, *COMBINATIONS])} or a weights file")


@functools.lru_cache(maxsize=4)
def _load(path: str, device: str):
    """(kind, network ready for whole-image inference, metadata) of a weights file, cached."""
    from sacmap.detection.heatmap import load_any_weights
    from sacmap.detection.model import FullyConvolutional

    kind, net, meta = load_any_weights(path)
    if kind == "cnn":
        net = FullyConvolutional(net)
    return kind, net.to(device), meta


def check_device(device: str) -> str:
    """``device`` when usable: ``"cpu"``, or ``"cuda"``/``"cuda:N"`` with a CUDA device present."""
    import torch

    if device == "cuda" or str(device).startswith("cuda:"):
        if not torch.cuda.is_available():
            raise DetectionInputError("--device cuda: no CUDA device available (use --device cpu)")
    elif device != "cpu":
        raise DetectionInputError(f"device {device!r}: use 'cpu' or 'cuda'")
    return device


def operating_threshold(meta: dict) -> float:
    """The operating threshold stored with the weights (``threshold``, else the CNN files' ``target_threshold``)."""
    t = meta.get("threshold", meta.get("target_threshold"))
    if t is None:
        raise DetectionInputError("weights metadata has no operating threshold; pass threshold=")
    return float(t)


def decode(kind: str, amap: np.ndarray, frame: np.ndarray, settings, meta: dict | None = None) -> dict:
    """The decoder of a model ``kind`` (``"heatmap"`` or ``"cnn"``): map → atoms in model px (``x``, ``y``,
    ``score``, ``component_size``, ``n_split``). The same function tunes the threshold in training
    (:mod:`sacmap.detection.heatmap_training`, :func:`sacmap.detection.training.sweep_thresholds`) and runs at
    deployment. ``settings`` (a :class:`~sacmap.detection.pipeline.Settings` with the threshold resolved);
    ``meta``: the weights' metadata (heat-map decoder spacing)."""
    from sacmap.detection.preprocess import TRAIN_PIXEL_NM

    s = settings
    if kind == "cnn":
        from sacmap.detection.localise import localise

        return localise(amap, threshold=s.threshold, min_size_px=s.min_size_px, split_area_px=s.split_area_px,
                        min_sep_px=s.px(s.min_sep_nm), max_sd_px=s.px(s.max_sd_nm), merge_px=s.px(s.merge_nm),
                        k_max=s.k_max, seed=s.seed, image=frame if s.peak_split else None,
                        peak_dip=s.peak_dip, large_dip=s.large_dip)
    from sacmap.detection.heatmap import find_peaks

    sep = s.peak_sep_nm if s.peak_sep_nm is not None else (meta or {}).get("decoder", {}).get("min_sep_nm", 0.15)
    pk = find_peaks(amap, s.threshold, sep / TRAIN_PIXEL_NM)
    n = len(pk["x"])
    return {**pk, "component_size": np.zeros(n, int), "n_split": np.ones(n, int)}


class AtomDetector:
    """Atom detector for HAADF-STEM images.

    Parameters
    ----------
    model : ``"bundled"`` (the default model, :data:`DEFAULT_MODEL`), ``"heatmap"``, ``"paper"``, ``"combined"``
        (:data:`COMBINATIONS`) or a weights path.
    weights : a weights file (overrides ``model``).
    threshold : operating threshold in (0, 1); None = the one stored with the weights (of a combination: the
        primary's; the secondary's peaks are kept above ``settings.combine_score``).
    device : ``"cpu"`` or ``"cuda"``.
    settings : :class:`sacmap.detection.pipeline.Settings` (decoder settings); never modified.
    refine : fit 2-D Gaussians to every atom (:func:`sacmap.detection.refine.refine`): sub-pixel positions,
        integrated intensity, width and position uncertainty.
    """

    def __init__(self, model="bundled", *, weights=None, threshold: float | None = None, device: str = "cpu",
                 settings=None, refine: bool = True):
        self.model = model
        self.weights = weights
        self.threshold = threshold
        self.device = device
        self.settings = settings
        self.refine = refine

    # -- loading -------------------------------------------------------------------------------------------
    @property
    def path(self) -> Path:
        return model_path(self.model, self.weights)

    @property
    def files(self) -> list[Path]:
        """Every weights file used (both parts of a combination)."""
        return model_files(self.model, self.weights)

    @property
    def parts(self) -> tuple[AtomDetector, AtomDetector] | None:
        """(primary, secondary) detectors of a combination (the caller's threshold goes to the primary), else None."""
        names = combination(self.model, self.weights)
        if names is None:
            return None
        kw = dict(device=self.device, settings=self.settings, refine=self.refine)
        return AtomDetector(names[0], threshold=self.threshold, **kw), AtomDetector(names[1], **kw)

    @property
    def verifier_path(self) -> Path:
        """The candidate verifier file of a combination (:data:`VERIFIER`)."""
        return VERIFIER

    def _net(self):
        if self.parts is not None:
            return self.parts[0]._net()
        return _load(str(self.path), check_device(self.device))

    @property
    def kind(self) -> str:
        return "combined" if self.parts is not None else self._net()[0]

    @property
    def reads_with_cnn(self) -> bool:
        """Whether the paper CNN's map is part of this detector's atoms (a CNN file, ``paper``, ``combined``)."""
        return self._net()[0] == "cnn"

    @property
    def meta(self) -> dict:
        """The weights' metadata; of a combination: the primary's threshold and pre-processing, both digests."""
        if self.parts is None:
            return self._net()[2]
        a, b = self.parts
        return {**a.meta, "digest": f"{a.meta.get('digest', '')}+{b.meta.get('digest', '')}"}

    def resolved_settings(self):
        """The decoder settings in force: ``settings`` (copied, never modified) with the threshold resolved
        (``threshold`` argument, else ``settings.threshold``, else the weights' operating threshold)."""
        from sacmap.detection.result import Settings

        s = dataclasses.replace(self.settings) if self.settings is not None else Settings()
        t = self.threshold if self.threshold is not None else s.threshold
        if t is None:
            t = operating_threshold(self.meta)
        t = float(t)
        if not 0 < t < 1:
            raise DetectionInputError(f"threshold {t}: must lie strictly between 0 and 1")
        return dataclasses.replace(s, threshold=t)

    # -- the three stages ------------------------------------------------------------------------------------
    def frame_options(self) -> dict:
        """The pre-processing keywords in force (the weights' ``meta["preprocess"]`` over
        :func:`~sacmap.detection.preprocess.preprocess`'s defaults): two detectors with equal options have the
        same model frame."""
        import inspect

        from sacmap.detection.preprocess import preprocess

        defaults = {k: v.default for k, v in inspect.signature(preprocess).parameters.items()
                    if v.default is not inspect.Parameter.empty}
        return {**defaults, **self._frame_kw()}

    def _frame_kw(self) -> dict:
        """The keywords of :func:`~sacmap.detection.preprocess.to_model_frame`: the weights' record over the
        kind's resampling (:data:`FRAME_RESAMPLE`)."""
        return {"resample": FRAME_RESAMPLE[self._net()[0]], **(self.meta.get("preprocess") or {})}

    def to_frame(self, raw: np.ndarray, pixel_nm: float, pixel_y_nm: float | None = None, factors=None):
        """Model-frame image and zoom factors (rows, columns) by the transform training used (``factors``: zoom
        factors that replace the pixel size's, :func:`~sacmap.detection.preprocess.small_atom_factors`)."""
        from sacmap.detection.preprocess import to_model_frame

        return to_model_frame(raw, pixel_nm, pixel_y_nm, factors=factors, **self._frame_kw())

    def maps(self, frames, batch: int | None = None) -> list[np.ndarray]:
        """Per-pixel atom map (heat map or CNN probability) of each model-frame image. ``batch``: CNN tiles per
        forward pass (None: :func:`sacmap.detection.model.tiling` of the device)."""
        kind, net, _ = self._net()
        if kind == "cnn":
            from sacmap.detection.model import probability_map

            return probability_map(net, list(frames), device=self.device, batch=batch)
        from sacmap.detection.heatmap import heatmap

        return heatmap(net, list(frames), device=self.device)

    def decode(self, amap: np.ndarray, frame: np.ndarray, settings=None) -> dict:
        """Atoms (model px) from one map by :func:`decode` (the deployment decoder, also used to tune); a
        combination's primary map gives the primary's atoms (:meth:`detect_many` unions them with the secondary's
        peaks)."""
        if self.parts is not None:
            return self.parts[0].decode(amap, frame, settings)
        return decode(self.kind, amap, frame, settings or self.resolved_settings(), self.meta)

    # -- public ----------------------------------------------------------------------------------------------
    def detect(self, image, pixel_nm: float | None = None, pixel_y_nm: float | None = None):
        """Atoms of one image (2-D array of raw intensities, or a path): a DataFrame of
        :data:`sacmap.core.records.DETECTION_COLUMNS` (positions in px of the image, x = column, and nm).
        ``detect_result`` gives the full :class:`~sacmap.detection.pipeline.DetectionResult`."""
        return self.detect_result(image, pixel_nm, pixel_y_nm).atoms

    def detect_result(self, image, pixel_nm: float | None = None, pixel_y_nm: float | None = None, *,
                      elements=None):
        return self.detect_many([image], pixel_nm, pixel_y_nm, elements=elements)[0]

    def detect_many(self, images, pixel_nm: float | None = None, pixel_y_nm: float | None = None, *, elements=None,
                    batch: int | None = None):
        """:class:`~sacmap.detection.pipeline.DetectionResult` of each image (arrays or paths); ``pixel_y_nm``: the
        rows' pixel size where it differs from ``pixel_nm`` (None: square pixels, or a file's own calibration);
        ``batch``: CNN tiles per forward pass (None: the device's default, :func:`sacmap.detection.model.tiling`)."""
        from sacmap.detection.result import finish

        s = self.resolved_settings()
        out = []
        for p, amap, at, heat, heat_frame in self.network_atoms(images, pixel_nm, pixel_y_nm, batch=batch):
            if at is not None and s.verify:
                at = self.verified(at, heat_frame, amap, heat, s, meta=p.meta)
            out.append(finish(p, amap, s, self, elements, atoms=at))
        return out

    def network_atoms(self, images, pixel_nm: float | None = None, pixel_y_nm: float | None = None, *,
                      batch: int | None = None):
        """The networks' stage of :meth:`detect_many`: per image ``(prepared, primary map, atoms, heat map,
        heat-map frame)``. For a combination ``atoms`` are the union of both parts (model px; before the candidate
        verifier), ``heat`` the secondary's map and ``heat_frame`` the secondary's model frame (the verifier's
        candidates are found in it); for a single model all three are None (``finish`` decodes the map)."""
        from sacmap.detection.result import prepare, reframe

        s = self.resolved_settings()
        prepared = [prepare(im, pixel_nm, self, pixel_y_nm) for im in images]
        out = self._network_stage(prepared, s, batch)
        if s.small_atom_sigma > 0:  # small atoms on fine pixels: read again on the image's own grid
            redo, trial = [], []
            for i, o in enumerate(out):
                if max(o[0].meta["rescale_factor"]) >= 1.0:  # not shrunk: nothing to read on a finer grid
                    continue
                xy = self._native_xy(o, s)  # the first reading's atoms, decoded once for both rules
                if (f := self._small_atom_frame(o[0], xy, s)) is not None:
                    redo.append((i, f))
                elif (t := self._second_reading_frame(o[0], xy, s)) is not None:
                    trial.append((i, t[0], (xy, t[1])))
            if redo or trial:
                again = self._network_stage([reframe(out[i][0], self, f) for i, f, *_ in redo + trial], s, batch)
                for (i, _, *first), o in zip(redo + trial, again):
                    if not first or self._keep_second_reading(out[i][0], *first[0], o, s):
                        out[i] = o
        return out

    def _native_xy(self, o, settings) -> np.ndarray:
        """(N, 2) px of the native image of a network stage's atoms ``o`` = (prepared, map, atoms, ...)."""
        from sacmap.detection.preprocess import coords_back

        p, amap, at = o[:3]
        at = self.decode(amap, p.frame, settings) if at is None else at
        return np.c_[coords_back(at["x"], at["y"], p.raw.shape, amap.shape)]

    def _second_reading_frame(self, p, xy: np.ndarray, settings):
        """(zoom factors of the native frame, the image's :func:`~sacmap.detection.readings.band_images`) for a
        second reading of the prepared image ``p`` that :meth:`_small_atom_frame` left shrunk, else None
        (``xy``: the first reading's atoms, px of the native image, :meth:`_native_xy`). Tried when the image
        is shrunk below :data:`SECOND_READING_BELOW` and the width of the first reading's *significant*
        detections (:func:`sacmap.detection.readings.significant`: compact peaks above the pixel noise and the
        band-pass spread, at least :data:`SMALL_ATOM_MIN_ATOMS`), measured as σ₀ by
        :func:`~sacmap.detection.refine.estimate_sigma`, × the zoom is below :data:`SECOND_READING_SIGMA` model
        px (narrower than the networks' training atoms): where most detections are texture, σ₀ of all of them
        comes out 3–4× the atoms' and the small-atom rule never sees the small atoms; σ₀ of the significant ones
        does (second renderer, 0.08 nm at 0.016 nm/px, peak 0.3: 2.30 px for the atoms' 2.12). Whether the
        second reading is kept: :meth:`_keep_second_reading`."""
        from sacmap.detection.preprocess import small_atom_factors
        from sacmap.detection.readings import band_images, significant
        from sacmap.detection.refine import estimate_sigma

        factors = p.meta["rescale_factor"]
        shrink = max(factors)
        if shrink >= SECOND_READING_BELOW:
            return None
        bands = band_images(p.raw, settings.small_atom_sigma / shrink)
        sig = xy[significant(p.raw, xy, settings.small_atom_sigma / shrink, bands)]
        if len(sig) < SMALL_ATOM_MIN_ATOMS:
            return None
        sigma = estimate_sigma(p.raw, sig, pixel_size_nm=p.px)
        p.meta["small_atoms"] = {**p.meta.get("small_atoms", {}), "sigma0_significant_px": round(float(sigma), 3)}
        f = small_atom_factors(factors, sigma, SECOND_READING_SIGMA)
        return None if f is None else (f, bands)

    def _keep_second_reading(self, p, first_xy: np.ndarray, bands, second, settings) -> bool:
        """Whether the native reading ``second`` (a network stage's tuple) replaces the first reading of ``p``
        (its atoms ``first_xy``, native px; ``bands``: :func:`~sacmap.detection.readings.band_images` of ``p.raw``)
        by :func:`sacmap.detection.readings.compare` (compact peaks up to ``settings.small_atom_sigma`` model px);
        the scores go to both records' ``small_atoms["second_reading"]``."""
        from sacmap.detection.readings import compare

        shrink = max(p.meta["rescale_factor"])
        c = compare(p.raw, first_xy, self._native_xy(second, settings), p.px, settings.small_atom_sigma / shrink,
                    bands)
        for q in (p, second[0]):
            q.meta["small_atoms"] = {**q.meta.get("small_atoms", {}), "second_reading": c,
                                     "native_frame": c["keep_second"]}
        return c["keep_second"]

    def _small_atom_frame(self, p, xy: np.ndarray, settings):
        """Zoom factors of the native frame (:func:`~sacmap.detection.preprocess.small_atom_factors`) when ``p``'s
        frame shrinks the image and the atoms found in it (``xy``: px of the native image, :meth:`_native_xy`) are
        small and stand out from the pixel noise, else None.

        Small: σ₀ (:func:`~sacmap.detection.refine.estimate_sigma` on the native image at the mapped-back
        positions, px) × the frame's zoom below ``settings.small_atom_sigma`` model px. Standing out: the median,
        over the brighter half, of the contrast G(σ₀/2) − G(4σ₀) (Gaussian-smoothed image at the atom minus its
        surroundings) is at least :data:`SMALL_ATOM_MIN_CONTRAST` × the native pixel noise
        (:func:`~sacmap.detection.gaussfit.pixel_noise`): where it is not, the shrink's averaging of the noise is
        worth more than the detail it loses (docs/detection.md, *Small atoms on fine pixels*). Records what it
        decided in ``p.meta["small_atoms"]``."""
        from sacmap.detection.gaussfit import pixel_noise
        from sacmap.detection.preprocess import small_atom_factors
        from sacmap.detection.refine import estimate_sigma, gaussian_at

        factors = p.meta["rescale_factor"]
        if max(factors) >= 1.0 or len(xy) < SMALL_ATOM_MIN_ATOMS:  # the caller skips unshrunk frames
            return None
        x, y = xy.T
        sigma = estimate_sigma(p.raw, xy, pixel_size_nm=p.px)
        f = small_atom_factors(factors, sigma, settings.small_atom_sigma)
        if f is None:
            return None
        rr = np.clip(np.rint(y).astype(int), 0, p.raw.shape[0] - 1)
        cc = np.clip(np.rint(x).astype(int), 0, p.raw.shape[1] - 1)
        contrast = np.sort(gaussian_at(p.raw, rr, cc, 0.5 * sigma) - gaussian_at(p.raw, rr, cc, 4.0 * sigma))
        cnr = float(np.median(contrast[len(contrast) // 2:])) / max(pixel_noise(p.raw), 1e-12)
        native = cnr >= SMALL_ATOM_MIN_CONTRAST
        p.meta["small_atoms"] = {"sigma0_px": round(float(sigma), 3), "contrast_to_noise": round(cnr, 2),
                                 "native_frame": bool(native), "first_factors": [float(v) for v in factors]}
        return f if native else None

    def _network_stage(self, prepared, s, batch):
        maps = self.maps([p.frame for p in prepared], batch=batch)
        if self.parts is None:
            return [(p, amap, None, None, None) for p, amap in zip(prepared, maps)]
        from sacmap.detection.combine import union_atoms, with_partners
        from sacmap.detection.preprocess import TRAIN_PIXEL_NM as FRAME_PIXEL_NM

        primary, second = self.parts  # the secondary: its own frame transform, map and decoder

        def union(heat_det, hmap, frame, cnn):
            """A heat map's peaks, decoded down to its own threshold and kept above combine_score or as the partner
            of a kept peak, and the CNN's atoms ``cnn`` farther than combine_sep_nm from all of them."""
            sh = dataclasses.replace(s, threshold=min(s.combine_score, heat_det.resolved_settings().threshold))
            peaks = with_partners(heat_det.decode(hmap, frame, sh), s.combine_score, s.px(s.combine_partner_nm))
            return union_atoms(peaks, cnn, s.px(s.combine_sep_nm))

        def heat_only(heat_det, hmap, frame):
            """A heat map's peaks down to its own threshold (its file's operating point), no CNN atoms."""
            return heat_det.decode(hmap, frame, dataclasses.replace(s, threshold=heat_det.resolved_settings().threshold))

        o1, o2 = primary.frame_options(), second.frame_options()
        same = o1 == o2  # one transform: the primary's frame serves both
        alike = {k: v for k, v in o1.items() if k != "resample"} == {k: v for k, v in o2.items() if k != "resample"}
        # an image at the model's pixel size is not resampled, so the resampling options do not matter
        frames2 = [p.frame if same or (alike and list(p.meta["rescale_factor"]) == [1.0, 1.0])
                   else second.to_frame(p.raw, p.px, p.py, factors=p.meta["rescale_factor"])[0] for p in prepared]
        out = []
        for p, amap, f2, m2 in zip(prepared, maps, frames2, second.maps(frames2, batch=batch)):
            cnn = primary.decode(amap, p.frame, s)
            atoms = union(second, m2, f2, cnn)
            if s.crowded_density > 0 and min(p.px, p.py) >= SECOND_READING_BELOW * FRAME_PIXEL_NM:
                density = len(atoms["x"]) / max(p.raw.shape[0] * p.py * p.raw.shape[1] * p.px, 1e-12)
                p.meta["crowded_reading"] = {"network_density_per_nm2": round(float(density), 3),
                                             "threshold_per_nm2": s.crowded_density}
                crowded = density >= s.crowded_density and self._broad_enough(p, self._native_xy((p, amap, atoms), s))
                p.meta["crowded_reading"]["used"] = bool(crowded)
                if crowded:  # the crowded heat map reads the same frame; the CNN's atoms stay
                    third = AtomDetector(weights=CROWDED_HEATMAP, device=self.device, settings=self.settings,
                                         refine=self.refine)
                    p.meta["crowded_reading"].update(file=CROWDED_HEATMAP.name, digest=third.meta.get("digest", ""))
                    m2 = third.maps([f2], batch=batch)[0]
                    atoms = union(third, m2, f2, cnn)
            zoom = float(max(p.meta["rescale_factor"]))
            if s.enlarged_cnn_factor > 0 and zoom > max(s.enlarged_cnn_factor, 1.0) \
                    and not p.meta.get("crowded_reading", {}).get("used"):
                # the CNN takes interpolated real noise for atoms (3 % is enough): the heat map reads the image alone
                p.meta["enlarged_frame"] = {"zoom": round(zoom, 4), "above": s.enlarged_cnn_factor,
                                            "cnn_atoms_left_out": int((np.asarray(atoms["component_size"]) > 0).sum())}
                atoms = heat_only(second, m2, f2)
            out.append((p, amap, atoms, m2, f2))
        return out

    def _broad_enough(self, p, xy: np.ndarray) -> bool:
        """Whether the first reading's atoms ``xy`` (px of the native image, :meth:`_native_xy`) of the prepared image
        ``p`` are as broad as the crowded heat map's training atoms: FWHM of their significant detections (compact up to
        :data:`SECOND_READING_SIGMA` model px; all of them where fewer than
        :data:`SMALL_ATOM_MIN_ATOMS` are significant) at least :data:`CROWDED_MIN_FWHM_NM`; the width goes to
        ``p.meta["crowded_reading"]["fwhm_nm"]``."""
        from sacmap.detection.readings import significant
        from sacmap.detection.refine import estimate_sigma
        from sacmap.detection.simulate import FWHM_TO_SIGMA

        sig = xy[significant(p.raw, xy, SECOND_READING_SIGMA / max(p.meta["rescale_factor"]))]
        use = sig if len(sig) >= SMALL_ATOM_MIN_ATOMS else xy
        if not len(use):
            return False
        fwhm = estimate_sigma(p.raw, use, pixel_size_nm=p.px) * p.px / FWHM_TO_SIGMA
        p.meta["crowded_reading"].update(fwhm_nm=round(float(fwhm), 3), min_fwhm_nm=CROWDED_MIN_FWHM_NM)
        return bool(fwhm >= CROWDED_MIN_FWHM_NM)

    def verified(self, atoms: dict, frame: np.ndarray, amap: np.ndarray, heat: np.ndarray, settings,
                 meta: dict | None = None) -> dict:
        """``atoms`` plus the band-pass candidates the verifier (:data:`VERIFIER`) accepts
        (:mod:`sacmap.detection.candidates`; ``score`` = its probability, ``component_size`` −1 marks them).
        ``meta`` (the image's record) gets ``verifier``: how many were added, and the fewest and most that the
        ensemble would add with one of its networks left out (:func:`verifier_spread`)."""
        from sacmap.detection.candidates import candidate_features

        s = settings
        v = load_verifier(str(self.verifier_path))
        t = v.threshold if s.verify_threshold is None else float(s.verify_threshold)
        if not 0 < t < 1:
            raise DetectionInputError(f"verify_threshold {t}: must lie strictly between 0 and 1")
        sep = s.px(s.verify_sep_nm)
        xy, X = candidate_features(frame, np.c_[atoms["x"], atoms["y"]], heat, amap, sep)
        per = v.member_proba(X) if len(xy) else np.zeros((len(v.members_), 0))
        prob = per.mean(axis=0)
        keep = _spaced(xy, prob, prob >= t, sep)
        n = int(keep.sum())
        if meta is not None:
            meta["verifier"] = verifier_spread(xy, per, t, sep, n, len(atoms["x"]) + n)
        if not n:
            return atoms
        add = {"x": xy[keep, 0], "y": xy[keep, 1], "score": prob[keep],
               "component_size": np.full(n, -1), "n_split": np.ones(n, int)}
        return {k: np.concatenate([np.asarray(atoms[k]), add[k]]) for k in add}


#: The record flags an image whose verified count moves by more than this share of its atoms (and by at least
#: :data:`VERIFIER_SPREAD_MIN_ATOMS`) when one of the verifier's networks is left out. Measured
#: (benchmarks/verifier_spread.py, docs/detection.md *The verifier's retrain spread*) with session 9's verifier: the
#: shared real images moved by 0–4 %, the randomised image where two retrains of its recipe differed most (seed 3) by
#: 150 %. Session 20's verifier flags none of the benchmark images (seed 3: 2 added, 2–5).
VERIFIER_SPREAD_SHARE = 0.10
VERIFIER_SPREAD_MIN_ATOMS = 10


def verifier_spread(xy: np.ndarray, per: np.ndarray, threshold: float, sep_px: float, added: int,
                    n_atoms: int) -> dict:
    """What the record says of the verifier's decision on one image: ``added`` candidates accepted, the fewest
    and most the ensemble accepts with each of its networks left out in turn (``per``: the members'
    probabilities, (n_members, m)), and ``uncertain`` when that range exceeds :data:`VERIFIER_SPREAD_SHARE` of
    the image's ``n_atoms`` and :data:`VERIFIER_SPREAD_MIN_ATOMS`: the count there rests on the networks' random
    starts, and another training of the same recipe can land far from it."""
    k = len(per)
    loo = []
    if k > 1 and per.shape[1]:
        tot = per.sum(axis=0)
        for j in range(k):
            q = (tot - per[j]) / (k - 1)
            loo.append(int(_spaced(xy, q, q >= threshold, sep_px).sum()))
    lo, hi = (min(loo), max(loo)) if loo else (added, added)
    rng = hi - lo
    return {"added": int(added), "added_leave_one_out": [lo, hi],
            "uncertain": bool(rng > VERIFIER_SPREAD_SHARE * n_atoms and rng >= VERIFIER_SPREAD_MIN_ATOMS)}


def _spaced(xy: np.ndarray, prob: np.ndarray, ok: np.ndarray, sep_px: float) -> np.ndarray:
    """The accepted candidates (``ok``) kept in decreasing probability, each farther than ``sep_px`` from every
    one kept before it (greedy non-maximum suppression; the detected atoms are already ``sep_px`` away)."""
    from scipy.spatial import cKDTree

    keep = np.zeros(len(xy), bool)
    idx = np.flatnonzero(ok)
    if not len(idx):
        return keep
    idx = idx[np.argsort(-prob[idx], kind="stable")]
    tree = cKDTree(np.asarray(xy, float)[idx])
    taken = np.zeros(len(idx), bool)
    for i in range(len(idx)):
        near = tree.query_ball_point(tree.data[i], sep_px)
        if not any(taken[j] for j in near if j != i):
            taken[i] = True
    keep[idx[taken]] = True
    return keep


#: The bundled candidate verifier of the combination (:mod:`sacmap.detection.verifier`).
VERIFIER = DATA_DIR / "verifier.json"


@functools.lru_cache(maxsize=2)
def load_verifier(path: str):
    """The candidate verifier of file ``path``, cached."""
    from sacmap.detection.verifier import CandidateVerifier

    return CandidateVerifier.load(path)
