"""Errors for bad user input in the analysis package (caught by the CLI: clear message, exit 2)."""

from sacmap.core.errors import InputError


class AnalysisInputError(InputError):
    """An input file or table is invalid (empty, missing columns, NaN, ...); the message names it."""
