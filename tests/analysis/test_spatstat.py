"""Cross-check of the summary functions and Clark–Evans against spatstat 3.0 (R) on fixed patterns.

Two fixed patterns (seeded, so identical on every machine): 150 points in a 10 × 8 nm rectangle and 140 points in
a 7 × 6 nm support mask (0.05 nm pixels) with a circular hole of radius 1.25 nm; labels A/B for the cross types.
spatstat runs through ``Rscript`` (argument list, no shell) on the same points written to a temporary CSV.

Tolerances, and why they are not zero:
* K, L, K_ij on the rectangle (translate, isotropic, border for K): the same formulas → 1e-9 relative.
* pcf: spatstat smooths with ``density.default`` (binned FFT on 512 points), we sum the kernel over bins of h/40
  → 0.012 absolute.
* G (Kaplan–Meier), G_ij and F: spatstat's Kaplan–Meier and reduced-sample estimators work on its r grid (bins),
  ours on the exact distances; F uses a different raster of test points (spatstat 128 × 128, ours 128 on the long
  side) → 0.006–0.015 absolute (Hanisch G, which needs no binning: 0.001 on the rectangle). J = (1−G)/(1−F)
  amplifies both where F → 1: compared for r < 0.8 nm, 0.06 absolute.
* Border (reduced-sample) estimators count an atom at risk when its boundary distance is ≥ r; spatstat decides
  it per r bin, which moves single atoms/pairs at bin edges → 0.02 (G) and 0.06 relative (K_ij, r ≥ 0.5 nm).
* Mask windows: the set covariance is an FFT of the pixel mask rounded to whole-pixel shifts → 0.005 relative for
  translation-corrected K, L, K_ij. spatstat measures the boundary distance to the CENTRES of non-window pixels
  (hole pixels), we to the pixel EDGES, both from the distance map at the point's pixel (checked: within two
  pixels, 0.1 nm; ours smaller on the median), so censoring-based estimators differ more: 0.012 absolute for Hanisch G and F, 0.04 for
  Kaplan–Meier G (an atom whose censoring moves past its NND changes the product-limit at all larger r); border K only checked loosely (0.25
  relative, r ≥ 0.5 nm), as it is the most sensitive to the boundary distance.
* Clark–Evans: naive ratio 1e-9; Donnelly (rectangle only; spatstat refuses masks) 1e-4 (rounding of its
  constants); ``cdf`` (mean NND from the Kaplan–Meier G, what sacmap uses for masks with holes): spatstat
  integrates its G on its default r grid (to 0.99 nm on the mask, where G_km has not reached 1), we the exact
  product-limit: 0.01 relative on the rectangle, 0.06 on the mask; against the mean of spatstat's own G_km on
  the fine common grid 0.002 (rectangle) and 0.03 (mask: the boundary distances above).

Skipped when Rscript or spatstat is missing, unless ``SACMAP_SPATSTAT=1`` (CI installs Debian's r-cran-spatstat
and sets it): then a missing or failing R is a test failure.
"""

from __future__ import annotations

import os
import shutil
import subprocess
import tempfile
from pathlib import Path

import numpy as np
import pandas as pd
import pytest

from sacmap.analysis.spatial import summary as S
from sacmap.analysis.spatial.descriptors import descriptors
from sacmap.analysis.spatial.window import Region

REQUIRED = os.environ.get("SACMAP_SPATSTAT") == "1"

R_SCRIPT = r'''
suppressMessages(library(spatstat))
a <- commandArgs(trailingOnly=TRUE); d <- a[1]
pts <- read.csv(file.path(d,"points.csv")); par <- read.csv(file.path(d,"window.csv"))
if (par$kind[1] == "mask") {
  m <- as.matrix(read.csv(file.path(d,"mask.csv"), header=FALSE)) > 0
  p <- par$p[1]; W <- owin(mask=m, xrange=c(-p/2, (ncol(m)-0.5)*p), yrange=c(-p/2, (nrow(m)-0.5)*p))
} else W <- owin(c(par$x0[1], par$x1[1]), c(par$y0[1], par$y1[1]))
X <- ppp(pts$x, pts$y, window=W, marks=factor(pts$m))
rK <- scan(file.path(d,"rK.txt"), quiet=TRUE); rG <- scan(file.path(d,"rG.txt"), quiet=TRUE)
rect <- par$kind[1] != "mask"
kc <- if (rect) c("translate","isotropic","border") else c("translate","border")
K <- Kest(unmark(X), r=rK, correction=kc)
L <- Lest(unmark(X), r=rK, correction=kc)
g <- pcf(unmark(X), r=rK, correction=if (rect) c("translate","Ripley") else "translate", divisor="r")
G <- Gest(unmark(X), r=rG, correction=c("km","han","rs"))
F <- Fest(unmark(X), r=rG, correction=c("km","rs"))
J <- Jest(unmark(X), r=rG, correction=c("km","rs"))
Kx <- Kcross(X, "A", "B", r=rK, correction=kc)
Gx <- Gcross(X, "A", "B", r=rG, correction=c("km","han","rs"))
out <- data.frame(r=rK, K_trans=K$trans, K_border=K$border, L_trans=L$trans, pcf_trans=g$trans,
                  Kx_trans=Kx$trans, Kx_border=Kx$border)
if (rect) { out$K_iso <- K$iso; out$pcf_iso <- g$iso; out$Kx_iso <- Kx$iso }
write.csv(out, file.path(d,"K.csv"), row.names=FALSE)
write.csv(data.frame(r=rG, G_km=G$km, G_han=G$han, G_rs=G$rs, F_km=F$km, F_rs=F$rs, J_km=J$km, J_rs=J$rs,
  Gx_km=Gx$km, Gx_han=Gx$han, Gx_rs=Gx$rs), file.path(d,"G.csv"), row.names=FALSE)
ce <- clarkevans(unmark(X), correction=if (rect) c("none","Donnelly","cdf") else c("none","cdf"))
write.csv(data.frame(name=c(names(ce), paste0("b", seq_len(npoints(X)))),
                     value=c(as.numeric(ce), bdist.points(X))), file.path(d,"ce.csv"), row.names=FALSE)
'''

R_K = np.linspace(0.0, 2.0, 101)
R_G = np.linspace(0.0, 1.5, 301)


def _spatstat_available() -> str | None:
    if shutil.which("Rscript") is None:
        return "Rscript not found"
    p = subprocess.run(["Rscript", "-e", "suppressMessages(library(spatstat))"], capture_output=True, text=True,
                       timeout=120)
    return None if p.returncode == 0 else "R package spatstat not installed"


@pytest.fixture(scope="module")
def spatstat():
    why = _spatstat_available()
    if why is not None:
        if REQUIRED:
            pytest.fail(f"SACMAP_SPATSTAT=1 but {why}")
        pytest.skip(f"{why} (install r-cran-spatstat to run the cross-check)")

    def run(xy, lab, reg):
        with tempfile.TemporaryDirectory() as d:
            pd.DataFrame({"x": xy[:, 0], "y": xy[:, 1], "m": lab}).to_csv(f"{d}/points.csv", index=False)
            if reg.is_mask:
                pd.DataFrame({"kind": ["mask"], "p": [reg.pixel_size_nm]}).to_csv(f"{d}/window.csv", index=False)
                np.savetxt(f"{d}/mask.csv", reg.mask.astype(int), fmt="%d", delimiter=",")
            else:
                pd.DataFrame({"kind": ["rect"], "x0": [reg.x0], "x1": [reg.x1], "y0": [reg.y0],
                              "y1": [reg.y1]}).to_csv(f"{d}/window.csv", index=False)
            np.savetxt(f"{d}/rK.txt", R_K)
            np.savetxt(f"{d}/rG.txt", R_G)
            Path(f"{d}/s.R").write_text(R_SCRIPT)
            p = subprocess.run(["Rscript", f"{d}/s.R", d], capture_output=True, text=True, timeout=300)
            assert p.returncode == 0, f"spatstat script failed: {p.stderr[-2000:]}"
            ce = pd.read_csv(f"{d}/ce.csv")
            return (pd.read_csv(f"{d}/K.csv"), pd.read_csv(f"{d}/G.csv"),
                    dict(zip(ce["name"], ce["value"])))

    return run


def _rect_pattern():
    rng = np.random.default_rng(20261201)
    reg = Region.rectangle(10, 8)
    xy = reg.sample_uniform(150, rng)
    return xy, np.where(rng.random(150) < 0.4, "A", "B"), reg


def _mask_pattern():
    rng = np.random.default_rng(7)
    m = np.ones((120, 140), bool)
    yy, xx = np.mgrid[:120, :140]
    m[(yy - 60) ** 2 + (xx - 70) ** 2 < 25**2] = False
    reg = Region.from_mask(m, 0.05)
    xy = reg.sample_uniform(140, rng)
    return xy, np.where(rng.random(140) < 0.5, "A", "B"), reg


def _rel(a, b, r=None, r_min=0.2):
    a, b = np.asarray(a, float), np.asarray(b, float)
    sel = np.isfinite(a) & np.isfinite(b) & (np.abs(b) > 0)
    if r is not None:
        sel &= r >= r_min
    assert sel.sum() > 10
    return float(np.max(np.abs(a[sel] - b[sel]) / np.abs(b[sel])))


def _abs(a, b, r=None, r_max=None):
    a, b = np.asarray(a, float), np.asarray(b, float)
    sel = np.isfinite(a) & np.isfinite(b)
    if r_max is not None:
        sel &= r < r_max
    assert sel.sum() > 10
    return float(np.max(np.abs(a[sel] - b[sel])))


def test_rectangle_matches_spatstat(spatstat):
    xy, lab, reg = _rect_pattern()
    K, G, ce = spatstat(xy, lab, reg)
    for c, col in (("translate", "K_trans"), ("isotropic", "K_iso"), ("border", "K_border")):
        assert _rel(S.k_function(xy, reg, R_K, c).value, K[col], R_K) < 1e-9, c
    assert _rel(S.l_function(xy, reg, R_K).value, K["L_trans"], R_K) < 1e-9
    for c, col in (("translate", "pcf_trans"), ("isotropic", "pcf_iso")):
        assert _abs(S.pcf(xy, reg, R_K, c).value, K[col]) < 0.012, c
    for c, col in (("translate", "Kx_trans"), ("isotropic", "Kx_iso")):
        assert _rel(S.cross_k_function(xy, lab, "A", "B", reg, R_K, c).value, K[col], R_K) < 1e-9, c
    assert _rel(S.cross_k_function(xy, lab, "A", "B", reg, R_K, "border").value, K["Kx_border"], R_K, 0.5) < 0.06
    assert _abs(S.g_function(xy, reg, R_G, "km").value, G["G_km"]) < 0.006
    assert _abs(S.g_function(xy, reg, R_G, "hanisch").value, G["G_han"]) < 0.001
    assert _abs(S.g_function(xy, reg, R_G, "border").value, G["G_rs"]) < 0.02
    assert _abs(S.cross_g_function(xy, lab, "A", "B", reg, R_G, "km").value, G["Gx_km"]) < 0.015
    assert _abs(S.cross_g_function(xy, lab, "A", "B", reg, R_G, "hanisch").value, G["Gx_han"]) < 0.001
    for c, col in (("km", "F_km"), ("border", "F_rs")):
        assert _abs(S.f_function(xy, reg, R_G, c).value, G[col]) < 0.01, c
    for c, col in (("km", "J_km"), ("border", "J_rs")):
        assert _abs(S.j_function(xy, reg, R_G, c).value, G[col], R_G, 0.8) < 0.06, c
    d = descriptors(xy, reg)
    assert d["clark_evans_raw"] == pytest.approx(ce["naive"], rel=1e-9)
    assert d["clark_evans"] == pytest.approx(ce["Donnelly"], rel=1e-4)
    assert d["clark_evans_correction"] == "Donnelly"
    lam = len(xy) / reg.area_nm2
    assert S.km_mean_nnd_nm(xy, reg) / (0.5 / np.sqrt(lam)) == pytest.approx(ce["cdf"], rel=0.01)
    assert S.km_mean_nnd_nm(xy, reg) == pytest.approx(_stieltjes_mean(G["G_km"]), rel=0.002)


def test_mask_with_hole_matches_spatstat(spatstat):
    xy, lab, reg = _mask_pattern()
    assert reg.has_holes
    K, G, ce = spatstat(xy, lab, reg)
    assert _rel(S.k_function(xy, reg, R_K, "translate").value, K["K_trans"], R_K) < 0.005
    assert _rel(S.l_function(xy, reg, R_K).value, K["L_trans"], R_K) < 0.005
    assert _rel(S.cross_k_function(xy, lab, "A", "B", reg, R_K).value, K["Kx_trans"], R_K) < 0.005
    assert _rel(S.k_function(xy, reg, R_K, "border").value, K["K_border"], R_K, 0.5) < 0.25
    assert _abs(S.pcf(xy, reg, R_K).value, K["pcf_trans"]) < 0.012
    # boundary distances: both read a per-pixel distance map (the point's pixel, not its exact position), spatstat
    # to hole pixels' centres, we to their edges: within two pixels, ours never larger by more than rounding
    b_r = np.array([ce[f"b{k + 1}"] for k in range(len(xy))])
    diff = reg.distance_to_boundary(xy) - b_r
    assert np.all(np.abs(diff) <= 2 * reg.pixel_size_nm) and np.median(diff) < 0
    assert _abs(S.g_function(xy, reg, R_G, "km").value, G["G_km"]) < 0.04
    assert _abs(S.g_function(xy, reg, R_G, "hanisch").value, G["G_han"]) < 0.04
    assert _abs(S.f_function(xy, reg, R_G, "km").value, G["F_km"]) < 0.012
    assert _abs(S.j_function(xy, reg, R_G, "km").value, G["J_km"], R_G, 0.8) < 0.08
    assert _abs(S.cross_g_function(xy, lab, "A", "B", reg, R_G, "hanisch").value, G["Gx_han"]) < 0.04
    d = descriptors(xy, reg)
    assert d["clark_evans_raw"] == pytest.approx(ce["naive"], rel=1e-9)
    # a mask with a hole: no Donnelly correction; the Kaplan–Meier (spatstat 'cdf') ratio instead
    assert d["clark_evans_correction"] == "cdf (Kaplan-Meier mean NND)"
    assert d["clark_evans"] == pytest.approx(ce["cdf"], rel=0.06)
    assert d["nnd_mean_km_nm"] == pytest.approx(_stieltjes_mean(G["G_km"]), rel=0.03)


def _stieltjes_mean(g) -> float:
    """Mean of a distribution function given on R_G (midpoint rule)."""
    g = np.asarray(g, float)
    return float(np.sum(0.5 * (R_G[1:] + R_G[:-1]) * np.diff(g)) / (g[-1] - g[0]))
