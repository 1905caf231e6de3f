"""The dashboard's view of cameras: listing, status, history and alerts for the API, and
registration through moodstream.camera_settings (which owns the settings hash and announces
every change on keys.CAMERAS_CHANGED for the ingest supervisor; the aggregator re-reads a
camera's mode and thresholds at each snapshot).
"""

from __future__ import annotations

import time
from typing import TYPE_CHECKING

from moodstream import keys
from moodstream.camera_settings import (
    CameraError,
    CameraSettings,
    announce,
    changes_from,
    save_changes,
    valid_id,
)
from moodstream.config import CameraNetworkSettings, DashboardSettings
from moodstream.contract import AlertEvent, LivePoint, Snapshot
from moodstream.redaction import redact_url
from moodstream.redis_client import text as _text

if TYPE_CHECKING:
    from moodstream.history.records import Records

__all__ = ["CameraError", "valid_id"]
STALE_AFTER_S = DashboardSettings.model_fields["stale_after_s"].default
# What viewers read for each state: the reasons themselves ("Connection refused", a content
# type) would tell them which internal ports answer; admins see the full reason.
PUBLIC_REASONS = {"connecting": "connecting to the camera", "connected": "receiving frames",
                  "retrying": "the camera cannot be reached; retrying",
                  "failed": "the camera failed; an admin can see why",
                  "ended": "the source ended", "stopped": "stopped"}
# An edge camera's uplink counters in its status (edge/uplink.py).
EDGE_COUNTERS = ("sent", "queued", "spilled", "dropped")


def mask_source(source: str) -> str:
    """The source without its secrets (password, secret query values), for viewers."""
    return redact_url(source)


def settings(cam: str, camera: CameraSettings | None) -> dict:
    """Registered settings with defaults filled in, as JSON."""
    camera = camera or CameraSettings()
    out = {"id": cam, **{k: v for k, v in camera.__dict__.items() if k != "added"},
           "registered": bool(camera.source)}
    out["name"] = camera.name or cam
    return out


def latest_mood(r, cam: str) -> Snapshot | None:
    return Snapshot.from_json(r.get(keys.mood(cam)))


def status(r, cam: str) -> dict:
    raw = {_text(k): _text(v) for k, v in r.hgetall(keys.camera_status(cam)).items()}
    out: dict = {"state": raw.get("state", "unknown"), "reason": raw.get("reason", "")}
    if raw.get("kind") == "edge":  # analysed beside the camera (moodstream edge)
        out["edge"] = True
    for name in ("fps", "frames", "updated", *EDGE_COUNTERS):
        if name in raw:
            try:
                out[name] = float(raw[name])
            except ValueError:
                out[name] = raw[name]
    return out


def is_edge(r, cam: str) -> bool:
    return _text(r.hget(keys.camera_status(cam), "kind") or "") == "edge"


def camera_ids(r) -> list[str]:
    return sorted(_text(c) for c in r.smembers(keys.CAMERAS))


def describe(r, cam: str, *, show_source: bool,
             stale_after_s: float = STALE_AFTER_S) -> dict | None:
    camera = CameraSettings.load(r, cam)
    if camera is None and (r.sismember(keys.REMOVED_CAMERAS, cam) or not (
            r.sismember(keys.CAMERAS, cam) or r.exists(keys.mood(cam)))):
        return None  # removed by an admin, or never seen
    state = status(r, cam)
    out = settings(cam, camera)
    if not show_source:
        out["source"] = mask_source(out["source"])
        state["reason"] = PUBLIC_REASONS.get(state["state"], "")
    out["status"] = state
    mood = latest_mood(r, cam)
    now = time.time()
    if mood is not None:
        out["faces"], out["mood_ts"] = mood.faces, mood.ts
        out["stale"] = now - mood.ts > stale_after_s
    else:
        out["faces"], out["mood_ts"], out["stale"] = None, None, True
    return out


def list_cameras(r, *, show_source: bool,
                 stale_after_s: float = STALE_AFTER_S) -> list[dict]:
    out = []
    for cam in camera_ids(r):
        info = describe(r, cam, show_source=show_source, stale_after_s=stale_after_s)
        if info is not None:
            out.append(info)
    return out


def add(r, data: dict, networks: CameraNetworkSettings | None = None, *,
        records: Records | None = None, actor: str = "") -> dict:
    """Register a camera; networks: the camera network policy its source must follow.
    With records (the system of record), the database is written first."""
    cam = str(data.get("id") or "").strip()
    if not valid_id(cam):
        raise CameraError("id must be 1-64 letters, digits or - _ . starting with a letter "
                          "or digit")
    camera = CameraSettings.from_hash(changes_from(data, partial=False, networks=networks))
    camera.name = camera.name or cam
    camera.added = round(time.time(), 3)
    if records is not None:
        records.put_camera(cam, camera.to_hash(), actor=actor, action="camera.add",
                           detail=audit_detail(camera.to_hash()), new=True)
    # Two admins adding the same id: the database refuses the second (above); without it,
    # HSETNX on the source does.
    if not r.hsetnx(keys.camera(cam), "source", camera.source) and records is None:
        raise FileExistsError(cam)
    pipe = r.pipeline()
    pipe.sadd(keys.CAMERAS, cam)
    pipe.srem(keys.REMOVED_CAMERAS, cam)
    pipe.execute()
    camera.save(r, cam)
    return settings(cam, CameraSettings.load(r, cam))


def update(r, cam: str, data: dict, networks: CameraNetworkSettings | None = None, *,
           records: Records | None = None, actor: str = "") -> dict:
    """Change some settings. A camera that an ingest announced by itself (no registration)
    can get a mode and thresholds without a source: the supervisor then leaves it alone.
    With records, the whole new settings go to the database first."""
    if not r.exists(keys.camera(cam)) and (
            not r.sismember(keys.CAMERAS, cam) or r.sismember(keys.REMOVED_CAMERAS, cam)):
        raise KeyError(cam)
    changes = changes_from(data, partial=True, networks=networks)
    if not changes:
        raise CameraError("nothing to change")
    if is_edge(r, cam) and (changes.get("preview") == "1" or changes.get("source")):
        raise CameraError("an edge camera is analysed beside it and sends no images: it has "
                          "no preview and no source to set here")
    if records is not None:
        current = (CameraSettings.load(r, cam) or CameraSettings()).to_hash()
        whole = {k: v for k, v in {**current, **changes}.items() if v != ""}
        records.put_camera(cam, whole, actor=actor, action="camera.update",
                           detail=audit_detail(changes))

    def privacy(pipe):
        if changes.get("preview") == "0":
            pipe.delete(keys.preview(cam))  # the last preview frame goes at once

    save_changes(r, cam, changes, extra=privacy)
    return settings(cam, CameraSettings.load(r, cam))


def audit_detail(changes: dict[str, str]) -> dict[str, str]:
    """What the audit log keeps of a change: the values, except the source, which may hold
    a camera's password (only that it changed)."""
    return {k: ("(changed)" if k == "source" and v else v) for k, v in changes.items()}


def exists(r, cam: str) -> bool:
    return bool(r.exists(keys.camera(cam)) or r.sismember(keys.CAMERAS, cam))


def registered(r, cam: str) -> bool:
    """Known and not removed: a camera whose data viewers may read (with access to it)."""
    return exists(r, cam) and not r.sismember(keys.REMOVED_CAMERAS, cam)


def remove(r, cam: str, *, records: Records | None = None, actor: str = "",
           history_erased: bool = False) -> bool:
    """Unregister a camera and delete its live data, history and alert log. With records,
    the database marks it removed first (also an id that Redis does not know: an erase of
    a camera removed earlier is recorded too)."""
    known = exists(r, cam)
    if records is not None and (known or history_erased):
        records.remove_camera(cam, actor=actor, history_erased=history_erased)
    if not known:
        return False
    pipe = r.pipeline()
    pipe.srem(keys.CAMERAS, cam)
    pipe.sadd(keys.REMOVED_CAMERAS, cam)
    pipe.delete(keys.camera(cam), keys.camera_status(cam), keys.mood(cam), keys.preview(cam),
                keys.live_points(cam), keys.alerts(cam),
                # the aggregator's working state, so that a camera added again starts afresh
                keys.handoff(cam), keys.lease(cam))
    announce(pipe, cam)
    pipe.execute()
    return True


def live_points(r, cam: str, seconds: float = 3600.0) -> list[dict]:
    """Per-second points of the last `seconds` (at most an hour), oldest first."""
    seconds = max(1.0, min(3600.0, seconds))
    start = int((time.time() - seconds) * 1000)
    points = [LivePoint.decode(fields)
              for _, fields in r.xrange(keys.live_points(cam), min=str(start), max="+")]
    # Stream order is write order; plot in capture order.
    return [p.to_json() for p in sorted((p for p in points if p is not None),
                                        key=lambda p: p.ts)]


def alerts(r, cam: str, count: int = 200) -> list[dict]:
    """The alert log, newest first."""
    return [AlertEvent.decode(fields, entry_id).to_json()
            for entry_id, fields in r.xrevrange(keys.alerts(cam), count=count)]
