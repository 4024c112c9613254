"""Write the synthetic ioChem-BD CML fixtures in this folder (no real VASP CML export is public).

Layout as described in shared/reference/workflows.md ("ioChem-BD"): one ``module[@id='job']`` with the INCAR
parameters in ``cc:initialization`` and the final geometry and energies in ``cc:finalization``. Geometries come
from ``structures`` (a 5 x 3 sheet, 60 lattice sites); energies are made up. Run from the repository root:
``.venv/bin/python tests/data/analysis/iochem/make_fixture.py``.
"""

from __future__ import annotations

from pathlib import Path
from xml.sax.saxutils import quoteattr

from sacmap.structures.builders import SlabSpec, build_single_site

HERE = Path(__file__).resolve().parent
SLAB = SlabSpec(nx=5, ny=3)


def cml(atoms, e0: float, ldau_u: list[float] | None = None) -> str:
    a, b, c, al, be, ga = atoms.cell.cellpar()
    frac = atoms.get_scaled_positions()
    lines = [
        '<?xml version="1.0" encoding="UTF-8"?>',
        '<module xmlns="http://www.xml-cml.org/schema" xmlns:cmlx="http://www.xml-cml.org/schema/cmlx" '
        'dictRef="cc:jobList">',
        ' <module id="job" dictRef="cc:job">',
        '  <module dictRef="cc:environment"><parameterList><parameter dictRef="cc:program">'
        '<scalar dataType="xsd:string">VASP</scalar></parameter></parameterList></module>',
        '  <module dictRef="cc:initialization"><parameterList>',
        '   <parameter dictRef="v:ispin"><scalar dataType="xsd:integer">2</scalar></parameter>',
        '   <parameter dictRef="v:ibrion"><scalar dataType="xsd:integer">2</scalar></parameter>',
        '   <parameter dictRef="v:ediff"><scalar dataType="xsd:double">1.0E-05</scalar></parameter>',
        '   <parameter dictRef="v:ediffg"><scalar dataType="xsd:double">-1.0E-04</scalar></parameter>',
        '   <parameter dictRef="v:energyCutoff"><scalar dataType="xsd:double" units="nonsi:electronvolt">'
        '450.00</scalar></parameter>',
        '   <parameter dictRef="v:gga"><scalar dataType="xsd:string">PE</scalar></parameter>',
        f'   <parameter dictRef="v:ldau"><scalar dataType="xsd:boolean">{"true" if ldau_u else "false"}'
        '</scalar></parameter>',
        '   <parameter dictRef="v:sigma"><scalar dataType="xsd:double">0.05</scalar></parameter>',
        '   <parameter dictRef="v:ismear"><scalar dataType="xsd:integer">0</scalar></parameter>',
    ]
    if ldau_u:
        n = len(ldau_u)
        lines += [
            f'   <parameter dictRef="v:ldaul"><array dataType="xsd:integer" size="{n}">'
            + " ".join("2" if u else "-1" for u in ldau_u) + "</array></parameter>",
            f'   <parameter dictRef="v:ldauu"><array dataType="xsd:double" size="{n}">'
            + " ".join(f"{u:.2f}" for u in ldau_u) + "</array></parameter>",
            f'   <parameter dictRef="v:ldauj"><array dataType="xsd:double" size="{n}">'
            + " ".join("0.00" for _ in ldau_u) + "</array></parameter>",
        ]
    lines += [
        "  </parameterList></module>",
        '  <module dictRef="cc:finalization">',
        '   <molecule id="final">',
        "    <crystal>",
    ]
    for title, val in zip(("a", "b", "c", "alpha", "beta", "gamma"), (a, b, c, al, be, ga), strict=True):
        lines.append(f'     <scalar title="{title}" dataType="xsd:double">{val:.8f}</scalar>')
    lines += ["    </crystal>", "    <atomArray>"]
    for k, (s, p, f) in enumerate(zip(atoms.get_chemical_symbols(), atoms.positions, frac, strict=True)):
        lines.append(
            f'     <atom id="a{k + 1}" elementType={quoteattr(s)} x3="{p[0]:.8f}" y3="{p[1]:.8f}" z3="{p[2]:.8f}" '
            f'xFract="{f[0]:.10f}" yFract="{f[1]:.10f}" zFract="{f[2]:.10f}"/>'
        )
    lines += [
        "    </atomArray>",
        "   </molecule>",
        '   <propertyList><property dictRef="cc:energies"><module cmlx:templateRef="energies">',
        f'    <scalar dataType="xsd:double" dictRef="cc:freeEnergy" units="nonsi:electronvolt">{e0 - 0.0012:.8f}</scalar>',
        f'    <scalar dataType="xsd:double" dictRef="v:noEntropyEnergy" units="nonsi:electronvolt">{e0 + 0.0006:.8f}</scalar>',
        f'    <scalar dataType="xsd:double" dictRef="cc:e0" units="nonsi:electronvolt">{e0:.8f}</scalar>',
        "   </module></property></propertyList>",
        "  </module>",
        " </module>",
        "</module>",
        "",
    ]
    return "\n".join(lines)


INCAR = "SYSTEM = synthetic\nGGA = PE\nIVDW = 11\nENCUT = 450\nISPIN = 2\nEDIFF = 1E-5\nEDIFFG = -1E-4\n"

if __name__ == "__main__":
    for name, atoms, e0, u in (
        ("collection/4N", build_single_site("4N", slab=SLAB), -512.34567891, None),
        ("collection/sub/Ni-4N", build_single_site("4N", "Ni", slab=SLAB), -518.76543210, [0.0, 0.0, 6.0]),
    ):
        d = HERE / name
        d.mkdir(parents=True, exist_ok=True)
        (d / "output.cml").write_text(cml(atoms, e0, u))
        (d / "INCAR").write_text(INCAR)
