"""Face tracks: the same person across frames, so counts are of people, not detections.

A greedy IoU tracker over one camera's recent labels, recomputed each second from the
owning aggregator's memory. A track's id is the first label it saw, which stays stable
while that label is in the window. Each person's expression is the mean of their last
probabilities, which keeps labels from flickering frame to frame.
"""

from __future__ import annotations

from dataclasses import dataclass, field

import numpy as np

from moodstream.contract import CLASSES
from moodstream.workers.detectors.base import iou


@dataclass
class Track:
    id: str
    labels: list[dict] = field(default_factory=list)

    @property
    def last(self) -> dict:
        return self.labels[-1]

    def expression(self, window: int = 5) -> str | None:
        probs = [lab["probs"] for lab in self.labels[-window:] if lab.get("probs")]
        if not probs:
            return None
        return CLASSES[int(np.argmax(np.mean(probs, axis=0)))]


def build_tracks(labels: list[dict], min_iou: float = 0.3, max_gap_s: float = 2.0) -> list[Track]:
    """Greedy matching of each frame's faces to the open tracks, best overlap first."""
    frames: dict[int, list[dict]] = {}
    for lab in labels:
        if lab["index"] >= 0:
            frames.setdefault(lab["seq"], []).append(lab)
    tracks: list[Track] = []
    for seq in sorted(frames, key=lambda s: frames[s][0]["ts"]):
        faces = frames[seq]
        ts = faces[0]["ts"]
        open_tracks = [t for t in tracks if ts - t.last["ts"] <= max_gap_s and t.last["seq"] != seq]
        pairs = sorted(((iou(t.last["box"], f["box"]), ti, fi)
                        for ti, t in enumerate(open_tracks) for fi, f in enumerate(faces)),
                       reverse=True)
        used_t, used_f = set(), set()
        for overlap, ti, fi in pairs:
            if overlap < min_iou or ti in used_t or fi in used_f:
                continue
            open_tracks[ti].labels.append(faces[fi])
            used_t.add(ti)
            used_f.add(fi)
        for fi, face in enumerate(faces):
            if fi not in used_f:
                tracks.append(Track(f"{face['seq']}.{face['index']}", [face]))
    return tracks


def people_present(tracks: list[Track], now: float, within_s: float = 1.5) -> list[dict]:
    """The tracks seen in the last moments, with each person's smoothed expression."""
    out = []
    for t in tracks:
        if now - t.last["ts"] <= within_s:
            out.append({"id": t.id, "box": list(t.last["box"]), "expression": t.expression(),
                        "since": round(t.labels[0]["ts"], 3), "seen": len(t.labels)})
    return out
