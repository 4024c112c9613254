"""The base class of every 'bad user input' error in sacmap, and the exit statuses of the ``sacmap`` command.

Each package subclasses it (``StructureInputError``, ``DetectionInputError``, ``AnalysisInputError``,
``WorkflowInputError``) so callers can catch one package's errors, and the CLI catches :class:`InputError` once:
one line naming the file and the problem on stderr, exit status 2.
"""

#: exit status: the command did what was asked
EXIT_OK = 0
#: exit status: bad input (a file, an option, the file system) — one line on stderr; nothing (more) was done
EXIT_BAD_INPUT = 2
#: exit status of a batch: every input was tried, the good ones were written, at least one input failed (each is
#: named with its reason on stderr and in the batch's ``batch_summary.csv``)
EXIT_SOME_FAILED = 3


class InputError(ValueError):
    """A file, field or option given by the user is invalid; the message names it and the problem."""


class OutputCollision(InputError):
    """An output would replace one of the command's own input files (see :func:`sacmap.core.atomic.protect_inputs`)."""
