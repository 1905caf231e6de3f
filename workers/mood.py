"""Pure mood arithmetic: windows, valence, dominant expression, driver alerts, shifts.

Kept free of Redis so that it is easy to test; workers.aggregator feeds it what it holds.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from functools import cached_property

import numpy as np

from moodstream.contract import CLASSES

WINDOWS = {"10s": 10, "1m": 60, "5m": 300}
POSITIVE = ("happy", "surprise")
NEGATIVE = ("angry", "disgust", "fear", "sad")
DRIVER_NEGATIVE = ("angry", "fear", "sad")  # what a fleet wants to hear about


def valence(counts: dict[str, float]) -> float:
    """Share of positive minus share of negative expressions, in [-1, 1]."""
    total = sum(counts.values())
    if not total:
        return 0.0
    positive = sum(counts.get(c, 0) for c in POSITIVE)
    return (positive - sum(counts.get(c, 0) for c in NEGATIVE)) / total


def dominant(counts: dict[str, float]) -> str | None:
    best = max(CLASSES, key=lambda c: counts.get(c, 0))
    return best if counts.get(best, 0) > 0 else None


def window_stats(buckets: dict[int, dict[str, int]], now: float, seconds: int) -> dict:
    """Sum per-second buckets over the last `seconds`: counts, average faces per frame."""
    counts = dict.fromkeys(CLASSES, 0)
    frames = faces = 0
    start = int(now) - seconds
    for second, bucket in buckets.items():
        if second <= start:
            continue
        for c in CLASSES:
            counts[c] += bucket.get(c, 0)
        frames += bucket.get("frames", 0)
        faces += bucket.get("faces", 0)
    return {"faces": round(faces / frames, 2) if frames else 0.0, "frames": frames,
            "counts": counts, "dominant": dominant(counts), "valence": round(valence(counts), 3)}


@dataclass
class Thresholds:
    negative_threshold: float = 0.5
    negative_seconds: float = 5.0
    absent_seconds: float = 3.0

    @classmethod
    def from_camera(cls, camera) -> Thresholds:
        """From a camera's CameraSettings (validated there, defaults there)."""
        return cls(camera.negative_threshold, camera.negative_seconds, camera.absent_seconds)


@dataclass
class Recent:
    """Labels of the last minutes of one camera: dicts with ts, seq, index, count, box, probs."""

    labels: list[dict] = field(default_factory=list)

    @cached_property
    def by_frame(self) -> dict[int, list[dict]]:
        """Labels grouped by frame; computed once, as a snapshot asks for it several times."""
        out: dict[int, list[dict]] = {}
        for item in self.labels:
            out.setdefault(item["seq"], []).append(item)
        return out

    def latest_frame(self) -> tuple[float, int] | None:
        """(capture time, faces) of the newest frame seen."""
        frames = self.by_frame
        if not frames:
            return None
        seq = max(frames, key=lambda s: frames[s][0]["ts"])
        return frames[seq][0]["ts"], frames[seq][0]["count"]

    def main_face_probs(self, since: float) -> list[tuple[float, np.ndarray]]:
        """Per frame since `since`, the probabilities of its biggest face (the driver)."""
        out = []
        for items in self.by_frame.values():
            faces = [i for i in items if i["index"] >= 0 and i.get("probs")]
            if not faces or items[0]["ts"] < since:
                continue
            main = max(faces, key=lambda i: i["box"][2] * i["box"][3])
            out.append((main["ts"], np.asarray(main["probs"], np.float32)))
        return sorted(out, key=lambda p: p[0])

    def last_face_ts(self) -> float | None:
        times = [i["ts"] for i in self.labels if i["index"] >= 0]
        return max(times) if times else None


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


def valence_shift(history: list[tuple[float, float]], now: float, threshold: float = 0.3):
    """A notable shift: the last 10 s differ from the minute before by more than threshold."""
    recent = [v for ts, v in history if ts > now - 10]
    before = [v for ts, v in history if now - 70 < ts <= now - 10]
    if len(recent) < 3 or len(before) < 10:
        return None
    a, b = float(np.mean(before)), float(np.mean(recent))
    if abs(b - a) >= threshold:
        return {"from": round(a, 3), "to": round(b, 3)}
    return None


BUCKET_S = 10  # history rows: one per camera and 10 s


def history_bucket(camera: str, start: int, seconds: dict[int, dict[str, int]],
                   faces_seen: list[float]) -> dict | None:
    """The history row of the 10 s from `start`, from per-second counts: label counts,
    frames, mean faces present (the snapshots' count while it lasted, else faces per frame),
    valence and dominant expression. None when no frame arrived: the camera was off, which
    is no data rather than an empty room. Only aggregates: nothing that identifies a face."""
    counts = dict.fromkeys(CLASSES, 0)
    frames = faces = 0
    for second in range(start, start + BUCKET_S):
        bucket = seconds.get(second) or {}
        for c in CLASSES:
            counts[c] += bucket.get(c, 0)
        frames += bucket.get("frames", 0)
        faces += bucket.get("faces", 0)
    if not frames:
        return None
    mean = sum(faces_seen) / len(faces_seen) if faces_seen else faces / frames
    return {"camera": camera, "ts": start, "frames": frames, "faces": round(mean, 2),
            "counts": counts, "valence": round(valence(counts), 3), "dominant": dominant(counts)}
