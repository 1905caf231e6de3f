"""`moodstream detector`: face detection on frames from the frames stream, one faces entry per
frame (all its faces: boxes, scores, track ids, crops). The detector is pluggable
(detection/detectors): MTCNN on onnxruntime by default, without TensorFlow; `--detector mtcnn`
runs the mtcnn package (TensorFlow), `--detector haar` OpenCV's Haar cascade. A camera's hash
(keys.camera) may carry `min_face` and `scale_factor` fields: they override the worker's
settings for that camera's frames."""

from __future__ import annotations

import argparse
import logging
import time

import cv2
import numpy as np

from moodstream import keys, metrics
from moodstream.camera_settings import CameraSettings
from moodstream.config import LimitSettings, Settings
from moodstream.contract import Frame
from moodstream.detection.detectors.base import limit_heap, release_memory
from moodstream.detection.face_detector import FaceDetector, face_set
from moodstream.detection.lean_detect import LeanDetector, LeanOptions
from moodstream.images import FRAME_FORMATS, ImageRefused, check_image, decode
from moodstream.redis_client import connect
from moodstream.streams import Batch, Output, StreamConsumer

log = logging.getLogger("moodstream.detector")
PREVIEW_TTL_S = 5
TRIM_EVERY_S = 30  # hand freed memory back to the system this often (see release_memory)
NEWEST_ONLY_READ = 64  # entries per read in newest-only mode


def configure(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--batch", type=int, default=4, help="frames per detector call")
    parser.add_argument("--detector", default=None,
                        help="mtcnn-onnx (default), mtcnn (the package, TensorFlow) or haar "
                             "(env MOODSTREAM_DETECTOR)")
    parser.add_argument("--min-face", type=int, default=None,
                        help="smallest face in pixels (larger is faster); a camera's "
                             "min_face field overrides it")
    parser.add_argument("--scale-factor", type=float, default=None,
                        help="MTCNN pyramid factor (0..1, smaller is faster); a camera's "
                             "scale_factor field overrides it")
    parser.add_argument("--max-face", type=int, default=None,
                        help="largest face in pixels: no pyramid levels above it (0: no bound; "
                             "env MOODSTREAM_DETECTOR_MAX_FACE)")
    parser.add_argument("--work-face", type=int, default=None,
                        help="build the pyramid from the frame shrunk while the smallest face "
                             "stays this many pixels (0: off; env MOODSTREAM_DETECTOR_WORK_FACE)")
    parser.add_argument("--gate", action=argparse.BooleanOptionalAction, default=None,
                        help="reuse the faces of a camera's last detected frame when nothing "
                             "moved (env MOODSTREAM_DETECTOR_GATE)")
    parser.add_argument("--track", action=argparse.BooleanOptionalAction, default=None,
                        help="between full scans, detect only around known faces while "
                             "nothing moves elsewhere (env MOODSTREAM_DETECTOR_TRACK)")
    parser.add_argument("--full-every", type=int, default=None,
                        help="a full scan at least every N frames of a camera "
                             "(env MOODSTREAM_DETECTOR_FULL_EVERY_FRAMES)")
    parser.add_argument("--newest-only", action=argparse.BooleanOptionalAction,
                        default=None,
                        help="when behind, skip to each camera's newest frame and count the "
                             "older ones as dropped (superseded) (env MOODSTREAM_NEWEST_ONLY)")
    parser.add_argument("--min-confidence", type=float, default=None,
                        help="faces scored below it are dropped "
                             "(MOODSTREAM_DETECTOR_MIN_CONFIDENCE, default 0.9)")
    parser.add_argument("--threads", type=int, default=1,
                        help="detector threads (onnxruntime or TensorFlow)")
    parser.add_argument("--model", default=None,
                        help="emotion model, read only for its input size")
    parser.add_argument("--exit-when-idle", type=float, default=None, help=argparse.SUPPRESS)


def decode_images(items: list, limits: LimitSettings) -> tuple[list, dict]:
    """(entry id, Frame, BGR image) for the frames whose JPEG decodes, and the reasons for
    the others. Runs after the stale and newest-only filters: only kept frames are decoded.
    A frame above the byte limit, not a JPEG, or whose header declares more pixels than the
    limit, is refused unread."""
    decoded, rejected = [], {}
    for eid, frame in items:
        if len(frame.jpeg) > limits.max_frame_bytes:
            rejected[eid] = (f"image of {len(frame.jpeg)} bytes is above the frame size limit "
                             f"of {limits.max_frame_bytes} (MOODSTREAM_MAX_FRAME_BYTES)")
            continue
        try:
            check_image(frame.jpeg, limits.max_image_pixels, FRAME_FORMATS)
        except ImageRefused as error:
            rejected[eid] = f"frame: {error}"
            continue
        image = decode(frame.jpeg)
        if image is None:
            rejected[eid] = f"image does not decode ({len(frame.jpeg)} bytes)"
        else:
            decoded.append((eid, frame, image))
    return decoded, rejected


class CameraOptions:
    """Each camera's settings (CameraSettings: min_face, scale_factor, preview), re-read every
    couple of seconds so that a change made in the dashboard applies without a restart."""

    def __init__(self, r, every_s: float = 2.0):
        self.redis, self.every_s, self.cached, self.read_at = r, every_s, {}, {}

    def get(self, camera: str) -> CameraSettings:
        now = time.monotonic()
        if now - self.read_at.get(camera, -1e9) > self.every_s:
            self.cached[camera] = CameraSettings.load(self.redis, camera) or CameraSettings()
            self.read_at[camera] = now
        return self.cached[camera]


def preview_op(camera: str, jpeg: bytes):
    """The write of a camera's preview frame, for a batch's transaction (Batch.ops)."""
    def write(pipe):
        pipe.set(keys.preview(camera), jpeg, ex=PREVIEW_TTL_S)
    return write


def draw_preview(image: np.ndarray, faces: list) -> bytes:
    canvas = image.copy()
    for face in faces:
        x, y, w, h = face.box
        cv2.rectangle(canvas, (x, y), (x + w, y + h), (80, 220, 80), 2)
    return cv2.imencode(".jpg", canvas, [cv2.IMWRITE_JPEG_QUALITY, 70])[1].tobytes()


def run(args: argparse.Namespace, settings: Settings) -> int:
    from moodstream.detection.emotion_model import input_size

    limit_heap()
    settings = settings.with_options(
        "detector", name=args.detector, min_face=args.min_face, scale_factor=args.scale_factor,
        min_confidence=args.min_confidence, max_face=args.max_face, work_face=args.work_face,
        gate=args.gate, track=args.track, full_every_frames=args.full_every)
    settings = settings.with_options("streams", newest_only=args.newest_only)
    d = settings.detector
    metrics.serve(settings.metrics_port)
    faces_maxlen = settings.streams.faces_maxlen
    newest_only = settings.streams.newest_only
    try:
        crop_size = input_size(args.model or settings.classifier.model_path)
    except Exception as error:  # no model yet: fall back to the paper's input size
        log.warning("could not read the model's input size (%s); using 64x64", error)
        crop_size = (64, 64)
    detector = FaceDetector(crop_size, d.min_face, d.min_confidence, args.threads,
                            detector=d.name, scale_factor=d.scale_factor,
                            max_face=d.max_face, work_face=d.work_face)
    log.info("detector: %s; gate %s, track %s, full scan every %d frames or %g s",
             detector.detector.describe(), d.gate, d.track, d.full_every_frames,
             d.full_every_s)
    r = connect(settings.redis_url)
    camera_options = CameraOptions(r)
    # Also with gating and tracking off: its per-camera state gives faces their track ids.
    lean = LeanDetector(detector, r, LeanOptions.from_settings(d))
    trimmed_at = [time.monotonic()]

    def handle(items) -> Batch:
        if time.monotonic() - trimmed_at[0] > TRIM_EVERY_S:
            release_memory()
            trimmed_at[0] = time.monotonic()
        decoded, rejected = decode_images(items, settings.limits)
        per_camera = [camera_options.get(frame.camera) for _, frame, _ in decoded]
        min_face = [c.min_face or detector.min_face for c in per_camera]
        scale_factor = [c.scale_factor or detector.scale_factor for c in per_camera]
        found = lean.detect([(frame.camera, frame.ts, image) for _, frame, image in decoded],
                            min_face, scale_factor)
        batch = Batch(counters={"faces:in": 0, "faces:found": 0}, rejected=rejected)
        now = time.time()
        for (_, frame, image), faces, camera in zip(decoded, found, per_camera, strict=True):
            # One entry per frame, also when it has no faces: downstream learns that the
            # camera saw nobody.
            batch.outputs.append(Output(keys.FACES, face_set(frame, faces).encode(),
                                        faces_maxlen))
            batch.counters["faces:in"] += 1
            batch.counters["faces:found"] += len(faces)
            metrics.CAPTURE_TO_STAGE_SECONDS.labels("detector").observe(now - frame.ts)
            if camera.preview:  # written with the batch, in its transaction
                batch.ops.append(preview_op(frame.camera, draw_preview(image, faces)))
        return batch

    consumer = StreamConsumer(
        settings, "frames", "detector", Frame.decode, handle,
        # Newest-only reads deeper, so that one read catches up on a backlog of many frames.
        count=max(args.batch, NEWEST_ONLY_READ) if newest_only else args.batch,
        stale=True, newest_only=newest_only, r=r)
    consumer.install_signal_handlers()
    consumer.run(max_idle_s=args.exit_when_idle)
    return 0
