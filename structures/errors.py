"""Errors for bad user input in the structures package (caught by the CLI: clear message, exit 2)."""


class StructureInputError(ValueError):
    """A campaign spec, site kind, metal or separation is invalid; the message names the file and field."""
