"""Band-pass candidates and the candidate verifier: filters, noise estimate, features, the JSON model file, the
greedy spacing, and what the verifier adds to the combined detector on dense noisy and on empty images."""

from __future__ import annotations

import json

import numpy as np
import pytest
from scipy import ndimage

from sacmap.detection.candidates import (
    FEATURES,
    HIGH_REL,
    blur,
    candidate_features,
    candidate_peaks,
    debias_pairs,
    pair_shift,
    pixel_noise_sd,
)
from sacmap.detection.errors import DetectionInputError
from sacmap.detection.verifier import CandidateVerifier

PX = 0.029296875


def _blobs(shape, xy, sigma, amp=1.0):
    rr, cc = np.mgrid[: shape[0], : shape[1]]
    out = np.zeros(shape)
    for x, y in xy:
        out += amp * np.exp(-((cc - x) ** 2 + (rr - y) ** 2) / (2 * sigma**2))
    return out


def test_blur_matches_scipy_exactly_when_narrow_and_closely_when_wide():
    f = ndimage.gaussian_filter(np.random.default_rng(0).random((200, 203)), 2.0)
    assert np.allclose(blur(f, 2.0), ndimage.gaussian_filter(f, 2.0, mode="reflect", truncate=3.0), atol=1e-6)
    for s in (4.0, 6.0, 8.0):  # block-averaged: within 1.5 % of the range away from the edges
        ref = ndimage.gaussian_filter(f, s, mode="reflect")
        err = np.abs(blur(f, s) - ref)[20:-20, 20:-20].max() / np.ptp(ref)
        assert err < 0.015, (s, err)


def test_wide_band_pass_at_points_matches_the_full_filter():
    from sacmap.detection.candidates import band_pass_at

    f = ndimage.gaussian_filter(np.random.default_rng(4).random((240, 251)), 2.0).astype(np.float32)
    rr, cc = np.mgrid[20:220, 20:231]
    ref = (ndimage.gaussian_filter(f.astype(float), 3.0, mode="reflect")
           - ndimage.gaussian_filter(f.astype(float), 8.0, mode="reflect"))
    got = band_pass_at(f, (3.0, 8.0), rr.ravel(), cc.ravel())
    assert np.abs(got - ref[rr, cc].ravel()).max() < 0.025 * np.ptp(ref)
    # narrow bands are evaluated at full resolution, exactly as band_pass
    from sacmap.detection.candidates import band_pass

    assert np.allclose(band_pass_at(f, (2.0, 6.0), rr.ravel(), cc.ravel()), band_pass(f, (2.0, 6.0))[rr, cc].ravel())


def test_pixel_noise_estimate_ignores_atoms_and_smooth_background():
    rng = np.random.default_rng(1)
    smooth = _blobs((256, 256), rng.uniform(10, 246, (60, 2)), 4.0) + np.linspace(0, 2, 256)[None, :]
    for sd in (0.02, 0.1):
        est = pixel_noise_sd(smooth + rng.normal(0, sd, smooth.shape))
        assert est == pytest.approx(sd, rel=0.08)
    assert pixel_noise_sd(smooth) < 0.01


def test_candidates_are_maxima_away_from_detected_atoms():
    xy = np.array([[40.0, 40.0], [100.0, 60.0], [60.0, 110.0], [45.0, 47.0]])
    frame = _blobs((160, 160), xy[:3], 4.0)
    from sacmap.detection.candidates import band_pass

    got = candidate_peaks(band_pass(frame), np.empty((0, 2)), 5.0)
    assert len(got) == 3 and np.abs(np.sort(got[:, 0]) - np.sort(xy[:3, 0])).max() <= 1
    # an atom detected 7 px from the first blob hides it (min_sep 10 px), not at 5 px
    assert len(candidate_peaks(band_pass(frame), xy[3:], 10.0)) == 2
    assert len(candidate_peaks(band_pass(frame), xy[3:], 5.0)) == 3


def test_features_put_a_missed_atom_level_with_the_detected_ones():
    rng = np.random.default_rng(2)
    xy = rng.uniform(20, 236, (30, 2))
    xy = xy[np.min(np.linalg.norm(xy[:, None] - xy[None], axis=2) + 99 * np.eye(30), axis=1) > 14]
    frame = _blobs((256, 256), xy, 4.0, 0.5) + rng.normal(0, 0.02, (256, 256))
    cxy, X = candidate_features(frame, xy[1:], np.zeros((64, 64)), np.zeros((256, 256)), 5.0)
    assert X.shape == (len(cxy), len(FEATURES))
    i = int(np.argmin(np.linalg.norm(cxy - xy[0], axis=1)))
    assert np.linalg.norm(cxy[i] - xy[0]) <= 1.5
    rel = X[:, FEATURES.index("rel_contrast")]
    assert rel[i] == pytest.approx(1.0, abs=0.15)  # as bright as the detected atoms
    assert np.delete(rel, i).max() < 0.5  # the rest is noise
    assert X[i, FEATURES.index("log_noise_sig")] > np.log(10)

    # the image-level population features: one value for every candidate of the image
    share, per_atom = X[:, FEATURES.index("cand_high_share")], X[:, FEATURES.index("log_cand_per_atom")]
    assert np.ptp(share) == 0 and np.ptp(per_atom) == 0
    assert share[0] == pytest.approx(np.mean(rel >= HIGH_REL))
    assert per_atom[0] == pytest.approx(np.log((len(cxy) + 1) / len(xy)))  # len(xy) - 1 detected, + 1


def test_training_labels_are_one_to_one_like_the_benchmark():
    from sacmap.detection.verifier_training import label_candidates

    truth = np.array([[10.0, 10.0], [17.0, 10.0], [60.0, 60.0]])
    # one detection between the first two atoms (within 5 px of both) covers one of them only: a candidate at
    # the other is an atom; two candidates at the missed third atom are one atom and one false detection
    atoms = np.array([[13.0, 10.0]])
    cands = np.array([[17.5, 10.5], [60.5, 60.0], [62.5, 60.0], [90.0, 90.0]])
    y = label_candidates(cands, atoms, truth, 5.0)
    assert y.tolist() == [1, 1, 0, 0]
    assert label_candidates(cands, np.empty((0, 2)), truth, 5.0).sum() == 2  # nearest candidate per missed atom
    assert label_candidates(cands, atoms, np.empty((0, 2)), 5.0).sum() == 0
    assert label_candidates(np.empty((0, 2)), atoms, truth, 5.0).shape == (0,)


def _toy(n=4000, seed=0):
    rng = np.random.default_rng(seed)
    X = rng.normal(size=(n, len(FEATURES)))
    y = (X[:, 0] + 0.5 * X[:, 2] > 0).astype(int)
    return X, y


def test_verifier_learns_and_round_trips_through_json(tmp_path):
    X, y = _toy()
    v = CandidateVerifier(hidden=(8,), max_iter=200, n_members=3).fit(X, y)
    Xt, yt = _toy(1000, 1)
    assert (v.predict(Xt, 0.5) == yt).mean() > 0.95
    v.meta = {"note": "toy"}
    path = v.save(tmp_path / "v.json")
    w = CandidateVerifier.load(path)
    assert np.allclose(w.predict_proba(Xt), v.predict_proba(Xt)) and w.threshold == v.threshold
    # the mean of the members
    one = [CandidateVerifier(hidden=(8,)) for _ in v.members_]
    for o, m in zip(one, v.members_):
        o.mean_, o.scale_, o.members_ = v.mean_, v.scale_, [m]
    assert np.allclose(np.mean([o.predict_proba(Xt) for o in one], axis=0), v.predict_proba(Xt))
    # member_proba: one row a member, each the one-member verifier's probability
    per = v.member_proba(Xt)
    assert per.shape == (3, len(Xt))
    assert np.allclose(per, [o.predict_proba(Xt) for o in one])
    assert not np.allclose(per[0], per[1])  # members start from their own random states
    assert w.meta == {"note": "toy"}
    # integer sample weights repeat rows
    v2 = CandidateVerifier(hidden=(8,), max_iter=200, n_members=1)
    v2.fit(X[:10], y[:10], sample_weight=np.full(10, 3))
    assert v2.mean_ == pytest.approx(X[:10].mean(axis=0))


def test_verifier_spread_flags_a_count_that_rests_on_one_network():
    from sacmap.detection.detector import verifier_spread

    xy = np.c_[np.arange(20) * 10.0, np.zeros(20)]  # far apart: the spacing keeps every accepted candidate
    # two networks at 0.85 and one at 0.74: the mean (0.813) accepts all 20; without the first network the mean
    # is 0.795 and accepts none, without the third 0.85 and all of them
    per = np.array([np.full(20, 0.85), np.full(20, 0.85), np.full(20, 0.74)])
    r = verifier_spread(xy, per, 0.8, 5.0, added=20, n_atoms=40)
    assert r == {"added": 20, "added_leave_one_out": [0, 20], "uncertain": True}
    # the same range on an image of 300 atoms is under a tenth of them: not flagged
    assert not verifier_spread(xy, per, 0.8, 5.0, added=20, n_atoms=300)["uncertain"]
    # networks that agree: every leave-one-out ensemble accepts the same 20
    agree = np.full((5, 20), 0.9)
    assert verifier_spread(xy, agree, 0.8, 5.0, added=20, n_atoms=40) == {
        "added": 20, "added_leave_one_out": [20, 20], "uncertain": False}
    # no candidates, or a single network: nothing to leave out
    assert verifier_spread(xy[:0], np.zeros((5, 0)), 0.8, 5.0, 0, 10)["added_leave_one_out"] == [0, 0]
    assert not verifier_spread(xy, per[:1], 0.8, 5.0, 20, 40)["uncertain"]


def test_record_says_how_far_the_verifiers_additions_rest_on_its_networks(repo_dir, tmp_path, monkeypatch):
    from sacmap.detection import detector, simulate
    from sacmap.detection.io import read_image
    from sacmap.detection.pipeline import Settings, detect_image
    from sacmap.detection.result import verifier_warning

    # the record's count is the verifier's additions (no refinement, so none of them is dropped after)
    img, _, _ = simulate.simulate_sample(6.0, arrangement="hardcore", shape=(256, 256), seed=[60, 1, 1])
    res = detect_image(img, pixel_size_nm=PX, settings=Settings(refine=False))
    v = res.summary()["verifier"]
    assert v["added"] == int((res.atoms.component_size == -1).sum()) > 0
    lo, hi = v["added_leave_one_out"]
    assert 0 <= lo <= hi
    # on the shared validation image 053 the bundled networks agree (none added with any four): no warning
    raw, px, _ = read_image(repo_dir / "inputs/stem/053_HAADF_15nm_Sample_PtNC_21Oct20.tif")
    summ = detect_image(raw, pixel_size_nm=px).summary()
    assert summ["verifier"] == {"added": 0, "added_leave_one_out": [0, 0], "uncertain": False}
    assert summ["warning"] is None
    assert "verifier" not in detect_image(raw, pixel_size_nm=px, settings=Settings(verify=False)).summary()
    # a verifier of two networks, one of which accepts every candidate: alone it would add every band-pass maximum,
    # the other alone a few; the count rests on which of them is kept, and the record says so and warns
    ver = CandidateVerifier.load(detector.VERIFIER)
    eager = (ver.members_[0][0], [*ver.members_[0][1][:-1], ver.members_[0][1][-1] + 50.0])  # output bias: p = 1
    ver.members_ = [eager, ver.members_[1]]
    monkeypatch.setattr(detector, "VERIFIER", ver.save(tmp_path / "eager.json"))
    summ = detect_image(img, pixel_size_nm=PX, settings=Settings(refine=False)).summary()
    lo, hi = summ["verifier"]["added_leave_one_out"]
    assert hi - lo >= 10
    assert summ["verifier"]["uncertain"] and summ["warning"] == verifier_warning(summ["verifier"])
    assert "candidate verifier added" in summ["warning"] and "--no-verify" in summ["warning"]


@pytest.mark.filterwarnings("ignore::sklearn.exceptions.ConvergenceWarning")
@pytest.mark.parametrize("change, message", [
    (lambda d: d.update(kind="other"), "kind"),
    (lambda d: d.update(features=d["features"][::-1]), "features"),
    (lambda d: d["members"][0]["weights"][0].pop(), "shapes"),
    (lambda d: d.update(members=[]), "no networks"),
    (lambda d: d.update(threshold=1.5), "threshold"),
    (lambda d: d["members"][1]["biases"][-1].__setitem__(0, float("nan")), "non-finite"),
    (lambda d: d.pop("mean"), "mean"),
])
def test_bad_verifier_files_are_one_clear_error(tmp_path, change, message):
    X, y = _toy(500)
    d = CandidateVerifier(hidden=(4,), max_iter=50, n_members=2).fit(X, y).to_dict()
    change(d)
    p = tmp_path / "bad.json"
    p.write_text(json.dumps(d))
    with pytest.raises(DetectionInputError, match=f"bad.json: not a valid verifier file.*{message}"):
        CandidateVerifier.load(p)
    p.write_text("{not json")
    with pytest.raises(DetectionInputError, match="bad.json"):
        CandidateVerifier.load(p)
    with pytest.raises(DetectionInputError, match="not found"):
        CandidateVerifier.load(tmp_path / "missing.json")


def test_spacing_keeps_the_most_probable_of_close_candidates():
    from sacmap.detection.detector import _spaced

    xy = np.array([[0, 0], [3, 0], [20, 0], [23, 0], [50, 0]])
    prob = np.array([0.9, 0.95, 0.85, 0.8, 0.99])
    ok = np.array([True, True, True, True, False])
    assert _spaced(xy, prob, ok, 5.0).tolist() == [False, True, True, False, False]
    assert _spaced(xy, prob, ok, 2.0).tolist() == [True, True, True, True, False]


def test_verifier_recovers_missed_atoms_of_a_dense_noisy_image_and_adds_none_to_bare_support():
    from scipy.spatial import cKDTree

    from sacmap.detection import simulate
    from sacmap.detection.evaluate import evaluate_xy
    from sacmap.detection.pipeline import Settings, detect_image

    # the calibrated Pt1/NC dose and texture, hard core 0.25 nm at 6 atoms/nm2, three 256² fields pooled: the
    # networks keep about a third of the atoms (0.23-0.39 per field), the verifier about 0.7 (one field: 0.25)
    t_all, off_all, on_all = [], [], []
    for k in (1, 2, 5):
        img, truth, _ = simulate.simulate_sample(6.0, arrangement="hardcore", shape=(256, 256), seed=[60, k, 1])
        t_all.append(truth[["x_px", "y_px"]].to_numpy())
        off_all.append(detect_image(img, pixel_size_nm=PX, settings=Settings(refine=False, verify=False)).atoms)
        on_all.append(detect_image(img, pixel_size_nm=PX, settings=Settings(refine=False)).atoms)
    from sacmap.detection.evaluate import pooled

    r_off = pooled([evaluate_xy(o[["x_px", "y_px"]].to_numpy(), t, 0.15 / PX) for o, t in zip(off_all, t_all)])
    r_on = pooled([evaluate_xy(o[["x_px", "y_px"]].to_numpy(), t, 0.15 / PX) for o, t in zip(on_all, t_all)])
    assert r_on["recall"] > r_off["recall"] + 0.15 and r_on["precision"] > 0.9, (r_off, r_on)
    off, on = off_all[0], on_all[0]
    added = on[on.component_size == -1]
    assert len(on) == len(off) + len(added) and len(added) > 0
    xy = on[["x_px", "y_px"]].to_numpy()
    # 0.15 nm from every network atom and from each other, at the band-pass maxima (the sub-pixel step moves a
    # candidate by at most half a pixel per axis)
    sub = np.sqrt(0.5)
    assert (cKDTree(off[["x_px", "y_px"]].to_numpy()).query(added[["x_px", "y_px"]].to_numpy())[0]
            > 0.15 / PX - sub).all()
    assert ((added.score >= 0.8) & (added.score <= 1)).all()
    assert cKDTree(xy).query(xy, 2)[0][:, 1].min() > 0.15 / PX - 2 * sub
    # no atoms: on the calibrated support alone the networks find 11-31 texture bumps per 256² field (56 nm²), the
    # verifier adds 0-3 (measured over 6 seeds); over 4 fields: under a tenth of the networks' count
    net = ver = 0
    for seed in range(4):
        bare, _, _ = simulate.simulate_sample(0.0, shape=(256, 256), seed=[0, seed, 1])
        res = detect_image(bare, pixel_size_nm=PX, settings=Settings(refine=False))
        ver += int((res.atoms.component_size == -1).sum())
        net += int((res.atoms.component_size != -1).sum())
    assert net > 20 and ver < 0.1 * net
    assert res.summary()["model"]["verifier"] == "verifier.json"
    with pytest.raises(DetectionInputError, match="verify_threshold"):
        detect_image(img, pixel_size_nm=PX, settings=Settings(verify_threshold=1.0))


@pytest.mark.filterwarnings("ignore::sklearn.exceptions.ConvergenceWarning")
def test_verifier_training_command_is_deterministic_and_refuses_bad_inputs(repo_dir, tmp_path, capsys):
    import shutil

    from sacmap.detection import verifier_training as vt

    data = tmp_path / "data"
    (data / "images").mkdir(parents=True)
    (data / "labels").mkdir()
    shutil.copy(repo_dir / "inputs/stem/053_HAADF_15nm_Sample_PtNC_21Oct20.tif", data / "images")
    shutil.copy(repo_dir / "inputs/stem/labels/053_Results.csv", data / "labels")
    (data / "split.csv").write_text("image,labels,split\n053_HAADF_15nm_Sample_PtNC_21Oct20.tif,053_Results.csv,train\n")
    cfg = vt.VerifierTrainConfig(n_sim=2, n_crowded=1, n_faint=1, n_dense=1, n_members=2, max_iter=30)
    a = CandidateVerifier.load(vt.train_verifier(data, tmp_path / "a.json", cfg))
    b = CandidateVerifier.load(vt.train_verifier(data, tmp_path / "b.json", cfg))
    assert a.meta["training"]["real_images"] == ["053"] and a.meta["training"]["n_atoms"] > 0
    assert all(np.array_equal(x, y) for (wa, ba), (wb, bb) in zip(a.members_, b.members_)
               for x, y in zip([*wa, *ba], [*wb, *bb]))
    # bad inputs: one line, exit status 2, before anything is simulated
    assert vt.main(["--data", str(tmp_path / "none"), "-o", str(tmp_path / "c.json")]) == 2
    assert "split.csv: not found" in capsys.readouterr().err
    (data / "labels" / "053_Results.csv").unlink()
    assert vt.main(["--data", str(data), "-o", str(tmp_path / "c.json")]) == 2
    assert "053_Results.csv not found" in capsys.readouterr().err
    assert vt.main(["--data", str(data), "-o", str(data / "split.csv")]) == 2
    assert "refusing to overwrite" in capsys.readouterr().err
    assert not (tmp_path / "c.json").exists()


def _band_pass_maxima_of_pair(sep_px: float, sigma: float, n: int = 160):
    """Sub-pixel (parabola) x of the two band-pass maxima on the axis of a noise-free pair of equal Gaussians."""
    from sacmap.detection.candidates import BAND, band_pass

    c = n / 2 + 0.3
    img = _blobs((n, n), [(c - sep_px / 2, n // 2), (c + sep_px / 2, n // 2)], sigma).astype(np.float32)
    row = band_pass(img, BAND)[n // 2].astype(float)
    k = [i for i in range(1, n - 1) if row[i] >= row[i - 1] and row[i] > row[i + 1]]
    return np.array([i + 0.5 * (row[i - 1] - row[i + 1]) / (row[i - 1] - 2 * row[i] + row[i + 1]) for i in k])


def test_pair_shift_agrees_with_the_band_pass_of_a_rendered_pair():
    # calibrated atoms (FWHM 0.28 nm) in the model frame: the analytic profile against band_pass on an image
    sigma = 0.28 / 2.355 / PX
    d, delta = pair_shift(sigma)
    assert 0.24 / PX < d[0] < 0.26 / PX  # closer pairs show one maximum only
    for sep_nm in (0.27, 0.30, 0.35, 0.45):
        peaks = _band_pass_maxima_of_pair(sep_nm / PX, sigma)
        assert len(peaks) == 2
        measured = np.ptp(peaks)
        table = np.interp(sep_nm / PX, d, d - 2 * delta)
        assert abs(measured - table) < 0.35, (sep_nm, measured, table)  # 0.35 px = 10 pm
    # the inward pull is large at contact and vanishes far away
    assert np.interp(0.27 / PX, d, d - 2 * delta) * PX < 0.21
    assert abs(np.interp(1.0 / PX, d, delta)) < 0.02


def test_debias_pairs_restores_the_separation_of_band_pass_maxima_and_moves_nothing_else():
    sigma = 0.28 / 2.355 / PX
    from sacmap.detection.candidates import BAND

    for sep_nm in (0.27, 0.30, 0.40):
        peaks = _band_pass_maxima_of_pair(sep_nm / PX, sigma)
        xy = np.c_[peaks, [80.0, 80.0]]
        out = debias_pairs(xy, np.array([True, True]), sigma, BAND)
        assert abs(np.ptp(out[:, 0]) - sep_nm / PX) < 0.4, (sep_nm, np.ptp(out[:, 0]) * PX)
        assert np.allclose(out.mean(0), xy.mean(0)) and np.allclose(out[:, 1], 80.0)  # along the axis, centred
        # one band-pass maximum next to a network atom at the true centre: only the marked point moves
        left = xy[0] - [(sep_nm / PX - np.ptp(peaks)) / 2, 0]
        one = debias_pairs(np.r_[[left], xy[1:]], np.array([False, True]), sigma, BAND)
        assert np.allclose(one[0], left)
        assert abs(one[1, 0] - one[0, 0] - sep_nm / PX) < 0.6, (sep_nm, (one[1, 0] - one[0, 0]) * PX)
    far = np.array([[10.0, 10.0], [90.0, 70.0], [40.0, 130.0]])  # ≥ 2.6 nm apart: unchanged
    assert np.abs(debias_pairs(far, np.ones(3, bool), sigma, BAND) - far).max() < 0.01
    unmarked = np.array([[50.0, 50.0], [56.0, 50.0]])
    assert np.array_equal(debias_pairs(unmarked, np.zeros(2, bool), sigma, BAND), unmarked)
    assert np.array_equal(debias_pairs(unmarked, np.ones(2, bool), float("nan"), BAND), unmarked)


def test_a_dense_hard_core_pattern_is_not_reported_with_close_pairs():
    # calibrated dose and texture, hard core 0.25 nm at 6 atoms/nm2 (no pair closer than 0.25 nm): before the
    # verifier's band-pass maxima were spread back (debias_pairs) 0.135 of the detected atoms had a neighbour
    # within 0.22 nm on the benchmark's images; the verifier's atoms are most of the dense image's atoms. Read with
    # the bundled heat map (crowded_density=0): the crowded reading of such fields, tests/detection/test_crowded.py
    from scipy.spatial import cKDTree

    from sacmap.detection import simulate
    from sacmap.detection.pipeline import Settings, detect_image

    img, truth, _ = simulate.simulate_sample(6.0, arrangement="hardcore", shape=(384, 384), seed=[60, 3, 1])
    atoms = detect_image(img, pixel_size_nm=PX, settings=Settings(crowded_density=0)).atoms
    assert (atoms.component_size == -1).sum() > 0.3 * len(atoms)
    xy = atoms[["x_nm", "y_nm"]].to_numpy()
    share = float(np.mean(cKDTree(xy).query(xy, 2)[0][:, 1] <= 0.22))
    assert len(atoms) > 0.5 * len(truth) and share < 0.05, (len(atoms), len(truth), share)


def test_the_bundled_verifier_is_the_training_commands_output(repo_dir):
    """verifier.json records the config it was trained with: the command's defaults today (session 20: the file
    reproduced bit for bit from ``python -m sacmap.detection.verifier_training``), so a changed default without a
    new file fails here."""
    from sacmap.detection import verifier_training as vt

    meta = CandidateVerifier.load(repo_dir / "detection/data/verifier.json").meta
    assert meta["config"] == vt.VerifierTrainConfig().as_dict()
    assert meta["command"] == "python -m sacmap.detection.verifier_training"
    assert meta["training"]["n_dense"] == 60 and meta["training"]["n_candidates"] == 341937
