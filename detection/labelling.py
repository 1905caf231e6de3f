"""Labelling the faces of frames: one labels entry per faces entry, classifying a tracked
face only when it can have changed (LabelReuse). The live classifier and the edge node run
it."""

from __future__ import annotations

import time

import numpy as np

from moodstream import keys, metrics
from moodstream.contract import CLASSES, FaceSet, LabelSet
from moodstream.detection.emotion_model import EmotionModel
from moodstream.detection.label_reuse import LabelReuse, signatures
from moodstream.streams import Batch, Output


def label_frames(model: EmotionModel, reuse: LabelReuse, frames: list[FaceSet],
                 maxlen: int, chunk: int = 32) -> Batch:
    """One labels entry per faces entry. The faces that need it (LabelReuse) are classified in
    calls of at most `chunk` faces across all frames and cameras of the batch; the others
    carry their track's last probabilities, marked as not fresh."""
    probs = [np.zeros((f.count, len(CLASSES)), np.float32) for f in frames]
    fresh = [np.zeros(f.count, bool) for f in frames]
    wanted: list[tuple[int, int, np.ndarray]] = []  # frame, face, the crop's signature
    for k, frame in enumerate(frames):
        if not frame.count:
            continue
        sigs = signatures(frame.crops)  # check the reuse; kept for the faces classified
        known = reuse.reusable_faces(frame.camera, frame.tracks, frame.ts, sigs,
                                     frame.boxes[:, 2:4].max(axis=1), frame.crops)
        for i, carried in enumerate(known):
            if carried is None:
                wanted.append((k, i, sigs[i]))
            else:
                probs[k][i] = carried
    if wanted:
        found = model.predict([frames[k].crops[i] for k, i, _ in wanted], chunk)
        for (k, i, sig), p in zip(wanted, found, strict=True):
            frame = frames[k]
            probs[k][i], fresh[k][i] = p, True
            reuse.remember(frame.camera, frame.tracks[i], frame.ts, sig, p)
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
