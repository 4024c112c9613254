"""``sacmap energies SOURCE... -o OUTDIR``: energetics from finished calculations.

SOURCEs are VASP calculation folders, trees of them (any nesting), ``.zip`` / ``.tar.gz`` archives, ioChem-BD
CML files/collections, or our results database (``*.db`` path or ``postgresql://`` URL). Writes E_int (paper
eqs. 1–5), dimer formation energies, the site–site potential (the DFT-biased sampler's input), the Bader
descriptor, the records table, warnings, and figures in the style of Figure 4a–c; prints how many calculations
were read, recognised, flagged and used.
"""

from __future__ import annotations

import argparse
import logging
import sys

from sacmap.workflows.cli.options import number


def register(subparsers) -> None:
    p = subparsers.add_parser(
        "energies",
        help="E_int, dimer energies, site-site potential and <B> from finished calculations",
        description="Recompute the paper's energetics from VASP folders/trees/archives, ioChem-BD CML exports or "
        "the results database. Structures are recognised from geometry (folder names are ignored); truncated, "
        "unconverged and inconsistent calculations are flagged and never combined.",
    )
    p.add_argument("sources", nargs="+", metavar="SOURCE",
                   help="calculation folder, tree, .zip/.tar.gz archive, .cml file, *.db or postgresql:// URL")
    p.add_argument("-o", "--out", required=True, help="output folder for CSV tables and PNG figures")
    p.add_argument("--n-reference-charge", **number(float), default=None, metavar="E",
                   help="Bader charge (electrons) of N in the reference phase for <B> (default: from a pure-N "
                   "calculation among the sources, if any)")
    p.add_argument("--no-figures", action="store_true", help="write only the tables")
    p.set_defaults(func=cmd_energies)


#: exit status when no calculation is usable (all flagged / unrecognised); 2 stays for bad input
EXIT_NOTHING_USABLE = 3


def cmd_energies(args: argparse.Namespace) -> int:
    from sacmap.analysis.energetics.equations import energetics_from_sources, n_usable, unusable_reasons

    progress = sys.stderr.isatty()
    # the warnings are printed below (and written to warnings.txt): keep the library's log records quiet
    logging.getLogger("sacmap.analysis").setLevel(logging.ERROR)
    res = energetics_from_sources(args.sources, args.out, n_reference_charge_e=args.n_reference_charge,
                                  figures=not args.no_figures, progress=progress)
    c = res["counts"]
    print(f"read {c['read']}, recognised {c['recognised']}, flagged {c['flagged']}, used {c['used']}")
    print(f"sheet cells {c['sheet']}, gas references {c['gas']}, bulk/slab cells kept apart {c['bulk']}, "
          f"duplicates {c['duplicates']} (duplicates.csv)")
    print(f"E_int values: {len(res['e_int'])} (missing partners: {len(res['e_int_missing'])}); "
          f"dimer energies: {len(res['dimers'])}; site-site points: {len(res['site_site_potential'])}; "
          f"<B> points: {len(res['bader'])}")
    for w in res["warnings"][:20]:
        print(f"warning: {w}", file=sys.stderr)
    if len(res["warnings"]) > 20:
        print(f"warning: ... {len(res['warnings']) - 20} more in {res['paths']['warnings']}", file=sys.stderr)
    print(f"tables and figures written to {args.out}")
    if n_usable(res["records"]) == 0:
        reasons = unusable_reasons(res["records"])
        print(f"sacmap energies: none of the {c['read']} calculation(s) is usable; reasons: "
              + "; ".join(f"{n}x {why}" for why, n in reasons[:8])
              + (f"; ... ({len(reasons) - 8} more kinds, see {res['paths']['warnings']})" if len(reasons) > 8 else ""),
              file=sys.stderr)
        return EXIT_NOTHING_USABLE
    return 0
