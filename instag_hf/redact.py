"""Keeps credentials out of everything instag_hf stores or prints.

Every error text, URL and log line goes through :func:`redact` before it reaches a
row, a file, a card, an upload or a log: a gateway that echoes the API key in its
error message, or a key written into a base URL (``http://user:KEY@host/v1``), must
never leave the machine. Backends :func:`register_secret` the key they read (the
value is kept in this process only, never pickled or cached); known key shapes,
``Authorization`` values and URL credentials are masked whether registered or not.
"""

from __future__ import annotations

import logging
import re
import threading
from urllib.parse import quote

MASK = "***"
#: shortest value treated as a secret: shorter ones would mask ordinary words
MIN_SECRET_CHARS = 8

_SECRETS: set[str] = set()
_LOCK = threading.Lock()
_PATTERNS = (
    # scheme://user:password@host or scheme://token@host
    (re.compile(r"(?i)\b([a-z][a-z0-9+.\-]*://)[^/\s@:]*(?::[^/\s@]*)?@"), rf"\1{MASK}@"),
    (re.compile(r"(?i)\b(bearer|basic)\s+[A-Za-z0-9._~+/=\-]{6,}"), rf"\1 {MASK}"),
    (re.compile(r"(?i)(\"?(?:api[_-]?key|access[_-]?token|token|secret|password)\"?\s*[:=]\s*\"?)"
                r"[^\s\"&,;]{6,}"), rf"\1{MASK}"),
    (re.compile(r"\bsk-[A-Za-z0-9_\-]{12,}"), f"sk-{MASK}"),
    (re.compile(r"\bhf_[A-Za-z0-9]{8,}"), f"hf_{MASK}"),
)


def register_secret(value: str | None) -> None:
    """Mask ``value`` (and its URL-encoded form) wherever :func:`redact` runs in this process."""
    if not value or len(value) < MIN_SECRET_CHARS:
        return
    with _LOCK:
        _SECRETS.add(value)
        encoded = quote(value, safe="")
        if encoded != value:
            _SECRETS.add(encoded)


def redact(text):
    """``text`` with every registered secret, URL credential and key-shaped token masked.

    Anything that is not a string is returned as it is, so callers may pass optional values.
    """
    if not isinstance(text, str) or not text:
        return text
    with _LOCK:
        secrets = sorted(_SECRETS, key=len, reverse=True)
    for secret in secrets:
        if secret in text:
            text = text.replace(secret, MASK)
    for pattern, replacement in _PATTERNS:
        text = pattern.sub(replacement, text)
    return text


class RedactingFilter(logging.Filter):
    """A handler filter that redacts each record's formatted message (and traceback text)."""

    def filter(self, record: logging.LogRecord) -> bool:
        message = record.getMessage()
        cleaned = redact(message)
        if cleaned != message:
            record.msg, record.args = cleaned, None
        if record.exc_info and record.exc_info[1] is not None:
            import traceback

            record.exc_text = redact("".join(traceback.format_exception(*record.exc_info)).rstrip("\n"))
            record.exc_info = None
        return True
