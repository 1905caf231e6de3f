"""moodstream.redaction: camera URLs without their secrets."""

from __future__ import annotations

import logging
import sys

import pytest

from moodstream.redaction import RedactingFormatter, is_secret_name, redact_text, redact_url


@pytest.mark.parametrize("url,expected", [
    ("rtsp://user:pass@cam/stream", "rtsp://user:***@cam/stream"),
    ("http://cam/snap.cgi?user=admin&pwd=s3&token=t&channel=1",
     "http://cam/snap.cgi?user=admin&pwd=***&token=***&channel=1"),
    ("https://a:b@[fe80::1]:8443/x?X-Amz-Signature=z;access_token=t",
     "https://a:***@[fe80::1]:8443/x?X-Amz-Signature=***;access_token=***"),
    ("http://cam/x#auth=t", "http://cam/x#auth=***"),
    ("http://cam/x.jpg", "http://cam/x.jpg"),
    ("/media/lesson.mp4", "/media/lesson.mp4"),
    ("http://u:p@h:notaport/", "(hidden URL)"),
])
def test_urls_lose_passwords_and_secret_values(url, expected):
    assert redact_url(url) == expected


@pytest.mark.parametrize("name,secret", [
    ("pwd", True), ("Password", True), ("api_key", True), ("apikey", True), ("sig", True),
    ("X-Amz-Signature", True), ("access_token", True), ("client_secret", True),
    ("user", False), ("channel", False), ("keyframe", False), ("subtype", False)])
def test_secret_names(name, secret):
    assert is_secret_name(name) is secret


def test_urls_inside_messages_are_redacted_and_the_rest_kept():
    text = "cannot reach http://cam:pw@10.0.0.5/x.jpg?token=t1: HTTP Error 401: Unauthorized"
    assert redact_text(text) == ("cannot reach http://cam:***@10.0.0.5/x.jpg?token=***: "
                                 "HTTP Error 401: Unauthorized")


def test_log_lines_and_their_tracebacks_carry_no_camera_secret():
    """A library's exception may quote a camera URL whole; the log line masks it."""
    formatter = RedactingFormatter("%(levelname)s %(message)s")
    try:
        raise OSError("cannot open http://cam:hunter2@10.0.0.5/snap.jpg?token=abc123")
    except OSError:
        record = logging.LogRecord("ingest", logging.ERROR, __file__, 1,
                                   "camera %s: ingest failed", ("rtsp://u:pw99@h/x",),
                                   exc_info=sys.exc_info())
    line = formatter.format(record)
    assert "OSError" in line and "ingest failed" in line
    for secret in ("hunter2", "abc123", "pw99"):
        assert secret not in line
