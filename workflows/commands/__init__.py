"""One module per ``sacmap`` sub-command group.

Each module defines ``register(subparsers)`` which adds its parser(s) and sets ``func`` (a callable taking the
parsed ``argparse.Namespace`` and returning an exit code). Modules must import heavy libraries (torch, pymatgen,
fireworks, ...) inside their handlers, not at module level, so ``sacmap --help`` stays fast.
"""
