"""The history's records, as the aggregator makes them, the writer queues them and the store
keeps them: a camera's 10 s bucket and an alert event. `parse` reads either from the queue's
JSON (or anything dict-shaped) and refuses what cannot be stored."""

from __future__ import annotations

from dataclasses import asdict, dataclass, field

from moodstream.contract import CLASSES
from moodstream.expressions import dominant, valence

BUCKET_S = 10  # seconds of one history row


def camera_id(value) -> str:
    if not isinstance(value, str) or not 0 < len(value) <= 64:
        raise ValueError(f"bad camera id {str(value)[:80]!r}")
    return value


@dataclass(frozen=True)
class BucketRow:
    """One camera's 10 s from `ts`: labels counted per expression, frames, mean faces
    present, valence and dominant expression. Only aggregates."""

    camera: str
    ts: int
    frames: int
    faces: float
    counts: dict[str, int] = field(default_factory=dict)
    valence: float = 0.0
    dominant: str | None = None

    @classmethod
    def parse(cls, row: dict) -> BucketRow:
        """Aligned start, whole counts; ValueError, TypeError or KeyError for a row that
        cannot be stored. Counts may be nested ("counts") or flat (a stored row)."""
        counts_in = row.get("counts") or row
        counts = {c: max(0, int(counts_in.get(c, 0))) for c in CLASSES}
        return cls(camera_id(row["camera"]), int(row["ts"]) // BUCKET_S * BUCKET_S,
                   int(row.get("frames", 0)), float(row.get("faces", 0.0)), counts,
                   float(row["valence"]) if row.get("valence") is not None
                   else valence(counts), row.get("dominant") or dominant(counts))

    def to_dict(self) -> dict:
        return asdict(self)

    def columns(self) -> dict:
        """The row as the buckets table holds it (one column per expression)."""
        return {"camera": self.camera, "ts": self.ts, "frames": self.frames,
                "faces": self.faces, **{c: self.counts.get(c, 0) for c in CLASSES},
                "valence": self.valence, "dominant": self.dominant}


@dataclass(frozen=True)
class AlertRow:
    """A driver alert raised or cleared, or a valence shift (kind "shift")."""

    camera: str
    ts: float
    kind: str
    state: str = "raised"
    message: str = ""

    @classmethod
    def parse(cls, event: dict) -> AlertRow:
        return cls(camera_id(event["camera"]), round(float(event["ts"]), 3),
                   str(event["kind"])[:32], str(event.get("state", "raised"))[:8],
                   str(event.get("message", ""))[:200])

    def to_dict(self) -> dict:
        return asdict(self)
