"""``sacmap structures``: build, list and show the configurations of a campaign spec.

* ``sacmap structures build SPEC -o DIR`` — one extxyz + one POSCAR per configuration and ``DIR/index.csv``;
* ``sacmap structures list SPEC`` — configurations per set (and the total), without building them;
* ``sacmap structures show DIR ID -o file.png`` — top view of one built configuration, sites highlighted.
"""

from __future__ import annotations

import argparse
import sys


def register(subparsers) -> None:
    p = subparsers.add_parser(
        "structures",
        help="build / list / show the DFT configurations of a campaign spec",
        description="N-doped graphene configurations (3N/4N/6N sites, metals, dimers, gas references) from a "
        "campaign spec such as inputs/campaigns/paper.yaml.",
    )
    sub = p.add_subparsers(dest="structures_command", metavar="ACTION")

    b = sub.add_parser("build", help="write extxyz + POSCAR per configuration and index.csv")
    b.add_argument("spec", help="campaign spec (YAML)")
    b.add_argument("-o", "--out", required=True, help="output folder")
    b.add_argument("--no-poscar", action="store_true", help="write only the extxyz files")
    b.add_argument("--set", action="append", dest="sets", metavar="NAME", help="only this set (repeatable)")
    b.set_defaults(func=cmd_build)

    ls = sub.add_parser("list", help="print the number of configurations per set")
    ls.add_argument("spec", help="campaign spec (YAML)")
    ls.add_argument("--ids", action="store_true", help="also print every configuration id")
    ls.set_defaults(func=cmd_list)

    sh = sub.add_parser("show", help="draw one built configuration (top view, sites highlighted)")
    sh.add_argument("dir", help="folder written by `sacmap structures build`")
    sh.add_argument("id", help="configuration id (as in index.csv)")
    sh.add_argument("-o", "--out", required=True, help="image file to write (.png, .svg, .pdf)")
    sh.set_defaults(func=cmd_show)

    p.set_defaults(func=lambda args: (p.print_help(), 2)[1])


def _filter_sets(spec: dict, sets: list[str] | None) -> dict:
    if not sets:
        return spec
    from sacmap.structures.errors import StructureInputError

    st = spec.get("structures") or {}
    names = [s["name"] for s in st.get("sets", [])]
    unknown = [s for s in sets if s not in names]
    if unknown:
        raise StructureInputError(f"{spec['_source']}: --set {unknown[0]!r}: no such set (have: {', '.join(names)})")
    spec = dict(spec)
    spec["structures"] = dict(st, sets=[s for s in st["sets"] if s["name"] in sets])
    return spec


def cmd_build(args: argparse.Namespace) -> int:
    from sacmap.structures import expand, load_spec, write_configurations

    spec = _filter_sets(load_spec(args.spec), args.sets)
    atoms = expand(spec, progress=sys.stderr.isatty())
    index = write_configurations(atoms, args.out, poscar=not args.no_poscar, progress=sys.stderr.isatty())
    print(f"{len(atoms)} configurations written to {args.out} (index: {index})")
    return 0


def cmd_list(args: argparse.Namespace) -> int:
    from sacmap.structures import load_spec, plan

    spec = load_spec(args.spec)
    items = plan(spec)
    counts: dict[str, int] = {s["name"]: 0 for s in (spec.get("structures") or {}).get("sets", [])}
    for it in items:
        counts[it.set] += 1
    width = max([len(k) for k in counts] + [5])
    print(f"{'set':<{width}}  configurations")
    for k, v in counts.items():
        print(f"{k:<{width}}  {v}")
    print(f"{'total':<{width}}  {len(items)}")
    if args.ids:
        for it in items:
            print(f"{it.set}\t{it.kind}\t{it.id}")
    return 0


def cmd_show(args: argparse.Namespace) -> int:
    from sacmap.structures import read_configuration
    from sacmap.structures.draw import draw_configuration

    atoms = read_configuration(args.dir, args.id)
    path = draw_configuration(atoms, args.out)
    print(f"wrote {path}")
    return 0
