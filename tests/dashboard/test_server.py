"""The dashboard's server (dashboard/server.py) against slow clients: a real `moodstream
dashboard` process with the settings `moodstream up` gives it (100 threads, 10 s request
timeout), on the real test redis-server; loopback only, bounded in count and time."""

from __future__ import annotations

import socket
import threading
import time
import urllib.error
import urllib.request

import pytest

from tests.conftest import dashboard_process

pytestmark = pytest.mark.slow
SLOW_CLIENTS = 300
DRIP_EVERY_S = 2.0  # a header line this often: never quiet long enough for a read timeout


@pytest.fixture
def dashboard(redis_server, tmp_path):
    with dashboard_process(redis_server.url, tmp_path / "dashboard.log",
                           MOODSTREAM_TOKEN="slow-clients-token-0123",
                           MOODSTREAM_SECRET_KEY="slow-clients") as served:
        yield served


# What each slow client sends first, and then again and again, every DRIP_EVERY_S.
SLOW = {
    "head": (b"GET /healthz HTTP/1.1\r\nHost: 127.0.0.1\r\n", b"X-Slow: %d\r\n"),
    "body": (b"POST /login HTTP/1.1\r\nHost: 127.0.0.1\r\nContent-Length: 4000\r\n"
             b"Content-Type: application/x-www-form-urlencoded\r\n\r\nusername=", b"a%d"),
    "upload": (b"POST /login HTTP/1.1\r\nHost: 127.0.0.1\r\nContent-Length: 100000000\r\n"
               b"Content-Type: application/x-www-form-urlencoded\r\n\r\nusername=", b"a%d"),
}
# Connections the server drops while the test runs (about 15 s): every one whose head or
# small body is not complete within the 10 s timeout; of the large bodies, those the threads
# allowed to read them (half of 100) give up for being too slow.
DROPPED_AT_LEAST = {"head": SLOW_CLIENTS, "body": SLOW_CLIENTS, "upload": 50}


class SlowClients:
    """Connections that send a request a little at a time (a header line, or a few bytes of
    a small body), forever; one that the server drops is opened again, so the pressure
    never lets up."""

    def __init__(self, port: int, count: int, kind: str):
        self.port, self.count = port, count
        self.first, self.drip = SLOW[kind]
        self.stop = threading.Event()
        self.dropped = 0
        self.thread = threading.Thread(target=self.run, daemon=True)

    def open(self) -> socket.socket:
        sock = socket.create_connection(("127.0.0.1", self.port), timeout=5)
        sock.sendall(self.first)
        return sock

    def run(self) -> None:
        socks = [self.open() for _ in range(self.count)]
        try:
            n = 0
            while not self.stop.wait(DRIP_EVERY_S):
                n += 1
                for i, sock in enumerate(socks):
                    try:
                        sock.sendall(self.drip % n)
                    except OSError:
                        self.dropped += 1
                        sock.close()
                        socks[i] = self.open()
        finally:
            for sock in socks:
                sock.close()


def probe(base: str, timeout: float = 3.0) -> bool:
    try:
        with urllib.request.urlopen(base + "/healthz", timeout=timeout) as response:
            return response.status == 200
    except OSError:
        return False


@pytest.mark.parametrize("kind", ["head", "body", "upload"])
def test_slow_clients_do_not_stop_healthz(dashboard, kind):
    """The probe: 300 connections sending a header line every few seconds held all 100
    threads, and /healthz answered 0 of 6 probes. The same with a small body, or a large
    one, sent slowly."""
    clients = SlowClients(dashboard["port"], SLOW_CLIENTS, kind)
    clients.thread.start()
    try:
        time.sleep(3)  # all connected and dripping
        answers = []
        for _ in range(8):
            answers.append(probe(dashboard["base"]))
            time.sleep(1.5)
    finally:
        clients.stop.set()
        clients.thread.join(30)
    assert answers == [True] * len(answers), answers
    assert clients.dropped >= DROPPED_AT_LEAST[kind], clients.dropped
    assert dashboard["proc"].poll() is None
    print(f"/healthz answered {sum(answers)} of {len(answers)} probes under {SLOW_CLIENTS} "
          f"slow clients ({kind}); {clients.dropped} slow connections dropped")


def test_requests_still_work_split_and_kept_alive(dashboard):
    """A head that arrives in pieces within the deadline is served, and a kept-alive
    connection serves a second request."""
    sock = socket.create_connection(("127.0.0.1", dashboard["port"]), timeout=10)
    try:
        for part in (b"GET /healthz HTTP/1.1\r\n", b"Host: 127.0.0.1\r\n", b"\r\n"):
            sock.sendall(part)
            time.sleep(0.5)
        first = sock.recv(4096)
        assert first.startswith(b"HTTP/1.1 200")
        sock.sendall(b"GET /healthz HTTP/1.1\r\nHost: 127.0.0.1\r\nConnection: close\r\n\r\n")
        second = b""
        while chunk := sock.recv(4096):
            second += chunk
        assert second.startswith(b"HTTP/1.1 200")
    finally:
        sock.close()


def test_a_small_body_gathered_with_its_head_reaches_the_app(dashboard):
    body = b'{"id": "cam1", "source": "rtsp://192.0.2.10/x", "fps": "99"}'
    head = (b"POST /api/cameras HTTP/1.1\r\nHost: 127.0.0.1\r\nConnection: close\r\n"
            b"Authorization: Bearer slow-clients-token-0123\r\n"
            b"Content-Type: application/json\r\nContent-Length: %d\r\n\r\n" % len(body))
    sock = socket.create_connection(("127.0.0.1", dashboard["port"]), timeout=10)
    try:
        for part in (head, body[:20], body[20:]):
            sock.sendall(part)
            time.sleep(0.3)
        answer = b""
        while chunk := sock.recv(4096):
            answer += chunk
    finally:
        sock.close()
    assert answer.startswith(b"HTTP/1.1 400") and b"fps must be between" in answer, answer[:300]


def test_a_large_body_at_a_normal_pace_is_read_whole(dashboard):
    """2 MB of multipart form, read by a thread with its pace checked, reaches the form
    parser whole: the page then answers that the form has no CSRF token."""
    boundary = "zz-boundary"
    body = (f"--{boundary}\r\nContent-Disposition: form-data; name=\"fps\"\r\n\r\n5\r\n"
            f"--{boundary}\r\nContent-Disposition: form-data; name=\"files\"; "
            f"filename=\"big.jpg\"\r\nContent-Type: image/jpeg\r\n\r\n").encode()
    body += b"x" * 2_000_000 + f"\r\n--{boundary}--\r\n".encode()
    request = urllib.request.Request(
        dashboard["base"] + "/admin/bulk/", data=body, method="POST",
        headers={"Authorization": "Bearer slow-clients-token-0123",
                 "Content-Type": f"multipart/form-data; boundary={boundary}"})
    with pytest.raises(urllib.error.HTTPError) as caught:
        urllib.request.urlopen(request, timeout=30)
    assert caught.value.code == 400
    assert "The CSRF token is missing" in caught.value.read().decode()
