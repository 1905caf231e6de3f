"""`moodstream classifier`: label face crops with onnxruntime, batching across cameras."""

from __future__ import annotations

import argparse
import logging
import time

from moodstream import keys, metrics
from moodstream.config import Settings
from moodstream.contract import Face, Label
from moodstream.streams import Batch, Output, StreamConsumer
from moodstream.workers.emotion_model import EmotionModel

log = logging.getLogger("moodstream.classifier")


def configure(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--model", default=None,
                        help="ONNX emotion model (default: the shipped one, or "
                             "MOODSTREAM_MODEL_PATH)")
    parser.add_argument("--precision", choices=("int8", "float"), default=None,
                        help="the shipped model to run: int8 or float "
                             "(MOODSTREAM_CLASSIFIER_PRECISION, default int8)")
    parser.add_argument("--batch", type=int, default=None,
                        help="most faces per onnxruntime call (MOODSTREAM_CLASSIFIER_BATCH)")
    parser.add_argument("--wait-ms", type=int, default=None,
                        help="how long to wait for a fuller batch (MOODSTREAM_CLASSIFIER_WAIT_MS)")
    parser.add_argument("--threads", type=int, default=1, help="onnxruntime threads")
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


def run(args: argparse.Namespace, settings: Settings) -> int:
    c = settings.classifier
    metrics.serve(settings.metrics_port)
    model_path = args.model or c.model_for(args.precision)
    model = EmotionModel(model_path, threads=args.threads)
    log.info("model %s: input %dx%d", model_path, model.height, model.width)
    maxlen = settings.streams.labels_maxlen
    # Staleness is judged once, at the detector: a face it already found gets its label.
    consumer = StreamConsumer(
        settings, "faces", "classifier", Face.decode,
        lambda items: label_faces(model, [f for _, f in items], maxlen),
        count=args.batch or c.batch, gather_ms=c.wait_ms if args.wait_ms is None else args.wait_ms)
    consumer.install_signal_handlers()
    consumer.run(max_idle_s=args.exit_when_idle)
    return 0
