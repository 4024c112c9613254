"""``sacmap stats``: spatial descriptors of metal-centre coordinates (nm), with plots."""

from __future__ import annotations

import argparse
from pathlib import Path


def register(subparsers) -> None:
    p = subparsers.add_parser(
        "stats",
        help="spatial descriptors of atom coordinates (density, NND, multimers, nuclearity, g(r), Clark-Evans)",
        description="Read a coordinates CSV (detection output x_px,y_px,x_nm,y_nm,...,element + sibling JSON, or "
        "any CSV with x_nm,y_nm or pixel columns x_px,y_px / X,Y / x,y with --pixel-size) and write "
        "descriptors.json/.csv, per-atom nnd.csv, gr.csv and plots (nnd_histogram.png, nuclearity.png, gr.png).",
    )
    p.add_argument("coords", type=Path, help="coordinates CSV")
    p.add_argument("--pixel-size", type=float, default=None, help="nm per pixel for pixel columns / a mask")
    p.add_argument("--region", default=None, help="observed rectangle in nm: W,H or X0,Y0,X1,Y1 (write --region=-0.1,... "
                   "when it starts with a minus; default: the detection image from the sibling JSON, else the "
                   "points' bounding box)")
    p.add_argument("--mask", default=None, help="support mask (.npy/.png/.tif, non-zero = support) with the "
                   "pixel size; densities then use the support area only")
    p.add_argument("--run", type=int, default=None, help="which run of a sampler's coords.csv to analyse")
    p.add_argument("--multimer-nm", type=float, default=0.22, help="multimer threshold in nm (default 0.22)")
    p.add_argument("--gr-rmax", type=float, default=2.0, help="largest r for g(r) in nm (default 2)")
    p.add_argument("--gr-dr", type=float, default=0.02, help="g(r) bin width in nm (default 0.02)")
    p.add_argument("--random-runs", type=int, default=40, help="random-model runs for the NND reference "
                   "histogram (0: none; default 40, fewer above 5·10⁴ atoms)")
    p.add_argument("--seed", type=int, default=0, help="seed of the random reference (default 0)")
    p.add_argument("--no-plots", action="store_true", help="skip the PNG plots")
    p.add_argument("-o", "--outdir", type=Path, default=None, help="output folder (default: <coords stem>_stats)")
    p.set_defaults(func=run_stats)


def run_stats(args: argparse.Namespace) -> int:
    import numpy as np
    import pandas as pd

    from sacmap.analysis.errors import AnalysisInputError
    from sacmap.analysis.spatial.descriptors import descriptors, flatten_descriptors, pair_correlation
    from sacmap.analysis.spatial.io import read_coordinates, region_for, write_csv, write_json

    if args.pixel_size is not None and not args.pixel_size > 0:
        raise AnalysisInputError(f"--pixel-size must be positive (nm/px), got {args.pixel_size}")
    if not args.gr_rmax > 0 or not args.gr_dr > 0 or args.gr_dr > args.gr_rmax:
        raise AnalysisInputError("--gr-rmax and --gr-dr must be positive with dr ≤ rmax")
    xy, elements, meta = read_coordinates(args.coords, args.pixel_size, args.run)
    if len(xy) < 2:
        raise AnalysisInputError(f"{args.coords}: only {len(xy)} atom; nearest-neighbour statistics need ≥ 2")
    region = region_for(xy, meta, args.region, args.mask, args.pixel_size)
    inside = region.contains(xy)
    if not inside.all():
        raise AnalysisInputError(f"{args.coords}: {int((~inside).sum())} atom(s) lie outside the region "
                                 f"(first: row {int(np.flatnonzero(~inside)[0]) + 1}); check --region/--mask")
    desc = descriptors(xy, region, elements, multimer_nm=args.multimer_nm, return_arrays=True)
    arrays = desc.pop("arrays")
    desc["source"] = str(args.coords)
    out = args.outdir or args.coords.with_name(args.coords.stem + "_stats")
    r, g = pair_correlation(xy, region, args.gr_rmax, args.gr_dr)
    random_nnd = None
    if args.random_runs > 0:
        from sacmap.analysis.spatial.descriptors import nearest_neighbour_distances
        from sacmap.analysis.spatial.samplers.point import sample_random

        runs = min(args.random_runs, max(1, 2_000_000 // len(xy)))  # large fields: fewer runs, same pooled size
        sims = sample_random(len(xy), region, runs=runs, seed=args.seed)
        desc["random_reference_runs"] = runs
        random_nnd = np.concatenate([nearest_neighbour_distances(s)[0] for s in sims])
        desc["nnd_mean_random_same_window_nm"] = float(random_nnd.mean())
        desc["multimer_share_random_same_window"] = float(np.mean(random_nnd <= args.multimer_nm))
    write_json(out / "descriptors.json", desc)
    write_csv(out / "descriptors.csv", pd.DataFrame([flatten_descriptors(desc)]))
    per_atom = pd.DataFrame({"x_nm": xy[:, 0], "y_nm": xy[:, 1], "nnd_nm": arrays["nnd_nm"],
                             "boundary_nm": arrays["boundary_nm"], "cluster": arrays["cluster"],
                             "bonds": arrays["degree"]})
    if elements is not None:
        per_atom.insert(2, "element", elements)
    write_csv(out / "nnd.csv", per_atom)
    write_csv(out / "gr.csv", pd.DataFrame({"r_nm": r, "g": g}))
    if not args.no_plots:
        import matplotlib

        matplotlib.use("Agg")
        import matplotlib.pyplot as plt

        from sacmap.analysis.spatial.io import save_figure
        from sacmap.analysis.spatial.plots import plot_nnd_histogram, plot_nuclearity, plot_pair_correlation

        for name, fig in (
            ("nnd_histogram.png", plot_nnd_histogram(arrays["nnd_nm"], desc["density_nm2"], random_nnd,
                                                     multimer_nm=args.multimer_nm)),
            ("nuclearity.png", plot_nuclearity(desc["nuclearity"])),
            ("gr.png", plot_pair_correlation(r, g)),
        ):
            save_figure(fig, out / name)
            plt.close(fig)
    print(f"{args.coords}: {desc['n_atoms']} atoms in {desc['support_area_nm2']:.2f} nm² "
          f"→ {desc['density_nm2']:.3f} atoms/nm²")
    print(f"  NND mean {desc['nnd_mean_nm']:.3f} ± {desc['nnd_sd_nm']:.3f} nm (Hanisch edge-corrected "
          f"{desc['nnd_mean_hanisch_nm']:.3f} nm; Poisson {desc['nnd_poisson_nm']:.3f} nm)")
    print(f"  multimer share (≤ {args.multimer_nm:g} nm) {100 * desc['multimer_share']:.1f} % "
          f"(Poisson {100 * desc['multimer_share_poisson']:.1f} %); nuclearity {desc['nuclearity']}")
    print(f"  Clark-Evans R = {desc['clark_evans']:.3f} (Donnelly edge-corrected), z = {desc['z']:.2f}")
    for pair, st in desc.get("nnd_by_pair", {}).items():
        print(f"  NND {pair}: {st['mean_nm']:.3f} ± {st['sd_nm']:.3f} nm (n={st['n']})")
    print(f"  written to {out}/")
    return 0
