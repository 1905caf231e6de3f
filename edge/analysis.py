"""The edge node's analysis: a picture in, its labels entry out, in one process.

The same parts as the central detector and classifier: MTCNN on onnxruntime with gating and
tracking (its per-camera state held in this process, which sees every frame of its camera),
the crops, and the emotion model with label reuse. No JPEG is made: the picture is shrunk
to the width the central ingest would send and analysed as it is."""

from __future__ import annotations

import numpy as np

from moodstream.config import Settings
from moodstream.contract import Frame
from moodstream.detection.emotion_model import EmotionModel
from moodstream.detection.face_detector import FaceDetector, face_set
from moodstream.detection.label_reuse import LabelReuse
from moodstream.detection.labelling import label_frames
from moodstream.detection.lean_detect import LeanDetector, LeanOptions
from moodstream.ingest.sources import shrink


class EdgeAnalyser:
    def __init__(self, settings: Settings, camera: str, threads: int = 1):
        d, c = settings.detector, settings.classifier
        self.camera, self.max_width = camera, settings.ingest.max_width
        self.model = EmotionModel(c.model_for(None), threads=threads)
        self.detector = FaceDetector((self.model.height, self.model.width), d.min_face,
                                     d.min_confidence, threads, detector=d.name,
                                     scale_factor=d.scale_factor, max_face=d.max_face,
                                     work_face=d.work_face)
        self.lean = LeanDetector(self.detector, None, LeanOptions.from_settings(d))
        self.reuse = LabelReuse(c.reuse_max_age_ms / 1000, c.reuse_change_level,
                                c.reuse_max_face)
        self.batch = c.batch
        self.faces = self.classified = 0

    def label(self, image: np.ndarray, seq: int, ts: float) -> dict:
        """The labels entry (its stream fields) of one BGR picture."""
        image = shrink(image, self.max_width)
        found = self.lean.detect([(self.camera, ts, image)], [self.detector.min_face],
                                 [self.detector.scale_factor])[0]
        faces = face_set(Frame(self.camera, seq, ts, b""), found)
        batch = label_frames(self.model, self.reuse, [faces], 0, self.batch)
        self.faces += batch.counters["labels:faces"]
        self.classified += batch.counters["labels:classified"]
        return batch.outputs[0].fields
