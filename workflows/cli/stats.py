"""``sacmap stats``: spatial descriptors of metal-centre coordinates (nm), with plots."""

from __future__ import annotations

import argparse
from pathlib import Path

from sacmap.core.constants import MULTIMER_NM
from sacmap.workflows.cli.options import number, positive

#: above this many atoms `sacmap stats` runs the envelope tests only when --nsim is given (199 simulations of a
#: large pattern take minutes)
ENVELOPE_MAX_ATOMS = 20_000


def register(subparsers) -> None:
    p = subparsers.add_parser(
        "stats",
        help="spatial descriptors of atom coordinates (density, NND, multimers, nuclearity, g(r), Clark-Evans)",
        description="Read a coordinates CSV (detection output x_px,y_px,x_nm,y_nm,...,element + sibling JSON, or "
        "any CSV with x_nm,y_nm or pixel columns x_px,y_px / X,Y / x,y with --pixel-size) and write "
        "descriptors.json/.csv, per-atom nnd.csv, gr.csv and plots (nnd_histogram.png, nuclearity.png, gr.png). "
        "Density, random reference, g(r) and edge corrections use one window: the detection's support mask when "
        "there is one; atoms outside the window are excluded and counted.",
    )
    p.add_argument("coords", type=Path, help="coordinates CSV")
    p.add_argument("--pixel-size", **number(float, check=positive), default=None, help="nm per pixel for pixel columns / a mask")
    p.add_argument("--region", default=None, help="observed rectangle in nm: W,H or X0,Y0,X1,Y1 (write --region=-0.1,... "
                   "when it starts with a minus; default: the detection's support mask <stem>_support.png, else the "
                   "image from the sibling JSON, else the points' bounding box)")
    p.add_argument("--mask", default=None, help="support mask (.npy/.png/.tif, non-zero = support) with the "
                   "pixel size, instead of the detection's own")
    p.add_argument("--run", **number(int, lo=0), default=None, help="which run of a sampler's coords.csv to analyse")
    p.add_argument("--multimer-nm", **number(float, lo=0, lo_open=True), default=MULTIMER_NM,
                   help=f"multimer threshold in nm (default {MULTIMER_NM})")
    p.add_argument("--gr-rmax", **number(float, lo=0, lo_open=True), default=2.0, help="largest r for g(r) in nm (default 2)")
    p.add_argument("--gr-dr", **number(float, lo=0, lo_open=True), default=0.02, help="g(r) bin width in nm (default 0.02)")
    p.add_argument("--random-runs", **number(int, lo=0), default=40, help="random-model runs for the NND reference "
                   "histogram (0: none; default 40, fewer above 5·10⁴ atoms)")
    p.add_argument("--seed", **number(int, lo=0), default=0, help="seed of the random reference (default 0)")
    p.add_argument("--nsim", **number(int, lo=0), default=None, help="simulations per global envelope test (default "
                   f"199, or none above {ENVELOPE_MAX_ATOMS} atoms unless given; 0: no tests)")
    p.add_argument("--null", default="csr,repulsive,hardcore", help="null models of the envelope tests, "
                   "comma-separated: csr, repulsive (--c-nm), hardcore (hard core = observed minimum NND), dft "
                   "(needs --fit), labels (random labelling; added by default with two or more species)")
    p.add_argument("--function", default="L", choices=["L", "K", "pcf", "G", "F", "J"],
                   help="summary function of the envelope tests (default L, translation-corrected)")
    p.add_argument("--c-nm", **number(float, lo=0), default=0.2, help="C of the repulsive null in nm (default 0.2)")
    p.add_argument("--fit", type=Path, default=None, help="fit.json of 'sacmap sample fit' for the dft null")
    p.add_argument("--potential", type=Path, default=None, help="site_site_potential.csv for the dft null")
    p.add_argument("--detector-aware", action="store_true", help="also test against each point-process null "
                   "rendered by the simulator at the image's pixel size, dose and contrast and detected with the "
                   "record's settings (naive and detector-aware side by side; the imaging is fitted to the image first; "
                   "2 worker processes, about 0.5 s of CPU per simulated 512² image)")
    p.add_argument("--image", type=Path, default=None, help="the observed image for --detector-aware (default: "
                   "the record's image, from its JSON)")
    p.add_argument("--model", default=None, help="detector model for --detector-aware (default: the one the "
                   "record's JSON names, else the pipeline's)")
    p.add_argument("--no-plots", action="store_true", help="skip the PNG plots")
    p.add_argument("-o", "--outdir", type=Path, default=None, help="output folder (default: <coords stem>_stats)")
    p.set_defaults(func=run_stats)


def run_stats(args: argparse.Namespace) -> int:
    import pandas as pd

    from sacmap.analysis.errors import AnalysisInputError
    from sacmap.analysis.spatial.describe import describe
    from sacmap.analysis.spatial.descriptors import flatten_descriptors
    from sacmap.analysis.spatial.observation import Observation
    from sacmap.core.atomic import write_csv, write_json

    if args.pixel_size is not None and not args.pixel_size > 0:
        raise AnalysisInputError(f"--pixel-size must be positive (nm/px), got {args.pixel_size}")
    if not args.gr_rmax > 0 or not args.gr_dr > 0 or args.gr_dr > args.gr_rmax:
        raise AnalysisInputError("--gr-rmax and --gr-dr must be positive with dr ≤ rmax")
    obs = Observation.from_detection(args.coords, pixel_size_nm=args.pixel_size, region=args.region, mask=args.mask,
                                     run=args.run)
    desc, arrays = describe(obs, multimer_nm=args.multimer_nm, random_runs=args.random_runs, seed=args.seed,
                            gr_rmax_nm=args.gr_rmax, gr_dr_nm=args.gr_dr)
    out = args.outdir or args.coords.with_name(args.coords.stem + "_stats")
    write_json(out / "descriptors.json", desc)
    write_csv(out / "descriptors.csv", pd.DataFrame([flatten_descriptors(desc)]))
    per_atom = pd.DataFrame({"x_nm": obs.xy_nm[:, 0], "y_nm": obs.xy_nm[:, 1], "nnd_nm": arrays["nnd_nm"],
                             "boundary_nm": arrays["boundary_nm"], "cluster": arrays["cluster"],
                             "bonds": arrays["degree"]})
    if obs.elements is not None:
        per_atom.insert(2, "element", obs.elements)
    write_csv(out / "nnd.csv", per_atom)
    write_csv(out / "gr.csv", pd.DataFrame({"r_nm": arrays["gr_r_nm"], "g": arrays["gr"]}))
    if not args.no_plots:
        from sacmap.analysis.spatial.plots import plot_nnd_histogram, plot_nuclearity, plot_pair_correlation
        from sacmap.core.atomic import save_figure

        for name, fig in (
            ("nnd_histogram.png", plot_nnd_histogram(arrays["nnd_nm"], desc["density_nm2"],
                                                     arrays.get("random_nnd_nm"), multimer_nm=args.multimer_nm)),
            ("nuclearity.png", plot_nuclearity(desc["nuclearity"])),
            ("gr.png", plot_pair_correlation(arrays["gr_r_nm"], arrays["gr"])),
        ):
            save_figure(fig, out / name, dpi=120, bbox_inches="tight")
    print(f"{args.coords}: {desc['n_atoms']} atoms in {desc['support_area_nm2']:.2f} nm² "
          f"({obs.window_source}) → {desc['density_nm2']:.3f} atoms/nm²")
    for warning in obs.warnings:
        print(f"  note: {warning}")
    print(f"  NND mean {desc['nnd_mean_nm']:.3f} ± {desc['nnd_sd_nm']:.3f} nm (Hanisch edge-corrected "
          f"{desc['nnd_mean_hanisch_nm']:.3f} nm; Poisson {desc['nnd_poisson_nm']:.3f} nm"
          + (f"; random, same window {desc['nnd_mean_random_same_window_nm']:.3f} nm)"
             if "nnd_mean_random_same_window_nm" in desc else ")"))
    print(f"  multimer share (≤ {args.multimer_nm:g} nm) {100 * desc['multimer_share']:.1f} % "
          f"(Poisson {100 * desc['multimer_share_poisson']:.1f} %); nuclearity {desc['nuclearity']}")
    print(f"  Clark-Evans R = {desc['clark_evans']:.3f} ({desc['clark_evans_correction']} edge correction), "
          f"z = {desc['z']:.2f}")
    for pair, st in desc.get("nnd_by_pair", {}).items():
        print(f"  NND {pair}: {st['mean_nm']:.3f} ± {st['sd_nm']:.3f} nm (n={st['n']})")
    if args.nsim is None:
        args.nsim = 199 if obs.n_atoms <= ENVELOPE_MAX_ATOMS else 0
        if not args.nsim:
            print(f"  note: no envelope tests by default above {ENVELOPE_MAX_ATOMS} atoms (give --nsim N)")
    if args.nsim:
        _envelopes(args, obs, out)
    print(f"  written to {out}/")
    return 0


def _envelopes(args, obs, out) -> None:
    """Global envelope tests against each null model: envelopes.json, envelope_<null>.csv, envelopes.png."""
    from sacmap.analysis.errors import AnalysisInputError
    from sacmap.analysis.spatial.envelopes import NULL_MODELS, envelope_test
    from sacmap.core.atomic import write_csv, write_json

    nulls = [n.strip() for n in args.null.split(",") if n.strip()]
    bad = [n for n in nulls if n not in NULL_MODELS]
    if bad:
        raise AnalysisInputError(f"--null: unknown model(s) {', '.join(bad)} (expected {', '.join(NULL_MODELS)})")
    if args.nsim < 19:
        raise AnalysisInputError(f"--nsim must be 0 (no tests) or ≥ 19, got {args.nsim}")
    species = [] if obs.elements is None else sorted(set(map(str, obs.elements)) - {"", "nan"})
    if len(species) >= 2 and "labels" not in nulls:
        nulls.append("labels")
    tests = []
    for null in nulls:
        kw = {}
        if null == "repulsive":
            kw["c_nm"] = args.c_nm
        if null == "dft":
            if args.fit is None:
                raise AnalysisInputError("--null dft needs --fit fit.json (and --potential if the fit used one)")
            from sacmap.analysis.spatial.samplers.dft import DFTBiasedSampler

            kw["sampler"] = DFTBiasedSampler.from_fit(args.fit, potential=args.potential)
        if null == "labels":
            if len(species) < 2:
                raise AnalysisInputError("--null labels: the record has fewer than two species")
            t = envelope_test(obs.xy_nm, obs.window, "labels", "Lcross", nsim=args.nsim, seed=args.seed,
                              labels=obs.elements)
        else:
            t = envelope_test(obs.xy_nm, obs.window, null, args.function, nsim=args.nsim, seed=args.seed, **kw)
        tests.append(t)
        write_csv(out / f"envelope_{null}.csv", t.table())
        print(f"  {t.summary_line()}")
    write_json(out / "envelopes.json", {"window_source": obs.window_source,
                                        "tests": [t.as_dict(curves=False) for t in tests]})
    if args.detector_aware:
        _detector_aware(args, obs, out, [n for n in nulls if n in ("csr", "repulsive", "hardcore")])
    if not args.no_plots and tests:
        from sacmap.analysis.spatial.plots import plot_envelopes
        from sacmap.core.atomic import save_figure

        save_figure(plot_envelopes(tests), out / "envelopes.png", dpi=120, bbox_inches="tight")


def _record_image(args) -> Path:
    """The observed image of a detection record: --image, else the JSON's ``path`` or ``image`` (beside the CSV
    or one folder up, where ``sacmap detect`` puts its outputs)."""
    import json

    from sacmap.analysis.errors import AnalysisInputError

    if args.image is not None:
        return args.image
    meta = args.coords.with_suffix(".json")
    rec = json.loads(meta.read_text()) if meta.is_file() else {}
    candidates = [Path(rec["path"])] if rec.get("path") else []
    if rec.get("image"):
        candidates += [args.coords.parent / rec["image"], args.coords.parent.parent / rec["image"]]
    for c in candidates:
        if c.is_file():
            return c
    raise AnalysisInputError(f"{args.coords}: --detector-aware needs the observed image; give --image (the record's "
                             "JSON names none that exists)")


def _record_model(block) -> str | None:
    """The bundled model a detection record's ``model`` block names (``{"kind", "file"}``), else None: the
    detector-aware null must detect with the detector that made the record."""
    if not isinstance(block, dict):
        return None
    if block.get("kind") == "combined":
        return "combined"
    return {"detector.pt": "paper", "heatmap.pt": "heatmap"}.get(block.get("file"))


def _detector_aware(args, obs, out, nulls) -> None:
    """detector_aware_<null>.json / envelope_detector_aware_<null>.csv / detector_aware_<null>.png per null."""
    import json

    from sacmap.core.atomic import save_figure, write_csv, write_json
    from sacmap.detection.io import read_image
    from sacmap.workflows.job.detector_null import default_detector, detector_aware_test

    path = _record_image(args)
    image, pixel, _ = read_image(path, obs.pixel_size_nm)
    meta = args.coords.with_suffix(".json")
    rec = json.loads(meta.read_text()) if meta.is_file() else {}
    model = args.model or _record_model(rec.get("model"))
    if args.model is None and rec.get("model") and model is None:
        print(f"  note: {meta.name} was made with weights {rec['model'].get('file')!r}; the null detects with the "
              "default model (give --model)")
    detect = default_detector(rec.get("settings"), model=model)
    for null in nulls:
        kw = {"c_nm": args.c_nm} if null == "repulsive" else {}
        res = detector_aware_test(obs, image, null=null, function=args.function, nsim=args.nsim, seed=args.seed,
                                  detect=detect, **kw)
        write_json(out / f"detector_aware_{null}.json", {"image": str(path), **res.as_dict()})
        write_csv(out / f"envelope_detector_aware_{null}.csv", res.aware.table())
        if not args.no_plots:
            save_figure(res.figure(), out / f"detector_aware_{null}.png", dpi=120, bbox_inches="tight")
        for line in res.summary_lines():
            print(f"  {line}")
