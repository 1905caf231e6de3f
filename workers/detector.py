"""`moodstream detector`: MTCNN on frames from the frames stream, one faces entry per face."""

from __future__ import annotations

import argparse
import logging
import time

import cv2
import numpy as np

from moodstream import keys, metrics
from moodstream.config import get_settings
from moodstream.contract import Face, Frame, MalformedEntry
from moodstream.streams import Batch, Output, StreamConsumer
from workers.face_crop import crop_face

log = logging.getLogger("moodstream.detector")
PREVIEW_TTL_S = 5


def configure(parser: argparse.ArgumentParser) -> None:
    s = get_settings()
    parser.add_argument("--batch", type=int, default=4, help="frames per MTCNN call")
    parser.add_argument("--min-face", type=int, default=s.detector_min_face,
                        help="smallest face in pixels (larger is faster)")
    parser.add_argument("--min-confidence", type=float, default=0.9)
    parser.add_argument("--threads", type=int, default=1, help="TensorFlow threads")
    parser.add_argument("--model", default=str(s.model_path),
                        help="emotion model, read only for its input size")
    parser.add_argument("--metrics-port", type=int, default=s.metrics_port)
    parser.add_argument("--exit-when-idle", type=float, default=None, help=argparse.SUPPRESS)


def decode_frame(fields: dict) -> tuple[Frame, np.ndarray]:
    frame = Frame.decode(fields)
    image = cv2.imdecode(np.frombuffer(frame.jpeg, np.uint8), cv2.IMREAD_COLOR)
    if image is None:
        raise MalformedEntry(f"image does not decode ({len(frame.jpeg)} bytes)")
    return frame, image


class FaceDetector:
    """MTCNN plus cropping; shared by the live detector and the bulk jobs."""

    def __init__(self, crop_size: tuple[int, int], min_face: int = 40,
                 min_confidence: float = 0.9, threads: int = 1):
        import tensorflow as tf

        tf.config.threading.set_intra_op_parallelism_threads(threads)
        tf.config.threading.set_inter_op_parallelism_threads(1)
        from mtcnn import MTCNN

        _fix_mtcnn_pyramid()
        self.mtcnn = MTCNN(device="CPU:0")
        self.crop_size, self.min_face, self.min_confidence = crop_size, min_face, min_confidence

    def detect(self, images: list[np.ndarray]) -> list[list[dict]]:
        """BGR images -> per image, a list of {box, score, left_eye, right_eye, crop}."""
        rgb = [cv2.cvtColor(img, cv2.COLOR_BGR2RGB) for img in images]
        found = self.mtcnn.detect_faces(rgb, min_face_size=self.min_face)
        results = []
        for img, faces in zip(images, found, strict=True):
            gray = cv2.cvtColor(img, cv2.COLOR_BGR2GRAY)
            out = []
            for face in faces:
                if face["confidence"] < self.min_confidence:
                    continue
                x, y, w, h = (int(round(v)) for v in face["box"])
                if w <= 1 or h <= 1:
                    continue
                points = face.get("keypoints") or {}
                left, right = points.get("left_eye"), points.get("right_eye")
                out.append({"box": (x, y, w, h), "score": float(face["confidence"]),
                            "crop": crop_face(gray, (x, y, w, h), self.crop_size, left, right)})
            results.append(out)
        return results


def _fix_mtcnn_pyramid() -> None:
    """mtcnn 1.0 sizes its image pyramid ignoring min_face_size, so with min_face_size > 20
    the last levels shrink below PNet's 12 px and Keras raises. Drop those levels."""
    from mtcnn.stages import stage_pnet

    original = stage_pnet.build_scale_pyramid
    if getattr(original, "fixed", False):
        return

    def pyramid(width, height, min_face_size, scale_factor, min_size=12):
        scales = original(width, height, min_face_size, scale_factor, min_size)
        return scales[min(width, height) * scales >= min_size]

    pyramid.fixed = True
    stage_pnet.build_scale_pyramid = pyramid


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

    settings = get_settings()
    metrics.serve(args.metrics_port)
    try:
        crop_size = input_size(args.model)
    except Exception as error:  # no model yet: fall back to the paper's input size
        log.warning("could not read the model's input size (%s); using 64x64", error)
        crop_size = (64, 64)
    detector = FaceDetector(crop_size, args.min_face, args.min_confidence, args.threads)
    consumer: StreamConsumer | None = None

    def handle(items) -> Batch:
        found = detector.detect([image for _, (_, image) in items])
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
                consumer.redis.set(f"ms:preview:{frame.camera}", draw_preview(image, faces),
                                   ex=PREVIEW_TTL_S)
        return batch

    consumer = StreamConsumer(
        kind="detector", stage="frames", stream=keys.FRAMES, group=keys.DETECTORS,
        decode=decode_frame, handle=handle, redis_url=settings.redis_url, count=args.batch,
        stale_after_s=settings.stale_after_s, claim_idle_ms=settings.claim_idle_ms,
        dead_letter_maxlen=settings.dead_letter_maxlen, heartbeat_ttl_s=settings.heartbeat_ttl_s)
    preview = PreviewSwitch(consumer.redis)
    consumer.install_signal_handlers()
    consumer.run(max_idle_s=args.exit_when_idle)
    return 0
