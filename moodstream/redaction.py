"""Secrets out of camera URLs, for everyone who may not see them: viewers, logs, statuses.

Camera URLs carry credentials two ways: userinfo (rtsp://user:pass@host/) and query
parameters (snapshot.cgi?user=admin&pwd=...&token=...). Both are masked; the user name stays,
so an admin can still tell which account a camera uses.
"""

from __future__ import annotations

import logging
import re
from urllib.parse import urlsplit, urlunsplit

MASK = "***"
# Query parameter names (or words inside them, split at - _ .) that carry a secret.
SECRET_WORDS = frozenset({
    "pwd", "password", "passwd", "pass", "passphrase", "token", "key", "secret", "auth",
    "signature", "sig", "apikey", "credential", "credentials", "session", "sid", "cookie",
    "jwt", "bearer", "otp", "code"})
# Names that hold a secret word without a separator.
SECRET_PARTS = ("password", "passwd", "token", "secret", "apikey", "signature", "credential")
# A URL ends before spaces and quotes, and does not take the punctuation after it.
URL_IN_TEXT = re.compile(r"[A-Za-z][A-Za-z0-9+.-]*://[^\s'\"<>]*[^\s'\"<>.,:;)\]]")


def is_secret_name(name: str) -> bool:
    lower = name.strip().lower()
    words = set(re.split(r"[-_.\[\] ]+", lower))
    return bool(words & SECRET_WORDS) or any(part in lower for part in SECRET_PARTS)


def _mask_query(query: str) -> str:
    out = []
    for pair in re.split(r"([&;])", query):
        name, sep, _value = pair.partition("=")
        out.append(f"{name}={MASK}" if sep and is_secret_name(name) else pair)
    return "".join(out)


def redact_url(url: str) -> str:
    """The URL with its password and secret query values replaced by ***; a URL that does
    not parse is hidden whole (it might be all secret)."""
    if "://" not in url:
        return url
    try:
        parts = urlsplit(url)
        port = parts.port
    except ValueError:
        return "(hidden URL)"
    netloc = parts.netloc
    if parts.username is not None or parts.password is not None:
        host = parts.hostname or ""
        if ":" in host:
            host = f"[{host}]"
        if port is not None:
            host = f"{host}:{port}"
        user = parts.username or ""
        netloc = f"{user}:{MASK}@{host}" if parts.password is not None else f"{user}@{host}"
    return urlunsplit((parts.scheme, netloc, parts.path, _mask_query(parts.query),
                       _mask_query(parts.fragment)))


def redact_text(text: str) -> str:
    """Every URL inside a message (an error, a status, a log line) redacted."""
    return URL_IN_TEXT.sub(lambda match: redact_url(match.group(0)), text)


class RedactingFormatter(logging.Formatter):
    """Log lines, tracebacks included, with every URL redacted: an exception raised by a
    library may quote a camera's URL whole."""

    def format(self, record: logging.LogRecord) -> str:
        return redact_text(super().format(record))
