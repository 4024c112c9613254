"""Detector-aware null model: null patterns seen through the same imaging and detection as the observation (nm, px).

A detector loses atoms closer than its resolution (it merges detections within ``merge_nm`` and needs ``min_sep_nm``
between atoms), misses faint ones and adds a few false ones. A null model that skips those losses compares a
*detected* pattern with *true* patterns: on completely random simulated patterns the detected Clark–Evans ratio
is about 1.16 instead of 0.98, so a naive test calls every sample repulsive. Here each null pattern is

1. drawn by the null model in the observation's window (the support mask), with ``n_true`` atoms — calibrated
   so the *detected* count matches the observed one: ``pilot`` (16) images at n and 2n true atoms fit
   ``detected = a + b · true`` (false detections a, detection rate b). When no true count reproduces the
   observed one, or the observed count falls outside the simulated images' 95 % range, the result carries a
   warning and ``valid`` is False: the imaging estimate does not reproduce the observation;
2. rendered by the HAADF-STEM simulator (:func:`sacmap.detection.simulate.simulate_image`) at the observed
   image's pixel size and shape, on the observed support (next to vacuum: on the observed film's large-scale
   map), with the dose, atom contrast, texture, atom width and vacuum level fitted so that the simulator's
   calibration statistics match the observed image's (:func:`estimate_imaging`);
3. detected by the same detector with the same settings (the record's ``settings``), batched through the
   network, in up to 2 worker processes (:func:`render_and_detect`);
4. summarised (same function, correction and r values) in the same window as the observed detection.

:func:`detector_aware_test` returns the naive test (null patterns used as drawn) and the detector-aware test
side by side (:class:`DetectorAwareTest`, ``as_dict()``, ``figure()``). This module lives in the job layer
because it needs both ``sacmap.detection`` and ``sacmap.analysis``.
"""

from __future__ import annotations

import time
from dataclasses import dataclass, field

import numpy as np

from sacmap.analysis.spatial.envelopes import (
    NSIM,
    EnvelopeTest,
    envelope_test,
    envelope_test_from_curves,
    null_sampler,
)
from sacmap.analysis.spatial.observation import Observation
from sacmap.analysis.spatial.summary import default_r, summary_function
from sacmap.workflows.errors import WorkflowInputError


# ---------------------------------------------------------------------------------------------------- imaging
@dataclass
class ImagingEstimate:
    """Simulator settings that reproduce an observed image: ``pixel_size_nm``, ``shape``, ``dose_per_nm2``
    (electrons/nm²), ``peak_pt`` (a Pt atom's peak above the carbon, simulator units), ``scale`` (observed units
    per simulator unit), the ``support`` mask (True = carbon), ``measured`` (the observed and simulated
    statistics behind the estimate), ``params``: further simulator keywords (texture, thickness, atom spread,
    vacuum level, ...) and ``film``: the soft support map rendered on (None: ``support``)."""

    pixel_size_nm: float
    shape: tuple[int, int]
    dose_per_nm2: float
    peak_pt: float
    scale: float
    support: np.ndarray | None = None
    measured: dict = field(default_factory=dict)
    params: dict = field(default_factory=dict)
    film: np.ndarray | None = None

    def render_support(self) -> np.ndarray | None:
        """The soft support the simulator renders on: ``film`` (the observed film's map) or ``support``."""
        if self.film is not None:
            return np.asarray(self.film, float)
        return None if self.support is None else self.support.astype(float)

    def simulator_kw(self) -> dict:
        return {**self.params, "dose_per_nm2": self.dose_per_nm2, "peak_pt": self.peak_pt}

    def as_dict(self) -> dict:
        return {"pixel_size_nm": self.pixel_size_nm, "shape": list(self.shape), "dose_per_nm2": self.dose_per_nm2,
                "peak_pt": self.peak_pt, "scale": self.scale, "params": dict(self.params), "support_fraction":
                None if self.support is None else float(np.mean(self.support)), "measured": self.measured}


def estimate_imaging(image, pixel_size_nm: float, atoms_xy_px, support=None, elements=None,
                     iterations: int = 4) -> ImagingEstimate:
    """Simulator settings (dose, Pt contrast, texture, thickness, atom width, vacuum level) whose images have the
    statistics of the observed one, by :func:`sacmap.detection.simulate_stats.fit_imaging`: the calibration
    statistics of :func:`~sacmap.detection.simulate_stats.image_statistics` (pixel noise, atoms'
    difference-of-Gaussians signal, band-pass texture, large-scale thickness, atom FWHM, vacuum / support) are
    measured on the image (atoms at ``atoms_xy_px``, px; ``support``: True = carbon, None = the whole image) and
    on simulated images with atoms at the same places on the same support, and the settings are adjusted for
    ``iterations`` rounds until they agree. ``elements``: one symbol per atom (default Pt). ``measured`` holds
    the observed and the simulated statistics."""
    from sacmap.detection.simulate_stats import FIT_STATISTICS, film_map, fit_imaging

    img = np.asarray(image, dtype=float)
    if img.ndim != 2:
        raise WorkflowInputError(f"detector-aware null: image must be 2-D, got shape {img.shape}")
    px = float(pixel_size_nm)
    xy = np.asarray(atoms_xy_px, dtype=float).reshape(-1, 2)
    sup = np.ones(img.shape, bool) if support is None else np.asarray(support, bool)
    if sup.shape != img.shape:
        raise WorkflowInputError(f"detector-aware null: support {sup.shape} and image {img.shape} differ in shape")
    if len(xy) < 3:
        raise WorkflowInputError(f"detector-aware null: {len(xy)} atom(s); the imaging estimate needs at least 3")
    film, fixed = None, {}
    if 0.02 < sup.mean() < 0.95:  # a vacuum region: render on the observed film's large-scale map
        film = film_map(img, xy, px, sup)
        fixed = {"thickness_sd": 0.0, "vacuum_taper": 0.0}
    f = fit_imaging(img, xy, px, support=sup, elements=elements, iterations=iterations, render_support=film,
                    **fixed)
    p = {**dict(f["params"]), **fixed}
    dose, peak = p.pop("dose_per_nm2"), p.pop("peak_pt")
    stats = sorted(set(FIT_STATISTICS.values()))
    measured = {"observed": {k: f["observed"][k] for k in stats}, "simulated": {k: f["simulated"][k] for k in stats},
                "fitted": f["fitted"], "iterations": f["iterations"], "n_atoms_used": int(len(xy))}
    measured["film_map"] = film is not None
    return ImagingEstimate(px, tuple(int(v) for v in img.shape), float(dose), float(peak), float(f["scale"]), sup,
                           measured, p, film)


# ---------------------------------------------------------------------------------------------------- detector
@dataclass
class PipelineDetector:
    """``detect(images, pixel_size_nm) -> [xy_nm (n, 2)]`` through :func:`sacmap.detection.pipeline.detect_images`
    with the record's decoder ``settings`` and ``model`` (None: the pipeline's default); ``batch``: CNN tiles per
    forward pass (None: the device's default, :func:`sacmap.detection.model.tiling`). A plain object (not a
    closure), so that worker processes can receive it."""

    settings: dict = field(default_factory=dict)
    model: str | None = None
    batch: int | None = None

    def __call__(self, images, pixel_size_nm):
        import dataclasses

        from sacmap.detection import pipeline

        st = dict(self.settings or {})
        kw: dict = {"batch": self.batch}
        if st:
            known = {f.name for f in dataclasses.fields(pipeline.Settings)}
            kw["settings"] = pipeline.Settings(**{k: v for k, v in st.items() if k in known})
        if "threshold" in st:
            kw["threshold"] = st["threshold"]
        if self.model is not None:
            kw["model"] = self.model
        res = pipeline.detect_images(list(images), pixel_size_nm=pixel_size_nm, **kw)
        return [r.atoms[["x_nm", "y_nm"]].to_numpy(dtype=float) for r in res]


def default_detector(settings: dict | None = None, model: str | None = None,
                     batch: int | None = None) -> PipelineDetector:
    """The public detection entry point with the record's decoder ``settings`` (its JSON ``settings`` block:
    threshold, merge and separation distances, ...) and ``model``: a :class:`PipelineDetector`."""
    return PipelineDetector(dict(settings or {}), model, None if batch is None else int(batch))


def _init_worker() -> None:
    """Worker processes: one torch thread each (the processes share the cores)."""
    try:
        import torch

        torch.set_num_threads(1)
    except ImportError:  # pragma: no cover - torch is a dependency of the detector
        pass


def _render_task(task, imaging: ImagingEstimate, detect) -> list[np.ndarray]:
    """Render one task's patterns (on its own fields, or on one shared background) and detect them together."""
    from sacmap.detection.simulate import simulate_background, simulate_image

    patterns, seeds, bg_seed = task
    sup = imaging.render_support()
    kw = imaging.simulator_kw()
    bg = None if bg_seed is None else simulate_background(shape=imaging.shape, pixel_size_nm=imaging.pixel_size_nm,
                                                          seed=bg_seed, support=sup, **kw)
    imgs = [simulate_image(p, shape=imaging.shape, pixel_size_nm=imaging.pixel_size_nm, seed=k, support=sup,
                           background=bg, **kw)[0] * imaging.scale for p, k in zip(patterns, seeds)]
    return detect(imgs, imaging.pixel_size_nm)


def _picklable(obj) -> bool:
    import pickle

    try:
        pickle.dumps(obj)
    except Exception:  # noqa: BLE001 - closures, lambdas, local classes: any failure means 'not picklable'
        return False
    return True


def default_workers() -> int:
    """Worker processes for rendering and detection: the cores this process may use, at most 2 (1 inside a
    daemonic process, which may not start processes of its own)."""
    import multiprocessing as mp
    import os

    if mp.current_process().daemon:
        return 1
    try:
        n = len(os.sched_getaffinity(0))
    except AttributeError:  # pragma: no cover - not on Linux
        n = os.cpu_count() or 1
    return max(1, min(2, n))


def worker_pool(workers: int):
    """A process pool of ``workers`` (spawned, one torch thread each) for :func:`render_and_detect`; None for 1."""
    if workers <= 1:
        return None
    import multiprocessing as mp
    from concurrent.futures import ProcessPoolExecutor

    return ProcessPoolExecutor(max_workers=int(workers), mp_context=mp.get_context("spawn"), initializer=_init_worker)


def render_and_detect(patterns_nm, imaging: ImagingEstimate, detect, seed=0, chunk: int = 16,
                      backgrounds: int | None = None, executor=None) -> list[np.ndarray]:
    """Render every pattern (nm) with the simulator at the observed imaging settings and detect it; the detected
    positions (nm) of each, in order.

    ``backgrounds`` None: every image draws its own support, thickness and texture fields (the full simulator,
    ~0.2 s per 512² image); an integer K: K backgrounds (:func:`sacmap.detection.simulate.simulate_background`)
    are drawn and pattern i is rendered on background i mod K with its own atoms' peak spread and its own noise
    (~0.01 s per image). Images are rendered and detected ``chunk`` at a time (memory), in tasks that do not
    depend on ``executor``: a process pool (:func:`worker_pool`) runs them in parallel when ``detect`` can be
    pickled, else they run here; the result is the same. Seeds from ``seed``."""
    ss = seed if isinstance(seed, np.random.SeedSequence) else np.random.SeedSequence(seed)
    n = len(patterns_nm)
    seeds = [int(c.generate_state(1)[0]) for c in ss.spawn(n)]
    if backgrounds is None:
        groups = [(list(range(s, min(s + chunk, n))), None) for s in range(0, n, chunk)]
    else:
        k = max(1, min(int(backgrounds), n))
        bg_seeds = [int(c.generate_state(1)[0]) for c in ss.spawn(k)]
        groups = []
        for b in range(k):
            idx = list(range(b, n, k))
            groups += [(idx[s:s + chunk], bg_seeds[b]) for s in range(0, len(idx), chunk)]
    tasks = [([patterns_nm[i] for i in idx], [seeds[i] for i in idx], bg) for idx, bg in groups]
    results = None
    if executor is not None and _picklable(detect):
        from concurrent.futures.process import BrokenProcessPool
        from itertools import repeat

        try:
            results = list(executor.map(_render_task, tasks, repeat(imaging), repeat(detect)))
        except BrokenProcessPool as e:  # e.g. a script without the `if __name__ == "__main__":` guard
            import warnings

            warnings.warn(f"detector-aware null: the worker processes failed ({e}); rendering in this process",
                          RuntimeWarning, stacklevel=2)
    if results is None:
        results = [_render_task(t, imaging, detect) for t in tasks]
    out: list = [None] * n
    for (idx, _), res in zip(groups, results):
        for i, d in zip(idx, res):
            out[i] = d
    return out


# ---------------------------------------------------------------------------------------------------- the test
@dataclass
class DetectorAwareTest:
    """The naive and the detector-aware envelope test of one observation against one null model."""

    naive: EnvelopeTest
    aware: EnvelopeTest
    imaging: dict
    n_true: int
    detected_counts: list[int]
    seconds: float
    warnings: list[str] = field(default_factory=list)
    calibration: dict = field(default_factory=dict)
    rendering: dict = field(default_factory=dict)

    @property
    def valid(self) -> bool:
        """False when the simulated images do not reproduce the observed count (see ``warnings``)."""
        return not self.warnings

    def as_dict(self, curves: bool = False) -> dict:
        return {"naive": self.naive.as_dict(curves), "detector_aware": self.aware.as_dict(curves),
                "imaging": self.imaging, "n_true": self.n_true, "n_observed": self.naive.n_points,
                "detected_count_mean": float(np.mean(self.detected_counts)),
                "detected_count_range": [int(min(self.detected_counts)), int(max(self.detected_counts))],
                "calibration": self.calibration, "rendering": self.rendering, "valid": self.valid,
                "warnings": self.warnings, "seconds": self.seconds}

    def figure(self):
        from sacmap.analysis.spatial.plots import plot_envelopes

        return plot_envelopes([self.naive, self.aware], titles=[
            f"naive null ({self.naive.null_model}, as drawn)",
            f"detector-aware null ({self.aware.null_model}, rendered + detected)"])

    def summary_lines(self) -> list[str]:
        return [f"naive: {self.naive.summary_line()}", f"detector-aware: {self.aware.summary_line()}",
                *(f"WARNING: {w}" for w in self.warnings)]


def detector_aware_test(observation: Observation, image, *, null="csr", function: str = "L", nsim: int = NSIM,
                        seed=0, detect=None, settings: dict | None = None, imaging: ImagingEstimate | None = None,
                        correction: str | None = None, r_nm=None, pilot: int = 16, progress: bool = False,
                        edge_nm: float = 0.3, backgrounds: int | None = None, workers: int | None = None,
                        **null_params) -> DetectorAwareTest:
    """Envelope tests of a detected ``observation`` against ``null``, naive and after the detector's losses.

    ``image``: the observed image (2-D array; raw units) the observation was detected in (pixel size
    ``observation.pixel_size_nm``); ``detect``: ``detect(images, pixel_size_nm) -> [xy_nm]`` (default
    :func:`default_detector` with ``settings``, the record's decoder settings); ``imaging``: simulator settings
    (default :func:`estimate_imaging` of the image, the observed atoms and the window's support mask); ``pilot``
    images calibrate the true count so the detected count matches the observed one. Both tests use the window
    less a band of ``edge_nm`` (0.3 nm) along its boundary: the simulator's vacuum edge makes the detector report
    false atoms right on the support boundary (median 0.12 nm from it on image 053's imaging), which the real
    detections do not have; true null atoms are still drawn on the whole support.

    ``backgrounds``: None (default) draws fresh support, thickness and texture fields for every null image, the
    exact null; an integer K renders the images on K simulated backgrounds, each shared by ~nsim/K images with
    their own atoms and noise (:func:`render_and_detect`; ~0.2 s less per 512² image): every image is still a
    draw of the same simulator, but images on one background share its texture's false detections, so the
    background-to-background part of the null's spread is sampled K times only (a smaller effective nsim).
    ``workers`` processes (default :func:`default_workers`: up to 2) render and detect in parallel when
    ``detect`` can be pickled (the default detector can); the result does not depend on ``workers``. They are
    spawned: a script that calls this needs Python's ``if __name__ == "__main__":`` guard (else the workers fail
    and the images are rendered here, with a RuntimeWarning), or ``workers=1``."""
    t0 = time.perf_counter()
    obs = observation
    px = obs.pixel_size_nm
    if px is None:
        raise WorkflowInputError(f"{obs.source}: the detector-aware null needs the pixel size of the image")
    if obs.n_atoms < 3:
        raise WorkflowInputError(f"{obs.source}: {obs.n_atoms} atom(s) in the window; the test needs at least 3")
    region = obs.window
    img = np.asarray(image, dtype=float)
    if imaging is None:
        support = None
        if region.is_mask:
            if region.mask.shape != img.shape:
                raise WorkflowInputError(f"{obs.source}: support mask {region.mask.shape} and image {img.shape} "
                                         "differ in shape")
            support = region.mask
        imaging = estimate_imaging(img, px, obs.xy_nm / px, support=support)
    detect = detect or default_detector(settings)
    workers = default_workers() if workers is None else max(1, int(workers))
    pool = worker_pool(workers) if workers > 1 and _picklable(detect) else None
    try:
        return _aware(obs, img, imaging, detect, pool, t0, null=null, function=function, nsim=nsim, seed=seed,
                      correction=correction, r_nm=r_nm, pilot=pilot, edge_nm=edge_nm, backgrounds=backgrounds,
                      workers=workers if pool is not None else 1, null_params=null_params)
    finally:
        if pool is not None:
            pool.shutdown()


def _aware(obs, img, imaging, detect, pool, t0, *, null, function, nsim, seed, correction, r_nm, pilot, edge_nm,
           backgrounds, workers, null_params) -> DetectorAwareTest:
    """The body of :func:`detector_aware_test` once the imaging, the detector and the pool are set up."""
    region = obs.window
    full = region  # true atoms are drawn and rendered on the whole support ...
    region = full.eroded(edge_nm)  # ... and compared away from its edge, where the simulator's vacuum edge fakes atoms
    xy_obs = obs.xy_nm[region.contains(obs.xy_nm)]
    n = len(xy_obs)
    if n < 3:
        raise WorkflowInputError(f"{obs.source}: {n} atom(s) more than {edge_nm} nm inside the window; the test needs "
                                 "at least 3 (lower edge_nm)")
    r = default_r(function, region, n, r_nm)
    naive = envelope_test(xy_obs, region, null, function, nsim=nsim, correction=correction, r_nm=r, seed=seed,
                          **null_params)
    sampler, name, params = null_sampler(null, xy_obs, region, **null_params)
    ss = np.random.SeedSequence(seed if not isinstance(seed, np.random.SeedSequence) else seed.entropy)
    s_pilot, s_sims, s_noise = ss.spawn(3)
    n_true, warnings, calib = int(round(n * full.area_nm2 / region.area_nm2)), [], {}
    if pilot:  # detected = a + b · true (losses b < 1, false detections a), from pilots at n and 2n true atoms
        half = max(1, pilot // 2)
        sizes = [n] * half + [2 * n] * half
        children = s_pilot.spawn(len(sizes) + 1)
        scale_n = full.area_nm2 / region.area_nm2  # true atoms on the whole support for n inside the band
        pats = [sampler.sample(int(round(m * scale_n)), full, runs=1, seed=c)[0] for m, c in zip(sizes, children)]
        kept = np.asarray([int(region.contains(d).sum()) if len(d) else 0
                           for d in render_and_detect(pats, imaging, detect, seed=children[-1],
                                                      backgrounds=backgrounds, executor=pool)], float)
        b = (kept[half:].mean() - kept[:half].mean()) / n
        a = kept[:half].mean() - b * n
        calib = {"false_detections_a": float(a), "detected_per_true_b": float(b), "pilot_images": len(sizes)}
        est = (n - a) / b if b > 0 else np.nan
        if np.isfinite(est) and est >= 3:
            n_true = int(round(est * scale_n))
        else:
            warnings.append(f"the detector on simulated images gives {a:.0f} + {b:.2f} × true atoms: no true count "
                            f"reproduces the {n} observed; n_true = {n_true} used (no losses)")
    pts = sampler.sample(n_true, full, runs=int(nsim), seed=s_sims)
    detected = render_and_detect(list(pts), imaging, detect, seed=s_noise, backgrounds=backgrounds, executor=pool)
    curves, counts = [], []
    for d in detected:
        d = d[region.contains(d)] if len(d) else d
        counts.append(len(d))
        if len(d) < 2:
            raise WorkflowInputError(f"detector-aware null: a simulated image gave {len(d)} detection(s) in the "
                                     "window; the imaging estimate does not reproduce the observation")
        curves.append(summary_function(function, d, region, r, naive.correction).value)
    aware = envelope_test_from_curves(
        r, naive.observed if len(naive.r_nm) == len(r) else summary_function(function, xy_obs, region, r,
                                                                             naive.correction).value,
        np.array(curves), function=function, correction=naive.correction, null_model=name,
        null_params={**params, "n_true": n_true, "detector_aware": True, "edge_nm": float(edge_nm)}, n_points=n,
        window=naive.window,
        alpha=naive.alpha, theo=naive.theo if len(naive.r_nm) == len(r) else None, seed=naive.seed,
        details={"imaging": imaging.as_dict(), "detected_count_mean": float(np.mean(counts))})
    lo, hi = np.percentile(counts, [2.5, 97.5])
    if not lo <= n <= hi:
        warnings.append(f"the simulated images give {np.mean(counts):.0f} detections ({lo:.0f}–{hi:.0f}, 95 %) where the "
                        f"image gave {n}: the imaging estimate does not reproduce the observation, so the "
                        "detector-aware test is not valid for it")
    return DetectorAwareTest(naive, aware, imaging.as_dict(), int(n_true), counts, time.perf_counter() - t0,
                             warnings, calib, {"backgrounds": backgrounds, "workers": int(workers)})
