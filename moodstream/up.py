"""`moodstream up`: the whole live pipeline and the dashboard as child processes.

Each service runs as its own `moodstream <service>` process so that `ps` shows who is who
and a crash takes down only that child, which is restarted.
"""

from __future__ import annotations

import argparse
import logging
import secrets
import signal
import sys
import threading
import time

from sqlalchemy.exc import SQLAlchemyError

from moodstream import keys
from moodstream.camera_settings import CameraSettings
from moodstream.config import Settings
from moodstream.dashboard.users import ensure_admin
from moodstream.embedded_redis import EmbeddedRedis
from moodstream.history.records import Records, open_records
from moodstream.ingest.supervisor import CameraSupervisor
from moodstream.private_files import private_dir
from moodstream.processes import Child, stop_all
from moodstream.redis_client import connect
from moodstream.redis_fill import fill_redis

log = logging.getLogger("moodstream.up")


def configure(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--source", default="demo",
                        help="camera source for the first camera (default: the sample video)")
    parser.add_argument("--camera", default="demo", help="id of that camera")
    parser.add_argument("--mode", choices=["classroom", "driver"], default="classroom")
    parser.add_argument("--fps", type=float, default=5.0)
    parser.add_argument("--host", default="127.0.0.1", help="dashboard address")
    parser.add_argument("--port", type=int, default=5000, help="dashboard port")
    parser.add_argument("--detectors", type=int, default=1)
    parser.add_argument("--classifiers", type=int, default=1)
    parser.add_argument("--bulk-workers", type=int, default=1,
                        help="bulk analysis workers for the dashboard's uploads (0: none)")
    parser.add_argument("--no-source", action="store_true",
                        help="register no camera; add them from the dashboard")


def register_camera(r, cam: str, source: str, mode: str, fps: float,
                    records: Records | None = None) -> None:
    """Register a camera unless it already is: an admin's later edits survive a restart.
    With records, the database decides (and is written first)."""
    if records is not None:
        stored = records.camera(cam)
        if stored is not None and stored.get("source"):
            return
    else:
        existing = CameraSettings.load(r, cam)
        if existing is not None and existing.source:
            return
    camera = CameraSettings(name=cam, source=source, mode=mode, fps=fps, loop=True)
    if records is not None:
        records.put_camera(cam, camera.to_hash(), actor="up", action="camera.add",
                           detail={"mode": mode, "fps": camera.to_hash()["fps"],
                                   "source": "(changed)"})
    r.srem(keys.REMOVED_CAMERAS, cam)
    r.sadd(keys.CAMERAS, cam)
    camera.save(r, cam)


class RedisKeeper:
    """Restarts the embedded redis-server when it dies (same port, same password: the
    services reconnect by themselves), backing off when it keeps dying. The camera
    supervisor then finds Redis empty and fills it from the database."""

    def __init__(self, embedded: EmbeddedRedis):
        self.embedded = embedded
        self.restarts = 0
        self.next_try = 0.0

    def check(self) -> None:
        if self.embedded.running or time.monotonic() < self.next_try:
            return
        code = self.embedded.proc.poll() if self.embedded.proc else None
        log.warning("the embedded redis-server exited (status %s): restarting it", code)
        self.restarts += 1
        try:
            self.embedded.start()
        except (RuntimeError, OSError) as error:
            delay = min(30.0, 2.0 ** min(self.restarts, 5))
            log.error("the embedded redis-server did not start again (%s); next try in "
                      "%.0f s", error, delay)
            self.next_try = time.monotonic() + delay
            return
        log.warning("the embedded redis-server is back on port %d", self.embedded.port)


def history_location(h) -> str:
    """Where the history is kept, for the console (a PostgreSQL password is not shown)."""
    if not h.url:
        return str(h.data_dir / "history.db")
    from sqlalchemy.engine import make_url

    return make_url(h.url).render_as_string(hide_password=True)


def run(args: argparse.Namespace, settings: Settings) -> int:

    embedded = None
    redis_url = settings.redis.url
    shown_url = redis_url.split("@")[-1] if redis_url else ""
    if not redis_url:
        embedded = EmbeddedRedis(maxmemory=settings.redis.maxmemory,
                                 maxmemory_policy=settings.redis.maxmemory_policy)
        redis_url = embedded.start()
        shown_url = embedded.display_url
        settings = settings.with_redis(redis_url)
    d = settings.dashboard
    token = d.token or secrets.token_urlsafe(18)
    # The children read the same settings from their environment, plus what `up` decided.
    env = settings.child_env(MOODSTREAM_TOKEN=token,
                             MOODSTREAM_SECRET_KEY=d.secret_key or secrets.token_hex(32))

    h = settings.history
    if not h.url:  # the embedded history database: a SQLite file in the data directory
        private_dir(h.data_dir)
    r = connect(redis_url)
    # The database is the system of record: Redis gets its accounts and cameras first.
    records = open_records(h)
    try:
        fill_redis(r, records)
        ensure_admin(r, d.admin_user, d.admin_password, records)
        if not args.no_source:
            register_camera(r, args.camera, args.source, args.mode, args.fps, records)
    except SQLAlchemyError as error:
        print(f"moodstream up: the database at {history_location(h)} cannot be used: "
              f"{str(error).splitlines()[0][:300]}", file=sys.stderr)
        if embedded:
            embedded.stop()
        return 2

    children = [Child("aggregator", ["aggregator"], env),
                Child("dashboard", ["dashboard", "--host", args.host, "--port", str(args.port)],
                      env)]
    children += [Child(f"detector-{i}", ["detector"], env) for i in range(args.detectors)]
    children += [Child(f"classifier-{i}", ["classifier"], env) for i in range(args.classifiers)]
    children += [Child(f"bulk-worker-{i}", ["bulk-worker"], env)
                 for i in range(args.bulk_workers)]
    for child in children:
        child.start()

    stop = threading.Event()

    def on_signal(signum, _frame):
        log.info("signal %d: stopping everything", signum)
        stop.set()

    signal.signal(signal.SIGTERM, on_signal)
    signal.signal(signal.SIGINT, on_signal)
    cameras = CameraSupervisor(connect(redis_url), env, settings.ingest.cameras_per_process,
                               records=records)
    keeper = RedisKeeper(embedded) if embedded else None
    camera_thread = threading.Thread(target=cameras.run, args=(stop,), daemon=True)
    camera_thread.start()

    host = "127.0.0.1" if args.host in ("0.0.0.0", "::") else args.host
    print(f"\nmoodstream is up. Dashboard: http://{host}:{args.port}/login?token={token}\n"
          f"API token: {token}\nRedis: {shown_url}\nHistory: {history_location(h)}\n"
          "Ctrl-C stops everything.\n", flush=True)
    while not stop.wait(1.0):
        if keeper:
            keeper.check()
        for child in children:
            child.check()
    camera_thread.join(timeout=30)
    stop_all(children)
    if embedded:
        embedded.stop()
    return 0
