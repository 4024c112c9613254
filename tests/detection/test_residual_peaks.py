"""benchmarks/residual_peaks.py: the residual z map shows an atom the detection left out, and nothing once every
atom is drawn back (the measurement behind docs/detection.md, *Measured in session 16*)."""

import numpy as np
import pandas as pd


def _image(atoms, shape=(96, 96), bg=10.0, noise=0.05, seed=0):
    yy, xx = np.mgrid[: shape[0], : shape[1]]
    img = np.full(shape, bg)
    for x, y, inten, s in atoms:
        img += inten / (2 * np.pi * s * s) * np.exp(-((xx - x) ** 2 + (yy - y) ** 2) / (2 * s * s))
    return img + np.random.default_rng(seed).normal(0, noise, shape)


def _table(atoms):
    return pd.DataFrame(atoms, columns=["x_px", "y_px", "intensity", "sigma_px"])


def test_residual_shows_the_left_out_atom_only(load_benchmark):
    rp = load_benchmark("residual_peaks")
    atoms = [(30.0, 30.0, 60.0, 3.0), (62.0, 55.0, 60.0, 3.0), (40.0, 70.0, 60.0, 3.0)]
    img = _image(atoms)
    z, s0 = rp.residual_z(img, _table(atoms[:2]))
    assert s0 == 3.0
    xy, zc = rp._extrema(z, s0, np.array([a[:2] for a in atoms[:2]]), 4.0, 1)
    assert len(xy) >= 1
    best = xy[np.argmax(zc)]
    assert np.hypot(*(best - atoms[2][:2])) < 1.5 and zc.max() > 20
    z_all, _ = rp.residual_z(img, _table(atoms))
    _, z_left = rp._extrema(z_all, s0, np.array([a[:2] for a in atoms]), 4.0, 1)
    assert (z_left >= 6).sum() == 0
    assert np.abs(z_all).max() < 6  # the drawn-back Gaussians cancel the atoms themselves, not only far from them
