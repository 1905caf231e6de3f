"""One ingest process per registered camera, following the registry without a restart.

The dashboard (or `moodstream up --source`) writes keys.camera(id) hashes; this loop starts,
restarts and stops `moodstream ingest` children to match them.
"""

from __future__ import annotations

import logging
import signal
import threading
import time

import redis

from moodstream import keys
from moodstream.camera_settings import CameraSettings
from moodstream.config import Settings
from moodstream.processes import Child, stop_all
from moodstream.redis_client import OUTAGE_ERRORS, Backoff, connect, text

log = logging.getLogger("moodstream.cameras")



def registered(r: redis.Redis) -> dict[str, CameraSettings]:
    """Cameras with a source in the registry, by id."""
    return {cam: s for cam, s in CameraSettings.load_all(r).items() if s.source}


# A camera whose ingest keeps failing is retried less and less often, up to this far apart.
MAX_RESTART_DELAY_S = 600.0


def ingest_args(cam: str, camera: CameraSettings) -> list[str]:
    # --name=value: a value is never read as an option, whatever it starts with.
    args = ["ingest", f"--camera={cam}", f"--source={camera.source}", f"--fps={camera.fps:g}"]
    if camera.loop:
        args.append("--loop")
    return args


class CameraSupervisor:
    def __init__(self, r: redis.Redis, env: dict | None = None):
        self.redis, self.env = r, env
        self.children: dict[str, tuple[list[str], Child]] = {}

    def sync(self) -> None:
        wanted = {cam: ingest_args(cam, s) for cam, s in registered(self.redis).items()}
        for cam in list(self.children):
            args, child = self.children[cam]
            if wanted.get(cam) != args:
                log.info("camera %s removed or changed: stopping its ingest", cam)
                child.stop()
                child.wait()
                del self.children[cam]
        for cam, args in wanted.items():
            if cam not in self.children:
                child = Child(f"ingest:{cam}", args, self.env, max_backoff=MAX_RESTART_DELAY_S)
                child.start()
                self.children[cam] = (args, child)
        for cam, (_, child) in self.children.items():
            code = child.check()
            if code:
                self.report_failure(cam, code, child)

    def report_failure(self, cam: str, code: int, child: Child) -> None:
        """Keep the ingest's own reason (or say how it ended) and when it is tried again."""
        status = {text(k): text(v) for k, v in
                  self.redis.hgetall(keys.camera_status(cam)).items()}
        reason = status.get("reason", "") if status.get("state") == "failed" else ""
        reason = (reason or f"ingest exited with status {code}").split("; next try in")[0]
        delay = max(0.0, child.next_start - time.monotonic())
        self.redis.hset(keys.camera_status(cam), mapping={
            "state": "failed", "reason": f"{reason}; next try in {delay:.0f}s",
            "updated": f"{time.time():.3f}", "failures": child.restarts})

    def run(self, stop: threading.Event, every_s: float = 2.0) -> None:
        backoff = Backoff("camera supervisor")
        pubsub = None
        while not stop.is_set():
            try:
                if pubsub is None:
                    pubsub = self.redis.pubsub(ignore_subscribe_messages=True)
                    pubsub.subscribe(keys.CAMERAS_CHANGED)
                self.sync()
                backoff.ok()
                # Wake at once on a change, else re-check every few seconds.
                pubsub.get_message(timeout=every_s)
            except OUTAGE_ERRORS as error:
                pubsub = None
                for _, child in self.children.values():
                    child.check()
                backoff.sleep_after(error, stop)
        self.stop()

    def stop(self) -> None:
        stop_all([child for _, child in self.children.values()])
        self.children.clear()


def configure(parser) -> None:
    parser.add_argument("--every", type=float, default=2.0, help="seconds between registry checks")


def run(args, settings: Settings) -> int:

    stop = threading.Event()
    signal.signal(signal.SIGTERM, lambda *_: stop.set())
    signal.signal(signal.SIGINT, lambda *_: stop.set())
    CameraSupervisor(connect(settings.redis_url), settings.child_env()).run(stop, args.every)
    return 0
