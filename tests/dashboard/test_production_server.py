"""`moodstream dashboard` runs a production server (gunicorn with
threads and simple-websocket), with request timeouts. A real process on a real Redis."""

from __future__ import annotations

import select
import socket
import time
import urllib.request

import pytest

from tests.conftest import dashboard_process

pytestmark = pytest.mark.slow
TOKEN = "server-test-token-0123456789"


@pytest.fixture(scope="module")
def served(redis_server, tmp_path_factory):
    with dashboard_process(redis_server.url, tmp_path_factory.mktemp("server") / "dashboard.log",
                           MOODSTREAM_TOKEN=TOKEN, MOODSTREAM_SECRET_KEY="server-test",
                           MOODSTREAM_DASHBOARD_THREADS="8",
                           MOODSTREAM_DASHBOARD_REQUEST_TIMEOUT_S="3") as served:
        yield served


def test_the_server_is_not_the_werkzeug_development_server(served):
    with urllib.request.urlopen(served["base"] + "/healthz", timeout=5) as response:
        server = response.headers.get("Server", "")
    assert "werkzeug" not in server.lower() and "gunicorn" in server.lower()


def test_half_open_connections_do_not_hold_the_threads(served):
    """30 clients that send half a request head, against 8 threads: a real request is still
    answered, and the server closes the stalled ones after the request timeout (3 s here)."""
    stalled = []
    for _ in range(30):
        sock = socket.create_connection(("127.0.0.1", served["port"]), timeout=30)
        sock.sendall(b"GET /healthz HTTP/1.1\r\nHost: x\r\n")  # and never the blank line
        stalled.append(sock)
    try:
        started = time.monotonic()
        with urllib.request.urlopen(served["base"] + "/healthz", timeout=30) as response:
            assert response.status == 200
        assert time.monotonic() - started < 20
        open_ = set(stalled)
        deadline = time.monotonic() + 25
        while open_ and time.monotonic() < deadline:
            readable, _, _ = select.select(list(open_), [], [], 1.0)
            for sock in readable:
                try:
                    data = sock.recv(1024)
                except OSError:
                    data = b""
                assert not data.startswith(b"HTTP/1.1 200"), "a half request is never served"
                if not data:
                    open_.discard(sock)
        assert not open_, f"{len(open_)} half-open connections still held after 25 s"
    finally:
        for sock in stalled:
            sock.close()
    assert served["proc"].poll() is None
