"""MTCNN on onnxruntime and numpy: the mtcnn package's cascade without TensorFlow.

The networks are the package's own weights converted by models/mtcnn_to_onnx.py. The cascade
follows mtcnn 1.0's stages step for step (pyramid, P-Net proposals with box regression, its
NMS variant, squaring, R-Net, O-Net with landmarks), so that the boxes match the package's.
What is different is how the work is batched:

- P-Net: every pyramid level of every image of a batch is packed into one canvas (a mosaic),
  and P-Net runs once on it (``pnet_batching="mosaic"``); or once per distinct level shape,
  with the same level of same-sized frames stacked up to ``pnet_max_pixels`` per call
  (``"levels"``, the default: measured faster, and lighter on memory). In the mosaic, levels sit
  at even offsets, and a mask input (pnet_mosaic.onnx) hides from the max pool the
  first-layer positions whose window leaves a level, as padding is hidden on a level of its
  own: each output cell gets exactly the value a call per level gives it.
- R-Net and O-Net: the candidates of all images of a batch go through one call each.
- Patches are cut for all boxes of an image at once (numpy gathers), at the sampling points
  of TensorFlow's crop_and_resize (which the package uses), instead of one crop per box.

Settings per image (``min_face``, ``scale_factor``) are per-camera settings: each image gets
its own pyramid, and the batch still shares the network calls.

Lean pyramid: ``max_face`` drops the levels that only find faces larger than it,
and ``work_face`` builds the pyramid from the frame downscaled so that the smallest face is
that many pixels (P-Net's first level sees it at 12 px, so 24 still averages 2x2 pixels per
level pixel); R-Net and O-Net still cut their patches from the full frame.

Track-guided detection (``detect_around``): P-Net only on a square region around each known
face, at three face sizes around the known one, then R-Net and O-Net as usual.
"""

from __future__ import annotations

import math
from pathlib import Path

import cv2
import numpy as np

from moodstream import assets
from moodstream.detection.detectors.base import (
    LANDMARKS,
    DetectedFace,
    Detector,
    as_bgr,
    per_image,
)
from moodstream.detection.onnx_runtime import cpu_session

CELL, STRIDE = 12, 2
GAP = 0  # pixels between pyramid levels in the mosaic besides even alignment (the mask does it)
MASKED = -1e4  # mask value where P-Net's first layer sees pixels of no level (or two)
EXTRAPOLATE = 127.5  # raw pixel value outside the image (0 after normalisation)


def session(path: Path, threads: int):
    # P-Net's input shape changes with every level and frame size: no arena (cpu_session).
    return cpu_session(path, threads, spin=False, quiet=True)


# ---------------------------------------------------------------- the package's box arithmetic


def scale_pyramid(width: int, height: int, min_face: float, factor: float,
                  max_face: float | None = None) -> list[float]:
    """mtcnn 1.0's build_scale_pyramid, keeping only levels at least 12 px high and wide
    (the fix detection/detectors/mtcnn_tf.py applies to the package). With max_face, levels
    whose 12 px cell is a face larger than max_face go, but one: P-Net's window at a level
    also answers for faces up to 1/factor its size, and the regression stretches it."""
    min_dim = min(width, height)
    if min_dim < CELL:
        return []
    count = round(-((np.log(min_dim / CELL) / np.log(factor)) + 1))
    scales = (CELL / min_face) * factor ** np.arange(max(count, 0))
    if max_face:
        scales = scales[scales >= CELL / max_face * factor]
    return [float(s) for s in scales if min_dim * s >= CELL]


def work_step(min_face: float, work_face: float) -> int:
    """The working resolution for the pyramid, as a whole divisor of the frame's size: the
    largest at which the smallest face is still at least work_face px (1: the frame itself;
    also when work_face is 0). Whole divisors, because OpenCV's area resize is several times
    faster at them than at fractional ratios (which cost more than they saved)."""
    return max(1, int(min_face // work_face)) if work_face and min_face > 0 else 1


def iou_matrix(a: np.ndarray, b: np.ndarray, method: str) -> np.ndarray:
    """IoU ("union") or intersection over the smaller area ("min") of x1,y1,x2,y2 boxes."""
    area_a = (a[:, 2] - a[:, 0]) * (a[:, 3] - a[:, 1])
    area_b = (b[:, 2] - b[:, 0]) * (b[:, 3] - b[:, 1])
    w = np.minimum(a[:, None, 2], b[None, :, 2]) - np.maximum(a[:, None, 0], b[None, :, 0])
    h = np.minimum(a[:, None, 3], b[None, :, 3]) - np.maximum(a[:, None, 1], b[None, :, 1])
    inter = np.maximum(w, 0) * np.maximum(h, 0)
    if method == "min":
        denom = np.minimum(area_a[:, None], area_b[None, :])
    else:
        denom = area_a[:, None] + area_b[None, :] - inter
    with np.errstate(divide="ignore", invalid="ignore"):
        return inter / denom


def nms(boxes: np.ndarray, threshold: float, method: str = "union",
        cells: int = 1 << 18) -> np.ndarray:
    """Indices kept by mtcnn 1.0's NMS for boxes sorted best first: a box is dropped when any
    better box (kept or not) overlaps it by more than `threshold`. Computed in blocks of
    columns, at most `cells` pairs at a time, to bound memory (2 MB per temporary)."""
    n = len(boxes)
    if n <= 1:
        return np.arange(n)
    block = max(16, cells // n)
    keep = np.ones(n, bool)
    for start in range(1, n, block):
        stop = min(start + block, n)
        overlap = iou_matrix(boxes[:stop], boxes[start:stop], method)  # (stop, stop-start)
        rows = np.arange(stop)[:, None]
        cols = np.arange(start, stop)[None, :]
        keep[start:stop] = ~((overlap > threshold) & (rows < cols)).any(axis=0)
    return np.flatnonzero(keep)


def sort_best_first(boxes: np.ndarray, scores: np.ndarray, *extra):
    order = np.argsort(scores)[::-1]
    return (boxes[order], scores[order], *(e[order] for e in extra))


def square(boxes: np.ndarray) -> np.ndarray:
    """mtcnn 1.0's resize_to_square: grow the short side around the centre."""
    out = boxes.copy()
    w, h = boxes[:, 2] - boxes[:, 0], boxes[:, 3] - boxes[:, 1]
    side = np.maximum(w, h)
    out[:, 0] = boxes[:, 0] + w * 0.5 - side * 0.5
    out[:, 1] = boxes[:, 1] + h * 0.5 - side * 0.5
    out[:, 2] = out[:, 0] + side
    out[:, 3] = out[:, 1] + side
    return out


def regress(boxes: np.ndarray, offsets: np.ndarray) -> np.ndarray:
    """mtcnn 1.0's adjust_bboxes (its sizes are x2 - x1 + 1)."""
    w = boxes[:, 2] - boxes[:, 0] + 1
    h = boxes[:, 3] - boxes[:, 1] + 1
    return boxes + offsets * np.stack([w, h, w, h], axis=1)


def _gather(pixels: np.ndarray, width: int, ys: np.ndarray, xs: np.ndarray) -> np.ndarray:
    """Pixels (a flat void view, 3 bytes each) at rows ys (N, S) x columns xs (N, S), as
    float32 (N, S, S, 3)."""
    flat = (ys * width)[:, :, None] + xs[:, None, :]
    n, size = ys.shape
    return pixels.take(flat).view(np.uint8).reshape(n, size, size, 3).astype(np.float32)


def patches(image: np.ndarray, boxes: np.ndarray, size: int, chunk: int = 256) -> np.ndarray:
    """(N, size, size, 3) float32 patches of a uint8 image, sampled exactly like
    tf.image.crop_and_resize with the boxes normalised by the image size, as mtcnn 1.0 cuts
    them: bilinear inside the image, EXTRAPOLATE where a point falls outside it.

    In float: uint8 patches (cv2.remap on the uint8 image) move final landmarks by 17 px."""
    h, w = image.shape[:2]
    pixels = np.ascontiguousarray(image).view(np.dtype((np.void, 3))).reshape(-1)
    steps = np.arange(size, dtype=np.float64) / (size - 1)
    out = np.empty((len(boxes), size, size, 3), np.float32)
    for start in range(0, len(boxes), chunk):
        b = boxes[start:start + chunk]
        # crop_and_resize: in = y1n * (H - 1) + i * (y2n - y1n) * (H - 1) / (size - 1)
        ys = (b[:, 1:2] + steps * (b[:, 3:4] - b[:, 1:2])) * ((h - 1) / h)
        xs = (b[:, 0:1] + steps * (b[:, 2:3] - b[:, 0:1])) * ((w - 1) / w)
        inside = (((ys >= 0) & (ys <= h - 1))[:, :, None]
                  & ((xs >= 0) & (xs <= w - 1))[:, None, :])
        y0 = np.clip(np.floor(ys), 0, h - 1).astype(np.intp)
        x0 = np.clip(np.floor(xs), 0, w - 1).astype(np.intp)
        y1, x1 = np.minimum(y0 + 1, h - 1), np.minimum(x0 + 1, w - 1)
        fy = (ys - y0).astype(np.float32)[:, :, None, None]
        fx = (xs - x0).astype(np.float32)[:, None, :, None]
        top_left = _gather(pixels, w, y0, x0)
        top = top_left + (_gather(pixels, w, y0, x1) - top_left) * fx
        bottom_left = _gather(pixels, w, y1, x0)
        bottom = bottom_left + (_gather(pixels, w, y1, x1) - bottom_left) * fx
        part = top + (bottom - top) * fy
        part[~inside] = EXTRAPOLATE
        out[start:start + len(b)] = part
    return out


# ---------------------------------------------------------------- P-Net batching


def area_pyramid(image: np.ndarray, sizes: list[tuple[int, int]]) -> list[np.ndarray]:
    """`image` (uint8, H x W x 3) resized to each (h, w) by area averaging, as float32.

    The result must match TensorFlow's area resize (the package's) closely: MTCNN is so
    sensitive that rounding the levels to uint8 moves final boxes by 10% and landmarks by up
    to 20 px. cv2.resize(INTER_AREA) on float32 matches to 1e-4 but costs a full pass over the
    image per level. Here one integral image (float64) serves all levels: an area average is
    a difference of the integral image at the output pixel corners, and the integral image of
    a piecewise constant image is exactly bilinear between integer points. So each level costs
    four gathers at its (h + 1) x (w + 1) corners.
    """
    if not sizes:
        return []
    height, width = image.shape[:2]
    integral = np.ascontiguousarray(cv2.integral(image, sdepth=cv2.CV_64F))
    cells = integral.view(np.dtype((np.void, 8 * image.shape[2]))).reshape(-1)
    out = []
    for h, w in sizes:  # level by level: a few MB of temporaries at a time
        ys, xs = np.arange(h + 1) * (height / h), np.arange(w + 1) * (width / w)
        iy = np.minimum(ys.astype(np.intp), height - 1)
        ix = np.minimum(xs.astype(np.intp), width - 1)
        index = (iy * (width + 1))[:, None] + ix[None, :]
        fy, fx = (ys - iy)[:, None, None], (xs - ix)[None, :, None]

        def at(offset: int, index=index, h=h, w=w) -> np.ndarray:
            return cells.take(index + offset).view(np.float64).reshape(h + 1, w + 1, -1)

        top, step = at(0), at(1)  # in place: this runs on every frame
        step -= top
        step *= fx
        top += step
        bottom, step = at(width + 1), at(width + 2)
        step -= bottom
        step *= fx
        bottom += step
        bottom -= top
        bottom *= fy
        top += bottom  # the integral image at the output pixel corners
        total = top[1:, 1:] - top[1:, :-1]
        total -= top[:-1, 1:]
        total += top[:-1, :-1]
        total *= h * w / (height * width)
        out.append(total.astype(np.float32))
    return out


def region(image: np.ndarray, x0: int, y0: int, side: int) -> np.ndarray:
    """The side x side square of image at (x0, y0); where it leaves the image, mid grey
    (what P-Net sees as 0 after its normalisation)."""
    h, w = image.shape[:2]
    left, top = max(0, -x0), max(0, -y0)
    right, bottom = max(0, x0 + side - w), max(0, y0 + side - h)
    inside = image[max(0, y0):min(h, y0 + side), max(0, x0):min(w, x0 + side)]
    if not (left or top or right or bottom):
        return inside
    if inside.size == 0:
        return np.full((side, side, 3), 128, np.uint8)
    return cv2.copyMakeBorder(inside, top, bottom, left, right, cv2.BORDER_CONSTANT,
                              value=(128, 128, 128))


def shrink(image: np.ndarray, step: int) -> np.ndarray:
    """The image divided in size by a whole step, by area averaging (uint8)."""
    h, w = image.shape[:2]
    return cv2.resize(image, (max(1, w // step), max(1, h // step)),
                      interpolation=cv2.INTER_AREA)


def pack(sizes: list[tuple[int, int]]) -> tuple[list[tuple[int, int]], int, int]:
    """Shelf-pack (h, w) rectangles at even offsets with GAP pixels around each.
    Returns their (y, x) positions and the canvas (height, width)."""
    padded = [(h + GAP + (h % 2), w + GAP + (w % 2)) for h, w in sizes]
    area = sum(h * w for h, w in padded)
    width = max(max(w for _, w in padded), int(math.sqrt(area * 1.15)) // 2 * 2)
    order = sorted(range(len(sizes)), key=lambda i: -padded[i][0])
    shelves: list[list[int]] = []  # [y, height, used width]
    positions: list[tuple[int, int]] = [(0, 0)] * len(sizes)
    top = 0
    for i in order:
        h, w = padded[i]
        for shelf in shelves:  # first shelf with room
            if shelf[2] + w <= width and h <= shelf[1]:
                positions[i] = (shelf[0], shelf[2])
                shelf[2] += w
                break
        else:
            shelves.append([top, h, w])
            positions[i] = (top, 0)
            top += h
    return positions, top, width


def pnet_cells(w: int) -> int:
    """Output cells of P-Net along a side of w pixels (conv 3, max pool 2 'same', conv 3,
    conv 3), as the package's per-level call produces them."""
    return max(math.ceil((w - 2) / 2) - 4, 0)


class MtcnnOnnx(Detector):
    """The MTCNN cascade on onnxruntime; see the module docstring."""

    name = "mtcnn-onnx"

    def __init__(self, min_face: float = 20, scale_factor: float = 0.709,
                 thresholds: tuple[float, float, float] = (0.6, 0.7, 0.8),
                 min_confidence: float = 0.0, threads: int = 1, model_dir: Path | str | None = None,
                 pnet_batching: str = "levels", max_candidates: int = 4000,
                 pnet_max_pixels: int = 1 << 16, max_face: float | None = None,
                 work_face: float = 0, track_sizes: tuple[float, ...] = (0.709, 1.0, 1.41),
                 track_margin: float = 2.0, **_ignored):
        if pnet_batching not in ("mosaic", "levels"):
            raise ValueError(f"pnet_batching must be 'mosaic' or 'levels', not {pnet_batching!r}")
        model_dir = Path(model_dir) if model_dir else assets.mtcnn_dir()
        needed = ["pnet", "rnet", "onet"] + (["pnet_mosaic"] if pnet_batching == "mosaic" else [])
        missing = [n for n in needed if not (model_dir / f"{n}.onnx").exists()]
        if missing:
            raise FileNotFoundError(f"MTCNN ONNX files {missing} not in {model_dir} "
                                    "(run python -m moodstream.models.mtcnn_to_onnx)")
        self.pnet = session(model_dir / "pnet.onnx", threads)
        if pnet_batching == "mosaic":
            self.pnet_mosaic = session(model_dir / "pnet_mosaic.onnx", threads)
        self.rnet = session(model_dir / "rnet.onnx", threads)
        self.onet = session(model_dir / "onet.onnx", threads)
        self.min_face, self.scale_factor = float(min_face), float(scale_factor)
        self.thresholds = tuple(float(t) for t in thresholds)
        self.min_confidence = float(min_confidence)
        self.pnet_batching, self.max_candidates = pnet_batching, int(max_candidates)
        self.pnet_max_pixels = int(pnet_max_pixels)  # per P-Net call in "levels" batching
        self.nms_pnet_level, self.nms_pnet, self.nms_rnet, self.nms_onet = 0.5, 0.7, 0.7, 0.7
        self.calls = {"pnet": 0, "rnet": 0, "onet": 0}  # network calls, for tests and benches
        self.max_face = float(max_face) if max_face else None  # lean pyramid
        self.work_face = max(float(work_face), CELL) if work_face else 0.0
        # Track-guided detection: P-Net on a square of track_margin x the face's side around
        # each known face, at these multiples of its size.
        self.track_sizes, self.track_margin = tuple(track_sizes), float(track_margin)

    def describe(self) -> str:
        lean = (f", max_face={self.max_face:g}" if self.max_face else "") + (
            f", work_face={self.work_face:g}" if self.work_face else "")
        return (f"mtcnn-onnx (min_face={self.min_face:g}, scale_factor={self.scale_factor:g}"
                f"{lean}, P-Net {self.pnet_batching})")

    # ------------------------------------------------------------ the cascade

    def detect(self, images: list[np.ndarray], min_face=None,
               scale_factor=None) -> list[list[DetectedFace]]:
        if not images:
            return []
        images = [as_bgr(img) for img in images]
        faces = per_image(min_face, len(images), self.min_face)
        factors = per_image(scale_factor, len(images), self.scale_factor)
        if any(not 0 < f < 1 for f in factors):
            raise ValueError("scale_factor must be between 0 and 1")
        levels = [(i, s) for i, img in enumerate(images)
                  for s in scale_pyramid(img.shape[1], img.shape[0], float(faces[i]),
                                         float(factors[i]), self.max_face)]
        proposals = self._stage_pnet(images, levels, [self._working(img, float(f))
                                                      for img, f in zip(images, faces,
                                                                        strict=True)])
        refined = self._stage_rnet(images, proposals)
        return self._stage_onet(images, refined)

    def detect_around(self, images: list[np.ndarray],
                      tracks: list[list[tuple[int, int, int, int]]]) -> list[list[DetectedFace]]:
        """Faces near known ones: per image, its known boxes (x, y, w, h). P-Net runs only on
        a square of track_margin x the face's side around each box, resampled so that the
        face is 12 px / k for each k in track_sizes (the same few sizes for every track, so
        the regions of all tracks of all images share one P-Net call per size); then R-Net
        and O-Net on the full image, as in detect. A face that moved less than half its size
        (with the default margin) and changed size by less than a pyramid step is found."""
        if not images:
            return []
        images = [as_bgr(img) for img in images]
        if len(tracks) != len(images):
            raise ValueError(f"{len(tracks)} track lists for {len(images)} images")
        regions, owners = [], []  # (origin x, origin y, side), image index
        inputs: list[np.ndarray] = []
        # Even sizes: P-Net's 'same' max pool then pads nothing, so a level padded at its
        # bottom and right gives its own cells exactly, and all levels go in one call.
        sides = [max(CELL, 2 * round(CELL * self.track_margin / k / 2))
                 for k in self.track_sizes]
        big = max(sides)
        for i, (img, boxes) in enumerate(zip(images, tracks, strict=True)):
            for x, y, w, h in boxes:
                side = max(CELL, round(max(w, h) * self.track_margin))
                x0, y0 = round(x + w / 2 - side / 2), round(y + h / 2 - side / 2)
                roi = region(img, x0, y0, side)
                if side >= 4 * big:  # a big face: its integral image would cost most
                    roi = shrink(roi, side // (2 * big))
                for size, pixels in zip(sides, area_pyramid(roi, [(s, s) for s in sides]),
                                        strict=True):
                    canvas = np.zeros((big, big, 3), np.float32)
                    canvas[:size, :size] = pixels
                    inputs.append(canvas)
                regions.append((x0, y0, side))
                owners.append(i)
        found: list[list[tuple[np.ndarray, np.ndarray]]] = [[] for _ in images]
        if not inputs:
            return [[] for _ in images]
        reg, prob = self._pnet(np.stack(inputs))
        for k, ((x0, y0, side), i) in enumerate(zip(regions, owners, strict=True)):
            for j, size in enumerate(sides):
                row, cells = k * len(sides) + j, pnet_cells(size)
                part = self._level_proposals(prob[row, 1, :cells, :cells],
                                             reg[row, :, :cells, :cells], size / side, (x0, y0))
                if part is not None:
                    found[i].append(part)
        refined = self._stage_rnet(images, self._merge_proposals(found))
        return self._stage_onet(images, refined)

    def refine(self, images: list[np.ndarray],
               tracks: list[list[tuple[int, int, int, int]]]) -> list[list[DetectedFace]]:
        """O-Net alone on each known box (x, y, w, h), squared as R-Net's output is: the
        cheapest step of track-guided detection, for faces that moved less than O-Net's
        regression corrects (a tenth of their size or so). A face O-Net no longer accepts
        there is missing from the result; the caller then searches with detect_around."""
        if len(tracks) != len(images):
            raise ValueError(f"{len(tracks)} track lists for {len(images)} images")
        images = [as_bgr(img) for img in images]
        boxes = [square(np.array([[x, y, x + w, y + h] for x, y, w, h in known], np.float64)
                        .reshape(-1, 4)) for known in tracks]
        return self._stage_onet(images, boxes)

    def _working(self, image: np.ndarray, min_face: float) -> np.ndarray:
        """The image the pyramid is built from (see work_scale)."""
        step = work_step(min_face, self.work_face)
        return image if step == 1 else shrink(image, step)

    def _level_proposals(self, prob, reg, scale, origin=(0.0, 0.0)):
        """P-Net's boxes of one level (image pixels, offset by origin) with their scores,
        after the per-level NMS; None when no cell passes the threshold."""
        ys, xs = np.nonzero(prob > self.thresholds[0])
        if not len(ys):
            return None
        # mtcnn 1.0's generate_bounding_box: the window of cell (y, x) runs from
        # stride * (y, x) + 1 to stride * (y, x) + 12, and is 11 px for the regression
        d = reg[:, ys, xs].T.astype(np.float64) * (CELL - 1)
        x0, y0 = xs * STRIDE + 1, ys * STRIDE + 1
        x1, y1 = xs * STRIDE + CELL, ys * STRIDE + CELL
        boxes = np.stack([x0 + d[:, 0], y0 + d[:, 1], x1 + d[:, 2], y1 + d[:, 3]],
                         axis=1) / scale
        boxes += np.array([origin[0], origin[1], origin[0], origin[1]], np.float64)
        boxes, scores = sort_best_first(boxes, prob[ys, xs].astype(np.float64))
        keep = nms(boxes, self.nms_pnet_level)
        return boxes[keep], scores[keep]

    def _stage_pnet(self, images, levels, working=None) -> list[np.ndarray]:
        """Per image: squared proposal boxes (N, 4) x1, y1, x2, y2."""
        per_level = self._run_pnet(images, levels, working or images)
        found: list[list[tuple[np.ndarray, np.ndarray]]] = [[] for _ in images]
        for (i, scale), (prob, reg) in zip(levels, per_level, strict=True):
            part = self._level_proposals(prob, reg, scale)
            if part is not None:
                found[i].append(part)
        return self._merge_proposals(found)

    def _merge_proposals(self, found) -> list[np.ndarray]:
        """Per image, its levels' proposals together: the cross-level NMS, squared."""
        result = []
        for parts in found:
            if not parts:
                result.append(np.empty((0, 4)))
                continue
            boxes, scores = sort_best_first(np.concatenate([b for b, _ in parts]),
                                            np.concatenate([s for _, s in parts]))
            boxes = boxes[:self.max_candidates]  # a bound on NMS's work; the package has none
            result.append(square(boxes[nms(boxes, self.nms_pnet)]))
        return result

    def _run_pnet(self, images, levels, working) -> list[tuple[np.ndarray, np.ndarray]]:
        """Per level: P-Net's face probability (h, w) and regression (4, h, w). Level sizes
        come from the images; the pixels from `working` (the images or smaller copies)."""
        if not levels:
            return []
        sizes = [(int(images[i].shape[0] * s), int(images[i].shape[1] * s)) for i, s in levels]
        resized = self._pyramid(working, levels, sizes)
        out: list = [None] * len(levels)
        if self.pnet_batching == "mosaic":
            positions, height, width = pack(sizes)
            canvas = np.zeros((1, height, width, 3), np.float32)
            mask = np.full((1, 1, height - 2, width - 2), MASKED, np.float32)
            for (y, x), (h, w), img in zip(positions, sizes, resized, strict=True):
                canvas[0, y:y + h, x:x + w] = img
                mask[0, 0, y:y + h - 2, x:x + w - 2] = 0.0
            reg, prob = self._pnet(canvas, mask)
            for k, ((y, x), (h, w)) in enumerate(zip(positions, sizes, strict=True)):
                cy, cx, ch, cw = y // 2, x // 2, pnet_cells(h), pnet_cells(w)
                out[k] = (prob[0, 1, cy:cy + ch, cx:cx + cw], reg[0, :, cy:cy + ch, cx:cx + cw])
            return out
        return self._pnet_stacked(resized, sizes)

    def _pnet_stacked(self, resized, sizes) -> list[tuple[np.ndarray, np.ndarray]]:
        """P-Net on each input, inputs of one size stacked into calls."""
        out: list = [None] * len(sizes)
        groups: dict[tuple[int, int], list[int]] = {}
        for k, size in enumerate(sizes):
            groups.setdefault(size, []).append(k)
        for (h, w), members in groups.items():
            # Stacking frames saves per-call overhead, which only matters for small levels;
            # on large ones it only multiplies the memory of P-Net's intermediate tensors.
            per_call = max(1, self.pnet_max_pixels // (h * w))
            for start in range(0, len(members), per_call):
                chunk = members[start:start + per_call]
                reg, prob = self._pnet(np.stack([resized[k] for k in chunk]))
                for row, k in enumerate(chunk):
                    out[k] = (prob[row, 1], reg[row])
        return out

    def _pyramid(self, images, levels, sizes) -> list[np.ndarray]:
        """The resized image of every level (float32), by area averaging like TensorFlow's
        area resize that the package uses: see area_pyramid."""
        wanted: dict[int, list[int]] = {}
        for k, (i, _) in enumerate(levels):
            wanted.setdefault(i, []).append(k)
        out: list = [None] * len(levels)
        for i, ks in wanted.items():
            for k, level in zip(ks, area_pyramid(images[i], [sizes[k] for k in ks]), strict=True):
                out[k] = level
        return out

    def _pnet(self, batch: np.ndarray, mask: np.ndarray | None = None):
        self.calls["pnet"] += 1
        if mask is None:
            return self.pnet.run(["reg", "prob"], {"input": batch})
        return self.pnet_mosaic.run(["reg", "prob"], {"input": batch, "mask": mask})

    def _cut(self, images, boxes_per_image, size) -> np.ndarray:
        parts = [patches(img, boxes, size)
                 for img, boxes in zip(images, boxes_per_image, strict=True) if len(boxes)]
        return np.concatenate(parts) if parts else np.empty((0, size, size, 3), np.float32)

    @staticmethod
    def _chunked(net, outputs: list[str], patches: np.ndarray, chunk: int = 32) -> list:
        """The network on at most `chunk` patches a call: a crowd gives R-Net thousands of
        proposals, and one call's activations grow with them (O-Net on 256 patches needs
        360 MB more; 32 a call run as fast a patch as any larger call)."""
        parts = [net.run(outputs, {"input": patches[start:start + chunk]})
                 for start in range(0, len(patches), chunk)]
        return [np.concatenate([p[i] for p in parts]) for i in range(len(outputs))]

    def _stage_rnet(self, images, proposals) -> list[np.ndarray]:
        counts = [len(b) for b in proposals]
        if not sum(counts):
            return proposals
        self.calls["rnet"] += 1
        reg, prob = self._chunked(self.rnet, ["reg", "prob"], self._cut(images, proposals, 24))
        result, start = [], 0
        for boxes, n in zip(proposals, counts, strict=True):
            scores, offsets = prob[start:start + n, 1].astype(np.float64), reg[start:start + n]
            start += n
            boxes = regress(boxes, offsets)
            picked = scores > self.thresholds[1]
            boxes, scores = sort_best_first(boxes[picked], scores[picked])
            result.append(square(boxes[nms(boxes, self.nms_rnet)]))
        return result

    def _stage_onet(self, images, refined) -> list[list[DetectedFace]]:
        counts = [len(b) for b in refined]
        if not sum(counts):
            return [[] for _ in images]
        self.calls["onet"] += 1
        reg, marks, prob = self._chunked(self.onet, ["reg", "landmarks", "prob"],
                                         self._cut(images, refined, 48))
        result, start = [], 0
        for img, boxes, n in zip(images, refined, counts, strict=True):
            sl = slice(start, start + n)
            start += n
            if not n:
                result.append([])
                continue
            scores = prob[sl, 1].astype(np.float64)
            w = boxes[:, 2:3] - boxes[:, 0:1] + 1
            h = boxes[:, 3:4] - boxes[:, 1:2] + 1
            points = np.concatenate([w * marks[sl, 0:5] + boxes[:, 0:1] - 1,
                                     h * marks[sl, 5:10] + boxes[:, 1:2] - 1], axis=1)
            boxes = regress(boxes, reg[sl])
            picked = scores > self.thresholds[2]
            boxes, scores, points = sort_best_first(boxes[picked], scores[picked], points[picked])
            keep = nms(boxes, self.nms_onet, method="min")
            result.append(self._faces(img, boxes[keep], scores[keep], points[keep]))
        return result

    def _faces(self, image, boxes, scores, points) -> list[DetectedFace]:
        """Clip to the image like the package (landmarks unclipped), round like its to_json."""
        h, w = image.shape[:2]
        boxes = boxes.copy()
        boxes[:, [0, 2]] = np.clip(boxes[:, [0, 2]], 0, w - 1)
        boxes[:, [1, 3]] = np.clip(boxes[:, [1, 3]], 0, h - 1)
        faces = []
        for box, score, pts in zip(boxes, scores, points, strict=True):
            if score < self.min_confidence:
                continue
            x, y = np.round(box[0]), np.round(box[1])
            bw, bh = np.round(box[2] - box[0]), np.round(box[3] - box[1])
            marks = {name: (float(pts[k]), float(pts[k + 5])) for k, name in enumerate(LANDMARKS)}
            faces.append(DetectedFace((int(x), int(y), int(bw), int(bh)), float(score), marks))
        return faces
