"""`moodstream classifier`: label face crops with onnxruntime, batching across cameras."""

from __future__ import annotations

import argparse
import logging
import time

from moodstream import keys, metrics
from moodstream.config import get_settings
from moodstream.contract import Face, Label
from moodstream.streams import Batch, Output, StreamConsumer
from workers.emotion_model import EmotionModel

log = logging.getLogger("moodstream.classifier")


def configure(parser: argparse.ArgumentParser) -> None:
    s = get_settings()
    parser.add_argument("--model", default=str(s.model_path), help="ONNX emotion model")
    parser.add_argument("--batch", type=int, default=s.classifier_batch,
                        help="most faces per onnxruntime call")
    parser.add_argument("--wait-ms", type=int, default=s.classifier_wait_ms,
                        help="how long to wait for a fuller batch")
    parser.add_argument("--threads", type=int, default=1, help="onnxruntime threads")
    parser.add_argument("--metrics-port", type=int, default=s.metrics_port)
    parser.add_argument("--exit-when-idle", type=float, default=None, help=argparse.SUPPRESS)


def label_faces(model: EmotionModel, faces: list[Face], maxlen: int) -> Batch:
    crops = [f.crop for f in faces if f.index >= 0]
    probs = iter(model.predict(crops))
    batch = Batch(counters={"labels:in": len(faces), "labels:faces": len(crops)})
    now = time.time()
    for face in faces:
        label = Label(face.camera, face.seq, face.ts, face.index, face.count, face.box)
        if face.index >= 0:
            label.probs = [float(p) for p in next(probs)]
        batch.outputs.append(Output(keys.LABELS, label.encode(), maxlen))
        batch.latencies_ms.append((now - face.ts) * 1000)
        metrics.CAPTURE_TO_STAGE_SECONDS.labels("classifier").observe(now - face.ts)
    return batch


def run(args: argparse.Namespace) -> int:
    settings = get_settings()
    metrics.serve(args.metrics_port)
    model = EmotionModel(args.model, threads=args.threads)
    log.info("model %s: input %dx%d", args.model, model.height, model.width)
    consumer = StreamConsumer(
        kind="classifier", stage="faces", stream=keys.FACES, group=keys.CLASSIFIERS,
        decode=Face.decode,
        handle=lambda items: label_faces(model, [f for _, f in items], settings.labels_maxlen),
        redis_url=settings.redis_url, count=args.batch, gather_ms=args.wait_ms,
        # Staleness is judged once, at the detector: a face it already found gets its label.
        stale_after_s=None, claim_idle_ms=settings.claim_idle_ms,
        dead_letter_maxlen=settings.dead_letter_maxlen, heartbeat_ttl_s=settings.heartbeat_ttl_s)
    consumer.install_signal_handlers()
    consumer.run(max_idle_s=args.exit_when_idle)
    return 0
