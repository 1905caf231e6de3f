"""The dashboard's production server: gunicorn, one process, threads, WebSocket through
simple-websocket, as the Flask-SocketIO deployment docs recommend.

One worker process, because Socket.IO clients must always reach the process that holds their
session; run more dashboards behind a load balancer with sticky sessions to scale out. Every
long-lived Socket.IO connection holds one thread, so `threads` bounds them.

Threads are for requests, not for waiting on clients: a client that sends its request a
header line every few seconds must not hold one (gunicorn's threaded worker gives a
connection a thread as soon as its first bytes arrive). TimedThreadWorker gathers each
request head on its event loop (the one that already waits on kept-alive connections),
without a thread, with its body when that is small (a login, the API's JSON), and gives the
request to a thread only once they are complete; a request not complete within
`request_timeout` seconds of its first byte is dropped. A larger body (an upload) is read
by a thread, but by at most half the threads at once, and it must keep coming at
MIN_BODY_BYTES_PER_S on average. Every read in a thread is bounded by `request_timeout`;
WebSocket connections drop the bound once upgraded (engine.io's pings find dead peers there).
"""

from __future__ import annotations

import re
import selectors
import socket
import time
import weakref
from collections import deque
from functools import partial

from gunicorn.app.base import BaseApplication
from gunicorn.workers.gthread import ThreadWorker

REQUEST_TIMEOUT_S = 10.0  # replaced by serve() from the settings
MAX_HEAD_BYTES = 64 * 1024  # beyond this gunicorn's own limits answer (431 or 400)
# Bodies up to this size (logins, the API's JSON) are gathered with the head. Larger ones
# (uploads) are read by a thread: by at most half the threads at a time, so that the other
# requests always find one, and at MIN_BODY_BYTES_PER_S on average after the first
# `request_timeout` seconds, or the connection is dropped.
MAX_GATHERED_BODY = 64 * 1024
MIN_BODY_BYTES_PER_S = 8 * 1024
HEAD_END = re.compile(rb"\r?\n\r?\n")
CONTENT_LENGTH = re.compile(rb"^content-length[ \t]*:[ \t]*(\d{1,12})[ \t]*\r?$",
                            re.IGNORECASE | re.MULTILINE)
CHUNKED = re.compile(rb"^transfer-encoding[ \t]*:[^\n]*chunked", re.IGNORECASE | re.MULTILINE)


def request_complete(data: bytes) -> bool:
    """Whether `data` holds a whole request head, and its body when that is small."""
    end = HEAD_END.search(data)
    if end is None:
        return len(data) >= MAX_HEAD_BYTES  # gunicorn answers 431/400 for it
    length = CONTENT_LENGTH.search(data, 0, end.start())
    body = int(length.group(1)) if length else 0
    return body > MAX_GATHERED_BODY or len(data) - end.end() >= body


def large_body(data: bytes) -> bool:
    """Whether the request whose head `data` holds has a body left for a thread to read."""
    end = HEAD_END.search(data)
    head_end = end.start() if end else len(data)
    length = CONTENT_LENGTH.search(data, 0, head_end)
    return bool((length and int(length.group(1)) > MAX_GATHERED_BODY)
                or CHUNKED.search(data, 0, head_end))


_TIMED_OUT: weakref.WeakSet = weakref.WeakSet()  # connections whose client stalled
# Connections reading a large body: [when its thread started, bytes received since].
_PACE: weakref.WeakKeyDictionary = weakref.WeakKeyDictionary()


class _TimedSocket(socket.socket):
    """A socket whose blocking mode has a timeout: gunicorn switches its connections to
    blocking mode before reading a request, which would otherwise wait without limit."""

    __slots__ = ()

    def setblocking(self, flag: bool) -> None:
        if flag:
            self.settimeout(REQUEST_TIMEOUT_S)
        else:
            super().setblocking(False)

    def _paced(self) -> list | None:
        """A large body's pace: the next read may wait only until the average falls below
        MIN_BODY_BYTES_PER_S (after the first REQUEST_TIMEOUT_S)."""
        pace = _PACE.get(self)
        if pace is None or not socket.socket.gettimeout(self):  # non-blocking, or untimed
            return None
        left = pace[0] + REQUEST_TIMEOUT_S + pace[1] / MIN_BODY_BYTES_PER_S - time.monotonic()
        if left <= 0:
            _TIMED_OUT.add(self)
            raise TimeoutError("the request body arrives too slowly")
        socket.socket.settimeout(self, min(REQUEST_TIMEOUT_S, left))
        return pace

    def recv(self, *args):
        pace = self._paced()
        try:
            data = super().recv(*args)
        except TimeoutError:
            _TIMED_OUT.add(self)
            raise
        if pace is not None:
            pace[1] += len(data)
        return data

    def recv_into(self, *args):
        pace = self._paced()
        try:
            n = super().recv_into(*args)
        except TimeoutError:
            _TIMED_OUT.add(self)
            raise
        if pace is not None:
            pace[1] += n
        return n


class TimedThreadWorker(ThreadWorker):
    """Gathers request heads on the event loop (see the module's docstring)."""

    def __init__(self, *args, **kwargs):
        super().__init__(*args, **kwargs)
        self.gathering: deque = deque()  # connections whose head is still arriving
        # Requests with a large body: how many threads may read them, and those waiting.
        self.large_slots = max(1, self.cfg.threads // 2)
        self.large_active = 0
        self.large_waiting: deque = deque()

    def enqueue_req(self, conn):
        """Called on the event loop when a connection is accepted or becomes readable."""
        if type(conn.sock) is socket.socket:
            conn.sock.__class__ = _TimedSocket  # same layout: only the methods change
        buffered = conn.parser is not None and conn.parser.unreader.buf.getvalue()
        if self.cfg.is_ssl or buffered:  # a head to read through TLS, or already read
            super().enqueue_req(conn)
            return
        if getattr(conn, "head", None) is None:  # a new request starts
            conn.head, conn.head_deadline = bytearray(), time.monotonic() + REQUEST_TIMEOUT_S
        try:
            while len(conn.head) < MAX_HEAD_BYTES + MAX_GATHERED_BODY:
                chunk = conn.sock.recv(MAX_HEAD_BYTES)
                if not chunk:
                    self._drop(conn)  # the client went away before its head was complete
                    return
                conn.head += chunk
        except BlockingIOError:
            pass
        except OSError:
            self._drop(conn)
            return
        if request_complete(conn.head):
            conn.gathered, conn.head = bytes(conn.head), None
            conn.data_ready = True  # the thread must not wait for data that is here
            conn.large = large_body(conn.gathered)
            if conn.large and self.large_active >= self.large_slots:
                self.large_waiting.append(conn)  # started when a large one finishes
            else:
                self._start(conn)
        elif time.monotonic() >= conn.head_deadline:
            self._drop(conn)
        else:
            self.gathering.append(conn)
            self.poller.register(conn.sock, selectors.EVENT_READ,
                                 partial(self._more_head, conn))

    def _start(self, conn):
        if getattr(conn, "large", False):
            self.large_active += 1
        super().enqueue_req(conn)

    def _more_head(self, conn, client):
        self.poller.unregister(client)
        self.gathering.remove(conn)
        self.enqueue_req(conn)

    def _drop(self, conn):
        self.nr_conns -= 1
        conn.close()

    def murder_pending(self):
        """Also drop the connections whose head did not arrive within the deadline."""
        super().murder_pending()
        now = time.monotonic()
        for conn in [c for c in self.gathering if c.head_deadline <= now]:
            self.gathering.remove(conn)
            try:
                self.poller.unregister(conn.sock)
            except (OSError, KeyError, ValueError):
                pass
            self._drop(conn)

    def handle(self, conn):
        """In a thread: the gathered head goes back in front of the parser's input."""
        gathered, conn.gathered = getattr(conn, "gathered", None), None
        if getattr(conn, "large", False):
            _PACE[conn.sock] = [time.monotonic(), 0]
        else:
            _PACE.pop(conn.sock, None)
        if gathered:
            try:
                conn.sock.setblocking(True)
                conn.init()
                conn.parser.unreader.unread(gathered)
            except OSError:
                return False
        return super().handle(conn)

    def handle_quit(self, sig, frame):
        # Ctrl-C reaches every process of the terminal, this worker too: stop as on SIGTERM
        # (finish what is in flight) instead of gunicorn's sys.exit() from inside whatever
        # code the signal interrupts.
        self.handle_exit(sig, frame)

    def finish_request(self, conn, fs):
        if getattr(conn, "large", False):
            conn.large = False
            self.large_active -= 1
            while self.large_waiting and self.large_active < self.large_slots:
                self._start(self.large_waiting.popleft())
        # A graceful close lingers up to 2 s on the main loop for the client to close too;
        # a client that stalled would do that to every connection it holds. Drop it at once.
        if conn.sock in _TIMED_OUT:
            self.nr_conns -= 1
            conn.close()
            return
        super().finish_request(conn, fs)


def untimed_websockets(app):
    """WSGI middleware: an upgraded WebSocket connection may stay quiet between pings."""

    def wrapped(environ, start_response):
        if environ.get("HTTP_UPGRADE", "").lower() == "websocket":
            sock = environ.get("gunicorn.socket")
            if isinstance(sock, _TimedSocket):
                _PACE.pop(sock, None)
                socket.socket.settimeout(sock, None)
        return app(environ, start_response)

    return wrapped


class DashboardServer(BaseApplication):
    """`make_app` runs in the worker, after the fork: the master holds only gunicorn (about
    30 MB), not a second copy of Flask, Socket.IO and SQLAlchemy."""

    def __init__(self, make_app, options: dict):
        self.make_app, self.options = make_app, options
        super().__init__()

    def load_config(self):
        for name, value in self.options.items():
            self.cfg.set(name, value)

    def load(self):
        return untimed_websockets(self.make_app())


def serve(make_app, host: str, port: int, threads: int, request_timeout: float) -> None:
    global REQUEST_TIMEOUT_S
    REQUEST_TIMEOUT_S = request_timeout
    bind = f"[{host}]:{port}" if ":" in host else f"{host}:{port}"
    DashboardServer(make_app, {
        "bind": [bind], "workers": 1, "threads": threads,
        "worker_class": "moodstream.dashboard.server.TimedThreadWorker",
        # An idle kept-alive connection is closed after a few seconds.
        "keepalive": 5, "graceful_timeout": 10, "timeout": 60,
        "accesslog": None, "errorlog": "-", "loglevel": "warning",
        "proc_name": "moodstream-dashboard",
    }).run()
