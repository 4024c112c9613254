"""The bundled inputs, installed as package data (``sacmap.inputs``): VASP presets, example campaign specs,
FireWorks templates and the two Pt₁/NC images. See :mod:`sacmap.core.resources`."""
