"""Errors for bad user input in the detection package (caught by the CLI: clear message, exit 2)."""

from sacmap.core.errors import InputError


class DetectionInputError(InputError):
    """An image, weights file or CSV is unreadable or invalid; the message names the file and the problem."""
