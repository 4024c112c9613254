"""Secrets never printed: database URLs and launchpad passwords removed from any message or log line.

One implementation for every package (:func:`redact_url` for a URL shown on its own, :func:`redact_text` for a
free-text message such as a driver's error, which may quote the URL or a ``password=...`` pair).
"""

from __future__ import annotations

import logging
import re

_URL = re.compile(r"(\w[\w+.-]*://[^:/@\s]+):[^@\s]*@")
_KEY = r"(?i)(pass(?:word|wd)?['\"]?\s*[=:]\s*)"
_QUOTED = re.compile(_KEY + r"(['\"])[^'\"]*\2")
_BARE = re.compile(_KEY + r"(?!['\"]\*\*\*)[^\s'\",;}]+")


def redact_url(url: str) -> str:
    """A URL without its password (``postgresql://user:***@host/db``)."""
    return _URL.sub(r"\1:***@", str(url))


def redact_text(text: str) -> str:
    """``text`` with passwords in URLs (``scheme://user:***@host``) and ``password=...`` / ``password: ...`` /
    ``"password": "..."`` values (libpq, pymongo, YAML, JSON, ``PGPASSWORD=...``) replaced by ``***``."""
    text = redact_url(text)
    text = _QUOTED.sub(r"\1\2***\2", text)
    return _BARE.sub(r"\1***", text)


class RedactingFilter(logging.Filter):
    """A logging filter that redacts every record's formatted message (install it on a handler)."""

    def filter(self, record: logging.LogRecord) -> bool:
        try:
            msg = record.getMessage()
        except Exception:  # noqa: BLE001 - a broken record is logged as it is
            return True
        red = redact_text(msg)
        if red != msg:
            record.msg, record.args = red, None
        return True
