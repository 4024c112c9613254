"""``sacmap sample``: the paper's point samplers (random, attractive, repulsive, DFT-biased) and the fit of the
DFT-biased sampler to observed coordinates. Lengths in nm, densities in atoms/nm², energies in eV."""

from __future__ import annotations

import argparse
from pathlib import Path

from sacmap.core.constants import MULTIMER_NM
from sacmap.workflows.cli.options import number, positive


def _common(sp) -> None:
    g = sp.add_mutually_exclusive_group(required=True)
    g.add_argument("--density", **number(float, lo=0, lo_open=True), help="atoms per nm² (of the region's area)")
    g.add_argument("--n-points", **number(int, lo=1), help="atoms per run")
    g.add_argument("--species", help="multi-species densities, e.g. Ni:2,Pd:1 (atoms/nm² each; sampled "
                   "independently, as in the paper)")
    sp.add_argument("--region", default="10,10", help="W,H or X0,Y0,X1,Y1 in nm (default 10,10: the paper's)")
    sp.add_argument("--runs", **number(int, lo=1), default=40, help="independent runs (default 40)")
    sp.add_argument("--seed", **number(int, lo=0), default=0, help="random seed (default 0)")
    sp.add_argument("--multimer-nm", **number(float, lo=0, lo_open=True), default=MULTIMER_NM, help="multimer threshold for the statistics "
                    f"in nm (default {MULTIMER_NM})")
    sp.add_argument("-o", "--outdir", type=Path, default=None, help="output folder (default sample_<model>)")


def register(subparsers) -> None:
    p = subparsers.add_parser("sample", help="point samplers of the paper and the fit of the DFT-biased one",
                              description="Sample metal-centre coordinates under random, attractive, repulsive "
                              "or DFT-biased rules; writes coords.csv, stats.csv (descriptors per run) and "
                              "summary.json. 'fit' fits the DFT-biased sampler to observed coordinates.")
    sub = p.add_subparsers(dest="sample_command", metavar="MODEL", required=True)
    s = sub.add_parser("random", help="uniform points")
    _common(s)
    s = sub.add_parser("attractive", help="two-stage: first points, then the rest in boxes around them")
    _common(s)
    s.add_argument("--first-fraction", **number(float, lo=0, lo_open=True, hi=1), default=0.125,
                   help="share of points in stage 1 (default 0.125: the paper's 50 of 400)")
    s.add_argument("--box-nm", **number(float, lo=0, lo_open=True), default=1.0, help="side of the stage-2 box in nm (default 1)")
    s = sub.add_parser("repulsive", help="accept a proposal when R + C < NN(d)")
    _common(s)
    s.add_argument("--c-nm", **number(float, lo=0), default=0.2, help="C in nm (default 0.2, the paper's)")
    s = sub.add_parser("dft", help="DFT-biased probability field (Rayleigh NND term × exp(-ΔE/kT))")
    _common(s)
    s.add_argument("--potential", type=Path, default=None, help="site_site_potential.csv (Å, eV)")
    s.add_argument("--site-kinds", default=None, help="curve of the potential to use (default: the only one, "
                   "or the lowest energy of all kinds at each separation)")
    s.add_argument("--sigma-nm", **number(float, lo=0, lo_open=True), default=None, help="Rayleigh scale σ in nm (default: Poisson)")
    s.add_argument("--kT-eV", **number(float, lo=0, lo_open=True), default=None, help="kT in eV (default: no energy term)")
    s.add_argument("--params", type=Path, default=None, help="fit.json from 'sacmap sample fit' (σ/σ₀ and kT)")
    s.add_argument("--grid-nm", **number(float, lo=0, lo_open=True), default=None, help="field grid spacing in nm (default σ₀/10 within "
                   "0.01-0.05 nm)")
    f = sub.add_parser("fit", help="fit σ and kT of the DFT-biased sampler to observed coordinates")
    f.add_argument("--observed", type=Path, required=True, help="coordinates CSV (as for 'sacmap stats')")
    f.add_argument("--potential", type=Path, default=None, help="site_site_potential.csv (none: fit σ only)")
    f.add_argument("--site-kinds", default=None, help="curve of the potential to use")
    f.add_argument("--pixel-size", **number(float, check=positive), default=None, help="nm per pixel for pixel columns / a mask")
    f.add_argument("--region", default=None, help="observed rectangle W,H or X0,Y0,X1,Y1 in nm")
    f.add_argument("--mask", default=None, help="support mask file (with the pixel size)")
    f.add_argument("--grid-nm", **number(float, lo=0, lo_open=True), default=None, help="field grid spacing in nm (default σ₀/10 within "
                   "0.01-0.05 nm)")
    f.add_argument("--runs-per-point", **number(int, lo=1), default=8, help="sampler runs per grid point (default 8)")
    f.add_argument("--n-boot", **number(int, lo=0), default=200, help="bootstrap resamples (default 200)")
    f.add_argument("--sigma-factors", default=None, help="σ/σ₀ grid, comma-separated (default "
                   "0.8,0.9,1,1.1,1.2,1.35,1.5)")
    f.add_argument("--beta-grid", default=None, help="1/kT grid in 1/eV, comma-separated, 0 = no energy term "
                   "(default 0,2.5,5,10,20)")
    f.add_argument("--seed", **number(int, lo=0), default=0, help="random seed (default 0)")
    f.add_argument("-o", "--outdir", type=Path, default=None, help="output folder (default <observed>_fit)")
    for sp in sub.choices.values():
        sp.set_defaults(func=run_sample)


def _species(text: str) -> dict[str, float]:
    from sacmap.analysis.errors import AnalysisInputError

    out = {}
    for part in text.split(","):
        name, _, val = part.partition(":")
        try:
            out[name.strip()] = float(val)
        except ValueError as exc:
            raise AnalysisInputError(f"--species: expected EL:DENSITY[,EL:DENSITY], got {text!r}") from exc
        if not name.strip() or not out[name.strip()] > 0:
            raise AnalysisInputError(f"--species: bad entry {part!r} (element and a positive density)")
    return out


def _floats(text: str | None, name: str):
    from sacmap.analysis.errors import AnalysisInputError

    if text is None:
        return None
    try:
        return tuple(float(v) for v in text.split(","))
    except ValueError as exc:
        raise AnalysisInputError(f"--{name}: expected comma-separated numbers, got {text!r}") from exc


def _fit(args) -> int:
    import pandas as pd

    from sacmap.analysis.errors import AnalysisInputError
    from sacmap.analysis.spatial.observation import Observation
    from sacmap.analysis.spatial.samplers.dft import DFTBiasedSampler
    from sacmap.core.atomic import write_csv, write_json

    if args.runs_per_point < 1 or args.n_boot < 0:
        raise AnalysisInputError("--runs-per-point must be ≥ 1 and --n-boot ≥ 0")
    obs = Observation.from_detection(args.observed, pixel_size_nm=args.pixel_size, region=args.region,
                                     mask=args.mask)
    est = DFTBiasedSampler(args.potential, grid_nm=args.grid_nm, site_kinds=args.site_kinds,
                           runs_per_point=args.runs_per_point, n_boot=args.n_boot, seed=args.seed,
                           sigma_factors=_floats(args.sigma_factors, "sigma-factors"),
                           beta_grid=_floats(args.beta_grid, "beta-grid"))
    est.fit(obs, progress=True)
    res = dict(est.fit_result_)
    res.update(observed=str(args.observed), potential_file=str(args.potential) if args.potential else None,
               region=obs.window.describe(), observation=obs.summary())
    out = args.outdir or args.observed.with_name(args.observed.stem + "_fit")
    write_json(out / "fit.json", res)
    write_csv(out / "fit_grid.csv", pd.DataFrame(res["grid"]))
    kt = "none (no energy term)" if res["kT_eV"] is None else (
        f"{res['kT_eV']:.3g} eV (95 % CI {_ci(res['kT_eV_ci95'])} eV; as a temperature {res['kT_K']:.0f} K — an "
        "effective weight of the DFT energy, not the synthesis temperature)")
    print(f"{args.observed}: {res['n_observed']} atoms, {res['density_nm2']:.3f} atoms/nm² ({obs.window_source})")
    for warning in obs.warnings:
        print(f"  note: {warning}")
    print(f"  σ = {res['sigma_nm']:.3f} nm (σ/σ₀ = {res['sigma_factor']:.3g}; 95 % CI {res['sigma_nm_ci95'][0]:.3f}"
          f"–{res['sigma_nm_ci95'][1]:.3f} nm), kT = {kt}")
    print(f"  fit: Wasserstein {res['wasserstein_nm']:.4f} nm, KS {res['ks_statistic']:.3f} "
          f"(p = {res['ks_pvalue']:.3g}); random model: {res['wasserstein_random_nm']:.4f} nm, "
          f"KS p = {res['ks_pvalue_random']:.3g}")
    print(f"  the fitted sampler's NNDs follow Rayleigh({res['sigma_effective_nm']:.3f} nm) "
          f"(σ_eff/σ₀ = {res['sigma_effective_factor']:.3g}), observed Rayleigh({res['sigma_observed_rayleigh_nm']:.3f} nm)")
    for warning in res["warnings"]:
        print(f"  WARNING: {warning}")
    print(f"  written to {out}/fit.json")
    return 0


def _ci(pair) -> str:
    return "–".join("∞" if v is None else f"{v:.3g}" for v in pair)


def _sampler(args):
    """The sampler the options describe (one registry call)."""
    from sacmap.analysis.spatial.samplers.dft import DFTBiasedSampler
    from sacmap.analysis.spatial.samplers.registry import make_sampler

    model = args.sample_command
    if model == "attractive":
        return make_sampler(model, first_fraction=args.first_fraction, box_nm=args.box_nm)
    if model == "repulsive":
        return make_sampler(model, c_nm=args.c_nm, progress=True)
    if model == "dft":
        common = {"potential": args.potential, "grid_nm": args.grid_nm, "site_kinds": args.site_kinds,
                  "seed": args.seed, "progress": True}
        if args.params is not None:
            return DFTBiasedSampler.from_fit(args.params, **common)
        return make_sampler(model, sigma_nm=args.sigma_nm, kT_eV=args.kT_eV, **common)
    return make_sampler(model)


def run_sample(args: argparse.Namespace) -> int:
    if args.sample_command == "fit":
        return _fit(args)
    from sacmap.analysis.spatial.io import parse_region
    from sacmap.analysis.spatial.samplers.runs import sample_and_describe
    from sacmap.core.atomic import write_csv, write_json

    model = args.sample_command
    res = sample_and_describe(_sampler(args), parse_region(args.region), args.runs, args.seed,
                              n_points=args.n_points, density_nm2=args.density,
                              species=_species(args.species) if args.species else None,
                              multimer_nm=args.multimer_nm)
    out = args.outdir or Path(f"sample_{model}")
    write_csv(out / "coords.csv", res["coords"])
    write_csv(out / "stats.csv", res["stats"])
    write_json(out / "summary.json", res["summary"])
    summary, window = res["summary"], res["window"]
    m, s = summary["mean"], summary["sd"]
    runs, n = summary["runs"], len(res["coords"]) // summary["runs"]
    print(f"{model}: {runs} runs × {n} points in {window.area_nm2:.1f} nm² ({m['density_nm2']:.3f} atoms/nm²)")
    print(f"  NND {m['nnd_mean_nm']:.3f} ± {s['nnd_mean_nm']:.3f} nm, multimer share "
          f"{100 * m['multimer_share']:.1f} ± {100 * s['multimer_share']:.1f} %, Clark-Evans "
          f"{m['clark_evans']:.3f} ± {s['clark_evans']:.3f}")
    print(f"  written to {out}/ (coords.csv, stats.csv, summary.json)")
    return 0
