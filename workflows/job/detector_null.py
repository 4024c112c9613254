"""Detector-aware null model: null patterns seen through the same imaging and detection as the observation (nm, px).

A detector loses atoms closer than its resolution (it merges detections within ``merge_nm`` and needs ``min_sep_nm``
between atoms), misses faint ones and adds a few false ones. A null model that skips those losses compares a
*detected* pattern with *true* patterns: on completely random simulated patterns the detected Clark–Evans ratio
is about 1.16 instead of 0.98, so a naive test calls every sample repulsive. Here each null pattern is

1. drawn by the null model in the observation's window (the support mask), with ``n_true`` atoms — calibrated
   so the *detected* count matches the observed one: ``pilot`` images at n and 2n true atoms fit
   ``detected = a + b · true`` (false detections a, detection rate b). When no true count reproduces the
   observed one, or the observed count falls outside the simulated images' 95 % range, the result carries a
   warning and ``valid`` is False: the imaging estimate does not reproduce the observation;
2. rendered by the HAADF-STEM simulator (:func:`sacmap.detection.simulate.simulate_image`) at the observed
   image's pixel size and shape, on the observed support (vacuum where the observation had vacuum), with the
   dose, atom contrast and background estimated from the observed image (:func:`estimate_imaging`);
3. detected by the same detector with the same settings (the record's ``settings``), all images batched through
   the fully convolutional network;
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
    (electrons/nm², from the pixel noise), ``peak_pt`` (a Pt atom's peak above the carbon, simulator units, from
    the detected atoms), ``scale`` (observed units per simulator unit, from the support background), the
    ``support`` mask (True = carbon) and the raw measurements."""

    pixel_size_nm: float
    shape: tuple[int, int]
    dose_per_nm2: float
    peak_pt: float
    scale: float
    support: np.ndarray | None = None
    measured: dict = field(default_factory=dict)

    def simulator_kw(self) -> dict:
        return {"dose_per_nm2": self.dose_per_nm2, "peak_pt": self.peak_pt}

    def as_dict(self) -> dict:
        return {"pixel_size_nm": self.pixel_size_nm, "shape": list(self.shape), "dose_per_nm2": self.dose_per_nm2,
                "peak_pt": self.peak_pt, "scale": self.scale, "support_fraction":
                None if self.support is None else float(np.mean(self.support)), "measured": self.measured}


def _psf_sigma2_px(pixel_size_nm: float) -> float:
    from sacmap.detection.simulate import DEFAULTS, FWHM_TO_SIGMA

    s2_nm = (DEFAULTS["probe_fwhm_nm"] ** 2 + DEFAULTS["spread_fwhm_nm"] ** 2) * FWHM_TO_SIGMA**2
    return s2_nm / pixel_size_nm**2


def estimate_imaging(image, pixel_size_nm: float, atoms_xy_px, support=None, elements=None) -> ImagingEstimate:
    """Dose, atom contrast and background of an observed image, in the simulator's units.

    The simulator's image is ``dark + vacuum_level + carbon + atoms`` with shot noise of variance
    ``(signal − dark)/dose_px``; the observed image is taken as ``scale ×`` that. ``scale``: the median
    background on the support (atoms masked out to 0.35 nm) over the simulator's (``dark + vacuum + 1``);
    ``peak_pt``: the median peak height of the detected atoms above the local background (Gaussian-smoothed,
    σ = 0.5 nm, atoms masked out) over ``scale``, corrected for the pixel box of the PSF and divided by the
    element contrast ``(Z/78)^1.7`` when ``elements`` are given; ``dose_per_nm2``: ``(background − dark)/σ²``
    per pixel, σ the robust neighbour-difference pixel noise (in simulator units), over the pixel area. Values are
    clipped to 0.05–20 × the simulator's calibrated defaults (stated in ``measured``)."""
    from scipy import ndimage as ndi

    from sacmap.detection.simulate import DEFAULTS, relative_contrast

    img = np.asarray(image, dtype=float)
    if img.ndim != 2:
        raise WorkflowInputError(f"detector-aware null: image must be 2-D, got shape {img.shape}")
    px = float(pixel_size_nm)
    xy = np.asarray(atoms_xy_px, dtype=float).reshape(-1, 2)
    sup = np.ones(img.shape, bool) if support is None else np.asarray(support, bool)
    if sup.shape != img.shape:
        raise WorkflowInputError(f"detector-aware null: support {sup.shape} and image {img.shape} differ in shape")
    atom_mask = np.zeros(img.shape, bool)
    ij = np.rint(xy[:, ::-1]).astype(int)
    ok = (ij[:, 0] >= 0) & (ij[:, 0] < img.shape[0]) & (ij[:, 1] >= 0) & (ij[:, 1] < img.shape[1])
    atom_mask[ij[ok, 0], ij[ok, 1]] = True
    atom_mask = ndi.binary_dilation(atom_mask, iterations=max(1, int(round(0.35 / px))))
    bg_pix = sup & ~atom_mask
    if bg_pix.sum() < 100:
        raise WorkflowInputError("detector-aware null: fewer than 100 background pixels on the support")
    b_obs = float(np.median(img[bg_pix]))
    b_sim = DEFAULTS["dark_level"] + DEFAULTS["vacuum_level"] + 1.0
    if not b_obs > 0:
        raise WorkflowInputError(f"detector-aware null: background level {b_obs} is not positive")
    scale = b_obs / b_sim
    s = max(0.5 / px, 1.0)
    w = bg_pix.astype(float)
    local_bg = ndi.gaussian_filter(img * w, s) / np.maximum(ndi.gaussian_filter(w, s), 1e-6)
    smooth = ndi.gaussian_filter(img, 1.0)
    s2 = _psf_sigma2_px(px)
    if ok.sum():
        heights = (smooth - local_bg)[ij[ok, 0], ij[ok, 1]] / scale
        heights *= (s2 + 1.0 + 1.0 / 12.0) / s2  # the 1-px smoothing and the pixel box lower the peak
        if elements is not None:
            heights /= np.array([relative_contrast(str(e)) for e in np.asarray(elements)[ok]])
        peak = float(np.median(heights)) / ((s2) / (s2 + 1.0 / 12.0))
    else:
        peak = DEFAULTS["peak_pt"]
    d = np.diff(img, axis=1)
    both = bg_pix[:, 1:] & bg_pix[:, :-1]
    dd = d[both]
    sigma = float(1.4826 * np.median(np.abs(dd - np.median(dd))) / np.sqrt(2.0)) / scale
    dose_px = (b_sim - DEFAULTS["dark_level"]) / max(sigma**2, 1e-12)
    dose = dose_px / px**2

    def clip(v, ref):
        return float(np.clip(v, 0.05 * ref, 20 * ref))

    measured = {"background_observed": b_obs, "pixel_noise_sim_units": sigma, "peak_raw": float(peak),
                "dose_raw": float(dose),
                "n_atoms_used": int(ok.sum()), "clipped_to": "0.05-20 x simulator defaults"}
    return ImagingEstimate(px, tuple(int(v) for v in img.shape), clip(dose, DEFAULTS["dose_per_nm2"]),
                           clip(peak, DEFAULTS["peak_pt"]), float(scale), sup, measured)


# ---------------------------------------------------------------------------------------------------- detector
def default_detector(settings: dict | None = None, model: str | None = None, batch: int = 8):
    """``detect(images, pixel_size_nm) -> [xy_nm (n, 2)]`` through the public detection entry point
    (:func:`sacmap.detection.pipeline.detect_images`) with the record's decoder ``settings`` (its JSON
    ``settings`` block: threshold, merge and separation distances, ...) and ``model`` (None: the pipeline's
    default), images batched through the network."""
    import dataclasses

    from sacmap.detection import pipeline

    st = dict(settings or {})
    kw: dict = {"batch": batch}
    if st:
        known = {f.name for f in dataclasses.fields(pipeline.Settings)}
        kw["settings"] = pipeline.Settings(**{k: v for k, v in st.items() if k in known})
    if "threshold" in st:
        kw["threshold"] = st["threshold"]
    if model is not None:
        kw["model"] = model

    def detect(images, pixel_size_nm):
        res = pipeline.detect_images(list(images), pixel_size_nm=pixel_size_nm, **kw)
        return [r.atoms[["x_nm", "y_nm"]].to_numpy(dtype=float) for r in res]

    return detect


def render_and_detect(patterns_nm, imaging: ImagingEstimate, detect, seed=0, chunk: int = 16) -> list[np.ndarray]:
    """Render every pattern (nm) with the simulator at the observed imaging settings and detect it; the detected
    positions (nm) of each. Images are made and detected ``chunk`` at a time (memory), noise seeds from ``seed``."""
    from sacmap.detection.simulate import simulate_image

    ss = seed if isinstance(seed, np.random.SeedSequence) else np.random.SeedSequence(seed)
    seeds = [int(c.generate_state(1)[0]) for c in ss.spawn(len(patterns_nm))]
    sup = None if imaging.support is None else imaging.support.astype(float)
    out: list[np.ndarray] = []
    for s in range(0, len(patterns_nm), chunk):
        imgs = [simulate_image(p, shape=imaging.shape, pixel_size_nm=imaging.pixel_size_nm, seed=k, support=sup,
                               **imaging.simulator_kw())[0] * imaging.scale
                for p, k in zip(patterns_nm[s:s + chunk], seeds[s:s + chunk])]
        out.extend(detect(imgs, imaging.pixel_size_nm))
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

    @property
    def valid(self) -> bool:
        """False when the simulated images do not reproduce the observed count (see ``warnings``)."""
        return not self.warnings

    def as_dict(self, curves: bool = False) -> dict:
        return {"naive": self.naive.as_dict(curves), "detector_aware": self.aware.as_dict(curves),
                "imaging": self.imaging, "n_true": self.n_true, "n_observed": self.naive.n_points,
                "detected_count_mean": float(np.mean(self.detected_counts)),
                "detected_count_range": [int(min(self.detected_counts)), int(max(self.detected_counts))],
                "calibration": self.calibration, "valid": self.valid, "warnings": self.warnings,
                "seconds": self.seconds}

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
                        correction: str | None = None, r_nm=None, pilot: int = 8, progress: bool = False,
                        edge_nm: float = 0.3, **null_params) -> DetectorAwareTest:
    """Envelope tests of a detected ``observation`` against ``null``, naive and after the detector's losses.

    ``image``: the observed image (2-D array; raw units) the observation was detected in (pixel size
    ``observation.pixel_size_nm``); ``detect``: ``detect(images, pixel_size_nm) -> [xy_nm]`` (default
    :func:`default_detector` with ``settings``, the record's decoder settings); ``imaging``: simulator settings
    (default :func:`estimate_imaging` of the image, the observed atoms and the window's support mask); ``pilot``
    images calibrate the true count so the detected count matches the observed one. Both tests use the window
    less a band of ``edge_nm`` (0.3 nm) along its boundary: the simulator's vacuum edge makes the detector report
    false atoms right on the support boundary (median 0.12 nm from it on image 053's imaging), which the real
    detections do not have; true null atoms are still drawn on the whole support."""
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
                           for d in render_and_detect(pats, imaging, detect, seed=children[-1])], float)
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
    detected = render_and_detect(list(pts), imaging, detect, seed=s_noise)
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
                             warnings, calib)
