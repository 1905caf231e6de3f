"""OpenCV's Haar cascade (frontal faces): a cheap fallback, no landmarks, no score."""

from __future__ import annotations

from pathlib import Path

import cv2
import numpy as np

from moodstream.detection.detectors.base import DetectedFace, Detector, as_bgr, per_image

DEFAULT_CASCADE = "haarcascade_frontalface_default.xml"


class HaarDetector(Detector):
    """cv2.CascadeClassifier. ``min_face`` maps to minSize. MTCNN's ``scale_factor`` (a
    pyramid factor below 1) is ignored: the cascade keeps its own ``haar_scale`` (above 1).
    Every face scores 1.0: the cascade has no calibrated confidence."""

    name = "haar"

    def __init__(self, min_face: float = 20, cascade: str | Path | None = None,
                 haar_scale: float = 1.1, min_neighbors: int = 5, **_ignored):
        path = Path(cascade) if cascade else Path(cv2.data.haarcascades) / DEFAULT_CASCADE
        self.classifier = cv2.CascadeClassifier(str(path))
        if self.classifier.empty():
            raise FileNotFoundError(f"no Haar cascade at {path}")
        self.min_face, self.haar_scale = float(min_face), float(haar_scale)
        self.min_neighbors = int(min_neighbors)

    def describe(self) -> str:
        return f"haar (min_face={self.min_face:g}, scale={self.haar_scale:g})"

    def detect(self, images: list[np.ndarray], min_face=None,
               scale_factor=None) -> list[list[DetectedFace]]:
        sizes = per_image(min_face, len(images), self.min_face)
        results = []
        for img, size in zip(images, sizes, strict=True):
            gray = cv2.equalizeHist(cv2.cvtColor(as_bgr(img), cv2.COLOR_BGR2GRAY))
            side = max(int(round(float(size))), 1)
            found = self.classifier.detectMultiScale(
                gray, scaleFactor=self.haar_scale, minNeighbors=self.min_neighbors,
                minSize=(side, side))
            faces = [DetectedFace((int(x), int(y), int(w), int(h)), 1.0, None)
                     for x, y, w, h in (found if len(found) else [])]
            results.append(sorted(faces, key=lambda f: -f.box[2] * f.box[3]))
        return results
