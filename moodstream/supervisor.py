"""`moodstream up`: the whole live pipeline and the dashboard as child processes.

Each service runs as its own `moodstream <service>` process so that `ps` shows who is who
and a crash takes down only that child, which is restarted.
"""

from __future__ import annotations

import argparse
import logging
import secrets
import signal
import threading

from moodstream import keys
from moodstream.camera_settings import CameraSettings
from moodstream.config import Settings
from moodstream.dashboard.users import ensure_admin
from moodstream.embedded_redis import EmbeddedRedis
from moodstream.ingest.supervisor import CameraSupervisor
from moodstream.private_files import private_dir
from moodstream.processes import Child, stop_all
from moodstream.redis_client import connect

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


def register_camera(r, cam: str, source: str, mode: str, fps: float) -> None:
    """Register a camera unless it already is: an admin's later edits survive a restart."""
    existing = CameraSettings.load(r, cam)
    if existing is not None and existing.source:
        return
    r.srem(keys.REMOVED_CAMERAS, cam)
    r.sadd(keys.CAMERAS, cam)
    CameraSettings(name=cam, source=source, mode=mode, fps=fps, loop=True).save(r, cam)


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
    ensure_admin(r, d.admin_user, d.admin_password)
    if not args.no_source:
        register_camera(r, args.camera, args.source, args.mode, args.fps)

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
    cameras = CameraSupervisor(connect(redis_url), env, settings.ingest.cameras_per_process)
    camera_thread = threading.Thread(target=cameras.run, args=(stop,), daemon=True)
    camera_thread.start()

    host = "127.0.0.1" if args.host in ("0.0.0.0", "::") else args.host
    print(f"\nmoodstream is up. Dashboard: http://{host}:{args.port}/login?token={token}\n"
          f"API token: {token}\nRedis: {shown_url}\nHistory: {history_location(h)}\n"
          "Ctrl-C stops everything.\n", flush=True)
    while not stop.wait(1.0):
        for child in children:
            child.check()
    camera_thread.join(timeout=30)
    stop_all(children)
    if embedded:
        embedded.stop()
    return 0
