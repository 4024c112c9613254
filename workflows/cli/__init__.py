"""The ``sacmap`` command line: :func:`main` (in :mod:`.main`) dispatches to one module per sub-command group.

Each group module (``structures``, ``campaign``, ``energies``, ``stats``, ``sample``, ``detect``, ``run``,
``app``) defines ``register(subparsers)`` and thin handlers: parse the options, make one library call, print.
"""

from sacmap.workflows.cli.main import build_parser, main

__all__ = ["build_parser", "main"]
