"""Cut face crops framed like FER-2013: square, a little margin, eyes level, gray."""

from __future__ import annotations

import math

import cv2
import numpy as np

# FER-2013 faces fill the 48x48 image from mid-forehead to chin; a box from MTCNN
# (brow to chin) widened by this factor gives the closest framing (checked by eye).
MARGIN = 1.05


def eye_angle(left_eye, right_eye) -> float:
    """Degrees to rotate so that the eyes are level (0 when no landmarks)."""
    if left_eye is None or right_eye is None:
        return 0.0
    dx, dy = right_eye[0] - left_eye[0], right_eye[1] - left_eye[1]
    if dx == 0 and dy == 0:
        return 0.0
    return math.degrees(math.atan2(dy, dx))


def crop_face(gray: np.ndarray, box, size: tuple[int, int], left_eye=None, right_eye=None,
              margin: float = MARGIN) -> np.ndarray:
    """One affine warp: rotate around the face centre, scale the square to `size` (h, w)."""
    x, y, w, h = (float(v) for v in box)
    out_h, out_w = size
    side = max(w, h) * margin
    cx, cy = x + w / 2, y + h / 2
    if left_eye is not None and right_eye is not None:
        # Centre between the eyes horizontally keeps the face centred when the head turns.
        cx = (left_eye[0] + right_eye[0]) / 2
    matrix = cv2.getRotationMatrix2D((cx, cy), eye_angle(left_eye, right_eye), out_w / side)
    matrix[0, 2] += out_w / 2 - cx
    matrix[1, 2] += out_h / 2 - cy
    return cv2.warpAffine(gray, matrix, (out_w, out_h), flags=cv2.INTER_LINEAR,
                          borderMode=cv2.BORDER_REPLICATE)
