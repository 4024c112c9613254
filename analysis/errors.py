"""Errors for bad user input in the analysis package (caught by the CLI: clear message, exit 2)."""


class AnalysisInputError(ValueError):
    """An input file or table is invalid (empty, missing columns, NaN, ...); the message names it."""
