"""FER-2013 faces re-cut the way the live pipeline cuts them: detector box, margin, eye
alignment (detection/face_crop.py), instead of FER-2013's own framing.

Each 48-px face is enlarged, given a border of its own edge pixels so that the detector sees
some context, and run through the pipeline's ``FaceDetector``. The most confident face is
cropped at the model's input size. Evaluating on these crops shows what framing costs the
model: a model that only knows FER-2013's exact framing loses accuracy here, and so it will
on a camera.
"""

from __future__ import annotations

import cv2
import numpy as np

UPSCALE = 4  # 48 px -> 192 px: above MTCNN's smallest face with room to spare
BORDER = 0.5  # border on each side, as a share of the enlarged image


def _canvas(face: np.ndarray) -> np.ndarray:
    big = cv2.resize(face, None, fx=UPSCALE, fy=UPSCALE, interpolation=cv2.INTER_CUBIC)
    pad = int(big.shape[0] * BORDER)
    big = cv2.copyMakeBorder(big, pad, pad, pad, pad, cv2.BORDER_REPLICATE)
    return cv2.cvtColor(big, cv2.COLOR_GRAY2BGR)


def pipeline_crops(x: np.ndarray, crop_size: tuple[int, int], batch: int = 16,
                   threads: int = 2, progress: bool = False) -> tuple[np.ndarray, np.ndarray]:
    """uint8 (N, 48, 48[, 1]) faces -> (crops uint8 (N, H, W, 1), found bool (N,)).
    Where the detector finds no face the crop is the plain resize, and found is False."""
    from moodstream.detection.face_detector import FaceDetector

    faces = x[..., 0] if x.ndim == 4 else x
    side = faces.shape[1] * UPSCALE
    detector = FaceDetector(crop_size, min_face=side // 3, threads=threads)
    crops = np.zeros((len(faces), *crop_size), np.uint8)
    found = np.zeros(len(faces), bool)
    steps = range(0, len(faces), batch)
    if progress:
        from tqdm import tqdm

        steps = tqdm(steps, desc="detecting", unit="batch")
    for start in steps:
        chunk = faces[start:start + batch]
        results = detector.detect([_canvas(f) for f in chunk])
        for i, (face, dets) in enumerate(zip(chunk, results, strict=True)):
            if dets:
                crops[start + i] = max(dets, key=lambda d: d.score).crop
                found[start + i] = True
            else:
                crops[start + i] = cv2.resize(face, crop_size[::-1],
                                              interpolation=cv2.INTER_LINEAR)
    return crops[..., None], found
