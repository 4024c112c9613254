"""The detector on several cores gives the numbers of one core: row-band filters, group-parallel fits, tiled
network maps and the heat-map peak test on the pixels above threshold."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
from scipy import ndimage

from sacmap.detection import filters
from sacmap.detection.heatmap import HALO_PX, HeatmapNet, _disk, heatmap, local_maxima_above

REPO = Path(__file__).resolve().parents[2]


@pytest.fixture
def n_threads(monkeypatch):
    """Set the filter threads (torch's count by default) for the test."""

    def set_to(n):
        monkeypatch.setattr(filters, "threads", lambda: n)

    return set_to


@pytest.mark.parametrize("shape", [(700, 333), (517, 64), (129, 90)])
@pytest.mark.parametrize("n", [2, 3])
def test_banded_filters_are_bit_for_bit_scipy(shape, n):
    rng = np.random.default_rng(0)
    a = rng.random(shape).astype(np.float32)
    a[100:110, 20:30] += 3.0  # a feature across a band edge for some n
    cases = [
        (filters.gaussian_filter(a, 1.5, n_threads=n), ndimage.gaussian_filter(a, 1.5, mode="reflect")),
        (filters.gaussian_filter(a, 6.2, truncate=3.0, mode="nearest", n_threads=n),
         ndimage.gaussian_filter(a, 6.2, truncate=3.0, mode="nearest")),
        (filters.maximum_filter(a, size=8, mode="nearest", n_threads=n),
         ndimage.maximum_filter(a, size=8, mode="nearest")),
        (filters.maximum_filter(a, footprint=_disk(5.1), mode="constant", cval=-1.0, n_threads=n),
         ndimage.maximum_filter(a, footprint=_disk(5.1), mode="constant", cval=-1.0)),
        (filters.median_filter(a, 10, n_threads=n), ndimage.median_filter(a, size=10, mode="reflect")),
    ]
    for got, ref in cases:
        assert got.shape == ref.shape and got.dtype == ref.dtype
        assert np.array_equal(got, ref)


def test_banded_splits_only_images_tall_enough():
    calls = []

    def fn(x):
        calls.append(x.shape[0])
        return x

    filters.banded(fn, np.zeros((filters.MIN_ROWS_PER_BAND * 2 - 1, 5)), 3, n_threads=4)
    assert calls == [filters.MIN_ROWS_PER_BAND * 2 - 1]  # one call: two bands would be too short
    calls.clear()
    out = filters.banded(fn, np.arange(300 * 2).reshape(300, 2), 3, n_threads=4)
    assert sorted(calls) == [78, 78, 81, 81]  # 4 bands of 75 rows, +3 halo rows inside, +6 in the middle
    assert np.array_equal(out, np.arange(600).reshape(300, 2))


def test_local_maxima_above_equals_the_maximum_filter_test():
    rng = np.random.default_rng(3)
    for k in range(12):
        h = ndimage.gaussian_filter(rng.random((97, 131)).astype(np.float32), rng.uniform(0.5, 3.0))
        h = (h - h.min()) / np.ptp(h)
        if k % 3 == 0:
            h = np.round(h * 12) / 12  # plateaus: ties count as maxima in both
        fp, t = _disk(rng.uniform(1.0, 6.0)), rng.uniform(0.1, 0.8)
        mx = ndimage.maximum_filter(h, footprint=fp, mode="constant", cval=-1.0)
        want = np.nonzero((h >= mx) & (h > t))
        got = local_maxima_above(h, t, fp)
        assert len(want[0]) > 0
        assert all(np.array_equal(a, b) for a, b in zip(want, got))


def test_heatmap_tiles_give_the_one_pass_map():
    import torch

    torch.manual_seed(4)
    net = HeatmapNet((8, 16)).eval()
    with torch.no_grad():  # spread the output over (0, 1) (a new network starts at 0.02 everywhere)
        net.out.bias.zero_()
        net.out.weight.mul_(20.0)
    rng = np.random.default_rng(4)
    img = rng.random((301, 262)).astype(np.float32)  # not multiples of 4: reflected, then cropped
    whole = heatmap(net, img, tile=1024)
    tiled = heatmap(net, img, tile=96)
    assert tiled.shape == img.shape
    np.testing.assert_allclose(tiled, whole, atol=2e-6)
    assert whole.std() > 0.05
    with pytest.raises(ValueError, match="multiple of 4"):
        heatmap(net, img, tile=98)


def test_heatmap_halo_covers_the_network_reach():
    import torch

    torch.manual_seed(5)
    net = HeatmapNet((6, 12)).eval()
    reach = 0
    for off in range(4):  # every phase of the network's 4-px blocks
        x = torch.rand(1, 1, 96, 96, requires_grad=True)
        net(x)[0, 0, 48 + off, 48 + off].backward()
        rr, cc = np.nonzero(x.grad[0, 0].numpy() != 0)
        reach = max(reach, np.abs(rr - 48 - off).max(), np.abs(cc - 48 - off).max())
    assert 15 <= reach <= HALO_PX and HALO_PX % 4 == 0


def test_refinement_on_two_threads_equals_one(n_threads, monkeypatch):
    from sacmap.detection import gaussfit
    from sacmap.detection.refine import refine
    from sacmap.detection.simulate import simulate_sample

    img, truth, _ = simulate_sample(2.0, arrangement="hardcore", seed=3, pixel_size_nm=0.0293)
    xy = truth[["x_px", "y_px"]].to_numpy(float) + 0.4
    n_threads(1)
    one = refine(img, xy, pixel_size_nm=0.0293)
    shared = []
    fit = gaussfit._fit_batch
    monkeypatch.setattr(gaussfit, "_fit_batch", lambda b, P, *a: shared.append(len(P)) or fit(b, P, *a))
    n_threads(2)
    two = refine(img, xy, pixel_size_nm=0.0293)
    assert one.equals(two)
    assert max(shared) < len(xy) // 2 + 1 and len(shared) > 2  # the big batches were fitted in two parts


def test_pipeline_on_two_threads_equals_one(n_threads):
    from sacmap.detection.io import read_image
    from sacmap.detection.pipeline import detect_image

    raw, px, _ = read_image(REPO / "inputs/stem/053_HAADF_15nm_Sample_PtNC_21Oct20.tif")
    img = np.block([[raw, raw[:, ::-1]], [raw[::-1], raw[::-1, ::-1]]])  # 1024², continuous seams
    n_threads(1)
    one = detect_image(img, pixel_size_nm=px).atoms
    n_threads(2)
    two = detect_image(img, pixel_size_nm=px).atoms
    assert len(one) > 200
    assert one.equals(two)


def test_filters_work_in_a_forked_child():
    import multiprocessing as mp

    a = np.random.default_rng(8).random((300, 40)).astype(np.float32)
    want = ndimage.gaussian_filter(a, 2.0, mode="reflect")
    filters.gaussian_filter(a, 2.0, n_threads=2)  # the parent's pool exists before the fork
    with mp.get_context("fork").Pool(1) as p:
        got = p.apply_async(filters.gaussian_filter, (a, 2.0), {"n_threads": 2}).get(timeout=60)
    assert np.array_equal(got, want)
