"""Ingest processes for the registered cameras, following the registry without a restart.

The dashboard (or `moodstream up --source`) writes keys.camera(id) hashes; this loop places
each camera in a `moodstream ingest --supervised` process, up to cameras_per_process in each
(settings.ingest), and sends the camera's settings to that process's stdin. A change or a
removal goes to the process that has the camera, which restarts or stops that camera only.
A crashed ingest process is restarted (with backoff) and gets its cameras again; one that
crashes again soon is split in two, so a camera that crashes its process ends up alone.
"""

from __future__ import annotations

import json
import logging
import signal
import threading
import time

import redis
from sqlalchemy.exc import SQLAlchemyError

from moodstream import keys
from moodstream.camera_settings import CameraSettings
from moodstream.config import Settings
from moodstream.history.records import Records, open_records
from moodstream.processes import MAX_RESTART_DELAY_S, Child, stop_all
from moodstream.redis_client import OUTAGE_ERRORS, Backoff, connect
from moodstream.redis_fill import fill_redis

log = logging.getLogger("moodstream.cameras")


def registered(r: redis.Redis) -> dict[str, CameraSettings]:
    """Cameras with a source in the registry, by id."""
    return {cam: s for cam, s in CameraSettings.load_all(r).items() if s.source}


def camera_line(cam: str, camera: CameraSettings) -> dict:
    """What an ingest process is told about a camera (moodstream.ingest.service.CameraSpec)."""
    return {"camera": cam, "source": camera.source, "fps": camera.fps, "loop": camera.loop}


class IngestProcess:
    """One `moodstream ingest --supervised` child and the cameras placed in it."""

    def __init__(self, name: str, env: dict | None):
        self.child = Child(name, ["ingest", "--supervised"], env,
                           max_backoff=MAX_RESTART_DELAY_S, stdin=True)
        self.cameras: dict[str, dict] = {}
        self._sent_to = None  # the process (Popen) that has been told every camera

    def send(self, line: dict) -> None:
        proc = self.child.proc
        if proc is None or proc.stdin is None:
            return  # not running: it is told everything when it starts
        try:
            proc.stdin.write((json.dumps(line) + "\n").encode())
            proc.stdin.flush()
        except OSError:
            pass  # it just died: check() restarts it and tells it again

    def assign(self, cam: str, line: dict) -> None:
        self.cameras[cam] = line
        self.send(line)

    def remove(self, cam: str) -> None:
        del self.cameras[cam]
        self.send({"camera": cam, "stop": True})

    def check(self) -> int | None:
        """Restart the process if it died (Child's backoff) and tell a new one its cameras.
        Returns the exit status when it has just found the process dead."""
        code = self.child.check()
        if code == 0 and self.cameras:
            self.child.restart = True  # stopped from outside (a SIGTERM): still wanted
        if self.child.proc is not None and self.child.proc is not self._sent_to:
            self._sent_to = self.child.proc
            for line in self.cameras.values():
                self.send(line)
        return code


class CameraSupervisor:
    def __init__(self, r: redis.Redis, env: dict | None = None, cameras_per_process: int = 8,
                 records: Records | None = None):
        self.redis, self.env, self.per_process = r, env, cameras_per_process
        self.records = records  # the system of record: fills an empty Redis
        self.processes: list[IngestProcess] = []
        self.placed: dict[str, IngestProcess] = {}
        self._stopping: list[Child] = []  # emptied processes, reaped without waiting
        self._started = 0

    def process_of(self, cam: str) -> IngestProcess | None:
        return self.placed.get(cam)

    def sync(self) -> None:
        wanted = {cam: camera_line(cam, s) for cam, s in registered(self.redis).items()}
        for cam, proc in list(self.placed.items()):
            if cam not in wanted:
                log.info("camera %s removed: stopping it", cam)
                proc.remove(cam)
                del self.placed[cam]
            elif proc.cameras[cam] != wanted[cam]:
                log.info("camera %s changed: restarting it", cam)
                proc.assign(cam, wanted[cam])
        for cam, line in wanted.items():
            if cam not in self.placed:
                self.placed[cam] = self.place()
                self.placed[cam].assign(cam, line)
        for proc in list(self.processes):
            if not proc.cameras:
                proc.child.stop()
                self._stopping.append(proc.child)
                self.processes.remove(proc)
                continue
            code = proc.check()
            if code:
                self.report_failure(proc, code)
                # Child's backoff doubles per crash and resets once a process has run 30 s:
                # at 4 it has crashed twice running. One of its cameras may be killing it
                # (a decoder crash), so halve it, and again, until that camera is alone.
                if len(proc.cameras) > 1 and proc.child.restart_delays.peek() >= 4:
                    self.split(proc)
        self._stopping = [child for child in self._stopping if child.running]

    def place(self) -> IngestProcess:
        """The fullest process with room (fewest processes), else a new one."""
        room = [p for p in self.processes if len(p.cameras) < self.per_process]
        if room:
            return max(room, key=lambda p: len(p.cameras))
        return self._new_process()

    def _new_process(self) -> IngestProcess:
        self._started += 1
        proc = IngestProcess(f"ingest-{self._started}", self.env)
        self.processes.append(proc)
        return proc

    def split(self, proc: IngestProcess) -> None:
        """Move half of a crashing process's cameras to a new process (started at once)."""
        moved = list(proc.cameras)[len(proc.cameras) // 2:]
        log.warning("%s keeps crashing: moving %s to a process of their own", proc.child.name,
                    ", ".join(moved))
        new = self._new_process()
        for cam in moved:
            new.cameras[cam] = proc.cameras.pop(cam)
            self.placed[cam] = new
        new.check()

    def report_failure(self, proc: IngestProcess, code: int) -> None:
        """Each of its cameras says that its process died and when it is tried again."""
        delay = max(0.0, proc.child.next_start - time.monotonic())
        pipe = self.redis.pipeline(transaction=False)
        for cam in proc.cameras:
            pipe.hset(keys.camera_status(cam), mapping={
                "state": "failed",
                "reason": f"ingest process exited with status {code}; next try in {delay:.0f}s",
                "updated": f"{time.time():.3f}", "failures": proc.child.restarts})
        pipe.execute()

    def run(self, stop: threading.Event, every_s: float = 2.0) -> None:
        backoff = Backoff("camera supervisor")
        pubsub = None
        while not stop.is_set():
            try:
                if pubsub is None:
                    pubsub = self.redis.pubsub(ignore_subscribe_messages=True)
                    pubsub.subscribe(keys.CAMERAS_CHANGED)
                self.fill()
                self.sync()
                backoff.ok()
                # Wake at once on a change, else re-check every few seconds.
                pubsub.get_message(timeout=every_s)
            except OUTAGE_ERRORS as error:
                pubsub = None
                for proc in self.processes:
                    proc.check()
                backoff.sleep_after(error, stop)
        self.stop()

    def fill(self) -> None:
        """Before each sync: a new or restarted Redis gets the cameras and accounts from the
        database (moodstream.redis_fill), so that its cameras keep running."""
        if self.records is None:
            return
        try:
            fill_redis(self.redis, self.records)
        except SQLAlchemyError as error:  # the database away: Redis keeps what it has
            log.warning("cannot read cameras and accounts from the database: %s",
                        str(error).splitlines()[0][:200])

    def stop(self) -> None:
        stop_all([proc.child for proc in self.processes] + self._stopping)
        self.processes.clear()
        self.placed.clear()
        self._stopping.clear()


def configure(parser) -> None:
    parser.add_argument("--every", type=float, default=2.0, help="seconds between registry checks")


def run(args, settings: Settings) -> int:

    stop = threading.Event()
    signal.signal(signal.SIGTERM, lambda *_: stop.set())
    signal.signal(signal.SIGINT, lambda *_: stop.set())
    CameraSupervisor(connect(settings.redis_url), settings.child_env(),
                     settings.ingest.cameras_per_process,
                     records=open_records(settings.history)).run(stop, args.every)
    return 0
