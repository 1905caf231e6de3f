"""The face detector interface: BGR images in, faces (box, score, landmarks) out."""

from __future__ import annotations

from abc import ABC, abstractmethod
from collections.abc import Sequence
from dataclasses import dataclass

import numpy as np

# MTCNN's five points, in the mtcnn package's naming (left/right as seen in the image)
LANDMARKS = ("left_eye", "right_eye", "nose", "mouth_left", "mouth_right")


@dataclass
class DetectedFace:
    """One face: box (x, y, w, h) in pixels of the input image, score in [0, 1] (1.0 where
    a detector has no calibrated score), landmarks {name: (x, y)} or None."""

    box: tuple[int, int, int, int]
    score: float
    landmarks: dict[str, tuple[float, float]] | None = None

    def to_json(self) -> dict:
        marks = None
        if self.landmarks is not None:
            marks = {k: [round(float(x), 1), round(float(y), 1)]
                     for k, (x, y) in self.landmarks.items()}
        return {"box": [int(v) for v in self.box], "score": round(float(self.score), 5),
                "landmarks": marks}


def per_image(value, count: int, default) -> list:
    """None -> [default] * count; a scalar -> [value] * count; a sequence -> itself."""
    if value is None:
        return [default] * count
    if isinstance(value, Sequence) and not isinstance(value, str):
        if len(value) != count:
            raise ValueError(f"{len(value)} per-image values for {count} images")
        return [default if v is None else v for v in value]
    return [value] * count


def as_bgr(image: np.ndarray) -> np.ndarray:
    """uint8 BGR (H, W, 3) from BGR, BGRA or gray input."""
    import cv2

    if image is None or image.size == 0:
        raise ValueError("empty image")
    if image.dtype != np.uint8:
        image = np.clip(image, 0, 255).astype(np.uint8)
    if image.ndim == 2:
        return cv2.cvtColor(image, cv2.COLOR_GRAY2BGR)
    if image.shape[2] == 4:
        return cv2.cvtColor(image, cv2.COLOR_BGRA2BGR)
    return image


class Detector(ABC):
    """A face detector. Implementations take a batch so that they can share work across the
    frames of a batch (MTCNN on onnxruntime batches its networks across frames).

    ``min_face`` and ``scale_factor`` override the detector's own settings for one call, as
    one value for all images or one value (or None) per image: per-camera settings. A
    detector that has no use for one of them ignores it.
    """

    name = "base"

    @abstractmethod
    def detect(self, images: list[np.ndarray], min_face=None,
               scale_factor=None) -> list[list[DetectedFace]]:
        """BGR uint8 images -> per image, its faces, best score first."""

    def describe(self) -> str:
        return self.name


def _libc():
    import ctypes
    import ctypes.util

    return ctypes.CDLL(ctypes.util.find_library("c") or "libc.so.6")


def limit_heap(mmap_threshold: int = 16 << 20) -> bool:
    """For a detector process: allocations from `mmap_threshold` up go straight to mmap, and
    back to the system when freed. glibc raises this threshold on its own up to 32 MB, after
    which the tens of MB a batch allocates stay resident. At 16 MB: peak RSS of a worker
    291 -> 257 MB at no measured speed (at 1 MB it cost 80% more CPU time: page faults).
    Process-wide: call it from a service's run(), not from library code. False where not
    glibc."""
    try:
        return bool(_libc().mallopt(-3, int(mmap_threshold)))  # M_MMAP_THRESHOLD
    except (OSError, AttributeError):
        return False


def release_memory() -> bool:
    """Hand freed heap memory back to the system (glibc's malloc_trim). A detector allocates
    tens of MB per batch; glibc keeps what it freed, which shows as resident memory. Costs
    about 25 ms, so callers do it now and then, not per batch. False where unavailable."""
    try:
        return bool(_libc().malloc_trim(0))
    except (OSError, AttributeError):
        return False


def iou(a, b) -> float:
    """Intersection over union of two (x, y, w, h) boxes."""
    ax, ay, aw, ah = a
    bx, by, bw, bh = b
    inter = max(0.0, min(ax + aw, bx + bw) - max(ax, bx)) * max(
        0.0, min(ay + ah, by + bh) - max(ay, by))
    union = aw * ah + bw * bh - inter
    return inter / union if union > 0 else 0.0
