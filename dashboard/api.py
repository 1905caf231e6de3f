"""The REST API under /api: bearer token or logged-in session; anonymous requests get 401."""

from __future__ import annotations

import json
import time

from flask import Blueprint, Response, current_app, jsonify, request
from flask_login import current_user
from sqlalchemy.exc import SQLAlchemyError

from moodstream import keys
from moodstream.camera_settings import CameraSettings
from moodstream.dashboard import access, cameras, users
from moodstream.dashboard.auth import admin_required, login_manager
from moodstream.dashboard.numbers import NumberOutOfRange, as_json, query_number
from moodstream.history.writer import erase_camera

bp = Blueprint("api", __name__, url_prefix="/api")
SAFE_METHODS = ("GET", "HEAD", "OPTIONS")


def state():
    return current_app.extensions["moodstream"]


MAX_JSON_BYTES = 64 * 1024


@bp.before_request
def require_login():
    if not current_user.is_authenticated:
        return login_manager.unauthorized()
    if (request.content_length or 0) > MAX_JSON_BYTES:
        return jsonify(error="request body too large"), 413
    if request.method not in SAFE_METHODS and current_user.via != "bearer":
        # Cookie-authenticated writes need the CSRF token (header X-CSRFToken).
        current_app.extensions["csrf"].protect()
    cam = (request.view_args or {}).get("cam")
    if cam is not None and not access.may_see(state().redis, current_user, cam):
        # The same answer as for an id that does not exist: nothing to learn from it.
        return jsonify(error=f"no camera {cam}"), 404
    return None


def actor() -> str:
    """Who makes a change, for the audit log."""
    return current_user.name if current_user.via == "user" else current_user.via


@bp.after_request
def no_store(response):
    response.headers.setdefault("Cache-Control", "no-store")
    return response


def _payload() -> dict:
    data = request.get_json(silent=True)
    if data is None:
        data = request.form.to_dict()
        data.pop("csrf_token", None)
    if not isinstance(data, dict):
        return {}
    return data


@bp.get("/me")
def me():
    return jsonify(name=current_user.name, role=current_user.role, via=current_user.via)


@bp.get("/cameras")
def list_cameras():
    listed = cameras.list_cameras(state().redis, show_source=current_user.is_admin,
                                  stale_after_s=state().settings.dashboard.stale_after_s)
    return jsonify(access.visible(current_user, listed))


@bp.get("/cameras/<camera:cam>")
def get_camera(cam):
    info = cameras.describe(state().redis, cam, show_source=current_user.is_admin,
                            stale_after_s=state().settings.dashboard.stale_after_s)
    if info is None:
        return jsonify(error=f"no camera {cam}"), 404
    return jsonify(info)


@bp.get("/cameras/<camera:cam>/mood")
def get_mood(cam):
    mood = cameras.latest_mood(state().redis, cam)
    if mood is None:
        return jsonify(error=f"no aggregate for camera {cam} yet"), 404
    return jsonify(mood.to_dict())


def _seconds() -> float:
    return query_number("seconds", low=1, high=3600, default=3600.0)


@bp.get("/cameras/<camera:cam>/live")
def get_live(cam):
    """Per-second points of the last `seconds` (at most an hour) from Redis, for the live
    charts; the lasting history is /history (moodstream.dashboard.history)."""
    return jsonify(camera=cam, now=time.time(),
                   points=cameras.live_points(state().redis, cam, _seconds()))


@bp.get("/cameras/<camera:cam>/alerts")
def get_alerts(cam):
    return jsonify(camera=cam, alerts=cameras.alerts(state().redis, cam))


@bp.get("/cameras/<camera:cam>/preview.jpg")
def get_preview(cam):
    camera = CameraSettings.load(state().redis, cam)
    if camera is None or not camera.preview:
        return jsonify(error="preview is off for this camera"), 404
    jpeg = state().redis_bytes.get(keys.preview(cam))
    if not jpeg:
        return jsonify(error="no preview frame yet"), 404
    return Response(jpeg, mimetype="image/jpeg", headers={"Cache-Control": "no-store"})


@bp.post("/cameras")
@admin_required
def add_camera():
    data = _payload()
    try:
        camera = cameras.add(state().redis, data, state().settings.camera_networks,
                             records=state().records, actor=actor())
    except cameras.CameraError as error:
        return jsonify(error=str(error)), 400
    except FileExistsError:
        return jsonify(error=f"camera {data.get('id')} already exists"), 409
    return jsonify(camera), 201


@bp.route("/cameras/<camera:cam>", methods=["PATCH", "PUT"])
@admin_required
def update_camera(cam):
    data = _payload()
    data.pop("id", None)
    try:
        camera = cameras.update(state().redis, cam, data, state().settings.camera_networks,
                                records=state().records, actor=actor())
    except cameras.CameraError as error:
        return jsonify(error=str(error)), 400
    except KeyError:
        return jsonify(error=f"no camera {cam}"), 404
    return jsonify(camera)


@bp.delete("/cameras/<camera:cam>")
@admin_required
def delete_camera(cam):
    """Removes the camera; with ?history=erase its history in the database too (first, so
    that a database error leaves everything as it was). An erase works for any valid id,
    registered or not: the history of a camera removed earlier, or one never registered."""
    erased = None
    erase = request.args.get("history") == "erase"
    try:
        if erase:
            erased = erase_camera(state().redis, state().history, cam)
        removed = cameras.remove(state().redis, cam, records=state().records, actor=actor(),
                                 history_erased=erase)
    except SQLAlchemyError as error:
        return jsonify(error="the database is unavailable, nothing was removed: "
                             f"{str(error).splitlines()[0][:200]}"), 503
    if not removed and not erase:
        return jsonify(error=f"no camera {cam}"), 404
    return jsonify(removed=cam if removed else None, history_erased=erased)


@bp.get("/stats")
def stats():
    from moodstream.accounting import pipeline_stats

    figures = pipeline_stats(state().redis_bytes)
    # The per-camera section names cameras: a limited viewer gets only its own.
    figures["edge"] = {cam: info for cam, info in figures["edge"].items()
                       if access.may_see(state().redis, current_user, cam)}
    return jsonify(figures)


@bp.get("/metrics")
def metrics():
    """Prometheus metrics of this dashboard process (scrape with a bearer token)."""
    from prometheus_client import CONTENT_TYPE_LATEST, generate_latest

    return Response(generate_latest(), mimetype=CONTENT_TYPE_LATEST)


@bp.get("/workers")
def workers():
    from moodstream.registry import live_workers

    now = time.time()
    out = []
    for info in live_workers(state().redis_bytes):
        try:
            info["age_s"] = round(now - float(info.get("seen", now)), 1)
        except ValueError:
            info["age_s"] = None
        out.append(info)
    return jsonify(out)


@bp.errorhandler(SQLAlchemyError)
def database_down(error):
    return jsonify(error="the database is unavailable, nothing was changed: "
                         f"{str(error).splitlines()[0][:200]}"), 503


bp.register_error_handler(NumberOutOfRange, as_json)


@bp.errorhandler(json.JSONDecodeError)
def bad_json(_error):
    return jsonify(error="malformed JSON"), 400


# --- users (admin) -----------------------------------------------------------------------------


def _admins(r) -> list[str]:
    return [u["name"] for u in users.list_users(r) if u["role"] == "admin"]


@bp.get("/users")
@admin_required
def list_users():
    return jsonify(users.list_users(state().redis))


@bp.post("/users")
@admin_required
def add_user():
    data = _payload()
    name = str(data.get("name") or "").strip()
    r = state().redis
    if users.get_user(r, name):
        return jsonify(error=f"user {name} already exists"), 409
    try:
        users.set_user(r, name, str(data.get("password") or ""), str(data.get("role") or "viewer"),
                       cameras=data.get("cameras") or "", groups=data.get("groups") or "",
                       records=state().records, actor=actor())
    except users.UserError as error:
        return jsonify(error=str(error)), 400
    return jsonify(_account(r, name)), 201


def _account(r, name: str) -> dict:
    user = next(u for u in users.list_users(r) if u["name"] == name)
    return {k: user[k] for k in ("name", "role", "cameras", "groups")}


@bp.patch("/users/<name>")
@admin_required
def update_user(name):
    r = state().redis
    record = users.get_user(r, name)
    if record is None:
        return jsonify(error=f"no user {name}"), 404
    data = _payload()
    role = str(data.get("role") or record.get("role", "viewer"))
    if record.get("role") == "admin" and role != "admin" and _admins(r) == [name]:
        return jsonify(error="the last admin cannot lose the admin role"), 400
    password = data.get("password") or None
    try:
        users.set_user(r, name, str(password) if password else None, role,
                       cameras=data.get("cameras"), groups=data.get("groups"),
                       records=state().records, actor=actor())
    except users.UserError as error:
        return jsonify(error=str(error)), 400
    return jsonify(_account(r, name))


@bp.delete("/users/<name>")
@admin_required
def delete_user(name):
    r = state().redis
    if current_user.via == "user" and current_user.name == name:
        return jsonify(error="you cannot remove yourself"), 400
    record = users.get_user(r, name)
    if record is None:
        return jsonify(error=f"no user {name}"), 404
    if record.get("role") == "admin" and _admins(r) == [name]:
        return jsonify(error="the last admin cannot be removed"), 400
    users.remove_user(r, name, records=state().records, actor=actor())
    return jsonify(removed=name)


@bp.get("/audit")
@admin_required
def audit():
    """The newest changes to accounts and cameras: who, when, what (`limit`, at most 1000)."""
    try:
        limit = max(1, min(1000, int(request.args.get("limit", 200))))
    except ValueError:
        return jsonify(error="limit must be a whole number"), 400
    return jsonify(state().records.audit(limit))
