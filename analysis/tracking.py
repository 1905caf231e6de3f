"""People present: the tracks of a camera's recent frames, so counts are of people, not
detections.

The detector gives each face a track id that it keeps across the camera's frames (and through
a frame or two where it is missed; detection/lean_detect.py). Here the recent labels entries are
grouped by track in a few array operations: who was seen in the last moments, since when, and
each person's expression as the mean of their last probabilities, which keeps labels from
flickering frame to frame.
"""

from __future__ import annotations

import numpy as np

from moodstream.contract import CLASSES, Person


def people_present(frames: list, now: float, within_s: float = 1.5, smooth: int = 5,
                   window_s: float = 60.0) -> list[Person]:
    """The tracks seen within `within_s` before `now`, from LabelSets of the last
    `window_s`: id, last box, smoothed expression (mean of the last `smooth` probabilities),
    first capture time and number of frames seen."""
    frames = [f for f in frames if f.count and now - window_s < f.ts]
    if not frames:
        return []
    tracks = np.concatenate([f.tracks for f in frames])
    ts = np.concatenate([np.full(f.count, f.ts) for f in frames])
    probs = np.concatenate([f.probs for f in frames])
    boxes = np.concatenate([f.boxes for f in frames])
    order = np.lexsort((ts, tracks))
    tracks, ts, probs, boxes = tracks[order], ts[order], probs[order], boxes[order]
    ids, first, seen = np.unique(tracks, return_index=True, return_counts=True)
    last = first + seen - 1
    group = np.repeat(np.arange(len(ids)), seen)
    recent = last[group] - np.arange(len(tracks)) < smooth  # each track's last `smooth`
    sums = np.zeros((len(ids), len(CLASSES)))
    for c in range(len(CLASSES)):
        sums[:, c] = np.bincount(group[recent], probs[recent, c], minlength=len(ids))
    expression = np.argmax(sums, axis=1)
    return [Person(str(ids[g]), boxes[last[g]].tolist(), CLASSES[expression[g]],
                   round(float(ts[first[g]]), 3), int(seen[g]))
            for g in np.flatnonzero(ts[last] >= now - within_s).tolist()]
