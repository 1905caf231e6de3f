"""`moodstream classifier`: label the faces of each frame with onnxruntime, batching across
frames and cameras, and classifying a tracked face only when it can have changed."""

from __future__ import annotations

import argparse
import logging
import time

import numpy as np

from moodstream import keys, metrics
from moodstream.config import Settings
from moodstream.contract import CLASSES, FaceSet, LabelSet
from moodstream.streams import Batch, Output, StreamConsumer
from moodstream.workers.emotion_model import EmotionModel
from moodstream.workers.label_reuse import LabelReuse

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


def label_frames(model: EmotionModel, reuse: LabelReuse, frames: list[FaceSet],
                 maxlen: int, chunk: int = 32) -> Batch:
    """One labels entry per faces entry. The faces that need it (LabelReuse) are classified in
    calls of at most `chunk` faces across all frames and cameras of the batch; the others
    carry their track's last probabilities, marked as not fresh."""
    probs = [np.zeros((f.count, len(CLASSES)), np.float32) for f in frames]
    fresh = [np.zeros(f.count, bool) for f in frames]
    wanted: list[tuple[int, int]] = []
    for k, frame in enumerate(frames):
        for i in range(frame.count):
            known = reuse.reusable(frame.camera, frame.tracks[i], frame.ts, frame.crops[i],
                                   max(frame.boxes[i, 2], frame.boxes[i, 3]))
            if known is None:
                wanted.append((k, i))
            else:
                probs[k][i] = known
    if wanted:
        found = model.predict([frames[k].crops[i] for k, i in wanted], chunk)
        for (k, i), p in zip(wanted, found, strict=True):
            frame = frames[k]
            probs[k][i], fresh[k][i] = p, True
            reuse.remember(frame.camera, frame.tracks[i], frame.ts, frame.crops[i], p)
    faces = sum(f.count for f in frames)
    batch = Batch(counters={"labels:in": len(frames), "labels:faces": faces,
                            "labels:classified": len(wanted),
                            "labels:reused": faces - len(wanted)})
    now = time.time()
    for frame, p, new in zip(frames, probs, fresh, strict=True):
        label = LabelSet(frame.camera, frame.seq, frame.ts, frame.boxes, frame.tracks, p, new)
        batch.outputs.append(Output(keys.LABELS, label.encode(), maxlen))
        batch.latencies_ms.append((now - frame.ts) * 1000)
        metrics.CAPTURE_TO_STAGE_SECONDS.labels("classifier").observe(now - frame.ts)
    return batch


def run(args: argparse.Namespace, settings: Settings) -> int:
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
        lambda items: label_frames(model, reuse, [f for _, f in items], maxlen,
                                   args.batch or c.batch),
        count=c.frames_per_read, gather_ms=c.wait_ms if args.wait_ms is None else args.wait_ms)
    consumer.install_signal_handlers()
    consumer.run(max_idle_s=args.exit_when_idle)
    return 0
