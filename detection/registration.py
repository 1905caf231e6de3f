"""Following tracked faces by registration: each face's neighbourhood (a small grey patch) in
the last detected frame is aligned on the current frame by phase correlation.

The check that an aligned face still looks the same (a correlation after a bilinear shift,
as cv2.warpAffine shifts) runs on all faces of a frame as one numpy computation: a classroom
frame has 25 faces, and a warpAffine and a correlation per face, with the Python around
them, cost three times the batch.
"""

from __future__ import annotations

import cv2
import numpy as np

from moodstream.detection.detectors.base import DetectedFace

PATCH = 32  # px: each tracked face's neighbourhood, kept for registration on the next frame
PATCH_MARGIN = 1.5  # the neighbourhood: a square of this many times the face's side
MIN_RESPONSE = 0.2  # phase correlation peak below this: the face cannot be followed so
# Followed faces must look the same once aligned (correlation of the patches' insides): a
# face that turned, or a peak that noise made, goes to O-Net instead.
MIN_CORRELATION = 0.8
RIM = 4  # px of a patch left out of the correlation: a shift brings replicated border in
# warpAffine's bilinear weights come in 1/32 px steps (INTER_BITS): the same steps here.
WEIGHT_STEPS = 32
_WINDOW = cv2.createHanningWindow((PATCH, PATCH), cv2.CV_32F)
_INSIDE = np.arange(RIM, PATCH - RIM, dtype=np.float32)


def face_patches(gray: np.ndarray, boxes: list) -> np.ndarray:
    """(n, PATCH, PATCH) uint8: the square of PATCH_MARGIN x each face's side around it."""
    out = np.empty((len(boxes), PATCH, PATCH), np.uint8)
    h, w = gray.shape
    for i, (x, y, bw, bh) in enumerate(boxes):
        side = max(bw, bh) * PATCH_MARGIN
        x0, y0 = round(x + bw / 2 - side / 2), round(y + bh / 2 - side / 2)
        x1, y1 = x0 + round(side), y0 + round(side)
        part = gray[max(0, y0):min(h, y1), max(0, x0):min(w, x1)]
        if part.size == 0:
            out[i] = 0
            continue
        pads = (max(0, -y0), max(0, y1 - h), max(0, -x0), max(0, x1 - w))
        if any(pads):  # pad what lies outside the frame, so the square keeps its scale
            part = cv2.copyMakeBorder(part, *pads, cv2.BORDER_REPLICATE)
        out[i] = cv2.resize(part, (PATCH, PATCH), interpolation=cv2.INTER_AREA)
    return out


def phase_shifts(before: np.ndarray, now: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """For stacks of patches (n, PATCH, PATCH): the shift (n, 2) as (dx, dy) of each `now`
    patch against its `before` patch, and the peak's response (n,) (cv2.phaseCorrelate with
    a Hanning window; one call a patch is faster than numpy's FFT over the stack)."""
    shifts, response = np.empty((len(before), 2)), np.empty(len(before))
    a, b = before.astype(np.float32), now.astype(np.float32)
    for i in range(len(before)):
        shifts[i], response[i] = cv2.phaseCorrelate(a[i], b[i], _WINDOW)
    return shifts, response


def shifted_back(now: np.ndarray, shifts: np.ndarray) -> np.ndarray:
    """(n, PATCH - 2 RIM, PATCH - 2 RIM) float32: the inside of each patch moved back by its
    shift (dx, dy), bilinear, its border replicated, as cv2.warpAffine moves it."""
    n = len(now)
    xs = _INSIDE[None, :] + shifts[:, 0:1].astype(np.float32)  # (n, m): source columns
    ys = _INSIDE[None, :] + shifts[:, 1:2].astype(np.float32)
    x0, y0 = np.floor(xs), np.floor(ys)
    fx = (np.round((xs - x0) * WEIGHT_STEPS) / WEIGHT_STEPS)[:, None, :]
    fy = (np.round((ys - y0) * WEIGHT_STEPS) / WEIGHT_STEPS)[:, :, None]
    x0, y0 = x0.astype(np.intp), y0.astype(np.intp)
    # indices into the flat stack: one gather per bilinear corner, no Python loop
    first = (np.arange(n) * PATCH * PATCH)[:, None]
    row0 = (np.clip(y0, 0, PATCH - 1) * PATCH + first)[:, :, None]
    row1 = (np.clip(y0 + 1, 0, PATCH - 1) * PATCH + first)[:, :, None]
    col0 = np.clip(x0, 0, PATCH - 1)[:, None, :]
    col1 = np.clip(x0 + 1, 0, PATCH - 1)[:, None, :]
    src = now.reshape(-1).astype(np.float32)
    top = src[row0 + col0] * (1 - fx) + src[row0 + col1] * fx
    bottom = src[row1 + col0] * (1 - fx) + src[row1 + col1] * fx
    return top * (1 - fy) + bottom * fy


def alignments(before: np.ndarray, now: np.ndarray, shifts: np.ndarray) -> np.ndarray:
    """(n,) correlation of each `now` patch moved back by its shift with its `before`
    patch, inside a rim of RIM px."""
    n = len(before)
    if n == 0:
        return np.empty(0, np.float32)
    a = before[:, RIM:-RIM, RIM:-RIM].astype(np.float32).reshape(n, -1)
    b = shifted_back(now, shifts).reshape(n, -1)
    a -= a.mean(axis=1, keepdims=True)
    b -= b.mean(axis=1, keepdims=True)
    dot = np.einsum("ij,ij->i", a, b)
    scale = np.sqrt(np.einsum("ij,ij->i", a, a) * np.einsum("ij,ij->i", b, b))
    return np.divide(dot, scale, out=np.zeros_like(dot), where=scale > 0)


def registered(faces: list[dict], before: np.ndarray, gray: np.ndarray,
               max_side: float = float("inf")) -> tuple[list[DetectedFace], list[int]]:
    """The faces moved by their own neighbourhood's shift between the frame of `before`
    (face_patches of that frame) and `gray` (phase correlation, sub-pixel), with their
    landmarks; and the indices of the faces that could not be followed (a weak peak, a shift
    of more than a quarter of the square, a patch that no longer looks the same) or that are
    larger than `max_side` px (a close face turns and talks: its eyes need O-Net), for
    O-Net."""
    small = [i for i, face in enumerate(faces) if max(face["box"][2:]) <= max_side]
    lost = [i for i, face in enumerate(faces) if max(face["box"][2:]) > max_side]
    if not small:
        return [], lost
    now = face_patches(gray, [faces[i]["box"] for i in small])
    old = before[small]
    shifts, response = phase_shifts(old, now)
    followed = (response >= MIN_RESPONSE) & (np.abs(shifts).max(axis=1) <= PATCH / 4)
    close = np.zeros(len(small), bool)
    if followed.any():
        close[followed] = alignments(old[followed], now[followed],
                                     shifts[followed]) >= MIN_CORRELATION
    moved = []
    for k, i in enumerate(small):
        if not close[k]:
            lost.append(i)
            continue
        x, y, w, h = faces[i]["box"]
        scale = max(w, h) * PATCH_MARGIN / PATCH  # frame px per patch px
        dx, dy = float(shifts[k, 0]) * scale, float(shifts[k, 1]) * scale
        marks = faces[i].get("landmarks")
        moved.append(DetectedFace(
            (round(x + dx), round(y + dy), w, h), faces[i]["score"],
            {n: (px + dx, py + dy) for n, (px, py) in marks.items()} if marks else None))
    return moved, sorted(lost)
