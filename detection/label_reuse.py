"""When a tracked face needs the classifier again, and what it carries in between.

Only small faces (at most `max_face` px, the faces of a crowd) may carry probabilities: their
crop holds about all the detail the face has, so a measure of its change can say that
nothing changed. A close face (a driver) shows a change of expression in detail that the
signature below averages away; it is classified on every frame, and there are few of them.

A face's expression does not change between two frames 200 ms apart unless its crop does. A
track is classified when it is new (or found again under a new id), when its last
classification is older than `max_age_s` of capture time, or when its crop changed past
`change_level` since then. The change is measured on 6x6 block means of the crop's inside
with its mean brightness removed: the 90th percentile of the blocks' absolute differences,
in grey levels, at the best of the whole crop's shifts by up to SHIFT px. A smile or an
opened mouth moves a few blocks a lot; JPEG noise and a small sway move many blocks a little;
a light that dims moves none; the detector placing the same face a pixel or two further (its
box and landmarks jitter by about a pixel of the crop from frame to frame) moves it as a
whole, which the shift takes back. Otherwise the face carries the
probabilities of its last classification, and the labels entry says so (LabelSet.fresh).

The memory is per classifier process: with several classifiers, a track whose frames go to
another process is classified there again, which costs time, never correctness.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

GRID = 6  # the signature's blocks per side
SHIFT = 2  # crop px: a whole-crop shift up to this is the detector's jitter, not a change
FORGET_AFTER_S = 30.0  # tracks unseen this long (capture time) are forgotten


def _blocks(size: int) -> int:
    return max(1, (size - 2 * SHIFT) // GRID)


def signatures(crops: np.ndarray) -> np.ndarray:
    """(n, GRID, GRID): for each gray crop of a stack (n, h, w), the GRID x GRID block means
    of its inside (SHIFT px in from each edge) less their mean (float32)."""
    n, h, w = crops.shape
    bh, bw = _blocks(h), _blocks(w)
    part = crops[:, SHIFT:SHIFT + bh * GRID, SHIFT:SHIFT + bw * GRID].astype(np.float32)
    blocks = part.reshape(n, GRID, bh, GRID, bw).mean(axis=(2, 4))
    return blocks - blocks.mean(axis=(1, 2), keepdims=True)


def signature(crop: np.ndarray) -> np.ndarray:
    """`signatures` of one crop."""
    return signatures(crop[None])[0]


def shifted_signatures_of(crops: np.ndarray) -> np.ndarray:
    """(n, 2 SHIFT + 1, 2 SHIFT + 1, GRID, GRID): for each crop of a stack, the signature of
    its inside moved by each shift of up to SHIFT px ([SHIFT, SHIFT] is `signature`), from
    one integral image a crop."""
    n, h, w = crops.shape
    bh, bw = _blocks(h), _blocks(w)
    integral = np.zeros((n, h + 1, w + 1), np.float64)
    integral[:, 1:, 1:] = crops.cumsum(axis=1, dtype=np.float64).cumsum(axis=2)
    starts = np.arange(2 * SHIFT + 1)[:, None]
    ys = np.minimum(starts + np.arange(GRID + 1) * bh, h)  # block edges at each shift
    xs = np.minimum(starts + np.arange(GRID + 1) * bw, w)
    c = integral[:, ys[:, None, :, None], xs[None, :, None, :]]
    means = (c[..., 1:, 1:] - c[..., :-1, 1:] - c[..., 1:, :-1] + c[..., :-1, :-1]) / (bh * bw)
    return (means - means.mean(axis=(-2, -1), keepdims=True)).astype(np.float32)


def shifted_signatures(crop: np.ndarray) -> np.ndarray:
    """`shifted_signatures_of` one crop."""
    return shifted_signatures_of(crop[None])[0]


def _p90(d: np.ndarray) -> np.ndarray:
    """The 90th percentile of each row, interpolated as np.percentile does, without its
    overhead (a fifth of a millisecond a call, 25 calls a classroom frame)."""
    d = np.sort(d, axis=-1)
    pos = 0.9 * (d.shape[-1] - 1)
    low = int(pos)
    high = min(low + 1, d.shape[-1] - 1)
    return d[..., low] + (d[..., high] - d[..., low]) * (pos - low)


def change(a: np.ndarray, b: np.ndarray) -> float:
    """How much a crop changed between two signatures, in grey levels: the 90th percentile of
    the blocks' absolute differences."""
    return float(_p90(np.abs(a - b).ravel()))


def changes_at_best_shift(before: np.ndarray, crops: np.ndarray) -> np.ndarray:
    """(n,): `change` between each signature of `before` (n, GRID, GRID) and its crop's
    inside at the shift (up to SHIFT px) that matches it best."""
    n = len(crops)
    d = np.abs(shifted_signatures_of(crops) - before[:, None, None])
    return _p90(d.reshape(n, -1, GRID * GRID)).min(axis=1)


def change_at_best_shift(before: np.ndarray, crop: np.ndarray) -> float:
    """`changes_at_best_shift` of one crop."""
    return float(changes_at_best_shift(before[None], crop[None])[0])


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
                 side: float = 0, crop: np.ndarray | None = None) -> np.ndarray | None:
        """The probabilities this face (`sig`: its crop's signature; `side`: its box's larger
        side in frame px; `crop`: the crop, for the shifts) may carry, or None when it must
        be classified."""
        return self.reusable_faces(camera, [track], ts, sig[None], [side],
                                   None if crop is None else crop[None])[0]

    def reusable_faces(self, camera: str, tracks, ts: float, sigs: np.ndarray, sides,
                       crops: np.ndarray | None = None) -> list[np.ndarray | None]:
        """`reusable` for the faces of one frame at once (tracks, signatures (n, GRID, GRID),
        sides, crops (n, h, w)): the change measures of all of them in one computation."""
        out: list[np.ndarray | None] = [None] * len(tracks)
        if self.max_age_s <= 0:
            return out
        candidates, known = [], []
        for i, (track, side) in enumerate(zip(tracks, sides, strict=True)):
            last = self.memory.get((camera, int(track)))
            if side <= self.max_face and last is not None and abs(ts - last.ts) < self.max_age_s:
                candidates.append(i)
                known.append(last)
        if not candidates:
            return out
        before = np.stack([k.signature for k in known])
        d = np.abs(sigs[candidates] - before).reshape(len(candidates), -1)
        changed = _p90(d) > self.change_level
        still = ~changed
        if crops is not None and changed.any():  # the detector's jitter may explain it
            moved = np.flatnonzero(changed)
            still[moved] = changes_at_best_shift(
                before[moved], crops[[candidates[j] for j in moved]]) <= self.change_level
        for j in np.flatnonzero(still):
            last = known[j]
            last.seen = max(last.seen, ts)
            out[candidates[j]] = last.probs
        return out

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
