"""The dashboard's production server: gunicorn, one process, threads, WebSocket through
simple-websocket, as the Flask-SocketIO deployment docs recommend.

One worker process, because Socket.IO clients must always reach the process that holds their
session; run more dashboards behind a load balancer with sticky sessions to scale out. Every
long-lived Socket.IO connection holds one thread, so `threads` bounds them.

Gunicorn's threaded worker waits a few seconds for a new connection's first bytes and then
parks it without a thread, but once a request has started arriving it reads it with no time
limit: a client that sends half a request head holds a thread for ever. TimedThreadWorker
bounds every read of a request by `request_timeout` seconds; WebSocket connections drop the
bound once upgraded (engine.io's pings find dead peers there).
"""

from __future__ import annotations

import socket
import weakref

from gunicorn.app.base import BaseApplication
from gunicorn.workers.gthread import ThreadWorker

REQUEST_TIMEOUT_S = 10.0  # replaced by configure_timeout() from the settings


_TIMED_OUT: weakref.WeakSet = weakref.WeakSet()  # connections whose client stalled


class _TimedSocket(socket.socket):
    """A socket whose blocking mode has a timeout: gunicorn switches its connections to
    blocking mode before reading a request, which would otherwise wait without limit."""

    __slots__ = ()

    def setblocking(self, flag: bool) -> None:
        if flag:
            self.settimeout(REQUEST_TIMEOUT_S)
        else:
            super().setblocking(False)

    def recv(self, *args):
        try:
            return super().recv(*args)
        except TimeoutError:
            _TIMED_OUT.add(self)
            raise

    def recv_into(self, *args):
        try:
            return super().recv_into(*args)
        except TimeoutError:
            _TIMED_OUT.add(self)
            raise


class TimedThreadWorker(ThreadWorker):
    def enqueue_req(self, conn):
        if type(conn.sock) is socket.socket:
            conn.sock.__class__ = _TimedSocket  # same layout: only the methods change
        super().enqueue_req(conn)

    def handle_quit(self, sig, frame):
        # Ctrl-C reaches every process of the terminal, this worker too: stop as on SIGTERM
        # (finish what is in flight) instead of gunicorn's sys.exit() from inside whatever
        # code the signal interrupts.
        self.handle_exit(sig, frame)

    def finish_request(self, conn, fs):
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
