"""`moodstream edge`: one camera analysed beside it; only its labels go to the centre.

    REDIS_URL=redis://edge-bus12:PASSWORD@central:6379/0 \\
        moodstream edge --camera bus-12 --source rtsp://10.0.0.5/stream --mode driver

One process reads the camera (any source `moodstream ingest` takes; a file loops), detects
and tracks faces and classifies them (edge/analysis.py), and hands each frame's labels entry
to the uplink (edge/uplink.py), which sends it to the central labels stream, or keeps it in
memory and then in a spill file in the data directory while the link is down. No image, crop
or JPEG leaves the process. The camera's status hash says that it is an edge camera, with its
name, mode and counters; the central aggregator registers the camera from it when its first
labels arrive (workers/aggregator.py), and from then on it is a camera like the others,
without a live preview: there are no frames to draw one from.
"""

from __future__ import annotations

import argparse
import logging
import socket
import sys
import threading

from moodstream import metrics
from moodstream.camera_settings import MODES
from moodstream.config import Settings
from moodstream.contract import CAMERA_ID
from moodstream.ingest.service import CameraSpec, Publisher
from moodstream.ingest.sources import is_live
from moodstream.processes import stop_on_signals
from moodstream.redaction import redact_text

from .spill import SpillFile
from .uplink import MiB, Uplink, connect_upstream

log = logging.getLogger("moodstream.edge")
FLUSH_S = 5.0  # on the way out, how long queued labels may take to go (the rest is spilled)


def configure(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--camera", required=True, help="camera id (letters, digits, - _ .)")
    parser.add_argument("--source", default="demo",
                        help="webcam index, video file (looped), image, rtsp:// or http(s):// "
                             "URL, or 'demo'")
    parser.add_argument("--mode", choices=MODES, default="classroom",
                        help="how the centre reads the camera when it first registers it")
    parser.add_argument("--name", default="", help="the camera's name on the dashboard")
    parser.add_argument("--fps", type=float, default=5.0, help="frames per second to analyse")
    parser.add_argument("--max-width", type=int, default=None,
                        help="analyse frames shrunk to at most this width "
                             "(MOODSTREAM_INGEST_MAX_WIDTH, default 640)")
    parser.add_argument("--rtsp-transport", choices=["tcp", "udp"], default="tcp")
    parser.add_argument("--threads", type=int, default=1, help="onnxruntime threads")
    parser.add_argument("--max-frames", type=int, default=0, help=argparse.SUPPRESS)


class EdgeStatus:
    """The camera's state as the ingest code reports it, kept for the uplink's status."""

    def __init__(self, uplink: Uplink):
        self.uplink, self.state, self.reason = uplink, None, ""

    def set(self, state: str, reason: str = "", **extra) -> None:
        reason = redact_text(reason)
        if state != self.state:
            log.info("camera %s: %s %s", self.uplink.camera, state, reason)
        self.state, self.reason = state, reason
        self.uplink.set_status(state=state, reason=reason, **extra)


class EdgePublisher(Publisher):
    """The ingest's source loop (sampling, reconnects, status), with analysis instead of a
    JPEG on the frames stream."""

    def __init__(self, spec: CameraSpec, settings: Settings, stop: threading.Event,
                 analyser, uplink: Uplink):
        super().__init__(spec, settings, stop, uplink.redis, EdgeStatus(uplink))
        self.analyser, self.uplink = analyser, uplink

    def deliver(self, picture, ts: float) -> bool | None:
        image = picture.pixels()
        if image is None:
            return None
        self.uplink.put(self.analyser.label(image, self.seq, ts))
        self.count_published()
        return True


def run(args: argparse.Namespace, settings: Settings) -> int:
    from .analysis import EdgeAnalyser

    if not CAMERA_ID.match(args.camera or ""):
        print(f"moodstream edge: bad camera id {args.camera!r}: 1-64 letters, digits or "
              "- _ . starting with a letter or digit", file=sys.stderr)
        return 2
    settings = settings.with_options("ingest", max_width=args.max_width)
    e, width = settings.edge, settings.ingest.max_width
    stop = stop_on_signals()
    metrics.serve(settings.metrics_port)
    spill = SpillFile(settings.history.data_dir / "edge" / f"{args.camera}.labels",
                      int(e.spill_mb * MiB))
    if spill.pending:
        log.info("camera %s: %d labels from before are waiting in %s", args.camera,
                 spill.pending, spill.path)
    uplink = Uplink(connect_upstream(settings.redis_url, e.link_timeout_s), args.camera, e,
                    spill, settings.streams.labels_maxlen,
                    status={"name": args.name or args.camera, "mode": args.mode,
                            "host": socket.gethostname(), "state": "starting"})
    analyser = EdgeAnalyser(settings, args.camera, args.threads)
    sender = threading.Thread(target=uplink.run, args=(stop,), name="edge:uplink", daemon=True)
    sender.start()
    spec = CameraSpec(args.camera, args.source, args.fps, loop=not is_live(args.source),
                      max_width=width, rtsp_transport=args.rtsp_transport,
                      max_frames=args.max_frames)
    publisher = EdgePublisher(spec, settings, stop, analyser, uplink)
    code = publisher.run()
    stop.set()
    sender.join(timeout=10)
    if publisher.status.state not in ("ended", "failed"):
        uplink.set_status(state="stopped", reason="edge node stopped")
    uplink.flush(FLUSH_S)
    log.info("camera %s: %d frames analysed, %d labels sent, %d waiting, %d dropped",
             args.camera, publisher.published, uplink.sent, uplink.waiting, uplink.dropped)
    return code
