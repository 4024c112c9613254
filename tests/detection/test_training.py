"""Training data: axes (x = column, y = row), negatives' distances, crops, deterministic tiny training."""

from __future__ import annotations

import numpy as np

from sacmap.detection.training import (
    LabelledImage,
    TrainConfig,
    augment,
    crops_at,
    distance_to_atoms,
    sample_near_misses,
    sample_negatives,
    train_cnn,
)


def test_distance_map_axes():
    xy = np.array([[100.0, 20.0]])  # x = column 100, y = row 20
    d = distance_to_atoms((64, 128), xy)
    assert d[20, 100] == 0
    assert d[100 % 64, 20] > 10  # the transposed position is far
    assert d[20, 110] == 10


def test_crop_centre_is_the_labelled_pixel():
    img = np.zeros((50, 80), np.float32)
    img[7, 42] = 1.0  # row 7, column 42
    c = crops_at(img, np.array([[42, 7], [0, 0]]))
    assert c.shape == (2, 21, 21)
    assert c[0, 10, 10] == 1.0 and c[0].sum() == 1.0
    assert c[1, :10, :].sum() == 0 and c[1, :, :10].sum() == 0  # zero padding outside the image


def test_negatives_distances():
    rng = np.random.default_rng(0)
    xy = np.c_[rng.uniform(0, 200, 30), rng.uniform(0, 120, 30)]  # non-square image: axes matter
    neg = sample_negatives((120, 200), xy, 400, rng)
    assert len(neg) == 400
    d = np.min(np.hypot(neg[:, None, 0] - xy[None, :, 0], neg[:, None, 1] - xy[None, :, 1]), axis=1)
    assert d.min() >= 10 - 0.71  # ≥ 10 px (integer pixels of a sub-pixel label)
    assert (0 <= neg[:, 0]).all() and (neg[:, 0] < 200).all() and (neg[:, 1] < 120).all()
    # the contrastive quarter: exactly 18 px (to pixel rounding) from some atom
    dall = np.hypot(neg[:, None, 0] - xy[None, :, 0], neg[:, None, 1] - xy[None, :, 1])
    near18 = (np.abs(dall - 18) <= 0.75).any(axis=1)
    assert near18[:100].all()


def test_near_miss_negatives():
    # off-centre crops and gaps of close pairs: 3-10 px from some atom, never closer than 3 px to any atom
    rng = np.random.default_rng(1)
    xy = np.array([[40.0, 30.0], [47.5, 30.0], [100.0, 80.0], [20.2, 90.7]])  # a 7.5-px (0.22-nm) pair
    near = sample_near_misses((120, 160), xy, 500, rng, near_px=(3.0, 10.0))
    assert len(near) == 500
    d = np.hypot(near[:, None, 0] - xy[None, :, 0], near[:, None, 1] - xy[None, :, 1]).min(axis=1)
    assert d.min() >= 3 - 0.71 and d.max() <= 10 + 0.71
    # the pair's midpoint region (3.75 px from both atoms) is among them
    mid = np.hypot(near[:, 0] - 43.75, near[:, 1] - 30.0) <= 0.8
    assert mid.any()


def test_dense_image_negatives_fall_back_to_farthest_pixels():
    # at 8 atoms/nm² almost no pixel is 10 px from every atom: negatives come from the farthest pixels
    rng = np.random.default_rng(2)
    g = np.arange(3, 60, 6.0)
    xy = np.array([(x, y) for x in g for y in g])
    dist = distance_to_atoms((64, 64), xy)
    assert (dist >= 10).sum() == 0
    neg = sample_negatives((64, 64), xy, 50, rng, contrastive_frac=0.0)
    assert len(neg) == 50
    assert dist[neg[:, 1], neg[:, 0]].min() >= np.quantile(dist, 0.95)


def test_augment_keeps_shape_and_is_seeded():
    rng = np.random.default_rng(0)
    crops = rng.random((10, 21, 21)).astype(np.float32)
    a = augment(crops, np.random.default_rng(5))
    b = augment(crops, np.random.default_rng(5))
    np.testing.assert_array_equal(a, b)
    a0 = augment(crops, np.random.default_rng(5), gain=None, noise_sd=0)
    # pure symmetry: the multiset of pixel values is unchanged
    np.testing.assert_allclose(np.sort(a0.reshape(10, -1), 1), np.sort(crops.reshape(10, -1), 1))


def _toy_images(seed=0):
    rng = np.random.default_rng(seed)
    imgs = []
    for _ in range(2):
        img = rng.random((64, 64)).astype(np.float32) * 0.2
        xy = rng.uniform(12, 52, size=(6, 2))
        rr, cc = np.mgrid[:64, :64]
        for x, y in xy:
            img += np.exp(-((cc - x) ** 2 + (rr - y) ** 2) / 4.0).astype(np.float32)
        imgs.append(LabelledImage("toy", img / img.max(), xy))
    return imgs


def test_tiny_training_is_deterministic():
    from sacmap.detection.model import weights_digest

    cfg = TrainConfig(channels=(4, 8, 8), hidden=8, epochs=2, threads=1, seed=3)
    a, ha = train_cnn(_toy_images(), cfg)
    b, hb = train_cnn(_toy_images(), cfg)
    assert weights_digest(a) == weights_digest(b)
    assert [h["train_loss"] for h in ha] == [h["train_loss"] for h in hb]
    c, _ = train_cnn(_toy_images(), TrainConfig(channels=(4, 8, 8), hidden=8, epochs=2, threads=1, seed=4))
    assert weights_digest(c) != weights_digest(a)


def test_heatmap_simulated_frames_mix_domain_randomised_draws():
    # dr_frac picks, per image, draw_conditions (same seed, DR_METALS) or random_sim_params; 0 = the old stream
    from sacmap.detection.heatmap_training import (
        DR_METALS,
        HeatmapTrainConfig,
        random_sim_params,
        simulated_frame,
        simulated_frames,
    )
    from sacmap.detection.simulate import draw_conditions

    kw = dict(n_sim=6, sim_frame_px=48, seed=5)
    old = simulated_frames(HeatmapTrainConfig(dr_frac=0.0, **kw), np.random.default_rng(5))
    rng = np.random.default_rng(5)
    for i, f in enumerate(old):
        ref = simulated_frame(random_sim_params(rng), 5000 + i, 48)
        assert f.name == f"sim{5000 + i}" and np.array_equal(f.image, ref.image) and np.array_equal(f.xy, ref.xy)
    dr = simulated_frames(HeatmapTrainConfig(dr_frac=1.0, **kw), np.random.default_rng(5))
    for i, f in enumerate(dr):
        ref = simulated_frame(draw_conditions(5000 + i, metals=DR_METALS), 5000 + i, 48)
        assert f.name == f"dr{5000 + i}" and np.array_equal(f.image, ref.image) and np.array_equal(f.xy, ref.xy)
        h, w = f.image.shape
        assert h == w and h >= 45  # ~48 model px (native sides of at least 32 px, then resampled)
        assert len(f.xy) == 0 or (f.xy.min() >= -0.5 and f.xy[:, 0].max() <= w - 0.5 and f.xy[:, 1].max() <= h - 0.5)
    mixed = simulated_frames(HeatmapTrainConfig(dr_frac=0.5, n_sim=16, sim_frame_px=32, seed=5),
                             np.random.default_rng(5))
    kinds = {f.name[:2] for f in mixed}
    assert kinds == {"dr", "si"}


def test_heatmap_crowded_and_faint_draws_stay_in_their_ranges():
    # the two optional draws of the heat-map training (and of the verifier's extra training images)
    from sacmap.detection.heatmap_training import (
        HeatmapTrainConfig,
        crowded_sim_params,
        faint_sim_params,
        simulated_frames,
    )

    rng = np.random.default_rng(0)
    for _ in range(200):
        c = crowded_sim_params(rng)
        assert 2.0 <= c["density_nm2"] <= 9.0 and 0.16 <= c["spread_fwhm_nm"] <= 0.32
        assert 3e4 <= c["dose_per_nm2"] <= 5e5 and 0.005 <= c["texture_sd"] <= 0.06 and c["vacuum_fraction"] == 0
        assert c["min_dist_nm"] < np.sqrt(0.5 * 4 / (np.pi * c["density_nm2"]))  # below random close packing
        f = faint_sim_params(rng)
        assert f["density_nm2"] == 0 or 0.3 <= f["density_nm2"] <= 3.0
        assert 0.015 <= f["pixel_size_nm"] <= 0.03 and 0.03 <= f["spread_fwhm_nm"] <= 0.12
        assert 0.15 <= f["peak_pt"] <= 0.5 and 0.02 <= f["texture_sd"] <= 0.1
    frames = simulated_frames(HeatmapTrainConfig(crowded_frac=0.5, faint_frac=0.5, n_sim=12, sim_frame_px=32, seed=5),
                              np.random.default_rng(5))
    assert {f.name.rstrip("0123456789") for f in frames} == {"crowded", "faint", "sim"}
