"""``sacmap structures``: build, list and show the configurations of a campaign spec.

SPEC is a YAML file or the name of a bundled spec (``paper``, ``demo``).

* ``sacmap structures build SPEC -o DIR`` — one extxyz + one POSCAR per configuration and ``DIR/index.csv``;
* ``sacmap structures list SPEC`` — configurations per set (and the total), without building them;
* ``sacmap structures show DIR ID -o file.png`` — top view of one built configuration, sites highlighted.
"""

from __future__ import annotations

import argparse
import sys

from sacmap.workflows.cli.options import output_file

#: figure formats `structures show` writes (matplotlib, chosen by the suffix)
FIGURE_SUFFIXES = (".png", ".svg", ".pdf", ".jpg", ".jpeg", ".eps")
SPEC_HELP = "campaign spec: a YAML file, or the name of a bundled spec (paper, demo)"


def register(subparsers) -> None:
    p = subparsers.add_parser(
        "structures",
        help="build / list / show the DFT configurations of a campaign spec",
        description="N-doped graphene configurations (3N/4N/6N sites, metals, dimers, gas references) from a "
        "campaign spec: a YAML file or a bundled spec (paper, demo).",
    )
    sub = p.add_subparsers(dest="structures_command", metavar="ACTION")

    b = sub.add_parser("build", help="write extxyz + POSCAR per configuration and index.csv")
    b.add_argument("spec", help=SPEC_HELP)
    b.add_argument("-o", "--out", required=True, help="output folder")
    b.add_argument("--no-poscar", action="store_true", help="write only the extxyz files")
    b.add_argument("--set", action="append", dest="sets", metavar="NAME", help="only this set (repeatable)")
    b.set_defaults(func=cmd_build)

    ls = sub.add_parser("list", help="print the number of configurations per set")
    ls.add_argument("spec", help=SPEC_HELP)
    ls.add_argument("--ids", action="store_true", help="also print every configuration id")
    ls.set_defaults(func=cmd_list)

    sh = sub.add_parser("show", help="draw one built configuration (top view, sites highlighted)")
    sh.add_argument("dir", help="folder written by `sacmap structures build`")
    sh.add_argument("id", help="configuration id (as in index.csv)")
    sh.add_argument("-o", "--out", required=True, **output_file(*FIGURE_SUFFIXES),
                    help="image file to write (.png, .svg, .pdf, .jpg, .eps)")
    sh.set_defaults(func=cmd_show)

    p.set_defaults(func=lambda args: (p.print_help(), 2)[1])


def cmd_build(args: argparse.Namespace) -> int:
    from sacmap.structures import build_campaign

    n, index = build_campaign(args.spec, args.out, sets=args.sets, poscar=not args.no_poscar,
                              progress=sys.stderr.isatty())
    print(f"{n} configurations written to {args.out} (index: {index})")
    return 0


def cmd_list(args: argparse.Namespace) -> int:
    from sacmap.structures import counts_per_set, load_spec, plan

    spec = load_spec(args.spec)
    counts = counts_per_set(spec)
    width = max([len(k) for k in counts] + [5])
    print(f"{'set':<{width}}  configurations")
    for k, v in counts.items():
        print(f"{k:<{width}}  {v}")
    print(f"{'total':<{width}}  {sum(counts.values())}")
    if args.ids:
        for it in plan(spec):
            print(f"{it.set}\t{it.kind}\t{it.id}")
    return 0


def cmd_show(args: argparse.Namespace) -> int:
    from sacmap.structures import read_configuration
    from sacmap.structures.draw import draw_configuration

    atoms = read_configuration(args.dir, args.id)
    path = draw_configuration(atoms, args.out)
    print(f"wrote {path}")
    return 0
