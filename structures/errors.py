"""Errors for bad user input in the structures package (caught by the CLI: clear message, exit 2)."""

from sacmap.core.errors import InputError


class StructureInputError(InputError):
    """A campaign spec, site kind, metal or separation is invalid; the message names the file and field."""
