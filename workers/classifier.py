"""`moodstream classifier`: label the faces of each frame with onnxruntime, batching across
frames and cameras, and classifying a tracked face only when it can have changed."""

from __future__ import annotations

import argparse
import logging

from moodstream import metrics
from moodstream.config import Settings
from moodstream.contract import FaceSet
from moodstream.detection.emotion_model import EmotionModel
from moodstream.detection.label_reuse import LabelReuse
from moodstream.detection.labelling import label_frames
from moodstream.streams import StreamConsumer

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


def run(args: argparse.Namespace, settings: Settings) -> int:
    settings = settings.with_options("classifier", batch=args.batch,
                                     wait_ms=args.wait_ms)
    c = settings.classifier
    metrics.serve(settings.metrics_port)
    model_path = args.model or c.model_for(args.precision)
    model = EmotionModel(model_path, threads=args.threads)
    log.info("model %s: input %dx%d", model_path, model.height, model.width)
    maxlen = settings.streams.labels_maxlen
    reuse = LabelReuse(c.reuse_max_age_ms / 1000, c.reuse_change_level, c.reuse_max_face)
    # Staleness is judged once, at the detector: a face it already found gets its label.
    consumer = StreamConsumer(
        settings, "faces", "classifier", FaceSet.decode,
        lambda items: label_frames(model, reuse, [f for _, f in items], maxlen, c.batch),
        count=c.frames_per_read, gather_ms=c.wait_ms)
    consumer.install_signal_handlers()
    consumer.run(max_idle_s=args.exit_when_idle)
    return 0
