"""The mtcnn package on TensorFlow, kept as the reference the ONNX cascade is checked against.

Importing this module is cheap; TensorFlow is imported when a detector is built.
"""

from __future__ import annotations

import cv2
import numpy as np

from moodstream.detection.detectors.base import LANDMARKS, DetectedFace, Detector, as_bgr, per_image


def fix_mtcnn_pyramid() -> None:
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


class MtcnnTF(Detector):
    """mtcnn.MTCNN (TensorFlow). Images are batched per (shape, settings) group, because the
    package pads a mixed batch to one size and uses one pyramid for all of it."""

    name = "mtcnn"

    def __init__(self, min_face: float = 20, scale_factor: float = 0.709,
                 min_confidence: float = 0.0, threads: int = 1, **_ignored):
        import tensorflow as tf

        try:
            tf.config.threading.set_intra_op_parallelism_threads(threads)
            tf.config.threading.set_inter_op_parallelism_threads(1)
        except RuntimeError:  # TensorFlow already initialised in this process
            pass
        from mtcnn import MTCNN

        fix_mtcnn_pyramid()
        self.mtcnn = MTCNN(device="CPU:0")
        self.min_face, self.scale_factor = float(min_face), float(scale_factor)
        self.min_confidence = float(min_confidence)

    def describe(self) -> str:
        return f"mtcnn package (min_face={self.min_face:g}, scale_factor={self.scale_factor:g})"

    def detect(self, images: list[np.ndarray], min_face=None,
               scale_factor=None) -> list[list[DetectedFace]]:
        images = [as_bgr(img) for img in images]
        faces = per_image(min_face, len(images), self.min_face)
        factors = per_image(scale_factor, len(images), self.scale_factor)
        groups: dict[tuple, list[int]] = {}
        for i, img in enumerate(images):
            groups.setdefault((img.shape, float(faces[i]), float(factors[i])), []).append(i)
        results: list[list[DetectedFace]] = [[] for _ in images]
        for (_, min_face_size, factor), members in groups.items():
            rgb = [cv2.cvtColor(images[i], cv2.COLOR_BGR2RGB) for i in members]
            found = self.mtcnn.detect_faces(rgb, min_face_size=min_face_size,
                                            scale_factor=factor)
            for i, raw in zip(members, found, strict=True):
                results[i] = [self._face(f) for f in raw if f["confidence"] >= self.min_confidence]
        return results

    @staticmethod
    def _face(raw: dict) -> DetectedFace:
        x, y, w, h = (int(round(v)) for v in raw["box"])
        points = raw.get("keypoints")
        marks = None
        if points:
            marks = {k: (float(points[k][0]), float(points[k][1])) for k in LANDMARKS}
        return DetectedFace((x, y, w, h), float(raw["confidence"]), marks)
