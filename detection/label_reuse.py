"""When a tracked face needs the classifier again, and what it carries in between.

Only small faces (at most `max_face` px, the faces of a crowd) may carry probabilities: their
crop holds about all the detail the face has, so a measure of its change can say that
nothing changed. A close face (a driver) shows a change of expression in detail that the
signature below averages away; it is classified on every frame, and there are few of them.

A face's expression does not change between two frames 200 ms apart unless its crop does. A
track is classified when it is new (or found again under a new id), when its last
classification is older than `max_age_s` of capture time, or when its crop changed past
`change_level` since then. The change is measured on 6x6 block means of the crop with its
mean brightness removed: the 90th percentile of the blocks' absolute differences, in grey
levels. A smile or an opened mouth moves a few blocks a lot; JPEG noise and a small sway move
many blocks a little; a light that dims moves none. Otherwise the face carries the
probabilities of its last classification, and the labels entry says so (LabelSet.fresh).

The memory is per classifier process: with several classifiers, a track whose frames go to
another process is classified there again, which costs time, never correctness.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

GRID = 6  # the signature's blocks per side
FORGET_AFTER_S = 30.0  # tracks unseen this long (capture time) are forgotten


def signature(crop: np.ndarray) -> np.ndarray:
    """GRID x GRID block means of a gray crop less their mean (float32)."""
    h, w = crop.shape
    bh, bw = max(1, h // GRID), max(1, w // GRID)
    part = crop[:bh * GRID, :bw * GRID].astype(np.float32)
    blocks = part.reshape(GRID, bh, GRID, bw).mean(axis=(1, 3))
    return blocks - blocks.mean()


def change(a: np.ndarray, b: np.ndarray) -> float:
    """How much a crop changed between two signatures, in grey levels: the 90th percentile of
    the blocks' absolute differences, interpolated as np.percentile does, without its
    overhead (a fifth of a millisecond a call, 25 calls a classroom frame)."""
    d = np.sort(np.abs(a - b), axis=None)
    pos = 0.9 * (d.size - 1)
    low = int(pos)
    high = min(low + 1, d.size - 1)
    return float(d[low] + (d[high] - d[low]) * (pos - low))


@dataclass
class Classified:
    ts: float  # capture time of the frame it was classified on
    signature: np.ndarray
    probs: np.ndarray
    seen: float  # capture time of the track's newest frame


class LabelReuse:
    """Per (camera, track): the last classification, and whether a new crop needs one."""

    def __init__(self, max_age_s: float = 0.4, change_level: float = 6.0,
                 max_face: float = 64):
        self.max_age_s, self.change_level, self.max_face = max_age_s, change_level, max_face
        self.memory: dict[tuple[str, int], Classified] = {}
        self.newest = 0.0
        self.swept = 0.0

    def reusable(self, camera: str, track: int, ts: float, sig: np.ndarray,
                 side: float = 0) -> np.ndarray | None:
        """The probabilities this face (`sig`: its crop's signature; `side`: its box's larger
        side in frame px) may carry, or None when it must be classified."""
        if self.max_age_s <= 0 or side > self.max_face:
            return None
        known = self.memory.get((camera, int(track)))
        if known is None or abs(ts - known.ts) >= self.max_age_s:
            return None
        if change(sig, known.signature) > self.change_level:
            return None
        known.seen = max(known.seen, ts)
        return known.probs

    def remember(self, camera: str, track: int, ts: float, sig: np.ndarray,
                 probs: np.ndarray) -> None:
        """A classification of the face whose crop has signature `sig`."""
        key = (camera, int(track))
        known = self.memory.get(key)
        if known is not None and known.ts > ts:  # a newer classification stands
            return
        self.memory[key] = Classified(ts, sig, probs, ts)
        self.newest = max(self.newest, ts)
        if self.newest - self.swept > FORGET_AFTER_S:
            self.swept = self.newest
            self.memory = {k: v for k, v in self.memory.items()
                           if self.newest - v.seen < FORGET_AFTER_S}
