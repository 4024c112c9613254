"""The base class of every 'bad user input' error in sacmap.

Each package subclasses it (``StructureInputError``, ``DetectionInputError``, ``AnalysisInputError``,
``WorkflowInputError``) so callers can catch one package's errors, and the CLI catches :class:`InputError` once:
one line naming the file and the problem on stderr, exit status 2.
"""


class InputError(ValueError):
    """A file, field or option given by the user is invalid; the message names it and the problem."""
