"""The versioned stream contract: one encoder and decoder shared by every service.

Entries are flat Redis stream fields so that `redis-cli XRANGE` stays readable. Numbers are
decimal strings, images are bytes. Decoding validates everything and raises MalformedEntry,
which workers turn into a dead letter instead of crashing.
"""

from __future__ import annotations

import json
import math
import re
from dataclasses import dataclass, field

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
