"""Errors raised for bad user input in the workflows package (caught by the CLI: clear message, exit 2)."""

from sacmap.core.errors import InputError


class WorkflowInputError(InputError):
    """A spec, launchpad file, database URL or other user input is invalid; the message names the file/field."""
