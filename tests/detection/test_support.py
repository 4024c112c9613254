"""Support/vacuum segmentation."""

from __future__ import annotations

import numpy as np
import pytest

from sacmap.detection.support import support_area_nm2, support_mask


def test_vacuum_half_is_found():
    rng = np.random.default_rng(0)
    img = rng.normal(100, 8, (256, 256))
    img[:, :96] = rng.normal(15, 3, (256, 96))  # vacuum: left 96 columns
    mask, diag = support_mask(img, 0.03)
    assert diag["vacuum"]
    assert abs(mask[:, 96:].mean() - 1) < 0.02 and mask[:, :90].mean() < 0.02
    assert support_area_nm2(mask, 0.03) == pytest.approx(mask.sum() * 0.03**2)


def test_no_vacuum_is_all_support():
    rng = np.random.default_rng(1)
    yy = np.linspace(0, 1, 200)[:, None]
    img = rng.normal(100, 8, (200, 200)) * (0.7 + 0.3 * yy)  # thickness gradient, no vacuum
    mask, diag = support_mask(img, 0.03)
    assert mask.all() and not diag["vacuum"]
