"""A camera's registered settings: one typed model that owns the hash keys.camera(id).

Every reader and writer goes through it: the dashboard's API (validated changes), `moodstream
up` (the first camera), the ingest supervisor (source, fps, loop), the detector (min_face,
scale_factor) and the aggregator (mode, thresholds). Defaults live here only. Every change
is announced on keys.CAMERAS_CHANGED; the ingest supervisor listens and restarts the ingest.
"""

from __future__ import annotations

import math
from dataclasses import asdict, dataclass, fields

from moodstream import keys
from moodstream.camera_networks import SourceNotAllowed, check_source
from moodstream.config import CameraNetworkSettings
from moodstream.contract import CAMERA_ID
from moodstream.redis_client import text

# An ordinary name: it starts with a letter or digit, so it is never "..", a hidden name or
# something a command line could read as an option ("-h"); the contract checks the same.
ID_RE = CAMERA_ID
MODES = ("classroom", "driver")
SOURCE_SCHEMES = ("rtsp", "rtsps", "rtmp", "http", "https", "file")
# numeric setting -> (minimum, maximum)
RANGES = {"fps": (0.1, 30.0), "negative_threshold": (0.05, 1.0),
          "negative_seconds": (0.5, 3600.0), "absent_seconds": (0.5, 3600.0),
          "min_face": (4, 4096), "scale_factor": (0.1, 0.95)}


class CameraError(ValueError):
    """A camera setting that is not acceptable; the message is safe to show to the user."""


def valid_id(cam: str) -> bool:
    return bool(ID_RE.match(cam or ""))


@dataclass
class CameraSettings:
    name: str = ""
    source: str = ""  # empty: a camera that an ingest announced by itself (not supervised)
    mode: str = "classroom"
    fps: float = 5.0
    loop: bool = True
    preview: bool = False
    # Camera groups ("room-12,fleet-north"): viewers may be limited to groups of cameras.
    groups: str = ""
    # driver mode
    negative_threshold: float = 0.5
    negative_seconds: float = 5.0
    absent_seconds: float = 3.0
    # per-camera detector settings; None: the detector worker's own
    min_face: int | None = None
    scale_factor: float | None = None
    added: float | None = None

    # -- Redis -------------------------------------------------------------------------------

    @classmethod
    def from_hash(cls, raw: dict) -> CameraSettings:
        """Lenient: a value that does not parse keeps its default (the registry may hold
        anything an older version or a hand edit wrote)."""
        values = {text(k): text(v) for k, v in raw.items()}
        out = cls()
        # The source as stored, even one that validation would refuse now: its ingest then
        # fails and says why in the camera's status, instead of the camera vanishing.
        out.source = values.get("source", "")
        for f in fields(cls):
            if values.get(f.name, "") == "" or f.name == "source":
                continue
            try:
                setattr(out, f.name, _parse(f.name, values[f.name]))
            except ValueError:  # CameraError included
                pass
        return out

    def to_hash(self) -> dict[str, str]:
        return {k: _format(v) for k, v in asdict(self).items() if v is not None}

    @classmethod
    def load(cls, r, cam: str) -> CameraSettings | None:
        raw = r.hgetall(keys.camera(cam))
        return cls.from_hash(raw) if raw else None

    @classmethod
    def load_all(cls, r) -> dict[str, CameraSettings]:
        """Every camera in keys.CAMERAS that has settings, by id."""
        ids = sorted(text(c) for c in r.smembers(keys.CAMERAS))
        pipe = r.pipeline(transaction=False)
        for cam in ids:
            pipe.hgetall(keys.camera(cam))
        return {cam: cls.from_hash(raw) for cam, raw in zip(ids, pipe.execute(), strict=True)
                if raw}

    def save(self, r, cam: str) -> None:
        """Write every setting and announce the change, in one transaction."""
        pipe = r.pipeline(transaction=True)
        pipe.hset(keys.camera(cam), mapping=self.to_hash())
        announce(pipe, cam)
        pipe.execute()

    @property
    def detector_options(self) -> dict:
        return {"min_face": self.min_face, "scale_factor": self.scale_factor}


def announce(r_or_pipe, cam: str) -> None:
    r_or_pipe.publish(keys.CAMERAS_CHANGED, cam)


def save_changes(r, cam: str, changes: dict[str, str], *, extra=None) -> None:
    """HSET validated changes (from `changes_from`) and announce them, in one transaction;
    `extra(pipe)` adds more writes to it."""
    pipe = r.pipeline(transaction=True)
    pipe.hset(keys.camera(cam), mapping=changes)
    cleared = [name for name in ("min_face", "scale_factor") if changes.get(name) == ""]
    if cleared:  # an empty value: back to the worker's own setting
        pipe.hdel(keys.camera(cam), *cleared)
    if extra is not None:
        extra(pipe)
    announce(pipe, cam)
    pipe.execute()


# -- validation of what people send ----------------------------------------------------------

EDITABLE = ("name", "source", "mode", "fps", "preview", "loop", "negative_threshold",
            "negative_seconds", "absent_seconds", "min_face", "scale_factor", "groups")


def changes_from(data: dict, *, partial: bool,
                 networks: CameraNetworkSettings | None = None) -> dict[str, str]:
    """Validated settings as Redis strings; partial=True accepts any subset (for PATCH).
    networks: the camera network policy a source must follow (a name that does not resolve
    now passes; the ingest checks again at every connect). Raises CameraError with a message
    for the user."""
    unknown = set(data) - set(EDITABLE) - {"id"}
    if unknown:
        raise CameraError(f"unknown setting(s): {', '.join(sorted(unknown))}")
    out: dict[str, str] = {}
    if not partial and "source" not in data:
        data = {**data, "source": ""}
    for name in EDITABLE:
        if name not in data:
            continue
        value = data[name]
        if name in ("min_face", "scale_factor") and str(value if value is not None else ""
                                                        ).strip() == "":
            out[name] = ""  # cleared
            continue
        if name in RANGES and str(value).strip() == "":
            continue
        out[name] = _format(_parse(name, value))
    if networks is not None and out.get("source"):
        try:
            check_source(out["source"], networks, resolve_required=False)
        except SourceNotAllowed as error:
            raise CameraError(str(error)) from None
    return out


def _parse(name: str, value):
    if name == "name":
        name_text = str(value or "").strip()
        if len(name_text) > 80 or any(ord(c) < 32 for c in name_text):
            raise CameraError("name must be at most 80 printable characters")
        return name_text
    if name == "source":
        return _source(value)
    if name == "groups":
        return ",".join(names_list(value, "groups"))
    if name == "mode":
        if value not in MODES:
            raise CameraError(f"mode must be one of {', '.join(MODES)}")
        return value
    if name in ("preview", "loop"):
        return _bool(value)
    if name == "added":
        return float(value)
    number = _number(name, value)
    return int(number) if name == "min_face" else number


def names_list(value, what: str) -> list[str]:
    """Camera ids or group names from a list or a comma-separated string, sorted and
    unique; each must be an ordinary id (the same rule as camera ids)."""
    items = value if isinstance(value, (list, tuple)) else str(value or "").split(",")
    out = sorted({str(item).strip() for item in items if str(item).strip()})
    bad = [item for item in out if not ID_RE.match(item)]
    if bad:
        raise CameraError(f"{what}: {bad[0][:80]!r} is not a valid name (letters, digits, "
                          "- _ . starting with a letter or digit)")
    if len(out) > 500:
        raise CameraError(f"{what}: at most 500 names")
    return out


def group_set(value: str) -> set[str]:
    return {g for g in (value or "").split(",") if g}


def _number(name: str, value) -> float:
    try:
        number = float(value)
    except (TypeError, ValueError):
        raise CameraError(f"{name} must be a number") from None
    low, high = RANGES[name]
    if not math.isfinite(number) or not low <= number <= high:
        raise CameraError(f"{name} must be between {low:g} and {high:g}")
    return number


def _bool(value) -> bool:
    if isinstance(value, bool):
        return value
    word = str(value).strip().lower()
    if word in ("1", "true", "on", "yes"):
        return True
    if word in ("0", "false", "off", "no", ""):
        return False
    raise CameraError("preview and loop must be true or false")


def _source(value) -> str:
    source = str(value or "").strip()
    if not source:
        raise CameraError("source is required (an rtsp:// or http(s):// URL, a file or a webcam)")
    if len(source) > 1000 or any(ord(c) < 32 or c.isspace() for c in source):
        raise CameraError("source must be one URL or path without spaces")
    if source.startswith("-"):
        raise CameraError("source cannot start with '-'")
    if "://" in source:
        scheme = source.split("://", 1)[0].lower()
        if scheme not in SOURCE_SCHEMES:
            raise CameraError(f"unsupported source scheme {scheme!r}")
    return source


def _format(value) -> str:
    if isinstance(value, bool):
        return "1" if value else "0"
    if isinstance(value, float):
        return f"{value:.6f}".rstrip("0").rstrip(".")
    return str(value)
