"""`moodstream ingest`: sample camera sources and publish JPEG frames to the frames stream.

`moodstream ingest --camera X --source Y` publishes one camera. `moodstream ingest
--supervised` (what `moodstream cameras` starts) publishes several: the supervisor sends it
cameras to start, change or stop as JSON lines on stdin (so camera URLs with passwords
never show in `ps`), and each camera runs in its own thread with its own source, status and
restart backoff, so one that fails or hangs leaves the others alone.
"""

from __future__ import annotations

import argparse
import contextlib
import dataclasses
import json
import logging
import sys
import threading
import time

import redis

from moodstream import keys, metrics
from moodstream.backoff import Doubling
from moodstream.config import IngestSettings, Settings
from moodstream.contract import CAMERA_ID, Frame
from moodstream.ingest.sources import SourceError, is_live, open_source
from moodstream.processes import MAX_RESTART_DELAY_S, stop_on_signals
from moodstream.redaction import redact_text
from moodstream.redis_client import OUTAGE_ERRORS, Backoff, connect
from moodstream.streams import wake_consumers

log = logging.getLogger("moodstream.ingest")


def configure(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--camera", help="camera id (letters, digits, - _ .)")
    parser.add_argument("--source", default="demo",
                        help="webcam index, video file, image, rtsp:// or http(s):// URL, or "
                             "'demo' (the shipped moving portrait)")
    parser.add_argument("--fps", type=float, default=5.0, help="frames per second to publish")
    parser.add_argument("--loop", action="store_true", help="repeat a video file forever")
    parser.add_argument("--max-width", type=int, default=None,
                        help="downscale wider frames (MOODSTREAM_INGEST_MAX_WIDTH, default 640)")
    parser.add_argument("--quality", type=int, default=None,
                        help="JPEG quality (MOODSTREAM_INGEST_JPEG_QUALITY, default 85)")
    parser.add_argument("--rtsp-transport", choices=["tcp", "udp"], default="tcp",
                        help="RTP over the RTSP connection (tcp) or over UDP")
    parser.add_argument("--retries", type=int, default=0,
                        help="give up after this many failed reconnects in a row (0 = never)")
    parser.add_argument("--max-frames", type=int, default=0, help="stop after N frames (0 = no)")
    parser.add_argument("--supervised", action="store_true",
                        help="publish the cameras that `moodstream cameras` sends on stdin "
                             "(one JSON object a line), instead of --camera")


@dataclasses.dataclass
class CameraSpec:
    """What one camera's publisher needs: the command line's options, or a supervisor's line."""

    camera: str
    source: str = "demo"
    fps: float = 5.0
    loop: bool = False
    max_width: int = IngestSettings.model_fields["max_width"].default
    quality: int = IngestSettings.model_fields["jpeg_quality"].default
    rtsp_transport: str = "tcp"
    retries: int = 0
    max_frames: int = 0

    @classmethod
    def from_args(cls, args: argparse.Namespace) -> CameraSpec:
        return cls(**{f.name: getattr(args, f.name) for f in dataclasses.fields(cls)})

    @classmethod
    def from_line(cls, fields: dict) -> CameraSpec:
        """ValueError or TypeError for a line that is not a camera."""
        kinds = {f.name: type(f.default) if f.name != "camera" else str
                 for f in dataclasses.fields(cls)}
        values = {}
        for name, value in fields.items():
            if name in kinds:
                kind = kinds[name]
                if kind is bool and not isinstance(value, bool):
                    raise TypeError(f"{name} must be true or false")
                values[name] = value if kind is bool else kind(value)
        spec = cls(**values)
        if not CAMERA_ID.match(spec.camera):
            raise ValueError(f"bad camera id {spec.camera!r}")
        if spec.rtsp_transport not in ("tcp", "udp"):
            raise ValueError(f"bad rtsp_transport {spec.rtsp_transport!r}")
        return spec


class StatusWriter:
    """Camera status in Redis: connected, retrying (reason), ended, failed (reason)."""

    WRITE = """
    if redis.call('SISMEMBER', KEYS[2], ARGV[1]) == 1 then return 0 end
    redis.call('SADD', KEYS[1], ARGV[1])
    redis.call('HSET', KEYS[3], unpack(ARGV, 2))
    return 1
    """

    def __init__(self, r, camera: str):
        self.redis, self.camera = r, camera
        self.state, self.reason = None, ""
        self.muted = False  # a camera replaced by a newer one no longer speaks for it
        self._write = r.register_script(self.WRITE)

    def set(self, state: str, reason: str = "", **extra) -> None:
        if self.muted:
            return
        reason = redact_text(reason)  # statuses and logs never carry camera credentials
        if state != self.state:
            log.info("camera %s: %s %s", self.camera, state, reason)
        self.state, self.reason = state, reason
        mapping = {"state": state, "reason": reason, "updated": f"{time.time():.3f}", **extra}
        try:
            # A camera an admin removed stays removed, even if its ingest is still stopping.
            self._write(keys=[keys.CAMERAS, keys.REMOVED_CAMERAS,
                              keys.camera_status(self.camera)],
                        args=[self.camera, *[x for kv in mapping.items() for x in kv]])
        except OUTAGE_ERRORS:
            pass  # status is best effort; the publisher handles the outage


class Publisher:
    """One camera: open its source, sample it at its fps, publish; reconnect a live source."""

    def __init__(self, args: CameraSpec, settings: Settings, stop: threading.Event,
                 r: redis.Redis | None = None, status: StatusWriter | None = None):
        """r: the Redis to publish to; status: where the camera's state goes (anything with
        StatusWriter's `set`, `state` and `reason`)."""
        self.args, self.stop = args, stop
        self.frames_maxlen = settings.streams.frames_maxlen
        self.max_frame_bytes = settings.limits.max_frame_bytes
        self.max_pixels, self.networks = settings.limits.max_image_pixels, settings.camera_networks
        self.decoder_threads = settings.ingest.decoder_threads
        self.redis = r or connect(settings.redis_url)
        self.status = status or StatusWriter(self.redis, args.camera)
        self.seq = 0
        self.published = 0
        self.redis_backoff = Backoff(f"ingest {args.camera}")
        self._fps_window: list[float] = []
        self.oversize = 0
        self.problem = ""  # shown in the camera status while frames are being dropped

    def publish(self, jpeg: bytes, ts: float) -> bool:
        if len(jpeg) > self.max_frame_bytes:
            return self.drop_oversize(len(jpeg))
        entry = Frame(self.args.camera, self.seq, ts, jpeg).encode()
        try:
            pipe = self.redis.pipeline(transaction=True)
            pipe.xadd(keys.FRAMES, entry, maxlen=self.frames_maxlen, approximate=True)
            pipe.hincrby(keys.STATS, "frames:in", 1)
            wake_consumers(pipe, keys.FRAMES)
            pipe.execute()
        except OUTAGE_ERRORS as error:
            # The frame never entered the pipeline, so it is not counted; live beats late.
            self.redis_backoff.sleep_after(error, self.stop)
            return False
        except redis.ResponseError as error:
            if "OOM" not in str(error):
                raise
            # Redis is at its maxmemory: this frame is lost, the camera waits and retries.
            metrics.ENTRIES.labels("ingest", "dropped_oom").inc()
            self.redis_backoff.sleep_after(error, self.stop)
            return False
        self.redis_backoff.ok()
        metrics.ENTRIES.labels("ingest", "published").inc()
        self.count_published()
        return True

    def count_published(self) -> None:
        self.seq += 1
        self.published += 1
        now = time.monotonic()
        self._fps_window = [t for t in self._fps_window if now - t < 5] + [now]

    def deliver(self, picture, ts: float) -> bool | None:
        """Sends one sampled picture on: True when it went out, False when it was lost (an
        outage, counted), None when it does not decode (skipped as a camera glitch)."""
        jpeg = picture.encode(self.args.max_width, self.args.quality)
        if jpeg is None:
            return None
        return self.publish(jpeg, ts)

    def drop_oversize(self, size: int) -> bool:
        """A frame too large for the stream: counted (frames:dropped:oversize), not sent."""
        limit = self.max_frame_bytes
        if not self.oversize:
            log.warning("camera %s: %d-byte frame above the limit of %d bytes "
                        "(MOODSTREAM_MAX_FRAME_BYTES); lower --max-width or --quality",
                        self.args.camera, size, limit)
        self.oversize += 1
        with contextlib.suppress(*OUTAGE_ERRORS, redis.ResponseError):
            pipe = self.redis.pipeline(transaction=True)
            pipe.hincrby(keys.STATS, "frames:in", 1)
            pipe.hincrby(keys.STATS, "frames:dropped:oversize", 1)
            pipe.execute()
        metrics.ENTRIES.labels("ingest", "dropped_oversize").inc()
        self.problem = (f"{self.oversize} frame(s) dropped: {size} bytes, above the limit of "
                        f"{limit}")
        return False

    def live_fps(self) -> float:
        if len(self._fps_window) < 2:
            return 0.0
        span = self._fps_window[-1] - self._fps_window[0]
        return (len(self._fps_window) - 1) / span if span > 0 else 0.0

    def run(self) -> int:
        interval = 1.0 / self.args.fps if self.args.fps > 0 else 0.0
        failures, retry = 0, Doubling(0.5, 30.0)
        while not self.stop.is_set():
            try:
                source = open_source(self.args.source, loop=self.args.loop,
                                     rtsp_transport=self.args.rtsp_transport,
                                     max_pixels=self.max_pixels, networks=self.networks,
                                     decoder_threads=self.decoder_threads)
                self.status.set("connecting", source.describe())
                next_at, last_status = 0.0, 0.0
                for picture, ts in source.pictures():
                    if self.stop.is_set():
                        break
                    now = time.monotonic()
                    if now < next_at:
                        continue  # sampling: keep reading so a live source never lags
                    next_at = max(next_at + interval, now) if next_at else now + interval
                    delivered = self.deliver(picture, ts)
                    if delivered is None:
                        continue
                    if delivered:
                        failures = 0
                        retry.reset()
                    if now - last_status > 1.0 or self.status.state != "connected":
                        self.status.set("connected", self.problem or source.describe(),
                                        fps=f"{self.live_fps():.2f}", frames=self.published)
                        last_status = now
                    if self.args.max_frames and self.published >= self.args.max_frames:
                        self.status.set("ended", f"published {self.published} frames")
                        return 0
                else:
                    if not source.live:
                        self.status.set("ended", f"end of {source.describe()}")
                        return 0
            except SourceError as error:
                failures += 1
                if not is_live(self.args.source):
                    self.status.set("failed", str(error))
                    return 2
                if self.args.retries and failures > self.args.retries:
                    self.status.set("failed", f"{error} (gave up after {failures - 1} retries)")
                    return 2
                delay = retry.next()
                self.status.set("retrying", f"{error}; next try in {delay:.1f}s",
                                failures=failures)
                self.stop.wait(delay)
        self.status.set("stopped", "ingest stopped")
        return 0


class CameraRunner:
    """One camera inside a multi-camera ingest: its own thread, publisher and restart backoff
    (1 s doubling to MAX_RESTART_DELAY_S, as the supervisor does for a crashed process)."""

    def __init__(self, spec: CameraSpec, settings: Settings, r: redis.Redis):
        self.spec, self.settings, self.redis = spec, settings, r
        self.stop = threading.Event()
        self.status = StatusWriter(r, spec.camera)
        self.thread = threading.Thread(target=self.run, name=f"ingest:{spec.camera}",
                                       daemon=True)

    def run(self) -> None:
        failures, restarts = 0, Doubling(1.0, MAX_RESTART_DELAY_S)
        while not self.stop.is_set():
            started = time.monotonic()
            try:
                code = Publisher(self.spec, self.settings, self.stop, self.redis,
                                 self.status).run()
            except Exception as error:  # a bug or odd source must not take the others down
                log.exception("camera %s: ingest failed", self.spec.camera)
                self.status.set("failed", f"ingest error: {error}")
                code = 2
            if code == 0 or self.stop.is_set():
                return  # ended (a file played out) or stopped: stays so until changed
            if time.monotonic() - started > 30:
                restarts.reset()  # it ran a while: the next failure retries quickly
            failures += 1
            delay = restarts.next()
            reason = self.status.reason.split("; next try in")[0]
            self.status.set("failed", f"{reason}; next try in {delay:.0f}s", failures=failures)
            self.stop.wait(delay)


class MultiIngest:
    """Cameras that a supervisor starts, changes and stops through lines on stdin:
    {"camera": id, "source": ..., "fps": ..., "loop": ...} starts or changes a camera,
    {"camera": id, "stop": true} stops it; end of input stops them all."""

    def __init__(self, settings: Settings, stop: threading.Event):
        self.settings, self.stop = settings, stop
        self.redis = connect(settings.redis_url)
        self.runners: dict[str, CameraRunner] = {}
        self.lock = threading.Lock()

    def apply(self, line: str) -> None:
        try:
            fields = json.loads(line)
            if fields.get("stop"):
                self.remove(str(fields.get("camera")))
                return
            spec = CameraSpec.from_line({"max_width": self.settings.ingest.max_width,
                                         "quality": self.settings.ingest.jpeg_quality,
                                         **fields})
        except (ValueError, TypeError, AttributeError) as error:
            log.warning("ignoring a bad camera line from the supervisor: %s", error)
            return
        with self.lock:
            old = self.runners.get(spec.camera)
            if old is not None and old.spec == spec and old.thread.is_alive():
                return
            if old is not None:
                # The new runner speaks for the camera from now on, even if the old one is
                # stuck in a read for a while before it sees its stop.
                old.status.muted = True
                old.stop.set()
            runner = self.runners[spec.camera] = CameraRunner(spec, self.settings, self.redis)
            runner.thread.start()

    def remove(self, cam: str) -> None:
        with self.lock:
            runner = self.runners.pop(cam, None)
        if runner is not None:
            runner.stop.set()

    def read(self, stream) -> None:
        for line in stream:
            if line.strip():
                self.apply(line)
        self.stop.set()  # the supervisor is gone or closed our input

    def run(self, stream=None) -> int:
        reader = threading.Thread(target=self.read, args=(stream or sys.stdin,),
                                  name="ingest:commands", daemon=True)
        reader.start()
        self.stop.wait()
        with self.lock:
            runners = list(self.runners.values())
        for runner in runners:
            runner.stop.set()
        deadline = time.monotonic() + 10
        for runner in runners:  # a camera stuck in a read is left behind (daemon thread)
            runner.thread.join(max(0.0, deadline - time.monotonic()))
        return 0


def run(args: argparse.Namespace, settings: Settings) -> int:
    if not args.supervised and not (args.camera and CAMERA_ID.match(args.camera)):
        print(f"moodstream ingest: bad camera id {args.camera!r}: 1-64 letters, digits or "
              "- _ . starting with a letter or digit (or --supervised)", file=sys.stderr)
        return 2
    settings = settings.with_options("ingest", max_width=args.max_width,
                                     jpeg_quality=args.quality)
    stop = stop_on_signals()
    metrics.serve(settings.metrics_port)
    if args.supervised:
        return MultiIngest(settings, stop).run()
    spec = CameraSpec.from_args(args)
    spec.max_width, spec.quality = settings.ingest.max_width, settings.ingest.jpeg_quality
    return Publisher(spec, settings, stop).run()
