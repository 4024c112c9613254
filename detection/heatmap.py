"""Heat-map atom detector: a small fully convolutional network (U-Net / CenterNet style) and its decoder.

The network maps a model-frame image (:func:`sacmap.detection.preprocess.to_model_frame`: 0.0293 nm/px,
background-subtracted, normalised) to a per-pixel atom *heat map*: trained against Gaussian bumps
(σ = ``target_sigma_px`` model px) centred on every atom, so the target stays right however dense the atoms are
(unlike crop classification with "negatives 18 px from an atom", which in dense images are atoms).

Architecture (:class:`HeatmapNet`): 2×2 space-to-depth (pixel unshuffle, 4 channels at half resolution) →
2 × (3×3 conv, BN, ReLU) with ``width[0]`` channels → 2×2 max-pool → 3 × (3×3 conv, BN, ReLU) with ``width[1]``
channels → nearest upsampling, concatenation with the half-resolution features → 3×3 conv, BN, ReLU → 1×1 conv
to 4 logits → pixel shuffle back to full resolution. The first level at half resolution keeps the 512² pass at
~10–30 ms on 2 cores (a full-resolution U-Net of the same width measured 0.5 s); 0.22-nm pairs are 7.5 model px
apart, 3.75 px at half resolution, still two peaks. The receptive field is ~40 model px (1.2 nm).

Decoder (:func:`find_peaks`, the one used when tuning the threshold and when deploying): local maxima of the
heat map within a disk of radius ``min_sep_px`` that exceed the threshold, sub-pixel by a parabola through the
3×3 neighbourhood of log-heat, then greedy non-maximum suppression at ``min_sep_px`` in decreasing height.
"""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import torch
from torch import nn
from torch.nn import functional as F

from sacmap.core.atomic import atomic_write_with
from sacmap.core.jsonable import jsonable
from sacmap.detection.errors import DetectionInputError

KIND = "heatmap"


def _block(c_in: int, c_out: int) -> nn.Sequential:
    return nn.Sequential(nn.Conv2d(c_in, c_out, 3, padding=1), nn.BatchNorm2d(c_out), nn.ReLU(inplace=True))


class HeatmapNet(nn.Module):
    """Image (N, 1, H, W) → heat-map logits (N, 1, H, W); H and W multiples of 4 (see :func:`heatmap`)."""

    def __init__(self, width: tuple[int, int] = (24, 48)):
        super().__init__()
        a, b = (int(w) for w in width)
        self.width = (a, b)
        self.enc1 = nn.Sequential(_block(4, a), _block(a, a))
        self.enc2 = nn.Sequential(_block(a, b), _block(b, b), _block(b, b))
        self.dec1 = _block(a + b, a)
        self.out = nn.Conv2d(a, 4, 1)
        nn.init.constant_(self.out.bias, -4.0)  # start at p ≈ 0.02 (atoms are rare pixels), as CenterNet

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        x = F.pixel_unshuffle(x, 2)
        x1 = self.enc1(x)
        x2 = self.enc2(F.max_pool2d(x1, 2))
        y = self.dec1(torch.cat([F.interpolate(x2, scale_factor=2.0, mode="nearest"), x1], 1))
        return F.pixel_shuffle(self.out(y), 2)

    def config(self) -> dict:
        return {"kind": KIND, "width": list(self.width)}


#: Input pixels on either side that one heat-map pixel depends on (:class:`HeatmapNet`, any ``width``:
#: 21 px, measured from the gradient's support), rounded up to the network's 4-px block: the halo of a tile.
HALO_PX = 24
#: Tile side (px) of :func:`heatmap` on the CPU (None: the whole image in one pass). A 2048² map in one pass
#: took 0.96 s, in 512² tiles with a 24-px halo 0.49 s (2 cores; activations that fit the cache), the same values.
CPU_TILE = 512


@torch.no_grad()
def heatmap(net: HeatmapNet, images, *, device: str = "cpu", tile: int | None = None) -> list[np.ndarray]:
    """Heat map (sigmoid of the logits, in [0, 1]) of each model-frame image (2-D arrays of any size; padded by
    reflection to a multiple of 4 and cropped back). Returns float32 arrays of the input shapes.

    Images larger than ``tile`` (default :data:`CPU_TILE` on the CPU, no tiling on a GPU) go through the network in
    tiles of ``tile``² px with a :data:`HALO_PX` halo cut from the image (zero-padded only at its own edges, as in
    one pass), of which the inner part is kept: the same values as one pass, to float rounding."""
    from sacmap.detection.model import tiles

    single = isinstance(images, np.ndarray) and images.ndim == 2
    imgs = [images] if single else list(images)
    if tile is None and not str(device).startswith("cuda"):
        tile = CPU_TILE
    if tile is not None and (tile <= 0 or tile % 4):
        raise ValueError(f"heatmap: tile must be a positive multiple of 4, got {tile}")
    net = net.to(device).eval().to(memory_format=torch.channels_last)

    def run(x):
        xt = torch.from_numpy(np.ascontiguousarray(x))[None, None].to(device)
        return torch.sigmoid(net(xt.contiguous(memory_format=torch.channels_last)))[0, 0].float().cpu().numpy()

    out = []
    for im in imgs:
        im = np.asarray(im, np.float32)
        h, w = im.shape
        ph, pw = (-h) % 4, (-w) % 4
        x = np.pad(im, ((0, ph), (0, pw)), mode="reflect") if (ph or pw) else im
        H, W = x.shape
        if tile is None or max(H, W) <= tile:
            out.append(run(x)[:h, :w])
            continue
        m = np.empty((H, W), np.float32)
        for r0, c0, th, tw in tiles(H, W, tile):
            a0, b0 = max(r0 - HALO_PX, 0), max(c0 - HALO_PX, 0)
            y = run(x[a0:min(r0 + th + HALO_PX, H), b0:min(c0 + tw + HALO_PX, W)])
            m[r0:r0 + th, c0:c0 + tw] = y[r0 - a0:r0 - a0 + th, c0 - b0:c0 - b0 + tw]
        out.append(m[:h, :w])
    return out[0] if single else out


def _disk(r: float) -> np.ndarray:
    k = int(np.floor(r))
    yy, xx = np.mgrid[-k:k + 1, -k:k + 1]
    return (xx**2 + yy**2) <= r * r + 1e-9


def local_maxima_above(h: np.ndarray, threshold: float, footprint: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Rows and columns of the pixels of ``h`` above ``threshold`` that are ≥ every pixel of the (odd, centred)
    ``footprint`` around them (outside the image counts as −1): ``h >= maximum_filter(h, footprint=footprint,
    mode="constant", cval=-1) & (h > threshold)``, comparing only the pixels above the threshold (a few per cent
    of a heat map) with their neighbours instead of filtering the whole map (2048²: 0.3 s → ~0.02 s)."""
    rr, cc = np.nonzero(h > threshold)
    k = footprint.shape[0] // 2
    hp = np.pad(h, k, mode="constant", constant_values=-1.0)
    vals = h[rr, cc]
    ok = np.ones(len(rr), bool)
    for dy, dx in zip(*np.nonzero(footprint)):
        if dy == k and dx == k:
            continue
        idx = np.flatnonzero(ok)
        ok[idx] = vals[idx] >= hp[rr[idx] + dy, cc[idx] + dx]
    return rr[ok], cc[ok]


def find_peaks(heat: np.ndarray, threshold: float, min_sep_px: float) -> dict:
    """Atoms from a heat map: local maxima above ``threshold`` (disk of radius ``min_sep_px``), sub-pixel
    positions from a parabola through the 3×3 log-heat, greedy suppression of weaker peaks closer than
    ``min_sep_px``. Returns ``{"x", "y", "score"}`` (px of the heat map, x = column; score = peak height)."""
    from scipy.spatial import cKDTree

    h = np.asarray(heat, np.float32)
    rr, cc = local_maxima_above(h, threshold, _disk(max(min_sep_px, 1.0)))
    if len(rr) == 0:
        return {"x": np.empty(0), "y": np.empty(0), "score": np.empty(0)}
    lg = np.log(np.clip(np.pad(h, 1, mode="edge"), 1e-6, None))
    r1, c1 = rr + 1, cc + 1

    def offset(m, z, p):
        den = m - 2 * z + p
        return np.where(den < -1e-9, np.clip(0.5 * (m - p) / np.where(den < -1e-9, den, -1.0), -0.5, 0.5), 0.0)

    dx = offset(lg[r1, c1 - 1], lg[r1, c1], lg[r1, c1 + 1])
    dy = offset(lg[r1 - 1, c1], lg[r1, c1], lg[r1 + 1, c1])
    x, y, s = cc + dx, rr + dy, h[rr, cc].astype(float)
    order = np.argsort(-s, kind="stable")
    x, y, s = x[order], y[order], s[order]
    tree = cKDTree(np.c_[x, y])
    keep = np.ones(len(x), bool)
    for i in range(len(x)):
        if keep[i]:
            for j in tree.query_ball_point((x[i], y[i]), min_sep_px - 1e-9):
                if j > i:
                    keep[j] = False
    return {"x": x[keep], "y": y[keep], "score": s[keep]}


def save_heatmap_weights(net: HeatmapNet, path, meta: dict) -> Path:
    """Write the state dict, architecture and metadata (JSON: operating threshold, pre-processing, decoder
    settings, training record) atomically to ``path`` (torch format, read with ``weights_only=True``)."""
    payload = {"config": net.config(), "state_dict": net.state_dict(), "meta": json.dumps(jsonable(meta))}
    return atomic_write_with(path, lambda tmp: torch.save(payload, tmp))


def load_any_weights(path):
    """Load a weights file (``weights_only=True``): ``("heatmap", HeatmapNet, meta)`` or ``("cnn", AtomCNN,
    meta)`` for the paper-style crop CNN files of :mod:`sacmap.detection.model`."""
    from sacmap.detection.model import load_weights

    path = Path(path)
    if not path.is_file():
        raise DetectionInputError(f"{path}: weights file not found")
    try:
        payload = torch.load(path, map_location="cpu", weights_only=True)
    except Exception as exc:
        raise DetectionInputError(f"{path}: not a valid detection weights file ({exc})") from exc
    cfg = payload.get("config", {}) if isinstance(payload, dict) else {}
    if cfg.get("kind") != KIND:
        cnn, meta = load_weights(path)
        return "cnn", cnn, meta
    try:
        net = HeatmapNet(tuple(cfg["width"]))
        net.load_state_dict(payload["state_dict"])
        meta = json.loads(payload.get("meta", "{}"))
    except Exception as exc:
        raise DetectionInputError(f"{path}: not a valid heat-map weights file ({exc})") from exc
    net.eval()
    return KIND, net, meta


def weights_digest(net: nn.Module) -> str:
    """Short SHA-256 of the parameters (see :func:`sacmap.detection.model.weights_digest`)."""
    from sacmap.detection.model import weights_digest as _digest

    return _digest(net)
