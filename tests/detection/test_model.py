"""The fully convolutional map equals explicit 21×21 crop classification; weights round trip; determinism."""

from __future__ import annotations

import numpy as np
import pytest
import torch

from sacmap.detection.model import (
    AtomCNN,
    FullyConvolutional,
    classify_crops,
    load_weights,
    probability_map,
    save_weights,
    weights_digest,
)


def _random_cnn(channels=(8, 16, 16), hidden=16, seed=0):
    torch.manual_seed(seed)
    cnn = AtomCNN(channels, hidden)
    with torch.no_grad():  # non-trivial BatchNorm statistics so that folding is tested
        for m in cnn.modules():
            if isinstance(m, torch.nn.BatchNorm2d):
                m.running_mean.uniform_(-0.2, 0.2)
                m.running_var.uniform_(0.5, 2.0)
                m.weight.uniform_(0.5, 1.5)
                m.bias.uniform_(-0.1, 0.1)
        cnn.fc3.weight.mul_(30.0)  # spread the probabilities away from 0.5
    return cnn.eval()


@pytest.mark.parametrize("channels,hidden,tile", [((8, 16, 16), 16, 512), ((32, 64, 128), 128, 37)])
def test_map_equals_crop_classification(channels, hidden, tile):
    rng = np.random.default_rng(1)
    img = rng.random((70, 90)).astype(np.float32)
    img[30:35, 40:45] += 2  # structure
    cnn = _random_cnn(channels, hidden)
    pmap = probability_map(FullyConvolutional(cnn), img, tile=tile)
    assert pmap.shape == img.shape
    rows = np.r_[rng.integers(0, 70, 40), 0, 69, 0, 69, 5, 64]
    cols = np.r_[rng.integers(0, 90, 40), 0, 89, 89, 0, 0, 89]  # corners and borders included
    ref = classify_crops(cnn, img, rows, cols)
    np.testing.assert_allclose(pmap[rows, cols], ref, atol=2e-6)
    assert ref.std() > 1e-4  # the comparison is not between constants


def test_batched_images_of_different_sizes():
    rng = np.random.default_rng(2)
    cnn = _random_cnn()
    fcn = FullyConvolutional(cnn)
    imgs = [
        rng.random((40, 50)).astype(np.float32),
        rng.random((33, 33)).astype(np.float32),
        rng.random((40, 50)).astype(np.float32),
    ]
    maps = probability_map(fcn, imgs, tile=32, batch=2)
    for im, m in zip(imgs, maps):
        np.testing.assert_allclose(m, probability_map(fcn, im, tile=512), atol=2e-6)


def test_weights_round_trip(tmp_path):
    cnn = _random_cnn()
    save_weights(cnn, tmp_path / "w.pt", {"note": "x"})
    back, meta = load_weights(tmp_path / "w.pt")
    assert meta == {"note": "x"}
    assert weights_digest(back) == weights_digest(cnn)


def test_bad_weights_file(tmp_path):
    from sacmap.detection.errors import DetectionInputError

    p = tmp_path / "w.pt"
    p.write_bytes(b"not torch")
    with pytest.raises(DetectionInputError, match="w.pt"):
        load_weights(p)


def test_bundled_weights_load():
    cnn, meta = load_weights()
    assert meta["digest"] == weights_digest(cnn)
