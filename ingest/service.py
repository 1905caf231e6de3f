"""`moodstream ingest`: sample a camera source and publish JPEG frames to the frames stream."""

from __future__ import annotations

import argparse
import contextlib
import logging
import signal
import sys
import threading
import time

import cv2
import redis

from moodstream import keys, metrics
from moodstream.config import Settings
from moodstream.contract import CAMERA_ID, Frame
from moodstream.ingest.sources import SourceError, is_live, open_source
from moodstream.redis_client import OUTAGE_ERRORS, Backoff, connect
from moodstream.streams import wake_consumers

log = logging.getLogger("moodstream.ingest")


def configure(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--camera", required=True, help="camera id (letters, digits, - _ .)")
    parser.add_argument("--source", default="demo",
                        help="webcam index, video file, image, rtsp:// or http(s):// URL, or "
                             "'demo' (the shipped moving portrait)")
    parser.add_argument("--fps", type=float, default=5.0, help="frames per second to publish")
    parser.add_argument("--loop", action="store_true", help="repeat a video file forever")
    parser.add_argument("--max-width", type=int, default=640, help="downscale wider frames")
    parser.add_argument("--quality", type=int, default=85, help="JPEG quality")
    parser.add_argument("--rtsp-transport", choices=["tcp", "udp"], default="tcp",
                        help="RTP over the RTSP connection (tcp) or over UDP")
    parser.add_argument("--retries", type=int, default=0,
                        help="give up after this many failed reconnects in a row (0 = never)")
    parser.add_argument("--max-frames", type=int, default=0, help="stop after N frames (0 = no)")


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
        self.state = None
        self._write = r.register_script(self.WRITE)

    def set(self, state: str, reason: str = "", **extra) -> None:
        if state != self.state:
            log.info("camera %s: %s %s", self.camera, state, reason)
        self.state = state
        mapping = {"state": state, "reason": reason, "updated": f"{time.time():.3f}", **extra}
        try:
            # A camera an admin removed stays removed, even if its ingest is still stopping.
            self._write(keys=[keys.CAMERAS, keys.REMOVED_CAMERAS,
                              keys.camera_status(self.camera)],
                        args=[self.camera, *[x for kv in mapping.items() for x in kv]])
        except OUTAGE_ERRORS:
            pass  # status is best effort; the publisher handles the outage


class Publisher:
    def __init__(self, args: argparse.Namespace, settings: Settings, stop: threading.Event):
        self.args, self.stop = args, stop
        self.frames_maxlen = settings.streams.frames_maxlen
        self.max_frame_bytes = settings.limits.max_frame_bytes
        self.max_pixels, self.networks = settings.limits.max_image_pixels, settings.camera_networks
        self.redis = connect(settings.redis_url)
        self.status = StatusWriter(self.redis, args.camera)
        self.seq = 0
        self.published = 0
        self.redis_backoff = Backoff(f"ingest {args.camera}")
        self._fps_window: list[float] = []
        self.oversize = 0
        self.problem = ""  # shown in the camera status while frames are being dropped

    def encode(self, frame) -> bytes:
        h, w = frame.shape[:2]
        if w > self.args.max_width:
            scale = self.args.max_width / w
            frame = cv2.resize(frame, (self.args.max_width, round(h * scale)),
                               interpolation=cv2.INTER_AREA)
        ok, buf = cv2.imencode(".jpg", frame, [cv2.IMWRITE_JPEG_QUALITY, self.args.quality])
        if not ok:
            raise SourceError("JPEG encoding failed")
        return buf.tobytes()

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
        self.seq += 1
        self.published += 1
        now = time.monotonic()
        self._fps_window = [t for t in self._fps_window if now - t < 5] + [now]
        return True

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
        failures, delay = 0, 0.5
        while not self.stop.is_set():
            try:
                source = open_source(self.args.source, loop=self.args.loop,
                                     rtsp_transport=self.args.rtsp_transport,
                                     max_pixels=self.max_pixels, networks=self.networks)
                self.status.set("connecting", source.describe())
                next_at, last_status = 0.0, 0.0
                for frame, ts in source.frames():
                    if self.stop.is_set():
                        break
                    now = time.monotonic()
                    if now < next_at:
                        continue  # sampling: keep reading so a live source never lags
                    next_at = max(next_at + interval, now) if next_at else now + interval
                    if self.publish(self.encode(frame), ts):
                        failures, delay = 0, 0.5
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
                self.status.set("retrying", f"{error}; next try in {delay:.1f}s",
                                failures=failures)
                self.stop.wait(delay)
                delay = min(delay * 2, 30.0)
        self.status.set("stopped", "ingest stopped")
        return 0


def run(args: argparse.Namespace, settings: Settings) -> int:
    if not CAMERA_ID.match(args.camera):
        print(f"moodstream ingest: bad camera id {args.camera!r}: 1-64 letters, digits or "
              "- _ . starting with a letter or digit", file=sys.stderr)
        return 2
    stop = threading.Event()

    def on_signal(signum, _frame):
        stop.set()

    signal.signal(signal.SIGTERM, on_signal)
    signal.signal(signal.SIGINT, on_signal)
    metrics.serve(settings.metrics_port)
    return Publisher(args, settings, stop).run()
