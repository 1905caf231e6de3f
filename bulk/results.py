"""Bulk analysis outputs: one CSV, one JSON summary and one PNG plot per input.

Pure functions over plain data (no Redis, no models), so the CLI, the dashboard and the unit
tests share them. A *group* is one output unit: a video file, one image, or the images of one
folder summarised together as a set.

A job returns its faces as JSON lists ``[frame, time_s, x, y, w, h, p_angry, ...,
p_neutral]`` (``time_s`` is None for images); a group holds them as `FaceRow`s, per file.
"""

from __future__ import annotations

import csv
import json
import math
from collections.abc import Iterable
from dataclasses import dataclass, field
from pathlib import Path

from moodstream.contract import CLASSES

CSV_COLUMNS = ("file", "frame", "time_s", "x", "y", "w", "h", "label", *CLASSES)
# One colour per expression, the same in every plot.
COLOURS = {"angry": "#d62728", "disgust": "#8c564b", "fear": "#9467bd", "happy": "#2ca02c",
           "sad": "#1f77b4", "surprise": "#ff7f0e", "neutral": "#7f7f7f"}


@dataclass(frozen=True)
class FaceRow:
    """One face in one frame (or image) of a file."""

    frame: int
    time_s: float | None  # None for an image
    box: tuple[int, int, int, int]
    probs: tuple[float, ...]  # one per expression, in CLASSES order

    @classmethod
    def parse(cls, row) -> FaceRow:
        """From a job's list (ValueError or TypeError for one that is not a face row)."""
        frame, time_s, x, y, w, h, *probs = row
        if len(probs) != len(CLASSES):
            raise ValueError(f"a face row has {len(probs)} probabilities, not {len(CLASSES)}")
        return cls(int(frame), None if time_s is None else float(time_s),
                   (int(x), int(y), int(w), int(h)), tuple(float(p) for p in probs))

    @property
    def label(self) -> str:
        return label_of(self.probs)


@dataclass
class Group:
    """What one set of output files describes."""

    name: str  # output file stem
    kind: str  # "video" or "images"
    source: str  # the path the user gave (file or folder)
    files: list[str] = field(default_factory=list)
    rows: dict[str, list[FaceRow]] = field(default_factory=dict)  # by file
    frames: int = 0  # frames (or images) analysed
    frames_with_faces: int = 0
    errors: list[dict] = field(default_factory=list)  # {"file", "error"}
    fps: float | None = None  # the video's own frame rate
    sample_fps: float | None = None  # frames analysed per second of video
    duration_s: float | None = None
    attempts: int = 1  # most RQ attempts any of its jobs needed

    def add_rows(self, file: str, rows: Iterable) -> None:
        """A job's face rows (lists, or FaceRows)."""
        self.rows.setdefault(file, []).extend(
            r if isinstance(r, FaceRow) else FaceRow.parse(r) for r in rows)

    def add_error(self, file: str, error: str) -> None:
        self.errors.append({"file": file, "error": error})

    def all_rows(self) -> list[tuple[str, FaceRow]]:
        out = [(file, row) for file, rows in self.rows.items() for row in rows]
        out.sort(key=lambda item: (item[0], item[1].frame, item[1].box[0], item[1].box[1]))
        return out


def label_of(probs) -> str:
    best = max(range(len(CLASSES)), key=lambda i: probs[i])
    return CLASSES[best]


def write_csv(path: Path, group: Group) -> int:
    """One row per face; returns the number of rows."""
    rows = group.all_rows()
    with open(path, "w", newline="") as f:
        writer = csv.writer(f)
        writer.writerow(CSV_COLUMNS)
        for file, row in rows:
            writer.writerow([file, row.frame,
                             "" if row.time_s is None else f"{row.time_s:.3f}", *row.box,
                             row.label, *(f"{p:.5f}" for p in row.probs)])
    return len(rows)


def read_csv(path: Path) -> list[dict]:
    with open(path, newline="") as f:
        return list(csv.DictReader(f))


def distribution(rows: Iterable[FaceRow]) -> tuple[dict[str, int], dict[str, float], dict]:
    """Label counts, label shares and mean probabilities over face rows."""
    counts = dict.fromkeys(CLASSES, 0)
    sums = [0.0] * len(CLASSES)
    n = 0
    for row in rows:
        counts[row.label] += 1
        for i, p in enumerate(row.probs):
            sums[i] += p
        n += 1
    shares = {c: (counts[c] / n if n else 0.0) for c in CLASSES}
    means = {c: (sums[i] / n if n else 0.0) for i, c in enumerate(CLASSES)}
    return counts, shares, means


def timeline(rows: Iterable[FaceRow], duration_s: float | None) -> list[dict]:
    """Per second of video: faces seen and the share of each expression among them."""
    per_second: dict[int, dict[str, int]] = {}
    for row in rows:
        second = int(math.floor(row.time_s))
        bucket = per_second.setdefault(second, dict.fromkeys(CLASSES, 0))
        bucket[row.label] += 1
    last = max(per_second, default=-1)
    if duration_s:
        last = max(last, int(math.ceil(duration_s)) - 1)
    out = []
    for second in range(last + 1):
        counts = per_second.get(second, dict.fromkeys(CLASSES, 0))
        faces = sum(counts.values())
        out.append({"second": second, "faces": faces, "counts": counts,
                    "shares": {c: (counts[c] / faces if faces else 0.0) for c in CLASSES},
                    "dominant": max(CLASSES, key=counts.get) if faces else None})
    return out


def summary(group: Group) -> dict:
    rows = [row for _, row in group.all_rows()]
    counts, shares, means = distribution(rows)
    out = {
        "name": group.name, "kind": group.kind, "source": group.source,
        "files": group.files, "frames_analysed": group.frames,
        "frames_with_faces": group.frames_with_faces, "faces": len(rows),
        "classes": list(CLASSES), "counts": counts, "distribution": shares,
        "mean_probabilities": means,
        "dominant": max(CLASSES, key=counts.get) if rows else None,
        "errors": group.errors, "ok": not group.errors, "attempts": group.attempts,
    }
    if group.kind == "video":
        out.update(fps=group.fps, sample_fps=group.sample_fps, duration_s=group.duration_s,
                   timeline=timeline(rows, group.duration_s))
    else:
        out["per_file"] = {f: len(group.rows.get(f, [])) for f in group.files}
    return out


def plot(path: Path, data: dict) -> None:
    """Expression shares over time for a video; a bar chart of counts for images."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    fig, ax = plt.subplots(figsize=(10, 4.5), dpi=100)
    try:
        if data["kind"] == "video" and data.get("timeline"):
            # Each second's shares hold until the next second (the last one included).
            seconds = [t["second"] for t in data["timeline"]]
            seconds.append(seconds[-1] + 1)
            stacks = [[t["shares"][c] for t in data["timeline"]] for c in CLASSES]
            stacks = [stack + stack[-1:] for stack in stacks]
            ax.stackplot(seconds, stacks, labels=CLASSES, colors=[COLOURS[c] for c in CLASSES],
                         step="post", alpha=0.9)
            ax.set_xlim(0, max(seconds[-1], 1))
            ax.set_ylim(0, 1)
            ax.set_xlabel("time (s)")
            ax.set_ylabel("share of faces")
            ax.legend(loc="upper left", bbox_to_anchor=(1.01, 1), fontsize=8)
        else:
            values = [data["counts"][c] for c in CLASSES]
            ax.bar(CLASSES, values, color=[COLOURS[c] for c in CLASSES])
            ax.set_ylabel("faces")
            ax.yaxis.get_major_locator().set_params(integer=True)
            for i, v in enumerate(values):
                ax.text(i, v, f"{data['distribution'][CLASSES[i]]:.0%}", ha="center",
                        va="bottom", fontsize=8)
        ax.set_title(f"{data['name']}: {data['faces']} faces in {data['frames_analysed']} "
                     f"{'frames' if data['kind'] == 'video' else 'images'}")
        fig.tight_layout()
        fig.savefig(path, format="png")
    finally:
        plt.close(fig)


def write_outputs(out_dir: Path, group: Group) -> dict[str, Path]:
    """Writes <name>.csv, <name>.json and <name>.png; returns their paths."""
    out_dir.mkdir(parents=True, exist_ok=True)
    paths = {ext: out_dir / f"{group.name}.{ext}" for ext in ("csv", "json", "png")}
    write_csv(paths["csv"], group)
    data = summary(group)
    paths["json"].write_text(json.dumps(data, indent=1))
    plot(paths["png"], data)
    return paths


def unique_name(stem: str, taken: set[str]) -> str:
    """A file-system-safe output stem not used yet (adds -2, -3, ... on clashes)."""
    safe = "".join(c if c.isalnum() or c in "-_." else "_" for c in stem).strip("._") or "input"
    name, n = safe, 1
    while name in taken:
        n += 1
        name = f"{safe}-{n}"
    taken.add(name)
    return name
