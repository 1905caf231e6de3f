"""The real `moodstream up`: what admins set up lasts. A SIGKILL of its embedded Redis and
a restart of `up` keep cameras (mode, thresholds), accounts and their camera access; frames
flow again and the viewer logs in again, each within 45 s."""

from __future__ import annotations

import os
import signal
import stat
import subprocess
import time

import psutil
import requests

from tests.conftest import MOODSTREAM, REPO, free_port, service_env, wait_for
from tests.dashboard.conftest import CSRF_RE

TOKEN = "sor-test-token-0123456789"
VIEWER = ("tina", "tina-password")
RECOVERY_S = 45
DRIVER = {"id": "cab9", "name": "Cab 9", "mode": "driver", "fps": "2",
          "negative_threshold": "0.35", "negative_seconds": "8", "absent_seconds": "4",
          "groups": "fleet-north"}


class Up:
    """`moodstream up` in its own process group, logging to a file."""

    def __init__(self, tmp_path, name: str):
        self.port = free_port()
        self.base = f"http://127.0.0.1:{self.port}"
        self.log = tmp_path / f"{name}.log"
        env = service_env("", MOODSTREAM_TOKEN=TOKEN,
                          MOODSTREAM_DATA_DIR=str(tmp_path / "data"))
        env.pop("REDIS_URL", None)  # the embedded Redis
        with open(self.log, "wb") as out:
            self.proc = subprocess.Popen(
                [*MOODSTREAM, "up", "--no-source", "--port", str(self.port),
                 "--bulk-workers", "0"], cwd=REPO, env=env, stdout=out,
                stderr=subprocess.STDOUT, start_new_session=True)
        self.http = requests.Session()
        self.http.headers["Authorization"] = f"Bearer {TOKEN}"

    def alive(self) -> None:
        assert self.proc.poll() is None, self.log.read_text()[-4000:]

    def get(self, path: str):
        """The JSON answer, or None while the dashboard does not answer 200."""
        self.alive()
        try:
            answer = self.http.get(self.base + path, timeout=3)
        except requests.RequestException:
            return None
        return answer.json() if answer.status_code == 200 else None

    def redis_server(self) -> psutil.Process:
        found = [p for p in psutil.Process(self.proc.pid).children(recursive=True)
                 if p.name().startswith("redis-server")]
        assert len(found) == 1, found
        return found[0]

    def stop(self) -> None:
        if self.proc.poll() is None:
            os.killpg(self.proc.pid, signal.SIGINT)
            try:
                self.proc.wait(60)
            except subprocess.TimeoutExpired:
                os.killpg(self.proc.pid, signal.SIGKILL)
                self.proc.wait(10)


def viewer_cameras(up: Up, account: tuple[str, str] = VIEWER) -> list[str] | None:
    """A viewer logs in with the password form and lists cameras (None: not yet)."""
    browser = requests.Session()
    try:
        page = browser.get(up.base + "/login", timeout=3)
        token = CSRF_RE.search(page.text)
        if page.status_code != 200 or not token:
            return None
        answer = browser.post(up.base + "/login", data={
            "username": account[0], "password": account[1], "csrf_token": token.group(1)},
            allow_redirects=False, timeout=3)
        if answer.status_code != 302:
            return None
        listed = browser.get(up.base + "/api/cameras", timeout=3)
    except requests.RequestException:
        return None
    return sorted(c["id"] for c in listed.json()) if listed.status_code == 200 else None


def camera_as_set_up(up: Up) -> bool:
    camera = up.get("/api/cameras/cab9")
    return bool(camera) and camera["mode"] == "driver" and camera["registered"] and (
        camera["negative_threshold"], camera["negative_seconds"], camera["absent_seconds"],
        camera["groups"]) == (0.35, 8.0, 4.0, "fleet-north")


def labels(up: Up) -> int:
    return (up.get("/api/stats") or {}).get("labels", 0)


def test_cameras_and_accounts_survive_a_redis_kill_and_a_restart_of_up(media, tmp_path):
    up = Up(tmp_path, "up-1")
    try:
        wait_for(lambda: up.get("/api/me"), timeout=180, what="the dashboard of `up`")
        assert up.http.post(up.base + "/api/cameras", json={
            **DRIVER, "source": str(media / "fer_woman2.mp4")}, timeout=10).status_code == 201
        assert up.http.post(up.base + "/api/cameras", json={
            "id": "room2", "source": str(media / "fer_justin.jpg"), "fps": "1"},
            timeout=10).status_code == 201
        assert up.http.post(up.base + "/api/users", json={
            "name": VIEWER[0], "password": VIEWER[1], "role": "viewer", "cameras": ["cab9"]},
            timeout=10).status_code == 201
        wait_for(lambda: labels(up) >= 3, timeout=180, what="labels through `up`")
        assert viewer_cameras(up) == ["cab9"]
        # What up keeps on disk is its owner's alone.
        data = tmp_path / "data"
        assert stat.S_IMODE(data.stat().st_mode) == 0o700
        for kept in data.glob("history.db*"):
            assert stat.S_IMODE(kept.stat().st_mode) == 0o600, kept

        # SIGKILL of the embedded Redis: everything is back within 45 s.
        old = up.redis_server()
        old.send_signal(signal.SIGKILL)
        killed, killed_at = time.monotonic(), time.time()
        wait_for(lambda: camera_as_set_up(up), timeout=RECOVERY_S,
                 what="the driver camera back with its thresholds")
        wait_for(lambda: viewer_cameras(up) == ["cab9"],
                 timeout=RECOVERY_S - (time.monotonic() - killed),
                 what="the limited viewer logging in again")
        wait_for(lambda: labels(up) >= 3, timeout=RECOVERY_S - (time.monotonic() - killed),
                 what="labels flowing again (the counters start again with Redis)")
        wait_for(lambda: (up.get("/api/cameras/cab9/mood") or {}).get("ts", 0) > killed_at,
                 timeout=RECOVERY_S - (time.monotonic() - killed),
                 what="a new snapshot of the driver camera")
        print(f"after SIGKILL of Redis: all back and flowing in {time.monotonic() - killed:.1f} s")
        new = up.redis_server()
        assert new.pid != old.pid
        assert redis_port(up) in {c.laddr.port for c in new.net_connections("tcp")}
        # No 500 outlasts the outage.
        for path in ("/api/cameras", "/api/cameras/cab9", "/api/cameras/cab9/mood",
                     "/api/stats", "/api/users", "/api/audit"):
            assert up.http.get(up.base + path, timeout=5).status_code == 200, path
        audit = up.get("/api/audit")
        assert {(c["action"], c["target"], c["actor"]) for c in audit} >= {
            ("camera.add", "cab9", "bearer"), ("user.add", "tina", "bearer")}
        up.stop()
        assert up.proc.returncode == 0, up.log.read_text()[-4000:]

        # A restart of `up` on the same data directory: the same again.
        # The clock runs from the restart itself: starting every service is part of the 45 s.
        started = time.monotonic()
        up = Up(tmp_path, "up-2")
        wait_for(lambda: up.get("/api/me"), timeout=RECOVERY_S, what="the dashboard of `up` again")
        assert camera_as_set_up(up)
        assert sorted(c["id"] for c in up.get("/api/cameras")) == ["cab9", "room2"]
        assert viewer_cameras(up) == ["cab9"]
        wait_for(lambda: labels(up) >= 3 and up.get("/api/cameras/cab9/mood"),
                 timeout=RECOVERY_S, what="labels and the driver camera's snapshot after a "
                                          "restart")
        assert time.monotonic() - started < RECOVERY_S
        print(f"after a restart of up: flowing {time.monotonic() - started:.1f} s after the "
              "restart")

        # `moodstream user` with the running up's Redis out of reach writes the database;
        # up copies the account into its Redis within seconds.
        env = service_env("redis://127.0.0.1:1/0", MOODSTREAM_DATA_DIR=str(tmp_path / "data"))
        added = subprocess.run([*MOODSTREAM, "user", "add", "sam", "--password", "sam-password",
                                "--groups", "fleet-north"], cwd=REPO, env=env,
                               capture_output=True, text=True, timeout=60)
        assert added.returncode == 0 and "out of reach" in added.stderr, added.stderr
        wait_for(lambda: viewer_cameras(up, ("sam", "sam-password")) == ["cab9"], timeout=15,
                 what="the account added from the command line")
    finally:
        up.stop()


def redis_port(up: Up) -> int:
    """The port `up` printed for its embedded Redis."""
    for line in up.log.read_text().splitlines():
        if line.startswith("Redis: redis://"):
            return int(line.rsplit(":", 1)[1].split("/")[0])
    raise AssertionError("`up` did not print its Redis")
