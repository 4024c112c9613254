"""Simulator: calibration statistics against the real-image targets, seeds, geometry, pixel size, TIFF I/O."""

from __future__ import annotations

import numpy as np
import pytest

from sacmap.detection.errors import DetectionInputError
from sacmap.detection.simulate import (
    REFERENCE_PIXEL_NM,
    random_positions,
    relative_contrast,
    save_tiff,
    simulate_image,
    simulate_sample,
    support_mask,
)
from sacmap.detection.simulate_stats import image_statistics


@pytest.fixture(scope="module")
def sim_stats():
    """Statistics of three default simulated images (0.3 Pt/nm², with vacuum, like the real ones)."""
    rows = []
    for i in range(3):
        img, truth, _ = simulate_sample(0.3, seed=[7, i], vacuum_fraction=0.35, margin_nm=0.3)
        rows.append(image_statistics(img, truth[["x_px", "y_px"]].to_numpy(), REFERENCE_PIXEL_NM))
    return {k: float(np.median([r[k] for r in rows])) for k in rows[0]}


def test_calibration_within_targets(sim_stats):
    # issue targets: atom peak / local background ≈ 1.07–1.21, pixel noise ≈ 8 %, mid-scale texture ≈ 3.5 %
    assert 1.07 <= sim_stats["peak_ratio_median"] <= 1.21
    assert 1.03 <= sim_stats["peak_ratio_p10"] and sim_stats["peak_ratio_p90"] <= 1.30
    assert 0.07 <= sim_stats["noise"] <= 0.095
    assert 0.028 <= sim_stats["texture"] <= 0.042
    # atoms as wide as in the real images (measured 0.28 nm median), vacuum about half the support level
    assert 0.22 <= sim_stats["atom_fwhm_nm"] <= 0.34
    assert 0.4 <= sim_stats["vacuum_over_support"] <= 0.65
    # real images (16): vacuum texture 3.7–7.6 %, atom SNR 3.7–5.0, atom-signal p90/p10 1.6–3.0
    assert 0.037 <= sim_stats["vacuum_texture"] <= 0.076
    assert 3.7 <= sim_stats["atom_snr"] <= 5.0
    assert 1.6 <= sim_stats["atom_signal_p90_over_p10"] <= 3.0


def test_real_image_statistics_match(shared_dir, sim_stats):
    """The same statistics on two real images are close to the simulated ones."""
    import pandas as pd
    import tifffile

    root = shared_dir / "data" / "ptnc-stem"
    for stem in ("051", "080"):
        img = tifffile.imread(next((root / "images").glob(f"{stem}_*.tif"))).astype(float)
        lab = pd.read_csv(root / "labels" / f"{stem}_Results.csv")
        st = image_statistics(img, lab[["X", "Y"]].to_numpy(float), REFERENCE_PIXEL_NM)
        assert abs(st["peak_ratio_median"] - sim_stats["peak_ratio_median"]) < 0.06
        assert abs(st["noise"] - sim_stats["noise"]) < 0.025
        assert abs(st["texture"] - sim_stats["texture"]) < 0.012
        assert abs(st["atom_snr"] - sim_stats["atom_snr"]) < 0.8


def test_seed_reproduces_and_differs():
    xy = random_positions(1.0, 15.0, seed=3)
    a1, t1 = simulate_image(xy, seed=5)
    a2, t2 = simulate_image(xy, seed=5)
    a3, _ = simulate_image(xy, seed=6)
    assert a1.dtype == np.float32 and a1.shape == (512, 512)
    assert np.array_equal(a1, a2) and t1.equals(t2)
    assert not np.array_equal(a1, a3)
    assert np.array_equal(random_positions(1.0, 15.0, seed=3), xy)
    assert not np.array_equal(random_positions(1.0, 15.0, seed=4), xy)
    i1, tr1, s1 = simulate_sample(2.0, seed=1, vacuum_fraction=0.3, dimer_fraction=0.2)
    i2, tr2, s2 = simulate_sample(2.0, seed=1, vacuum_fraction=0.3, dimer_fraction=0.2)
    assert np.array_equal(i1, i2) and tr1.equals(tr2) and np.array_equal(s1, s2)


def test_truth_columns_and_units():
    xy = np.array([[1.0, 2.0], [7.5, 3.25], [20.0, 1.0]])  # last one outside a 15 nm field
    img, truth = simulate_image(xy, elements=["Pt", "Pd", "Ni"], seed=0)
    assert list(truth.columns) == ["x_px", "y_px", "x_nm", "y_nm", "element", "intensity"]
    assert len(truth) == 2 and list(truth.element) == ["Pt", "Pd"]
    np.testing.assert_allclose(truth.x_px, truth.x_nm / REFERENCE_PIXEL_NM)
    np.testing.assert_allclose(truth[["x_nm", "y_nm"]].to_numpy(), xy[:2])


@pytest.mark.parametrize("density", [0.3, 1.0, 8.0])
def test_random_positions_density_and_spacing(density):
    xy = random_positions(density, (15.0, 12.0), seed=1, min_dist_nm=0.25)
    assert len(xy) == round(density * 15 * 12)
    assert xy[:, 0].min() >= 0 and xy[:, 0].max() <= 15 and xy[:, 1].max() <= 12
    d = np.hypot(*(xy[:, None, :] - xy[None, :, :]).transpose(2, 0, 1))
    np.fill_diagonal(d, np.inf)
    assert d.min() >= 0.25 - 1e-9


def test_dimers_and_trimers():
    xy, g = random_positions(
        1.0,
        15.0,
        seed=2,
        dimer_fraction=0.4,
        trimer_fraction=0.3,
        dimer_nm=0.22,
        min_dist_nm=0.5,
        return_groups=True,
    )
    sizes = np.bincount(g)
    n = len(xy)
    assert abs((sizes == 2).sum() * 2 / n - 0.4) < 0.03 and abs((sizes == 3).sum() * 3 / n - 0.3) < 0.03
    for gid in np.flatnonzero(sizes > 1):
        p = xy[g == gid]
        dd = np.hypot(*(p[:, None] - p[None]).transpose(2, 0, 1))[np.triu_indices(len(p), 1)]
        np.testing.assert_allclose(dd, 0.22, atol=1e-9)
    # separate units stay min_dist apart
    d = np.hypot(*(xy[:, None, :] - xy[None, :, :]).transpose(2, 0, 1))
    other = g[:, None] != g[None, :]
    assert d[other].min() >= 0.5 - 1e-9


def test_z_contrast_and_probe_noiseless():
    """Noiseless peaks above the flat support scale as Z^1.7 and have the configured width."""
    xy = np.array([[100, 100], [300, 100], [100, 300]]) * REFERENCE_PIXEL_NM  # on pixel centres
    flat = dict(noise=False, thickness_sd=0.0, texture_sd=0.0, vacuum_texture_sd=0.0, peak_sd=0.0)
    img, _ = simulate_image(xy, elements=["Pt", "Pd", "Ni"], seed=0, **flat)
    bg, _ = simulate_image(np.empty((0, 2)), seed=0, **flat)
    ex = img - bg
    peaks = [ex[int(round(y / REFERENCE_PIXEL_NM)), int(round(x / REFERENCE_PIXEL_NM))] for x, y in xy]
    np.testing.assert_allclose(
        np.array(peaks) / peaks[0], [1.0, relative_contrast("Pd"), relative_contrast("Ni")], rtol=0.02
    )
    np.testing.assert_allclose(relative_contrast("Pd"), (46 / 78) ** 1.7)
    # FWHM: half maximum at ~0.5·sqrt(0.10² + 0.26²) nm from the centre
    r0 = c0 = 100
    prof = ex[r0, c0 : c0 + 20] / ex[r0, c0]
    half = np.interp(0.5, prof[::-1], np.arange(20)[::-1]) * REFERENCE_PIXEL_NM
    assert abs(2 * half - np.hypot(0.10, 0.26)) < 0.01


def test_pixel_size_aware():
    """The same sample at twice the pixel size: same atom width in nm, same integrated atom intensity."""
    flat = dict(noise=False, thickness_sd=0.0, texture_sd=0.0, vacuum_texture_sd=0.0, peak_sd=0.0)
    out = {}
    for px, n in ((0.03, 256), (0.06, 128)):
        img, _ = simulate_image([[3.84, 3.84]], shape=(n, n), pixel_size_nm=px, seed=0, **flat)
        bg, _ = simulate_image(np.empty((0, 2)), shape=(n, n), pixel_size_nm=px, seed=0, **flat)
        out[px] = (img - bg).astype(float)
    integ = {px: a.sum() * px * px for px, a in out.items()}
    assert abs(integ[0.03] / integ[0.06] - 1) < 0.02
    # shot noise grows as the pixel shrinks at fixed dose per nm²
    sm = {
        px: simulate_image(
            np.empty((0, 2)),
            shape=(128, 128),
            pixel_size_nm=px,
            seed=1,
            thickness_sd=0,
            texture_sd=0,
            line_noise=0,
        )[0]
        for px in (0.03, 0.06)
    }
    n1, n2 = (np.std(np.diff(sm[p], axis=1)) for p in (0.03, 0.06))
    assert 1.7 < n1 / n2 < 2.3


def test_vacuum_region():
    img, truth, sup = simulate_sample(1.0, seed=4, vacuum_fraction=0.4)
    assert 0.5 < sup.mean() < 0.7
    rows, cols = np.rint(truth.y_px).astype(int), np.rint(truth.x_px).astype(int)
    assert sup[rows, cols].all()  # atoms only on the support
    assert img[~sup].mean() < 0.7 * img[sup].mean()
    assert len(truth) == pytest.approx(1.0 * sup.mean() * (512 * REFERENCE_PIXEL_NM) ** 2, rel=0.05)
    assert support_mask((64, 64), vacuum_fraction=0.0).min() == 1.0


def test_save_tiff_round_trip(tmp_path):
    import tifffile

    img, _ = simulate_image(random_positions(0.5, 3.0, seed=0), shape=(100, 120), pixel_size_nm=0.025, seed=0)
    p = save_tiff(tmp_path / "a.tif", img, 0.025)
    with tifffile.TiffFile(p) as t:
        back = t.pages[0].asarray()
        assert t.imagej_metadata["unit"] == "nm"
        xr = t.pages[0].tags["XResolution"].value
        assert abs(xr[1] / xr[0] - 0.025) < 1e-6
        assert abs(float(t.pages[0].tags[65009].value) - 0.025) < 1e-12
    assert np.array_equal(back, img)
    try:
        from sacmap.detection.io import read_image
    except ImportError:
        return
    arr, px, _ = read_image(p)
    assert abs(px - 0.025) < 1e-6 and arr.shape == (100, 120)


def test_bad_inputs():
    with pytest.raises(DetectionInputError, match="unknown element"):
        simulate_image([[1.0, 1.0]], elements="Xx")
    with pytest.raises(DetectionInputError, match="symbols for"):
        simulate_image([[1.0, 1.0], [2.0, 2.0]], elements=["Pt"])
    with pytest.raises(DetectionInputError, match="unknown option"):
        simulate_image([[1.0, 1.0]], probe_nm=0.1)
    with pytest.raises(DetectionInputError, match="pixel_size"):
        simulate_image([[1.0, 1.0]], pixel_size_nm=0)
    with pytest.raises(DetectionInputError, match="finite"):
        simulate_image([[np.nan, 1.0]])
    with pytest.raises(DetectionInputError, match="cannot place"):
        random_positions(30.0, 5.0, seed=0, min_dist_nm=0.3)
    with pytest.raises(DetectionInputError):
        random_positions(1.0, 5.0, seed=0, dimer_fraction=0.8, trimer_fraction=0.5)
    with pytest.raises(DetectionInputError):
        support_mask((64, 64), vacuum_fraction=1.0)


def test_dimer_resolution_follows_psf():
    """A 0.22 nm dimer: two maxima with a dip under a bare 0.1 nm probe, one elongated blob at the calibrated
    0.28 nm effective width (Sparrow limit 2σ ≈ 0.24 nm)."""
    px = REFERENCE_PIXEL_NM
    xy = np.array([[100 * px, 100 * px], [100 * px + 0.22, 100 * px]])
    flat = dict(noise=False, thickness_sd=0.0, texture_sd=0.0, vacuum_texture_sd=0.0, peak_sd=0.0)
    for spread, two_peaks in ((0.0, True), (0.26, False)):
        img, _ = simulate_image(xy, shape=(200, 200), seed=0, spread_fwhm_nm=spread, **flat)
        row = img[100, 90:120].astype(float)
        maxima = np.flatnonzero((row[1:-1] > row[:-2]) & (row[1:-1] > row[2:]))
        assert (len(maxima) == 2) is two_peaks


def test_dataset_elements_list_and_none_keywords(tmp_path):
    """simulate_dataset: a list of symbols is drawn in equal shares (as the dict of equal weights), and keywords
    given as None keep the calibrated defaults; the files are written atomically."""
    import pandas as pd

    from sacmap.detection.simulate import TRUTH_COLUMNS, simulate_dataset

    kw = dict(shape=(96, 96), density_nm2=3.0, seed=5)
    a = simulate_dataset(tmp_path / "a", 1, elements=["Ni", "Pt"], spread_fwhm_nm=None, peak_pt=None, **kw)
    b = simulate_dataset(tmp_path / "b", 1, elements={"Ni": 1.0, "Pt": 1.0}, **kw)
    assert a[0].read_bytes() == b[0].read_bytes()
    ta, tb = (p.with_suffix(".csv").read_text() for p in (a[0], b[0]))
    assert ta == tb and ta.splitlines()[0] == ",".join(TRUTH_COLUMNS)
    assert {"Ni", "Pt"} <= set(pd.read_csv(a[0].with_suffix(".csv"))["element"])
    assert sorted(p.name for p in (tmp_path / "a").iterdir()) == ["sim_000.csv", "sim_000.tif", "sim_000_sim.json"]


def test_true_intensity_is_the_atom_integral_at_any_pixel_size():
    """``truth.intensity`` is the integral of the atom's signal over the background (image units · px²): the
    noiseless image with an atom minus the one without, summed; ∝ Z^1.7 and ∝ 1/pixel area."""
    flat = dict(noise=False, peak_sd=0.0, texture_sd=0.0, vacuum_texture_sd=0.0, thickness_sd=0.0)
    for px in (0.02, 0.04):
        xy = np.array([[1.5, 1.5], [1.5, 3.6]])
        img, truth = simulate_image(xy, shape=(256, 256), pixel_size_nm=px, elements=["Pt", "Ni"], **flat)
        bare, _ = simulate_image(np.empty((0, 2)), shape=(256, 256), pixel_size_nm=px, **flat)
        half = int(0.9 / px)
        for (x, y), i_true in zip(truth[["x_px", "y_px"]].to_numpy(), truth.intensity):
            r, c = int(round(y)), int(round(x))
            measured = float((img - bare)[r - half : r + half, c - half : c + half].sum())
            assert measured == pytest.approx(i_true, rel=0.01)
        assert truth.intensity[1] / truth.intensity[0] == pytest.approx((28 / 78) ** 1.7, rel=1e-6)
        assert truth.intensity[0] * px**2 == pytest.approx(0.36 * 2 * np.pi * ((0.1**2 + 0.26**2) / 8 / np.log(2)),
                                                           rel=0.01)


def _nnd(xy):
    from scipy.spatial import cKDTree

    return cKDTree(xy).query(xy, k=2)[0][:, 1]


def test_arrangements_random_hardcore_multimer():
    """``random`` is Poisson (Clark–Evans ≈ 1, pairs closer than 0.2 nm at 8/nm²), ``hardcore`` keeps 0.25 nm,
    ``multimer`` has 30 % dimers + 30 % trimers with every bond in 0.20–0.26 nm and units ≥ 0.25 nm apart."""
    from sacmap.detection.simulate import ARRANGEMENTS

    field = 512 * REFERENCE_PIXEL_NM
    _, rnd, _ = simulate_sample(8.0, arrangement="random", seed=0)
    nnd = _nnd(rnd[["x_nm", "y_nm"]].to_numpy())
    assert len(rnd) == round(8 * field**2)
    ce = nnd.mean() / (0.5 / np.sqrt(len(rnd) / field**2))
    assert 0.95 < ce < 1.08 and (nnd < 0.1).mean() > 0.1  # Poisson: P(NND < 0.1) = 1 - exp(-8π·0.01) ≈ 0.22
    _, hc, _ = simulate_sample(8.0, arrangement="hardcore", seed=0)
    assert _nnd(hc[["x_nm", "y_nm"]].to_numpy()).min() >= 0.25 - 1e-9
    _, mm, _ = simulate_sample(6.0, arrangement="multimer", seed=0)
    sizes = mm.groupby("unit").size()
    n = len(mm)
    assert abs(sizes[sizes == 2].sum() / n - 0.3) < 0.02 and abs(sizes[sizes == 3].sum() / n - 0.3) < 0.02
    xy, unit = mm[["x_nm", "y_nm"]].to_numpy(), mm.unit.to_numpy()
    d = np.hypot(*(xy[:, None, :] - xy[None, :, :]).transpose(2, 0, 1))
    np.fill_diagonal(d, np.inf)
    same = unit[:, None] == unit[None, :]
    assert d[~same].min() >= 0.25 - 1e-9
    # within a unit: each atom's closest partner is a bond of 0.20-0.26 nm; no two atoms of a unit < 0.20 nm
    intra = np.where(same, d, np.inf)
    multi = np.isfinite(intra.min(1))
    assert intra.min(1)[multi].min() >= 0.20 - 1e-6 and intra.min(1)[multi].max() <= 0.26 + 1e-6
    # trimers span compact to linear: the longest side goes from ~0.2 to ~0.5 nm
    longest = [np.max(np.where(np.isfinite(intra[unit == u][:, unit == u]), intra[unit == u][:, unit == u], 0))
               for u in sizes[sizes == 3].index]
    assert min(longest) < 0.3 and max(longest) > 0.45
    assert set(ARRANGEMENTS) == {"random", "hardcore", "multimer"}
    # an explicit keyword overrides the arrangement
    _, t, _ = simulate_sample(1.0, arrangement="multimer", trimer_fraction=0.0, seed=0)
    assert t.groupby("unit").size().max() == 2
    with pytest.raises(DetectionInputError, match="arrangement"):
        simulate_sample(1.0, arrangement="lattice")
    with pytest.raises(DetectionInputError, match="dimer_nm"):
        random_positions(1.0, 5.0, dimer_fraction=0.5, dimer_nm=(0.3, 0.2))


def test_draw_conditions_spans_the_ranges_and_reproduces(tmp_path):
    import json

    from sacmap.detection.simulate import CONDITION_RANGES, METALS, draw_conditions, simulate_dataset

    draws = [draw_conditions(s) for s in range(200)]
    assert draw_conditions(7) == draw_conditions(7) and draw_conditions(7) != draw_conditions(8)
    for key in ("density_nm2", "pixel_size_nm", "spread_fwhm_nm"):
        v = np.array([d[key] for d in draws])
        lo, hi = CONDITION_RANGES[key]
        assert v.min() >= lo and v.max() <= hi and v.min() < lo + 0.1 * (hi - lo) and v.max() > hi - 0.1 * (hi - lo)
    assert {d["arrangement"] for d in draws} == {"random", "hardcore", "multimer"}
    singles = {d["elements"] for d in draws if isinstance(d["elements"], str)}
    assert singles == set(METALS) and any(isinstance(d["elements"], dict) and len(d["elements"]) == 3 for d in draws)
    paths = simulate_dataset(tmp_path, 2, randomise=True, seed=3, shape=(96, 96))
    meta = json.loads((tmp_path / "sim_001_sim.json").read_text())
    from sacmap.detection.io import read_image

    assert read_image(paths[1])[1] == pytest.approx(meta["pixel_size_nm"], rel=1e-6)
    img, truth, _ = simulate_sample(shape=(96, 96), seed=np.random.default_rng([3, 1]),
                                    **{k: meta[k] for k in draw_conditions(0)})
    assert len(truth) == meta["n_atoms"]
    import tifffile

    np.testing.assert_array_equal(tifffile.imread(paths[1]), img)


def test_cli_simulate_arrangement_and_randomise(tmp_path):
    import pandas as pd

    from sacmap.workflows.cli import main

    assert main(["detect", "simulate", "-o", str(tmp_path / "m"), "--arrangement", "multimer", "--bond-nm",
                 "0.21,0.25", "--density", "3", "--size", "128", "--dose", "1e5"]) == 0
    t = pd.read_csv(tmp_path / "m" / "sim_000.csv")
    assert list(t.columns) == ["x_px", "y_px", "x_nm", "y_nm", "element", "intensity", "unit"]
    assert t.groupby("unit").size().max() == 3
    assert main(["detect", "simulate", "-o", str(tmp_path / "r"), "--randomise", "--size", "64", "--n-images",
                 "2"]) == 0
    assert len(list((tmp_path / "r").glob("*_sim.json"))) == 2
    assert main(["detect", "simulate", "-o", str(tmp_path / "x"), "--bond-nm", "0.3,0.2"]) == 2


@pytest.mark.parametrize("kw", [dict(), dict(vacuum_fraction=0.3, noise=False), dict(line_jitter_px=0.2)])
def test_background_path_is_exactly_the_full_simulation(kw):
    """simulate_background + simulate_image(background=...) with the same seed is the full simulation, bit for bit;
    with another seed the image keeps the background and draws its own atoms' spread and noise."""
    from sacmap.detection.simulate import simulate_background

    xy = random_positions(1.0, 7.0, seed=1)
    sup = np.ones((240, 200))
    sup[:60] = 0.0
    for support in (None, sup):
        full = simulate_image(xy, shape=(240, 200), seed=5, support=support, **kw)[0]
        bg = simulate_background(shape=(240, 200), seed=5, support=support,
                                 **{k: v for k, v in kw.items() if k != "noise"})  # noise is not a field keyword
        fast = simulate_image(xy, shape=(240, 200), seed=5, background=bg, **kw)[0]
        assert np.array_equal(full, fast)
        other = simulate_image(xy, shape=(240, 200), seed=6, background=bg, **kw)[0]
        assert not np.array_equal(other, fast)
    # noise-free and atom-free, the image is the background itself (+ the dark level), whatever the seed
    fields = {k: v for k, v in kw.items() if k != "noise"}
    empty = [simulate_image(np.empty((0, 2)), shape=(240, 200), seed=s, background=bg, noise=False, **fields)[0]
             for s in (1, 2)]
    assert np.array_equal(empty[0], empty[1])
    assert np.allclose(empty[0], bg.signal + 0.30, atol=1e-6)


def test_background_must_match_the_image():
    from sacmap.detection.simulate import simulate_background

    bg = simulate_background(shape=(64, 64), seed=0, texture_sd=0.03)
    with pytest.raises(DetectionInputError, match="texture_sd"):
        simulate_image(np.zeros((1, 2)), shape=(64, 64), seed=0, background=bg)
    with pytest.raises(DetectionInputError, match="shape"):
        simulate_image(np.zeros((1, 2)), shape=(64, 80), seed=0, background=bg, texture_sd=0.03)
    with pytest.raises(DetectionInputError, match="nm/px"):
        simulate_image(np.zeros((1, 2)), shape=(64, 64), pixel_size_nm=0.05, seed=0, background=bg, texture_sd=0.03)
    with pytest.raises(DetectionInputError, match="Background"):
        simulate_image(np.zeros((1, 2)), shape=(64, 64), seed=0, background=np.ones((64, 64)))
    with pytest.raises(DetectionInputError, match="unknown"):
        simulate_background(shape=(64, 64), dose=1.0)


def test_fit_imaging_recovers_the_simulator_settings():
    """Settings away from the defaults, recovered by matching image_statistics of simulations to the image. (Without
    vacuum the film's texture, which the simulator adds on the support too, is scaled with the carbon texture:
    only their sum is seen, so the truth keeps the defaults' ratio of the two.)"""
    from sacmap.detection.simulate import DEFAULTS
    from sacmap.detection.simulate_stats import fit_imaging

    xy = random_positions(0.8, 10.0, seed=2, margin_nm=0.4)
    film = DEFAULTS["vacuum_texture_sd"] * 0.03 / DEFAULTS["texture_sd"]
    true = dict(dose_per_nm2=1.5e5, peak_pt=0.5, texture_sd=0.03, spread_fwhm_nm=0.20, thickness_sd=0.15,
                vacuum_texture_sd=film)
    shape = (342, 342)
    image = simulate_image(xy, shape=shape, seed=9, **true)[0] * 250.0
    f = fit_imaging(image, xy / REFERENCE_PIXEL_NM, REFERENCE_PIXEL_NM, support=np.ones(shape, bool), seed=1)
    p = f["params"]
    assert set(f["fitted"]) == {"dose_per_nm2", "peak_pt", "texture_sd", "thickness_sd", "spread_fwhm_nm"}
    assert p["dose_per_nm2"] == pytest.approx(true["dose_per_nm2"], rel=0.15)
    assert p["peak_pt"] == pytest.approx(true["peak_pt"], rel=0.15)
    assert p["texture_sd"] == pytest.approx(true["texture_sd"], rel=0.3)
    assert p["vacuum_texture_sd"] / p["texture_sd"] == pytest.approx(film / 0.03, rel=1e-6)
    assert p["thickness_sd"] == pytest.approx(true["thickness_sd"], rel=0.3)
    assert p["spread_fwhm_nm"] == pytest.approx(true["spread_fwhm_nm"], abs=0.04)
    assert f["scale"] == pytest.approx(250.0, rel=0.05)
    for k in ("noise", "atom_signal_median", "texture"):  # the fitted simulation has the image's statistics
        assert f["simulated"][k] == pytest.approx(f["observed"][k], rel=0.1)
    with pytest.raises(DetectionInputError, match="cannot fit"):
        fit_imaging(image, xy / REFERENCE_PIXEL_NM, REFERENCE_PIXEL_NM, fit=("dose",))


def test_film_map_follows_the_observed_film():
    from sacmap.detection.simulate_stats import film_map

    sup = support_mask((200, 200), vacuum_fraction=0.3, seed=4) > 0.5
    ramp = np.linspace(0.5, 1.5, 200)[:, None] * np.ones((1, 200))
    image = np.where(sup, 100.0 + 200.0 * ramp, 100.0)
    m = film_map(image, np.empty((0, 2)), REFERENCE_PIXEL_NM, sup)
    assert m.min() == 0.0 and m.max() == 1.0
    from scipy import ndimage as ndi

    deep = ndi.distance_transform_edt(~sup) * REFERENCE_PIXEL_NM > 1.5  # vacuum beyond 3 σ of the smoothing
    assert deep.sum() > 100 and np.all(m[deep] < 0.01)
    inner = sup & (np.abs(np.arange(200)[:, None] - 150) < 5)  # the map follows the film's gradient
    assert np.median(m[inner]) == pytest.approx(np.median(ramp[inner]) / np.percentile(ramp[sup], 99.5), rel=0.05)
    with pytest.raises(DetectionInputError, match="vacuum"):
        film_map(image, np.empty((0, 2)), REFERENCE_PIXEL_NM, np.ones((200, 200), bool))
