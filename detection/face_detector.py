"""`FaceDetector`: a face detector (detection/detectors) plus the aligned gray crops the
classifier takes; shared by the live detector, the edge node, the bulk jobs, the model tools
and the bench. `face_set` turns its output for one frame into the faces entry."""

from __future__ import annotations

from dataclasses import dataclass

import cv2
import numpy as np

from moodstream.config import DetectorSettings
from moodstream.contract import FaceSet, Frame
from moodstream.detection.detectors.base import DetectedFace
from moodstream.detection.face_crop import crop_face


@dataclass
class Face:
    """A face found in an image: its box (x, y, w, h) and score, the landmarks the detector
    gives (or None), the aligned gray crop the classifier takes, and, in the live pipeline,
    its track id (-1 until one is assigned)."""

    box: tuple[int, int, int, int]
    score: float
    crop: np.ndarray
    landmarks: dict | None = None
    track: int = -1

    @property
    def left_eye(self):
        return (self.landmarks or {}).get("left_eye")

    @property
    def right_eye(self):
        return (self.landmarks or {}).get("right_eye")

    def detected(self) -> DetectedFace:
        return DetectedFace(self.box, self.score, self.landmarks)


class FaceDetector:
    """A face detector plus cropping."""

    def __init__(self, crop_size: tuple[int, int], min_face: int = 40,
                 min_confidence: float | None = None, threads: int = 1,
                 detector: str = "mtcnn-onnx",
                 scale_factor: float = 0.709, **options):
        """options: further detector options (mtcnn-onnx: max_face, work_face)."""
        from moodstream.detection.detectors import make_detector

        self.name = detector
        self.detector = make_detector(self.name, min_face=min_face, scale_factor=scale_factor,
                                      threads=threads, **options)
        if min_confidence is None:
            min_confidence = DetectorSettings.model_fields["min_confidence"].default
        self.crop_size, self.min_face, self.min_confidence = crop_size, min_face, min_confidence
        self.scale_factor = scale_factor

    def detect(self, images: list[np.ndarray], min_face=None, scale_factor=None,
               grays: list[np.ndarray] | None = None) -> list[list[Face]]:
        """BGR images -> per image, its Faces (with crops).
        min_face / scale_factor: one value or one per image (None: the detector's own);
        grays: the images' grey copies, when the caller has them (the crops' source)."""
        found = self.detector.detect(images, min_face=min_face, scale_factor=scale_factor)
        return self._finished(images, found, grays)

    def detect_around(self, images: list[np.ndarray], boxes: list[list],
                      grays: list[np.ndarray] | None = None) -> list[list[Face]]:
        """As detect, but only near the known boxes of each image (track-guided detection;
        detectors that have detect_around: mtcnn-onnx)."""
        return self._finished(images, self.detector.detect_around(images, boxes), grays)

    def refine(self, images: list[np.ndarray], boxes: list[list],
               grays: list[np.ndarray] | None = None) -> list[list[Face]]:
        """As detect_around, with O-Net alone on the known boxes (mtcnn-onnx's refine)."""
        return self._finished(images, self.detector.refine(images, boxes), grays)

    def _finished(self, images, found, grays) -> list[list[Face]]:
        return [self.finish(img, faces)
                for img, faces in zip(grays or images, found, strict=True)]

    def finish(self, image: np.ndarray, faces) -> list[Face]:
        """DetectedFaces of an image -> Faces, crops cut from this image."""
        gray = cv2.cvtColor(image, cv2.COLOR_BGR2GRAY) if image.ndim == 3 else image
        out = []
        for face in faces:
            if face.score < self.min_confidence:
                continue
            x, y, w, h = face.box
            if w <= 1 or h <= 1:
                continue
            points = face.landmarks or {}
            left, right = points.get("left_eye"), points.get("right_eye")
            out.append(Face((x, y, w, h), face.score,
                            crop_face(gray, (x, y, w, h), self.crop_size, left, right),
                            face.landmarks))
        return out


def face_set(frame: Frame, faces: list[Face]) -> FaceSet:
    """The faces entry of a frame from its Faces (with their track ids)."""
    if not faces:
        return FaceSet(frame.camera, frame.seq, frame.ts)
    return FaceSet(frame.camera, frame.seq, frame.ts,
                   np.array([f.box for f in faces], np.int32),
                   np.array([f.score for f in faces], np.float32),
                   np.array([f.track for f in faces], np.int64),
                   np.stack([f.crop for f in faces]))
