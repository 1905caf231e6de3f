"""The versioned stream contract: one encoder and decoder shared by every service.

Entries are flat Redis stream fields so that `redis-cli XRANGE` stays readable. Numbers are
decimal strings, images are bytes. Decoding validates everything and raises MalformedEntry,
which workers turn into a dead letter instead of crashing.
"""

from __future__ import annotations

import json
import math
import re
from dataclasses import asdict, dataclass, field, fields

import numpy as np

VERSION = "1"
CLASSES = ("angry", "disgust", "fear", "happy", "sad", "surprise", "neutral")


class MalformedEntry(ValueError):
    """A stream entry that does not follow the contract."""


def _text(fields: dict, name: str) -> str:
    try:
        value = fields[name.encode()] if name.encode() in fields else fields[name]
    except KeyError:
        raise MalformedEntry(f"missing field {name!r}") from None
    if isinstance(value, bytes):
        try:
            return value.decode()
        except UnicodeDecodeError:
            raise MalformedEntry(f"field {name!r} is not text") from None
    return str(value)


def _bytes(fields: dict, name: str) -> bytes:
    value = fields.get(name.encode(), fields.get(name))
    if value is None:
        raise MalformedEntry(f"missing field {name!r}")
    return value if isinstance(value, bytes) else str(value).encode()


def _number(fields: dict, name: str, kind=float):
    raw = _text(fields, name)
    try:
        value = kind(raw)
    except ValueError:
        raise MalformedEntry(f"field {name!r} is not a number: {raw[:40]!r}") from None
    if not math.isfinite(value):  # NaN or inf would pass every later comparison
        raise MalformedEntry(f"field {name!r} is not finite: {raw[:40]!r}")
    return value


def _check_version(fields: dict) -> None:
    version = _text(fields, "v")
    if version != VERSION:
        raise MalformedEntry(f"unsupported contract version {version!r}")


CAMERA_ID = re.compile(r"^[A-Za-z0-9][A-Za-z0-9_.-]{0,63}$")  # never "..", never "-h"


def _camera(fields: dict) -> str:
    cam = _text(fields, "camera")
    if not CAMERA_ID.match(cam):
        raise MalformedEntry(f"bad camera id {cam[:40]!r}")
    return cam


@dataclass
class Frame:
    """One camera frame: JPEG bytes plus who and when."""

    camera: str
    seq: int
    ts: float  # capture time, unix seconds
    jpeg: bytes

    def encode(self) -> dict:
        return {"v": VERSION, "camera": self.camera, "seq": self.seq, "ts": repr(self.ts),
                "jpeg": self.jpeg}

    @classmethod
    def decode(cls, fields: dict) -> Frame:
        _check_version(fields)
        jpeg = _bytes(fields, "jpeg")
        if not jpeg:
            raise MalformedEntry("empty image")
        return cls(_camera(fields), _number(fields, "seq", int), _number(fields, "ts"), jpeg)


@dataclass
class Face:
    """One face found in a frame: an aligned gray crop at the model's input size.

    A frame with no faces still yields one Face entry with index -1 and no crop, so that
    every stage downstream learns that the camera saw nobody.
    """

    camera: str
    seq: int
    ts: float
    index: int  # 0..count-1, or -1 for "no faces in this frame"
    count: int  # faces in the frame
    box: tuple[int, int, int, int] = (0, 0, 0, 0)  # x, y, w, h in frame pixels
    score: float = 0.0
    crop: np.ndarray | None = None  # uint8 (H, W)

    def encode(self) -> dict:
        fields = {"v": VERSION, "camera": self.camera, "seq": self.seq, "ts": repr(self.ts),
                  "index": self.index, "count": self.count,
                  "box": ",".join(str(int(v)) for v in self.box), "score": f"{self.score:.4f}"}
        if self.crop is not None:
            h, w = self.crop.shape
            fields.update(h=h, w=w, crop=np.ascontiguousarray(self.crop, np.uint8).tobytes())
        return fields

    @classmethod
    def decode(cls, fields: dict) -> Face:
        _check_version(fields)
        face = cls(_camera(fields), _number(fields, "seq", int), _number(fields, "ts"),
                   _number(fields, "index", int), _number(fields, "count", int))
        face.box = _box(fields)
        face.score = _number(fields, "score")
        if face.index >= 0:
            h, w = _number(fields, "h", int), _number(fields, "w", int)
            crop = _bytes(fields, "crop")
            if h <= 0 or w <= 0 or len(crop) != h * w:
                raise MalformedEntry(f"crop of {len(crop)} bytes is not {h}x{w}")
            face.crop = np.frombuffer(crop, np.uint8).reshape(h, w)
        return face


def _box(fields: dict) -> tuple[int, int, int, int]:
    raw = _text(fields, "box")
    try:
        x, y, w, h = (int(v) for v in raw.split(","))
    except ValueError:
        raise MalformedEntry(f"bad box {raw[:40]!r}") from None
    return x, y, w, h


@dataclass
class Label:
    """The expression of one face (or, with index -1, a frame with no faces)."""

    camera: str
    seq: int
    ts: float
    index: int
    count: int
    box: tuple[int, int, int, int] = (0, 0, 0, 0)
    probs: list[float] = field(default_factory=list)  # 7 probabilities, CLASSES order

    @property
    def label(self) -> str | None:
        return CLASSES[int(np.argmax(self.probs))] if self.probs else None

    def encode(self) -> dict:
        fields = {"v": VERSION, "camera": self.camera, "seq": self.seq, "ts": repr(self.ts),
                  "index": self.index, "count": self.count,
                  "box": ",".join(str(int(v)) for v in self.box)}
        if self.probs:
            fields["label"] = self.label
            fields["probs"] = json.dumps([round(float(p), 4) for p in self.probs])
        return fields

    @classmethod
    def decode(cls, fields: dict) -> Label:
        _check_version(fields)
        label = cls(_camera(fields), _number(fields, "seq", int), _number(fields, "ts"),
                    _number(fields, "index", int), _number(fields, "count", int), _box(fields))
        if label.index >= 0:
            try:
                probs = json.loads(_text(fields, "probs"))
            except json.JSONDecodeError:
                raise MalformedEntry("probs is not JSON") from None
            if not isinstance(probs, list) or len(probs) != len(CLASSES):
                raise MalformedEntry("probs must list 7 numbers")
            label.probs = [float(p) for p in probs]
        return label


# -- records the aggregator publishes and the dashboard reads ---------------------------------
# Not stream messages between workers, but they cross the same process boundary: one typed
# reader and writer each, so the dashboard never picks through untyped dicts.


def _plain(fields: dict) -> dict[str, str]:
    return {(k.decode() if isinstance(k, bytes) else str(k)):
            (v.decode(errors="replace") if isinstance(v, bytes) else str(v))
            for k, v in fields.items()}


def _finite(value, default: float) -> float:
    try:
        number = float(value)
    except (TypeError, ValueError):
        return default
    return number if np.isfinite(number) else default


def _counts(value) -> dict[str, int]:
    value = value if isinstance(value, dict) else {}
    return {c: int(_finite(value.get(c), 0)) for c in CLASSES}


@dataclass
class Snapshot:
    """A camera's current aggregate: the string keys.mood(cam), pushed to its browsers."""

    camera: str
    ts: float
    mode: str = "classroom"
    name: str = ""
    faces: int = 0
    counts: dict[str, int] = field(default_factory=dict)  # the 10 s window
    dominant: str | None = None
    valence: float = 0.0
    windows: dict[str, dict] = field(default_factory=dict)  # "10s", "1m", "5m"
    current: str | None = None  # smoothed expression of the main face
    alerts: list[dict] = field(default_factory=list)  # active: kind, since, message
    shift: dict | None = None  # {"from", "to"} when the valence just shifted
    people: list[dict] = field(default_factory=list)  # tracked faces present

    def to_dict(self) -> dict:
        return asdict(self)

    def to_json(self) -> str:
        return json.dumps(self.to_dict())

    @classmethod
    def from_json(cls, raw) -> Snapshot | None:
        """None for a missing or unreadable snapshot."""
        if not raw:
            return None
        try:
            data = json.loads(raw)
            return cls(**{f.name: data[f.name] for f in fields(cls) if f.name in data})
        except (ValueError, TypeError, KeyError):
            return None


@dataclass
class HistoryPoint:
    """One second of a camera's history (stream keys.history(cam)): the 10 s window then."""

    ts: float
    faces: float = 0.0
    valence: float = 0.0
    dominant: str | None = None
    counts: dict[str, int] = field(default_factory=dict)
    shift: dict | None = None
    frames: int = 0  # frames in the window (0: the camera saw nothing, not "neutral")

    def encode(self) -> dict:
        return {"ts": f"{self.ts:.3f}", "faces": self.faces, "valence": self.valence,
                "dominant": self.dominant or "", "counts": json.dumps(self.counts),
                "shift": json.dumps(self.shift), "frames": self.frames}

    @classmethod
    def decode(cls, raw: dict) -> HistoryPoint | None:
        """None for an entry without a time; other bad fields fall back to neutral values."""
        f = _plain(raw)
        ts = _finite(f.get("ts"), float("nan"))
        if not np.isfinite(ts):
            return None
        try:
            counts = json.loads(f.get("counts") or "{}")
        except ValueError:
            counts = {}
        try:
            shift = json.loads(f.get("shift") or "null")
        except ValueError:
            shift = None
        return cls(ts, _finite(f.get("faces"), 0.0), _finite(f.get("valence"), 0.0),
                   f.get("dominant") or None, _counts(counts),
                   shift if isinstance(shift, dict) else None,
                   int(_finite(f.get("frames"), 0)))

    def to_json(self) -> dict:
        return asdict(self)


@dataclass
class AlertEvent:
    """A driver alert raised or cleared (stream keys.alerts(cam), and the webhook's body)."""

    ts: float
    kind: str
    message: str
    state: str = "raised"  # raised | cleared

    def encode(self) -> dict:
        return {"ts": self.ts, "kind": self.kind, "message": self.message, "state": self.state}

    @classmethod
    def decode(cls, raw: dict, entry_id=None) -> AlertEvent:
        f = _plain(raw)
        ts = _finite(f.get("ts"), float("nan"))
        if not np.isfinite(ts) and entry_id is not None:  # the entry id holds the time too
            ts = int(_plain({"i": entry_id})["i"].split("-")[0]) / 1000
        return cls(ts, f.get("kind", ""), f.get("message", ""), f.get("state", "raised"))

    def to_json(self) -> dict:
        return asdict(self)
