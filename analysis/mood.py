"""Pure mood arithmetic: windows, valence, dominant expression, driver alerts, shifts.

Kept free of Redis so that it is easy to test; workers.aggregator feeds it what it holds.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from moodstream.contract import CLASSES, ValenceShift, Window
from moodstream.expressions import dominant, valence
from moodstream.history.rows import BUCKET_S, BucketRow

WINDOWS = {"10s": 10, "1m": 60, "5m": 300}
DRIVER_NEGATIVE = ("angry", "fear", "sad")  # what a fleet wants to hear about

KEEP_S = 330  # per-second counts kept (the longest window is 5 minutes, plus a margin)
FRAMES, FACES = len(CLASSES), len(CLASSES) + 1  # columns after the 7 expression counts


class SecondCounts:
    """Per-second counts of one camera (expressions, frames, faces) in a ring of numpy rows,
    one per second of capture time: adding a frame and summing a window are array operations,
    whatever the number of faces."""

    def __init__(self, keep_s: int = KEEP_S):
        self.seconds = np.full(keep_s, -1, np.int64)  # the second each row holds
        self.values = np.zeros((keep_s, len(CLASSES) + 2), np.int64)

    def add(self, ts: float, probs: np.ndarray) -> None:
        """One frame captured at ts with these faces' probabilities (n, 7)."""
        second = int(ts)
        row = second % len(self.seconds)
        if self.seconds[row] != second:
            if self.seconds[row] > second:  # older than what the ring keeps
                return
            self.seconds[row], self.values[row] = second, 0
        if len(probs):
            self.values[row, :FRAMES] += np.bincount(np.argmax(probs, axis=1),
                                                     minlength=len(CLASSES))
        self.values[row, FRAMES] += 1
        self.values[row, FACES] += len(probs)

    def total(self, start: int, end: int) -> np.ndarray:
        """The column sums over the seconds in [start, end)."""
        held = (self.seconds >= start) & (self.seconds < end)
        return self.values[held].sum(axis=0)


def summary(total: np.ndarray) -> Window:
    """counts, frames, faces per frame, valence and dominant expression of summed rows."""
    counts = dict(zip(CLASSES, total[:FRAMES].tolist(), strict=True))
    frames, faces = int(total[FRAMES]), int(total[FACES])
    return Window(round(faces / frames, 2) if frames else 0.0, frames, counts,
                  dominant(counts), round(valence(counts), 3))


def window_stats(seconds: SecondCounts, now: float, length: int) -> Window:
    """The last `length` seconds up to now (and any second stamped later)."""
    return summary(seconds.total(int(now) - length + 1, 1 << 62))


@dataclass
class Thresholds:
    negative_threshold: float = 0.5
    negative_seconds: float = 5.0
    absent_seconds: float = 3.0

    @classmethod
    def from_camera(cls, camera) -> Thresholds:
        """From a camera's CameraSettings (validated there, defaults there)."""
        return cls(camera.negative_threshold, camera.negative_seconds, camera.absent_seconds)


class Recent:
    """The labels entries (LabelSet) of one camera's last minute, a frame each."""

    def __init__(self, frames: list):
        self.frames = sorted(frames, key=lambda f: f.ts)

    def latest_frame(self) -> tuple[float, int] | None:
        """(capture time, faces) of the newest frame seen."""
        if not self.frames:
            return None
        return self.frames[-1].ts, self.frames[-1].count

    def main_face_probs(self, since: float) -> list[tuple[float, np.ndarray]]:
        """Per frame since `since`, the probabilities of its biggest face (the driver)."""
        out = []
        for frame in self.frames:
            if frame.ts >= since and frame.count:
                main = int(np.argmax(frame.boxes[:, 2] * frame.boxes[:, 3]))
                out.append((frame.ts, frame.probs[main]))
        return out

    def last_face_ts(self) -> float | None:
        times = [f.ts for f in self.frames if f.count]
        return times[-1] if times else None


def smoothed_expression(recent: Recent, now: float, seconds: float = 2.0) -> str | None:
    """Mean probabilities of the main face over a short window, so labels do not flicker."""
    probs = recent.main_face_probs(now - seconds)
    if not probs:
        return None
    mean = np.mean([p for _, p in probs], axis=0)
    return CLASSES[int(np.argmax(mean))]


def driver_alerts(recent: Recent, now: float, t: Thresholds, seen_frames_since: float | None):
    """Active alert kinds with messages: sustained negative expression, driver out of view."""
    alerts = {}
    probs = recent.main_face_probs(now - t.negative_seconds)
    # Sustained: the frames cover most of the window. Each frame stands for one frame interval,
    # so 4 frames at 2 fps cover 2 s although only 1.5 s lie between the first and the last.
    n = len(probs)
    covered = (probs[-1][0] - probs[0][0]) * n / (n - 1) if n > 1 else 0.0
    if n > 1 and covered >= 0.8 * t.negative_seconds:
        negative = np.mean([sum(p[CLASSES.index(c)] for c in DRIVER_NEGATIVE) for _, p in probs])
        if negative >= t.negative_threshold:
            mean = np.mean([p for _, p in probs], axis=0)
            worst = max(DRIVER_NEGATIVE, key=lambda c: mean[CLASSES.index(c)])
            alerts["negative"] = (f"{worst} for {t.negative_seconds:.0f}s "
                                  f"(negative share {negative:.2f})")
    last_face = recent.last_face_ts()
    latest = recent.latest_frame()
    watching_since = seen_frames_since if seen_frames_since is not None else now
    if latest is not None and now - watching_since >= t.absent_seconds:
        gone_since = last_face if last_face is not None else watching_since
        if now - gone_since >= t.absent_seconds and latest[1] == 0:
            alerts["absent"] = f"no face for {now - gone_since:.0f}s"
    return alerts


def valence_shift(history: list[tuple[float, float]], now: float,
                  threshold: float = 0.3) -> ValenceShift | None:
    """A notable shift: the last 10 s differ from the minute before by more than threshold."""
    recent = [v for ts, v in history if ts > now - 10]
    before = [v for ts, v in history if now - 70 < ts <= now - 10]
    if len(recent) < 3 or len(before) < 10:
        return None
    a, b = float(np.mean(before)), float(np.mean(recent))
    if abs(b - a) >= threshold:
        return ValenceShift(round(a, 3), round(b, 3))
    return None


def history_bucket(camera: str, start: int, seconds: SecondCounts,
                   faces_seen: list[float]) -> BucketRow | None:
    """The history row of the 10 s from `start`: label counts, frames, mean faces present (the
    snapshots' count while it lasted, else faces per frame), valence and dominant expression.
    None when no frame arrived: the camera was off, which is no data rather than an empty
    room. Only aggregates: nothing that identifies a face."""
    window = summary(seconds.total(start, start + BUCKET_S))
    if not window.frames:
        return None
    mean = sum(faces_seen) / len(faces_seen) if faces_seen else window.faces
    return BucketRow(camera, start, window.frames, round(mean, 2), window.counts,
                     window.valence, window.dominant)
