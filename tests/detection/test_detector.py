"""The heat-map detector: decoder, targets, weights files, the AtomDetector object and threshold handling."""

from __future__ import annotations

import dataclasses

import numpy as np
import pytest

from sacmap.detection.errors import DetectionInputError
from sacmap.detection.heatmap import HeatmapNet, find_peaks, load_any_weights, save_heatmap_weights
from sacmap.detection.heatmap_training import snap_labels, target_map

PX = 0.029296875


def _blobs(shape, xy, sigma):
    rr, cc = np.mgrid[: shape[0], : shape[1]]
    out = np.zeros(shape)
    for x, y in xy:
        out = np.maximum(out, np.exp(-((cc - x) ** 2 + (rr - y) ** 2) / (2 * sigma**2)))
    return out


def test_find_peaks_subpixel_and_close_pair_split():
    # two bumps 7.5 px apart (a 0.22-nm pair at 0.0293 nm/px) and one isolated, at sub-pixel centres
    xy = np.array([[20.3, 30.6], [27.8, 30.6], [50.25, 12.7]])
    heat = 0.9 * _blobs((64, 72), xy, 1.5)
    pk = find_peaks(heat, 0.5, 5.12)
    got = np.c_[pk["x"], pk["y"]]
    assert len(got) == 3
    d = np.min(np.linalg.norm(got[:, None] - xy[None], axis=2), axis=1)
    assert d.max() < 0.15, d  # a parabola through log-heat is exact for a Gaussian bump (up to the max of two)
    assert np.allclose(np.sort(pk["score"]), 0.9, atol=0.05)


def test_find_peaks_respects_threshold_and_spacing():
    xy = np.array([[20.0, 20.0], [23.0, 20.0], [40.0, 40.0]])  # 3 px apart: below the 5-px minimum spacing
    heat = _blobs((64, 64), xy[:2], 1.0) * 0.8 + _blobs((64, 64), xy[2:], 1.5) * 0.3
    pk = find_peaks(heat, 0.2, 5.0)
    assert len(pk["x"]) == 2  # the pair gives one atom (the spacing), the weak one survives at 0.2
    assert len(find_peaks(heat, 0.4, 5.0)["x"]) == 1
    pts = np.c_[pk["x"], pk["y"]]
    assert np.linalg.norm(pts[0] - pts[1]) >= 5.0


def test_sweep_by_filtering_equals_decoding_at_each_threshold():
    # the threshold sweep decodes once and filters by height; greedy suppression makes that exact
    rng = np.random.default_rng(1)
    xy = rng.uniform(5, 95, (60, 2))
    heat = _blobs((100, 100), xy, 1.5) * rng.uniform(0.2, 1.0, 1)[0]
    heat = heat * 0.7 + 0.3 * np.abs(rng.normal(0, 0.3, heat.shape))
    low = find_peaks(heat, 0.1, 5.0)
    for t in (0.2, 0.35, 0.5):
        direct = find_peaks(heat, t, 5.0)
        sel = low["score"] > t
        assert np.allclose(np.sort(direct["x"]), np.sort(low["x"][sel]))


def test_target_map_and_label_snapping():
    t = target_map((40, 40), np.array([[10.4, 20.0]]), 1.5)
    assert t[20, 10] == 1.0
    assert t[20, 12] == pytest.approx(np.exp(-(1.6**2) / (2 * 1.5**2)), rel=1e-5)
    assert t.max() == 1.0 and t[0, 0] == 0.0
    img = _blobs((40, 40), [(25.0, 14.0)], 3.0)
    snapped = snap_labels(img, np.array([[23.0, 16.0], [5.0, 5.0]]), radius_px=3.0)
    assert np.allclose(snapped[0], [25, 14])  # moved onto the blob's maximum (2.8 px away)


def test_heatmap_weights_round_trip(tmp_path):
    import torch

    torch.manual_seed(0)
    net = HeatmapNet((8, 16)).eval()
    meta = {"threshold": 0.37, "preprocess": {}, "decoder": {"min_sep_nm": 0.15}}
    save_heatmap_weights(net, tmp_path / "h.pt", meta)
    kind, back, meta2 = load_any_weights(tmp_path / "h.pt")
    assert kind == "heatmap" and meta2["threshold"] == 0.37
    x = torch.rand(1, 1, 32, 36)
    with torch.no_grad():
        assert torch.allclose(net(x), back(x))
    assert net(x).shape == x.shape
    (tmp_path / "bad.pt").write_bytes(b"not a torch file")
    with pytest.raises(DetectionInputError, match="bad.pt"):
        load_any_weights(tmp_path / "bad.pt")


def test_named_models_and_their_thresholds():
    from sacmap.detection.detector import AtomDetector, operating_threshold

    paper = AtomDetector(model="paper")
    assert paper.kind == "cnn"
    assert paper.resolved_settings().threshold == pytest.approx(operating_threshold(paper.meta))
    assert AtomDetector(model="heatmap").kind == "heatmap"
    assert AtomDetector().path == AtomDetector(model="bundled").path
    with pytest.raises(DetectionInputError, match="model"):
        _ = AtomDetector(model="nonsense").kind


def test_callers_threshold_is_honoured_and_settings_not_mutated():
    from sacmap.detection import simulate
    from sacmap.detection.detector import AtomDetector
    from sacmap.detection.pipeline import Settings, detect_image

    img, _, _ = simulate.simulate_sample(1.0, seed=3, shape=(192, 192))
    own = AtomDetector().resolved_settings().threshold
    s = Settings(threshold=0.6)
    before = dataclasses.asdict(s)
    r = detect_image(img, pixel_size_nm=PX, settings=s)
    assert r.settings["threshold"] == 0.6 and r.summary()["threshold"] == 0.6
    assert dataclasses.asdict(s) == before
    assert detect_image(img, pixel_size_nm=PX).settings["threshold"] == pytest.approx(own)
    # an explicit threshold= wins over the settings'; lower thresholds find at least as many network atoms (the
    # verifier's, component_size -1, depend on the image's detected atoms and candidates, so their number may fall)
    lo = detect_image(img, pixel_size_nm=PX, settings=s, threshold=0.1)
    assert lo.settings["threshold"] == 0.1
    assert (lo.atoms["component_size"] != -1).sum() >= (r.atoms["component_size"] != -1).sum()
    # the default combination: the caller's threshold governs the CNN's atoms (component_size > 0); the heat-map
    # peaks (component_size 0) are kept above Settings.combine_score
    cnn = r.atoms["component_size"].to_numpy() > 0
    assert cnn.any() and (r.atoms["score"].to_numpy()[cnn] > 0.6).all()
    assert (r.atoms["score"].to_numpy()[~cnn] >= s.combine_score).all()
    p = detect_image(img, pixel_size_nm=PX, settings=s, model="paper")
    assert p.settings["threshold"] == 0.6 and p.n_atoms and (p.atoms["score"] > 0.6).all()
    with pytest.raises(DetectionInputError, match="threshold"):
        detect_image(img, pixel_size_nm=PX, threshold=1.5)


def test_training_and_inference_share_the_frame_transform():
    from sacmap.detection.preprocess import coords_back, coords_to_frame, to_model_frame

    rng = np.random.default_rng(0)
    raw = rng.uniform(0, 1, (300, 240))
    frame, (fy, fx) = to_model_frame(raw, 0.016)
    assert frame.shape == (round(300 * 0.016 / PX), round(240 * 0.016 / PX)) and fx == pytest.approx(0.016 / PX)
    x, y = rng.uniform(0, 239, 20), rng.uniform(0, 299, 20)
    xb, yb = coords_back(*coords_to_frame(x, y, raw.shape, frame.shape), raw.shape, frame.shape)
    assert np.allclose(xb, x) and np.allclose(yb, y)
    same, f1 = to_model_frame(raw, PX * 1.01)
    assert f1 == (1.0, 1.0) and same.shape == raw.shape


def test_tiny_training_run_is_deterministic():
    from sacmap.detection.heatmap_training import HeatmapTrainConfig, train_heatmap

    cfg = HeatmapTrainConfig(width=(4, 8), steps=3, batch=2, crop=32, n_sim=2, sim_frame_px=48, eval_every=3)
    a, info = train_heatmap([], [], cfg)
    b, _ = train_heatmap([], [], cfg)
    assert all(np.array_equal(a.state_dict()[k], b.state_dict()[k]) for k in a.state_dict())
    assert 0 < info["threshold"] < 1 and info["n_simulated"] == 1


def test_union_keeps_every_primary_atom_and_adds_only_distant_secondary_ones():
    from sacmap.detection.combine import union_atoms

    def atoms(xy, score, comp):
        xy = np.asarray(xy, float).reshape(-1, 2)
        n = len(xy)
        return {"x": xy[:, 0], "y": xy[:, 1], "score": np.full(n, score), "component_size": np.full(n, comp),
                "n_split": np.ones(n, int)}

    cnn = atoms([[10, 10], [30, 10]], 0.9, 40)
    heat = atoms([[10, 14.9], [10, 15.1], [50, 50]], 0.5, 0)  # 4.9 px (too close), 5.1 px, far
    u = union_atoms(cnn, heat, 5.0)
    assert np.allclose(np.c_[u["x"], u["y"]], [[10, 10], [30, 10], [10, 15.1], [50, 50]])
    assert list(u["score"]) == [0.9, 0.9, 0.5, 0.5] and list(u["component_size"]) == [40, 40, 0, 0]
    assert len(union_atoms(atoms([], 0, 0), heat, 5.0)["x"]) == 3
    assert np.allclose(union_atoms(cnn, atoms([], 0, 0), 5.0)["x"], [10, 30])


def test_low_heatmap_peaks_are_kept_only_as_partners_of_confident_ones():
    from sacmap.detection.combine import with_partners

    xy = np.array([[10, 10], [10, 18], [40, 40], [10, 27], [60, 10]], float)
    score = np.array([0.5, 0.32, 0.32, 0.31, 0.9])
    at = {"x": xy[:, 0], "y": xy[:, 1], "score": score, "component_size": np.zeros(5, int), "n_split": np.ones(5)}
    # (10, 18) is 8 px from a confident peak: kept; (40, 40) is alone: dropped; (10, 27) is 9 px from the low
    # partner only (17 px from the confident one): dropped, one pass
    k = with_partners(at, 0.35, 10.0)
    assert np.allclose(np.c_[k["x"], k["y"]], [[10, 10], [10, 18], [60, 10]]) and list(k["score"]) == [0.5, 0.32, 0.9]
    assert set(k) == set(at)
    assert len(with_partners(at, 0.35, 0.0)["x"]) == 2  # off: the confident peaks only
    assert len(with_partners(at, 0.3, 10.0)["x"]) == 5  # all above: nothing to decide
    assert len(with_partners({k: v[[1, 2]] for k, v in at.items()}, 0.35, 10.0)["x"]) == 0


def test_combined_model_is_the_heatmap_peaks_plus_distant_cnn_atoms():
    # dense bright image (hard core + multimers, 6 atoms/nm2): the CNN merges close atoms (one atom between the two
    # of a pair), the heat map keeps them apart; the CNN's atoms come in only where the heat map has no peak near
    from scipy.spatial import cKDTree

    from sacmap.detection import simulate
    from sacmap.detection.detector import DEFAULT_MODEL, AtomDetector, model_files
    from sacmap.detection.pipeline import Settings, detect_image

    img, truth, _ = simulate.simulate_sample(6.0, seed=0, shape=(192, 192), min_dist_nm=0.25, dimer_fraction=0.3,
                                             trimer_fraction=0.3, dose_per_nm2=5e5, peak_pt=0.7)
    # the verifier's candidates: tests/detection/test_candidates.py; the crowded reading (this image passes its
    # gate): tests/detection/test_crowded.py
    s = Settings(refine=False, verify=False, crowded_density=0)
    comb = AtomDetector("combined", settings=s)
    assert comb.kind == "combined" and [f.name for f in comb.files] == ["detector.pt", "heatmap.pt"]
    assert model_files("paper") == [AtomDetector("paper").path]
    assert comb.resolved_settings().threshold == AtomDetector("paper").resolved_settings().threshold
    c = detect_image(img, pixel_size_nm=PX, model="combined", settings=s)
    p = detect_image(img, pixel_size_nm=PX, model="paper", settings=s).atoms
    h = detect_image(img, pixel_size_nm=PX, model="heatmap", settings=s).atoms
    strong = h["score"].to_numpy() >= s.combine_score
    # the heat map's own peaks (its threshold 0.30): those above combine_score and their partners within 0.30 nm
    near = cKDTree(h[["x_px", "y_px"]].to_numpy()[strong]).query(h[["x_px", "y_px"]].to_numpy())[0]
    h = h[strong | (near <= s.combine_partner_nm / PX)]
    assert (~strong).sum() > 0 and len(h) > strong.sum()
    xy = c.atoms[["x_px", "y_px"]].to_numpy()
    hxy, pxy = h[["x_px", "y_px"]].to_numpy(), p[["x_px", "y_px"]].to_numpy()
    assert np.allclose(xy[: len(h)], hxy)  # every heat-map peak above the combination's height, first, as decoded
    assert (c.atoms["component_size"].to_numpy()[: len(h)] == 0).all()
    added = xy[len(h):]
    assert len(added) > 0 and (c.atoms["component_size"].to_numpy()[len(h):] > 0).all()
    assert (cKDTree(hxy).query(added)[0] > 0.15 / PX).all()
    assert (cKDTree(pxy).query(added)[0] < 1e-6).all()  # CNN atoms, as decoded
    # the CNN atoms left out are the ones within 0.15 nm of a heat-map peak
    assert len(added) == int((cKDTree(hxy).query(pxy)[0] > 0.15 / PX).sum())
    assert (c.atoms["score"].to_numpy()[: len(h)] >= AtomDetector("heatmap").resolved_settings().threshold).all()
    assert c.summary()["model"] == {"kind": "combined", "file": "detector.pt+heatmap.pt"}
    # closer to the true count than either model alone at these settings
    assert abs(len(xy) - len(truth)) < min(abs(len(p) - len(truth)), abs(len(h) - len(truth)))
    assert AtomDetector("bundled").files == AtomDetector(DEFAULT_MODEL).files
