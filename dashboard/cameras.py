"""Registered cameras: validation and storage of the settings that the supervisor acts on.

Settings live in the hash keys.camera(id); the id is a member of keys.CAMERAS. Every change is
announced with PUBLISH ms:cameras:changed <id>, which the supervisor (one ingest per camera) and
the aggregator (modes and thresholds) listen to.
"""

from __future__ import annotations

import json
import math
import re
import time
from urllib.parse import urlsplit, urlunsplit

from moodstream import keys
from moodstream.camera_networks import SourceNotAllowed, check_source
from moodstream.contract import CLASSES
from moodstream.redis_client import text as _text

CHANGED = "ms:cameras:changed"
# An ordinary name: it starts with a letter or digit, so it is never "..", a hidden name or
# something a command line could read as an option ("-h").
ID_RE = re.compile(r"^[A-Za-z0-9][A-Za-z0-9_.-]{0,63}$")
MODES = ("classroom", "driver")
DEFAULTS = {"mode": "classroom", "fps": "5", "preview": "0", "negative_threshold": "0.5",
            "negative_seconds": "5", "absent_seconds": "3"}
# name -> (minimum, maximum) for the numeric settings
RANGES = {"fps": (0.1, 30.0), "negative_threshold": (0.05, 1.0), "negative_seconds": (0.5, 3600.0),
          "absent_seconds": (0.5, 3600.0)}
FIELDS = ("name", "source", "mode", "fps", "preview", "loop", "negative_threshold",
          "negative_seconds", "absent_seconds")
STALE_AFTER_S = 10.0
# What viewers read for each state: the reasons themselves ("Connection refused", a content
# type) would tell them which internal ports answer; admins see the full reason.
PUBLIC_REASONS = {"connecting": "connecting to the camera", "connected": "receiving frames",
                  "retrying": "the camera cannot be reached; retrying",
                  "failed": "the camera failed; an admin can see why",
                  "ended": "the source ended", "stopped": "stopped"}


class CameraError(ValueError):
    """A camera setting that is not acceptable; the message is safe to show to the user."""



def valid_id(cam: str) -> bool:
    return bool(ID_RE.match(cam or ""))


def _number(name: str, value) -> str:
    try:
        number = float(value)
    except (TypeError, ValueError):
        raise CameraError(f"{name} must be a number") from None
    low, high = RANGES[name]
    if not math.isfinite(number) or not low <= number <= high:
        raise CameraError(f"{name} must be between {low:g} and {high:g}")
    return f"{number:g}"


def _bool(value) -> str:
    if isinstance(value, bool):
        return "1" if value else "0"
    text = str(value).strip().lower()
    if text in ("1", "true", "on", "yes"):
        return "1"
    if text in ("0", "false", "off", "no", ""):
        return "0"
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
        if scheme not in ("rtsp", "rtsps", "rtmp", "http", "https", "file"):
            raise CameraError(f"unsupported source scheme {scheme!r}")
    try:
        check_source(source, resolve_required=False)
    except SourceNotAllowed as error:
        raise CameraError(str(error)) from None
    return source


def clean(data: dict, *, partial: bool) -> dict[str, str]:
    """Validated settings as Redis strings. partial=True accepts any subset (for PATCH)."""
    out: dict[str, str] = {}
    unknown = set(data) - set(FIELDS) - {"id"}
    if unknown:
        raise CameraError(f"unknown setting(s): {', '.join(sorted(unknown))}")
    if "name" in data:
        name = str(data["name"] or "").strip()
        if len(name) > 80 or any(ord(c) < 32 for c in name):
            raise CameraError("name must be at most 80 printable characters")
        out["name"] = name
    if "source" in data or not partial:
        out["source"] = _source(data.get("source"))
    if "mode" in data:
        if data["mode"] not in MODES:
            raise CameraError(f"mode must be one of {', '.join(MODES)}")
        out["mode"] = data["mode"]
    for name in ("preview", "loop"):
        if name in data:
            out[name] = _bool(data[name])
    for name in RANGES:
        if name in data and str(data[name]).strip() != "":
            out[name] = _number(name, data[name])
    return out


def mask_source(source: str) -> str:
    """The source without a password, for people who may not see credentials."""
    if "://" not in source:
        return source
    try:
        parts = urlsplit(source)
    except ValueError:
        return "(hidden)"
    if parts.password is None and parts.username is None:
        return source
    host = parts.hostname or ""
    if parts.port:
        host = f"{host}:{parts.port}"
    user = f"{parts.username}:***@" if parts.username else ""
    return urlunsplit((parts.scheme, user + host, parts.path, parts.query, parts.fragment))


def registered(r, cam: str) -> dict[str, str]:
    return {_text(k): _text(v) for k, v in r.hgetall(keys.camera(cam)).items()}


def settings(cam: str, raw: dict[str, str]) -> dict:
    """Registered settings with defaults filled in, as JSON-friendly values."""
    merged = {**DEFAULTS, "name": cam, "source": "", **{k: v for k, v in raw.items() if v != ""}}
    out = {"id": cam, "name": merged["name"], "source": merged["source"],
           "mode": merged["mode"] if merged["mode"] in MODES else "classroom",
           "preview": merged["preview"] == "1", "loop": merged.get("loop", "1") == "1",
           "registered": bool(raw.get("source"))}
    for name in RANGES:
        try:
            out[name] = float(merged[name])
        except ValueError:
            out[name] = float(DEFAULTS[name])
    return out


def latest_mood(r, cam: str) -> dict | None:
    raw = r.get(keys.mood(cam))
    if not raw:
        return None
    try:
        mood = json.loads(raw)
    except ValueError:
        return None
    return mood if isinstance(mood, dict) else None


def status(r, cam: str) -> dict:
    raw = {_text(k): _text(v) for k, v in r.hgetall(keys.camera_status(cam)).items()}
    out: dict = {"state": raw.get("state", "unknown"), "reason": raw.get("reason", "")}
    for name in ("fps", "frames", "updated"):
        if name in raw:
            try:
                out[name] = float(raw[name])
            except ValueError:
                out[name] = raw[name]
    return out


def camera_ids(r) -> list[str]:
    return sorted(_text(c) for c in r.smembers(keys.CAMERAS))


def describe(r, cam: str, *, show_source: bool) -> dict | None:
    raw = registered(r, cam)
    if not raw and (r.sismember(keys.REMOVED_CAMERAS, cam) or not (
            r.sismember(keys.CAMERAS, cam) or r.exists(keys.mood(cam)))):
        return None  # removed by an admin, or never seen
    state = status(r, cam)
    out = settings(cam, raw)
    if not show_source:
        out["source"] = mask_source(out["source"])
        state["reason"] = PUBLIC_REASONS.get(state["state"], "")
    out["status"] = state
    mood = latest_mood(r, cam)
    now = time.time()
    if mood is not None:
        out["faces"] = mood.get("faces")
        out["mood_ts"] = mood.get("ts")
        out["stale"] = not isinstance(mood.get("ts"), int | float) or now - mood["ts"] > (
            STALE_AFTER_S)
    else:
        out["faces"], out["mood_ts"], out["stale"] = None, None, True
    return out


def list_cameras(r, *, show_source: bool) -> list[dict]:
    out = []
    for cam in camera_ids(r):
        info = describe(r, cam, show_source=show_source)
        if info is not None:
            out.append(info)
    return out


def add(r, data: dict) -> dict:
    cam = str(data.get("id") or "").strip()
    if not valid_id(cam):
        raise CameraError("id must be 1-64 letters, digits or - _ . starting with a letter "
                          "or digit")
    values = {**DEFAULTS, **clean(data, partial=False)}
    values["name"] = values.get("name") or cam
    values["added"] = f"{time.time():.3f}"
    values["id"] = cam
    # HSETNX on the source keeps two admins adding the same id from overwriting each other.
    if not r.hsetnx(keys.camera(cam), "source", values["source"]):
        raise FileExistsError(cam)
    pipe = r.pipeline()
    pipe.hset(keys.camera(cam), mapping=values)
    pipe.sadd(keys.CAMERAS, cam)
    pipe.srem(keys.REMOVED_CAMERAS, cam)
    pipe.publish(CHANGED, cam)
    pipe.execute()
    return settings(cam, registered(r, cam))


def update(r, cam: str, data: dict) -> dict:
    """Change some settings. A camera that an ingest announced by itself (no registration)
    can get a mode and thresholds without a source: the supervisor then leaves it alone."""
    if not r.exists(keys.camera(cam)) and (
            not r.sismember(keys.CAMERAS, cam) or r.sismember(keys.REMOVED_CAMERAS, cam)):
        raise KeyError(cam)
    values = clean(data, partial=True)
    if not values:
        raise CameraError("nothing to change")
    pipe = r.pipeline()
    pipe.hset(keys.camera(cam), mapping=values)
    if values.get("preview") == "0":
        pipe.delete(keys.preview(cam))  # privacy: the last preview frame goes at once
    pipe.publish(CHANGED, cam)
    pipe.execute()
    return settings(cam, registered(r, cam))


def remove(r, cam: str) -> bool:
    """Unregister a camera and delete its live data, history and alert log."""
    if not r.exists(keys.camera(cam)) and not r.sismember(keys.CAMERAS, cam):
        return False
    pipe = r.pipeline()
    pipe.srem(keys.CAMERAS, cam)
    pipe.sadd(keys.REMOVED_CAMERAS, cam)
    pipe.delete(keys.camera(cam), keys.camera_status(cam), keys.mood(cam), keys.preview(cam),
                keys.history(cam), keys.alerts(cam), keys.buckets(cam),
                # the aggregator's working state, so that a camera added again starts afresh
                f"ms:recent:{cam}", f"ms:alertstate:{cam}")
    pipe.publish(CHANGED, cam)
    pipe.execute()
    return True


def _float(value, default=None):
    try:
        number = float(value)
    except (TypeError, ValueError):
        return default
    return number if math.isfinite(number) else default


def history(r, cam: str, seconds: float = 3600.0) -> list[dict]:
    """Per-second points of the last `seconds` (at most an hour), oldest first."""
    seconds = max(1.0, min(3600.0, seconds))
    start = int((time.time() - seconds) * 1000)
    points = []
    for _, fields in r.xrange(keys.history(cam), min=str(start), max="+"):
        f = {_text(k): _text(v) for k, v in fields.items()}
        ts = _float(f.get("ts"))
        if ts is None:
            continue
        try:
            counts = json.loads(f.get("counts") or "{}")
        except ValueError:
            counts = {}
        if not isinstance(counts, dict):
            counts = {}
        point = {"ts": ts, "faces": _float(f.get("faces"), 0.0),
                 "valence": _float(f.get("valence"), 0.0),
                 "dominant": f.get("dominant") or None,
                 "counts": {c: int(_float(counts.get(c), 0)) for c in CLASSES}}
        if f.get("shift"):
            try:
                point["shift"] = json.loads(f["shift"])
            except ValueError:
                pass
        points.append(point)
    points.sort(key=lambda p: p["ts"])  # stream order is write order; plot in capture order
    return points


def summarize(points: list[dict]) -> dict:
    """A lesson at a glance, from history points (each holds the 10 s window of its second,
    so windows overlap: shares are averaged, never counts summed). Seconds with nobody in
    view count for presence only."""
    with_faces = [(p, total) for p in points if (total := sum(p["counts"].values()))]
    seen = [p for p, _ in with_faces]
    shares = {c: 0.0 for c in CLASSES}
    for p, total in with_faces:
        for c in CLASSES:
            shares[c] += p["counts"][c] / total / len(with_faces)
    valences = [p["valence"] for p in seen]
    return {
        "from": points[0]["ts"] if points else None, "to": points[-1]["ts"] if points else None,
        "seconds": len(points), "seconds_with_faces": len(seen),
        "faces_avg": round(sum(p["faces"] for p in points) / len(points), 2) if points else 0.0,
        "valence_avg": round(sum(valences) / len(valences), 3) if valences else None,
        "valence_min": min(valences) if valences else None,
        "valence_max": max(valences) if valences else None,
        "shares": {c: round(v, 3) for c, v in shares.items()},
        "dominant": max(shares, key=shares.get) if seen else None,
        "shifts": [{"ts": p["ts"], **p["shift"]} for p in points
                   if isinstance(p.get("shift"), dict)],
    }


def alerts(r, cam: str, count: int = 200) -> list[dict]:
    """The alert log, newest first."""
    out = []
    for entry_id, fields in r.xrevrange(keys.alerts(cam), count=count):
        f = {_text(k): _text(v) for k, v in fields.items()}
        ts = _float(f.get("ts"))
        if ts is None:
            ts = int(_text(entry_id).split("-")[0]) / 1000
        out.append({"ts": ts, "kind": f.get("kind", ""), "message": f.get("message", ""),
                    "state": f.get("state", "raised")})
    return out


