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

VERSION = "2"
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
    if version == "1":
        raise MalformedEntry("contract v1 entry refused: this worker reads v2, where faces "
                             "and labels are one entry per frame, not per face; upgrade the "
                             "service that wrote it")
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


MAX_FACES = 256  # faces in one frame's entry; more is a malformed entry, not a crowd


def _numbers(fields: dict, name: str, count: int, width: int, dtype) -> np.ndarray:
    """A comma-separated list of count x width finite numbers, as an array (count, width)."""
    raw = _text(fields, name)
    try:
        values = np.array(raw.split(",") if raw else [], dtype=np.float64)
    except ValueError:
        raise MalformedEntry(f"field {name!r} is not a list of numbers: {raw[:40]!r}") from None
    if values.size != count * width:
        raise MalformedEntry(f"field {name!r} holds {values.size} numbers, not "
                             f"{count} x {width}")
    if not np.isfinite(values).all():
        raise MalformedEntry(f"field {name!r} holds a number that is not finite")
    return values.astype(dtype).reshape(count, width)


def _joined(values: np.ndarray, fmt: str = "{:d}") -> str:
    return ",".join(fmt.format(v) for v in values.ravel().tolist())


def _frame_head(fields: dict) -> tuple[str, int, float, int]:
    """camera, seq, ts and face count of a per-frame entry (faces or labels)."""
    _check_version(fields)
    count = _number(fields, "count", int)
    if not 0 <= count <= MAX_FACES:
        raise MalformedEntry(f"face count {count} is outside 0..{MAX_FACES}")
    return _camera(fields), _number(fields, "seq", int), _number(fields, "ts"), count


def _empty(width: int, dtype) -> np.ndarray:
    return np.zeros((0, width), dtype)


@dataclass(eq=False)
class FaceSet:
    """All faces found in one frame (stream ms:faces, one entry per frame): boxes (x, y, w, h
    in frame pixels), detection scores, track ids (the same person in a camera's consecutive
    frames keeps an id) and the aligned gray crops at the model's input size. A frame with no
    faces is an entry with count 0, so that downstream learns that the camera saw nobody."""

    camera: str
    seq: int
    ts: float  # capture time, unix seconds
    boxes: np.ndarray = field(default_factory=lambda: _empty(4, np.int32))  # (n, 4)
    scores: np.ndarray = field(default_factory=lambda: np.zeros(0, np.float32))  # (n,)
    tracks: np.ndarray = field(default_factory=lambda: np.zeros(0, np.int64))  # (n,)
    crops: np.ndarray = field(default_factory=lambda: np.zeros((0, 0, 0), np.uint8))  # (n,h,w)

    @property
    def count(self) -> int:
        return len(self.boxes)

    def encode(self) -> dict:
        n = self.count
        crops = np.ascontiguousarray(self.crops, np.uint8)
        h, w = crops.shape[1:] if n else (0, 0)
        return {"v": VERSION, "camera": self.camera, "seq": self.seq, "ts": repr(self.ts),
                "count": n, "boxes": _joined(np.asarray(self.boxes, np.int64)),
                "scores": _joined(np.asarray(self.scores, np.float64), "{:.4f}"),
                "tracks": _joined(np.asarray(self.tracks, np.int64)), "h": h, "w": w,
                "crops": crops.tobytes() if n else b""}

    @classmethod
    def decode(cls, fields: dict) -> FaceSet:
        camera, seq, ts, n = _frame_head(fields)
        h, w = _number(fields, "h", int), _number(fields, "w", int)
        crops = _bytes(fields, "crops") if n else b""
        if n and (h <= 0 or w <= 0 or h * w > 1 << 16 or len(crops) != n * h * w):
            raise MalformedEntry(f"crops of {len(crops)} bytes are not {n} x {h}x{w}")
        return cls(camera, seq, ts, _numbers(fields, "boxes", n, 4, np.int32),
                   _numbers(fields, "scores", n, 1, np.float32).ravel(),
                   _numbers(fields, "tracks", n, 1, np.int64).ravel(),
                   np.frombuffer(crops, np.uint8).reshape(n, h, w) if n
                   else np.zeros((0, 0, 0), np.uint8))


@dataclass(eq=False)
class LabelSet:
    """The expressions of all faces of one frame (stream ms:labels, one entry per frame):
    boxes and track ids as detected, 7 probabilities per face (CLASSES order), and which faces
    were classified on this frame (fresh) rather than carrying their track's last
    probabilities. Count 0: the camera saw nobody in this frame."""

    camera: str
    seq: int
    ts: float
    boxes: np.ndarray = field(default_factory=lambda: _empty(4, np.int32))  # (n, 4)
    tracks: np.ndarray = field(default_factory=lambda: np.zeros(0, np.int64))  # (n,)
    probs: np.ndarray = field(default_factory=lambda: _empty(len(CLASSES), np.float32))
    fresh: np.ndarray = field(default_factory=lambda: np.zeros(0, bool))  # (n,)

    @property
    def count(self) -> int:
        return len(self.boxes)

    @property
    def labels(self) -> list[str]:
        """The most likely expression of each face."""
        return [CLASSES[i] for i in np.argmax(self.probs, axis=1).tolist()] if self.count else []

    def encode(self) -> dict:
        return {"v": VERSION, "camera": self.camera, "seq": self.seq, "ts": repr(self.ts),
                "count": self.count, "boxes": _joined(np.asarray(self.boxes, np.int64)),
                "tracks": _joined(np.asarray(self.tracks, np.int64)),
                "probs": _joined(np.asarray(self.probs, np.float64), "{:.4f}"),
                "fresh": _joined(np.asarray(self.fresh, np.int64))}

    @classmethod
    def decode(cls, fields: dict) -> LabelSet:
        camera, seq, ts, n = _frame_head(fields)
        return cls(camera, seq, ts, _numbers(fields, "boxes", n, 4, np.int32),
                   _numbers(fields, "tracks", n, 1, np.int64).ravel(),
                   _numbers(fields, "probs", n, len(CLASSES), np.float32),
                   _numbers(fields, "fresh", n, 1, np.int64).ravel().astype(bool))


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
class Window:
    """The labels of a camera's last 10 s, 1 min or 5 min: counts per expression, frames,
    faces per frame, valence and dominant expression."""

    faces: float = 0.0
    frames: int = 0
    counts: dict[str, int] = field(default_factory=dict)
    dominant: str | None = None
    valence: float = 0.0


@dataclass
class ActiveAlert:
    kind: str  # "negative" or "absent"
    since: float
    message: str = ""


@dataclass
class Person:
    """A tracked face present now: its track id, last box, smoothed expression, when it was
    first seen and in how many frames."""

    id: str
    box: list[int]
    expression: str
    since: float
    seen: int


@dataclass(frozen=True)
class ValenceShift:
    """The valence of a camera's last 10 s against the minute before, when it moved notably.
    The snapshot, the live points and the browser carry it as {"from", "to"}."""

    before: float
    after: float

    @staticmethod
    def wire(shift: ValenceShift | None) -> dict[str, float] | None:
        """A shift as it travels: {"from", "to"}, or None."""
        return {"from": shift.before, "to": shift.after} if shift else None

    @classmethod
    def read(cls, raw) -> ValenceShift | None:
        """None for anything but a {"from", "to"} pair of finite numbers."""
        if not isinstance(raw, dict):
            return None
        before, after = _finite(raw.get("from"), float("nan")), _finite(raw.get("to"), float("nan"))
        return cls(before, after) if np.isfinite(before) and np.isfinite(after) else None


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
    windows: dict[str, Window] = field(default_factory=dict)  # "10s", "1m", "5m"
    current: str | None = None  # smoothed expression of the main face
    alerts: list[ActiveAlert] = field(default_factory=list)  # active driver alerts
    shift: ValenceShift | None = None  # when the valence just shifted
    people: list[Person] = field(default_factory=list)  # tracked faces present

    def to_dict(self) -> dict:
        return {**asdict(self), "shift": ValenceShift.wire(self.shift)}

    def to_json(self) -> str:
        return json.dumps(self.to_dict())

    @classmethod
    def from_json(cls, raw) -> Snapshot | None:
        """None for a missing or unreadable snapshot."""
        if not raw:
            return None
        try:
            data = json.loads(raw)
            snap = cls(**{f.name: data[f.name] for f in fields(cls) if f.name in data})
            snap.windows = {name: Window(**w) for name, w in snap.windows.items()}
            snap.alerts = [ActiveAlert(**a) for a in snap.alerts]
            snap.people = [Person(**p) for p in snap.people]
            snap.shift = ValenceShift.read(snap.shift)
            return snap
        except (ValueError, TypeError, KeyError, AttributeError):
            return None


@dataclass
class LivePoint:
    """One live point: a camera's 10 s window as it was at one second (keys.live_points)."""

    ts: float
    faces: float = 0.0
    valence: float = 0.0
    dominant: str | None = None
    counts: dict[str, int] = field(default_factory=dict)
    shift: ValenceShift | None = None
    frames: int = 0  # frames in the window (0: the camera saw nothing, not "neutral")

    def encode(self) -> dict:
        return {"ts": f"{self.ts:.3f}", "faces": self.faces, "valence": self.valence,
                "dominant": self.dominant or "", "counts": json.dumps(self.counts),
                "shift": json.dumps(ValenceShift.wire(self.shift)),
                "frames": self.frames}

    @classmethod
    def decode(cls, raw: dict) -> LivePoint | None:
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
                   ValenceShift.read(shift), int(_finite(f.get("frames"), 0)))

    def to_json(self) -> dict:
        return {**asdict(self), "shift": ValenceShift.wire(self.shift)}


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
