"""Detector-aware null model: imaging estimated from an image, null patterns rendered and detected like the data."""

from __future__ import annotations

import numpy as np
import pytest

from sacmap.analysis.spatial.observation import Observation
from sacmap.analysis.spatial.samplers.point import HardCoreSampler, RandomSampler
from sacmap.analysis.spatial.window import Region
from sacmap.detection.simulate import simulate_image
from sacmap.workflows.errors import WorkflowInputError
from sacmap.workflows.job.detector_null import (
    ImagingEstimate,
    default_detector,
    detector_aware_test,
    estimate_imaging,
    render_and_detect,
    worker_pool,
)

PX = 0.05  # nm/px: small images keep the test fast


@pytest.mark.parametrize("dose, peak, scale", [(6.3e4, 0.36, 1.0), (2e4, 0.5, 1000.0), (2e5, 0.25, 3.0)])
def test_imaging_estimate_recovers_the_simulator_settings(dose, peak, scale):
    xy = HardCoreSampler(0.5).sample(100, (15, 15), seed=0)[0]
    px = 0.029296875
    image, truth = simulate_image(xy, shape=(512, 512), pixel_size_nm=px, seed=3, dose_per_nm2=dose, peak_pt=peak)
    est = estimate_imaging(image * scale, px, truth[["x_px", "y_px"]].to_numpy())
    assert est.dose_per_nm2 == pytest.approx(dose, rel=0.2)
    assert est.peak_pt == pytest.approx(peak, rel=0.15)
    assert est.scale == pytest.approx(scale, rel=0.1)
    assert est.params["texture_sd"] == pytest.approx(0.065, rel=0.3) and est.film is None  # no vacuum: no film map
    obs, sim = est.measured["observed"], est.measured["simulated"]
    assert sim["noise"] == pytest.approx(obs["noise"], rel=0.1)


def test_imaging_estimate_next_to_vacuum_renders_on_the_observed_film():
    """With a vacuum region the simulated images take the observed film's large-scale map (no sharp edge, no random
    thickness) and still reproduce its noise and atom signal."""
    from sacmap.detection.simulate import simulate_sample

    px = 0.029296875
    image, truth, sup = simulate_sample(0.5, shape=(256, 256), seed=4, vacuum_fraction=0.3, peak_pt=0.5)
    est = estimate_imaging(image, px, truth[["x_px", "y_px"]].to_numpy(), support=sup)
    assert est.film is not None and est.film.shape == sup.shape and est.measured["film_map"]
    assert est.params["thickness_sd"] == 0.0 and est.params["vacuum_taper"] == 0.0
    assert np.array_equal(est.render_support(), est.film)
    obs, sim = est.measured["observed"], est.measured["simulated"]
    for k in ("noise", "atom_signal_median", "vacuum_over_support"):
        assert sim[k] == pytest.approx(obs[k], rel=0.15), k


def _blob_detector(min_sep_nm=0.4):
    """A stand-in detector with a resolution limit: local maxima of the smoothed image at least ``min_sep_nm``
    apart (so close atoms merge, as with a real detector)."""
    from scipy import ndimage as ndi
    from skimage.feature import peak_local_max

    def detect(images, pixel_size_nm):
        out = []
        for im in images:
            sm = ndi.gaussian_filter(np.asarray(im, float), 1.0)
            hp = sm - ndi.gaussian_filter(ndi.median_filter(sm, 21), 5)
            pk = peak_local_max(hp, min_distance=int(round(min_sep_nm / pixel_size_nm)), threshold_abs=0.6)
            out.append(pk[:, ::-1] * pixel_size_nm)
        return out

    return detect


def test_detector_aware_null_removes_the_detector_repulsion():
    shape = (160, 160)
    region = Region.rectangle(shape[1] * PX, shape[0] * PX, -0.5 * PX, -0.5 * PX)
    truth = RandomSampler().sample(100, region, seed=5)[0]  # CSR truth, 1.6 atoms/nm²
    # bright atoms (peak 2.5 over the carbon), so the stand-in detector's only loss is its resolution
    imaging = ImagingEstimate(PX, shape, dose_per_nm2=1e6, peak_pt=2.5, scale=1.0)
    image, _ = simulate_image(truth, shape=shape, pixel_size_nm=PX, seed=1, **imaging.simulator_kw())
    detect = _blob_detector()
    seen = detect([image], PX)[0]
    assert 40 < len(seen) < 100
    obs = Observation.from_points(seen, region, pixel_size_nm=PX)
    res = detector_aware_test(obs, image, null="csr", function="G", nsim=39, seed=2, detect=detect, pilot=4,
                              imaging=imaging)
    # the detector merged close pairs: against CSR as drawn the detected pattern lacks short NNDs (looks regular)
    # ... against CSR seen through the same imaging and detector it does not
    close = (res.naive.r_nm > 0.1) & (res.naive.r_nm < 0.45)
    deficit_naive = np.mean(res.naive.observed[close] - res.naive.central[close])
    deficit_aware = np.mean(res.aware.observed[close] - res.aware.central[close])
    assert deficit_naive < -0.1 and abs(deficit_aware) < 0.5 * abs(deficit_naive)
    assert res.naive.p_rank <= 0.1 and res.aware.p_rank > 0.05 and res.aware.p_rank > 2 * res.naive.p_rank
    d = res.as_dict()
    assert d["detector_aware"]["null_params"]["detector_aware"] is True and d["naive"]["nsim"] == 39
    assert d["n_true"] > len(seen)  # the detector loses atoms, so more true atoms give the observed count
    assert res.valid and d["calibration"]["detected_per_true_b"] < 1 and d["valid"]
    assert len(res.summary_lines()) == 2 and res.figure() is not None


def test_detector_aware_null_refuses_what_it_cannot_do():
    region = Region.rectangle(5.0)
    obs = Observation.from_points(RandomSampler().sample(20, region, seed=1)[0], region)
    with pytest.raises(WorkflowInputError, match="pixel size"):
        detector_aware_test(obs, np.ones((100, 100)), nsim=19)
    with pytest.raises(WorkflowInputError, match="2-D"):
        estimate_imaging(np.ones(10), PX, np.zeros((0, 2)))


def test_detector_aware_null_flags_an_imaging_mismatch():
    """A detector that reports many false atoms on the simulated images cannot reproduce the observed count: the
    result says so instead of returning a test that compares unlike patterns."""
    shape = (120, 120)
    region = Region.rectangle(shape[1] * PX, shape[0] * PX, -0.5 * PX, -0.5 * PX)
    obs = Observation.from_points(RandomSampler().sample(20, region, seed=1)[0], region, pixel_size_nm=PX)
    imaging = ImagingEstimate(PX, shape, dose_per_nm2=1e6, peak_pt=2.5, scale=1.0)
    rng = np.random.default_rng(0)

    def noisy(images, pixel_size_nm):  # 60 false detections per image, whatever the atoms
        return [rng.random((60, 2)) * shape[0] * pixel_size_nm for _ in images]

    res = detector_aware_test(obs, np.ones(shape), null="csr", function="G", nsim=19, detect=noisy, pilot=4,
                              imaging=imaging)
    assert not res.valid and any("does not reproduce" in w or "no true count" in w for w in res.warnings)
    assert res.as_dict()["valid"] is False and res.summary_lines()[-1].startswith("WARNING")


def _peak_detector(threshold: float):
    """A cheap stand-in detector that also picks up texture: local maxima of the smoothed, high-passed image."""
    from scipy import ndimage as ndi
    from skimage.feature import peak_local_max

    def detect(images, pixel_size_nm):
        out = []
        for im in images:
            sm = ndi.gaussian_filter(np.asarray(im, float), 1.0)
            hp = sm - ndi.gaussian_filter(sm, 6.0)
            pk = peak_local_max(hp, min_distance=int(round(0.4 / pixel_size_nm)), threshold_abs=threshold)
            out.append(pk[:, ::-1] * pixel_size_nm)
        return out

    return detect


def test_shared_backgrounds_give_the_detection_statistics_of_the_full_simulator():
    """Null images on K shared backgrounds (each with its own atoms and noise) are detected like images that each
    draw their own fields: the false detections the texture causes, and the spread of the counts, are the same
    within noise; without texture they are not (so the comparison can fail)."""
    shape = (160, 160)
    region = Region.rectangle(shape[1] * PX, shape[0] * PX, -0.5 * PX, -0.5 * PX)
    pats = list(RandomSampler().sample(40, region, runs=48, seed=3))
    detect = _peak_detector(0.1)
    textured = ImagingEstimate(PX, shape, dose_per_nm2=2e5, peak_pt=0.5, scale=1.0, params={"texture_sd": 0.15})
    flat = ImagingEstimate(PX, shape, dose_per_nm2=2e5, peak_pt=0.5, scale=1.0,
                           params={"texture_sd": 0.0, "vacuum_texture_sd": 0.0, "thickness_sd": 0.0})
    full = np.array([len(d) for d in render_and_detect(pats, textured, detect, seed=1)])
    fast = np.array([len(d) for d in render_and_detect(pats, textured, detect, seed=1, backgrounds=6)])
    none = np.array([len(d) for d in render_and_detect(pats, flat, detect, seed=1)])
    texture_effect = full.mean() - none.mean()
    assert texture_effect > 5  # the texture adds false detections ...
    assert abs(fast.mean() - full.mean()) < 0.2 * texture_effect  # ... and the shared backgrounds add as many
    assert 0.6 < fast.std() / full.std() < 1.6
    # the same call twice gives the same detections; the backgrounds are shared, not the noise
    again = render_and_detect(pats[:7], textured, detect, seed=1, backgrounds=6)
    first = render_and_detect(pats[:7], textured, detect, seed=1, backgrounds=6)
    assert all(np.array_equal(a, b) for a, b in zip(again, first))


def test_worker_pool_gives_the_serial_result_with_the_real_detector():
    """The default detector is picklable and the pool's tasks do not depend on the number of workers: the same
    detections as in this process, image for image."""
    px = 0.029296875
    shape = (128, 128)
    region = Region.rectangle(shape[1] * px, shape[0] * px)
    pats = list(RandomSampler().sample(12, region, runs=4, seed=0))
    imaging = ImagingEstimate(px, shape, dose_per_nm2=6.3e4, peak_pt=0.5, scale=1.0)
    detect = default_detector({"threshold": 0.8}, model="paper", batch=2)
    serial = render_and_detect(pats, imaging, detect, seed=4, backgrounds=2, chunk=1)
    pool = worker_pool(2)
    try:
        parallel = render_and_detect(pats, imaging, detect, seed=4, backgrounds=2, chunk=1, executor=pool)
    finally:
        pool.shutdown()
    assert len(parallel) == 4 and sum(len(d) for d in serial) > 0
    assert all(np.allclose(a, b, atol=1e-6) for a, b in zip(serial, parallel))
