"""`moodstream detector`: face detection on frames from the frames stream, one faces entry per
face. The detector is pluggable (workers/detectors): MTCNN on onnxruntime by default, without
TensorFlow; `--detector mtcnn` runs the mtcnn package (TensorFlow), `--detector haar` OpenCV's
Haar cascade. A camera's hash (keys.camera) may carry `min_face` and `scale_factor` fields:
they override the worker's settings for that camera's frames."""

from __future__ import annotations

import argparse
import logging
import time

import cv2
import numpy as np

from moodstream import keys, metrics
from moodstream.config import get_settings
from moodstream.contract import Face, Frame, MalformedEntry
from moodstream.images import ImageTooLarge, check_image
from moodstream.redis_client import text
from moodstream.streams import Batch, Output, StreamConsumer
from workers.detectors.base import limit_heap, release_memory
from workers.face_crop import crop_face

log = logging.getLogger("moodstream.detector")
PREVIEW_TTL_S = 5
TRIM_EVERY_S = 30  # hand freed memory back to the system this often (see release_memory)
NEWEST_ONLY_READ = 64  # entries per read in newest-only mode


def configure(parser: argparse.ArgumentParser) -> None:
    s = get_settings()
    parser.add_argument("--batch", type=int, default=4, help="frames per detector call")
    parser.add_argument("--detector", default=s.detector,
                        help="mtcnn-onnx (default), mtcnn (the package, TensorFlow) or haar "
                             "(env MOODSTREAM_DETECTOR)")
    parser.add_argument("--min-face", type=int, default=s.detector_min_face,
                        help="smallest face in pixels (larger is faster); a camera's "
                             "min_face field overrides it")
    parser.add_argument("--scale-factor", type=float, default=s.detector_scale_factor,
                        help="MTCNN pyramid factor (0..1, smaller is faster); a camera's "
                             "scale_factor field overrides it")
    parser.add_argument("--newest-only", action=argparse.BooleanOptionalAction,
                        default=s.newest_only,
                        help="when behind, skip to each camera's newest frame and count the "
                             "older ones as dropped (superseded) (env MOODSTREAM_NEWEST_ONLY)")
    parser.add_argument("--min-confidence", type=float, default=0.9)
    parser.add_argument("--threads", type=int, default=1,
                        help="detector threads (onnxruntime or TensorFlow)")
    parser.add_argument("--model", default=str(s.model_path),
                        help="emotion model, read only for its input size")
    parser.add_argument("--metrics-port", type=int, default=s.metrics_port)
    parser.add_argument("--exit-when-idle", type=float, default=None, help=argparse.SUPPRESS)


def decode_frame(fields: dict) -> tuple[Frame, np.ndarray]:
    frame = Frame.decode(fields)
    settings = get_settings()
    if len(frame.jpeg) > settings.max_frame_bytes:
        raise MalformedEntry(f"image of {len(frame.jpeg)} bytes is above the frame size limit "
                             f"of {settings.max_frame_bytes} (MOODSTREAM_MAX_FRAME_BYTES)")
    try:
        check_image(frame.jpeg)  # a small JPEG may declare a huge size: refuse it unread
    except ImageTooLarge as error:
        raise MalformedEntry(str(error)) from None
    except ValueError:
        pass  # not an image Pillow knows: OpenCV decides below
    image = cv2.imdecode(np.frombuffer(frame.jpeg, np.uint8), cv2.IMREAD_COLOR)
    if image is None:
        raise MalformedEntry(f"image does not decode ({len(frame.jpeg)} bytes)")
    return frame, image


class FaceDetector:
    """A face detector plus cropping; shared by the live detector and the bulk jobs."""

    def __init__(self, crop_size: tuple[int, int], min_face: int = 40,
                 min_confidence: float = 0.9, threads: int = 1, detector: str | None = None,
                 scale_factor: float | None = None):
        from workers.detectors import default_name, make_detector

        self.name = detector or default_name()
        if scale_factor is None:
            scale_factor = get_settings().detector_scale_factor
        self.detector = make_detector(self.name, min_face=min_face, scale_factor=scale_factor,
                                      threads=threads)
        self.crop_size, self.min_face, self.min_confidence = crop_size, min_face, min_confidence
        self.scale_factor = scale_factor

    def detect(self, images: list[np.ndarray], min_face=None,
               scale_factor=None) -> list[list[dict]]:
        """BGR images -> per image, a list of {box, score, landmarks, left_eye, right_eye, crop}.
        min_face / scale_factor: one value or one per image (None: the detector's own)."""
        found = self.detector.detect(images, min_face=min_face, scale_factor=scale_factor)
        results = []
        for img, faces in zip(images, found, strict=True):
            gray = cv2.cvtColor(img, cv2.COLOR_BGR2GRAY) if img.ndim == 3 else img
            out = []
            for face in faces:
                if face.score < self.min_confidence:
                    continue
                x, y, w, h = face.box
                if w <= 1 or h <= 1:
                    continue
                points = face.landmarks or {}
                left, right = points.get("left_eye"), points.get("right_eye")
                out.append({"box": (x, y, w, h), "score": face.score, "landmarks": face.landmarks,
                            "left_eye": left, "right_eye": right,
                            "crop": crop_face(gray, (x, y, w, h), self.crop_size, left, right)})
            results.append(out)
        return results


class CameraOptions:
    """Per-camera detector settings from the camera hash (fields min_face, scale_factor),
    re-read every few seconds; None where a camera sets nothing (or nonsense)."""

    FIELDS = (("min_face", float, lambda v: 4 <= v <= 4096),
              ("scale_factor", float, lambda v: 0.1 <= v <= 0.95))

    def __init__(self, r, every_s: float = 5.0):
        self.redis, self.every_s, self.cached, self.read_at = r, every_s, {}, {}

    def get(self, camera: str) -> dict:
        now = time.monotonic()
        if now - self.read_at.get(camera, -1e9) > self.every_s:
            values = self.redis.hmget(keys.camera(camera), [f for f, _, _ in self.FIELDS])
            options = {}
            for (field, kind, valid), raw in zip(self.FIELDS, values, strict=True):
                try:
                    value = kind(text(raw))
                except (TypeError, ValueError):
                    value = None
                options[field] = value if value is not None and valid(value) else None
            self.cached[camera], self.read_at[camera] = options, now
        return self.cached[camera]


class PreviewSwitch:
    """Which cameras an admin opted into a live preview for (re-read every few seconds)."""

    def __init__(self, r):
        self.redis, self.cached, self.read_at = r, {}, {}

    def enabled(self, camera: str) -> bool:
        now = time.monotonic()
        if now - self.read_at.get(camera, 0) > 2:
            self.cached[camera] = self.redis.hget(keys.camera(camera), "preview") == b"1"
            self.read_at[camera] = now
        return self.cached[camera]


def draw_preview(image: np.ndarray, faces: list[dict]) -> bytes:
    canvas = image.copy()
    for face in faces:
        x, y, w, h = face["box"]
        cv2.rectangle(canvas, (x, y), (x + w, y + h), (80, 220, 80), 2)
    return cv2.imencode(".jpg", canvas, [cv2.IMWRITE_JPEG_QUALITY, 70])[1].tobytes()


def run(args: argparse.Namespace) -> int:
    from workers.emotion_model import input_size

    limit_heap()
    settings = get_settings()
    metrics.serve(args.metrics_port)
    try:
        crop_size = input_size(args.model)
    except Exception as error:  # no model yet: fall back to the paper's input size
        log.warning("could not read the model's input size (%s); using 64x64", error)
        crop_size = (64, 64)
    detector = FaceDetector(crop_size, args.min_face, args.min_confidence, args.threads,
                            detector=args.detector, scale_factor=args.scale_factor)
    log.info("detector: %s", detector.detector.describe())
    consumer: StreamConsumer | None = None

    trimmed_at = [time.monotonic()]

    def handle(items) -> Batch:
        if time.monotonic() - trimmed_at[0] > TRIM_EVERY_S:
            release_memory()
            trimmed_at[0] = time.monotonic()
        per_camera = [camera_options.get(frame.camera) for _, (frame, _) in items]
        found = detector.detect([image for _, (_, image) in items],
                                min_face=[o["min_face"] for o in per_camera],
                                scale_factor=[o["scale_factor"] for o in per_camera])
        batch = Batch(counters={"faces:in": 0, "faces:found": 0})
        now = time.time()
        for (_, (frame, image)), faces in zip(items, found, strict=True):
            entries = [Face(frame.camera, frame.seq, frame.ts, i, len(faces), f["box"],
                            f["score"], f["crop"]) for i, f in enumerate(faces)]
            if not entries:  # tell downstream that this camera saw nobody
                entries = [Face(frame.camera, frame.seq, frame.ts, -1, 0)]
            for face in entries:
                batch.outputs.append(Output(keys.FACES, face.encode(), settings.faces_maxlen))
            batch.counters["faces:in"] += len(entries)
            batch.counters["faces:found"] += len(faces)
            metrics.CAPTURE_TO_STAGE_SECONDS.labels("detector").observe(now - frame.ts)
            if preview.enabled(frame.camera):
                consumer.redis.set(keys.preview(frame.camera), draw_preview(image, faces),
                                   ex=PREVIEW_TTL_S)
        return batch

    consumer = StreamConsumer(
        kind="detector", stage="frames", stream=keys.FRAMES, group=keys.DETECTORS,
        decode=decode_frame, handle=handle, redis_url=settings.redis_url,
        # Newest-only reads deeper, so that one read catches up on a backlog of many frames.
        count=max(args.batch, NEWEST_ONLY_READ) if args.newest_only else args.batch,
        newest_only=(lambda item: item[0].camera) if args.newest_only else None,
        stale_after_s=settings.stale_after_s, claim_idle_ms=settings.claim_idle_ms,
        dead_letter_maxlen=settings.dead_letter_maxlen, heartbeat_ttl_s=settings.heartbeat_ttl_s)
    preview = PreviewSwitch(consumer.redis)
    camera_options = CameraOptions(consumer.redis)
    consumer.install_signal_handlers()
    consumer.run(max_idle_s=args.exit_when_idle)
    return 0
