"""The dashboard application: `create_app(redis_url, token, secret_key)` -> (app, socketio).

Live aggregates reach browsers through Flask-SocketIO's Redis message queue: the aggregator
emits "mood" on the same Redis, every dashboard process relays it to its own clients, so any
number of dashboard replicas can run behind a load balancer (with sticky sessions).
"""

from __future__ import annotations

import logging
import secrets
import threading
import time
from dataclasses import dataclass
from datetime import timedelta

import redis
from flask import (
    Blueprint,
    Flask,
    abort,
    g,
    jsonify,
    render_template,
    request,
    send_file,
    session,
)
from flask_login import current_user, login_required
from flask_socketio import SocketIO, join_room, leave_room, rooms
from flask_wtf.csrf import CSRFError, CSRFProtect
from prometheus_client import Histogram
from werkzeug.middleware.proxy_fix import ProxyFix
from werkzeug.routing import BaseConverter

from moodstream import assets, keys
from moodstream.camera_settings import ID_RE
from moodstream.config import MIB, Settings
from moodstream.contract import CLASSES
from moodstream.dashboard import access, api, auth, bulk_upload, cameras, history
from moodstream.expressions import NEGATIVE, POSITIVE
from moodstream.history import HistoryStore, open_store
from moodstream.history.records import Records
from moodstream.redis_client import connect

REQUEST_SECONDS = Histogram("moodstream_http_request_seconds",
                            "Dashboard request handling time, by endpoint", ["endpoint"])

log = logging.getLogger("moodstream.dashboard")

CSP = ("default-src 'self'; script-src 'self'; style-src 'self'; img-src 'self' data: blob:; "
       "connect-src 'self'; font-src 'self'; object-src 'none'; base-uri 'none'; "
       "frame-ancestors 'none'; form-action 'self'")

MAX_WATCHED = 500  # cameras one page may follow

pages = Blueprint("pages", __name__)


class CameraIdConverter(BaseConverter):
    """<camera:cam> in a route: a valid camera id, else the route does not match (404)."""

    regex = ID_RE.pattern.strip("^$")


@dataclass
class State:
    redis: redis.Redis  # decoded text
    redis_bytes: redis.Redis  # raw bytes (JPEG previews, accounting)
    redis_url: str
    token: str | None
    settings: Settings
    history: HistoryStore  # the lasting history (connects on first use)
    records: Records  # accounts, cameras and the audit log, in the same database


def vendor_missing() -> list[str]:
    """Front-end libraries (from npm, never a CDN) that setup has not copied into the package."""
    return [name for name in assets.VENDOR_FILES if not (assets.vendor_dir() / name).is_file()]


@pages.get("/healthz")
def healthz():
    try:
        auth.state().redis.ping()
    except redis.RedisError as error:
        return jsonify(ok=False, redis=str(error)), 503
    return jsonify(ok=True)


@pages.get("/vendor/<name>")
def vendor(name):
    if name not in assets.VENDOR_FILES:
        abort(404)
    path = assets.vendor_dir() / name
    if not path.is_file():
        return (f"// {name} is not installed: run ./scripts/setup.sh\n", 404,
                {"Content-Type": "text/javascript"})
    return send_file(path, mimetype="text/javascript", max_age=3600)


@pages.get("/")
@login_required
def index():
    return render_template("index.html", page="overview")


def described_camera(cam: str) -> dict:
    """A camera as its pages show it, or 404 (also for a camera the user may not see)."""
    info = cameras.describe(auth.state().redis, cam, show_source=current_user.is_admin)
    if info is None or not access.may_see(auth.state().redis, current_user, cam):
        abort(404)
    return info


@pages.get("/cameras/<camera:cam>")
@login_required
def camera_page(cam):
    return render_template("camera.html", page="camera", camera=described_camera(cam))


@pages.get("/cameras/<camera:cam>/history")
@login_required
def history_page(cam):
    return render_template("history.html", page="history", camera=described_camera(cam))


@pages.get("/admin")
@auth.admin_required
def admin():
    return render_template("admin.html", page="admin")


@pages.get("/system")
@login_required
def system():
    return render_template("system.html", page="system")


def _secret_key(r: redis.Redis, secret_key: str | None) -> str:
    """The configured key, else one shared through Redis so restarts keep sessions."""
    if secret_key:
        return secret_key
    r.set(keys.DASHBOARD_SECRET, secrets.token_urlsafe(48), nx=True)
    return r.get(keys.DASHBOARD_SECRET)


def create_app(settings: Settings, *, message_queue: bool = True):
    """Build the Flask app and its SocketIO server from the settings (the Redis, and the
    dashboard and bulk groups). Returns (app, socketio)."""
    redis_url, d = settings.redis_url, settings.dashboard
    here = assets.dashboard_dir()
    app = Flask(__name__, template_folder=str(here / "templates"),
                static_folder=str(here / "static"))
    proxies = d.trusted_proxies
    if proxies:
        # Behind N reverse proxies (TLS termination): take the client's address, scheme and
        # host from their X-Forwarded-* headers, so that login lockouts count per client,
        # not per proxy, and HTTPS requests get the strict CSRF referrer check.
        app.wsgi_app = ProxyFix(app.wsgi_app, x_for=proxies, x_proto=proxies, x_host=proxies)
    r = connect(redis_url, decode_responses=True)
    secure = d.secure_cookies
    app.config.update(
        SECRET_KEY=_secret_key(r, d.secret_key),
        SESSION_COOKIE_NAME="moodstream_session",
        SESSION_COOKIE_HTTPONLY=True,
        SESSION_COOKIE_SAMESITE="Lax",
        SESSION_COOKIE_SECURE=secure,
        REMEMBER_COOKIE_HTTPONLY=True,
        REMEMBER_COOKIE_SAMESITE="Lax",
        REMEMBER_COOKIE_SECURE=secure,
        PERMANENT_SESSION_LIFETIME=timedelta(hours=12),
        WTF_CSRF_TIME_LIMIT=None,  # the token lives as long as the session
        WTF_CSRF_SSL_STRICT=secure,
        # Whole-request cap, sized for uploads of videos to analyse; the JSON API caps its
        # own bodies much lower (dashboard.api.MAX_JSON_BYTES).
        MAX_CONTENT_LENGTH=int(d.max_upload_mb * MIB),
    )
    store = open_store(settings.history)
    app.extensions["moodstream"] = State(
        redis=r, redis_bytes=connect(redis_url), redis_url=redis_url, token=d.token or None,
        settings=settings, history=store, records=Records(store))
    app.url_map.converters["camera"] = CameraIdConverter
    csrf = CSRFProtect(app)
    app.extensions["csrf"] = csrf
    auth.init_app(app)
    csrf.exempt(api.bp)  # the API checks CSRF itself, for cookie sessions only
    csrf.exempt(history.bp)  # reads only
    app.register_blueprint(api.bp)
    app.register_blueprint(history.bp)
    app.register_blueprint(pages)
    app.register_blueprint(bulk_upload.bp)

    @app.context_processor
    def globals_for_templates():
        return {"user": current_user, "vendor_missing": vendor_missing(),
                "expressions": CLASSES, "positive": POSITIVE, "negative": NEGATIVE,
                "stale_after_s": d.stale_after_s}

    @app.before_request
    def start_timer():
        g.request_started = time.perf_counter()

    @app.after_request
    def observe_latency(response):
        started = g.pop("request_started", None)
        if started is not None:
            REQUEST_SECONDS.labels(request.endpoint or "unknown").observe(
                time.perf_counter() - started)
        return response

    @app.after_request
    def security_headers(response):
        response.headers.setdefault("X-Content-Type-Options", "nosniff")
        response.headers.setdefault("X-Frame-Options", "DENY")
        response.headers.setdefault("Referrer-Policy", "same-origin")
        response.headers.setdefault("Content-Security-Policy", CSP)
        if secure:
            response.headers.setdefault("Strict-Transport-Security", "max-age=31536000")
        return response

    @app.errorhandler(CSRFError)
    def csrf_error(error):
        if auth.wants_json():
            return jsonify(error=f"CSRF check failed: {error.description}"), 400
        return render_template("error.html", code=400, message=error.description), 400

    @app.errorhandler(403)
    def forbidden(_error):
        if auth.wants_json():
            return jsonify(error="forbidden"), 403
        return render_template("error.html", code=403,
                               message="This page is for admins only."), 403

    @app.errorhandler(redis.ConnectionError)
    @app.errorhandler(redis.TimeoutError)
    @app.errorhandler(redis.BusyLoadingError)
    def redis_away(error):
        # Redis restarting (the embedded one under `up` is back within seconds): say so,
        # instead of a 500; logins made before it went away may have to log in again.
        log.warning("Redis unavailable for %s: %s", request.path, error)
        message = "Redis is unavailable; try again in a few seconds"
        if auth.wants_json():
            return jsonify(error=message), 503, {"Retry-After": "5"}
        return render_template("error.html", code=503, message=message), 503, \
            {"Retry-After": "5"}

    @app.errorhandler(404)
    def not_found(_error):
        if auth.wants_json():
            return jsonify(error="not found"), 404
        return render_template("error.html", code=404, message="Nothing here."), 404

    # Same origin only: python-engineio compares the Origin header with the request's own
    # scheme://host when cors_allowed_origins is None, and refuses anything else.
    socketio = SocketIO(app, async_mode="threading",
                        message_queue=redis_url if message_queue else None,
                        cors_allowed_origins=None, manage_session=False)

    live = LiveSessions(socketio, r)
    token_sockets: set[str] = set()  # connections opened with the API token (admin)

    @socketio.on("connect")
    def on_connect(auth_data=None):
        if current_user.is_authenticated:
            live.add(request.sid, session.get("sid"))
            return True
        if isinstance(auth_data, dict) and auth.token_matches(auth_data.get("token")):
            token_sockets.add(request.sid)
            return True
        log.info("refused an unauthenticated Socket.IO connection from %s", request.remote_addr)
        raise ConnectionRefusedError("unauthorized")

    @socketio.on("watch")
    def on_watch(data=None):
        """A page names the cameras it shows; it joins their rooms (and leaves the others'),
        and the aggregators' snapshots reach it through those rooms only."""
        wanted = data.get("cameras") if isinstance(data, dict) else None
        if not isinstance(wanted, list):
            return {"ok": False, "error": "cameras must be a list"}
        asked = {c for c in wanted[:MAX_WATCHED] if isinstance(c, str) and cameras.valid_id(c)}
        # Only the rooms of cameras this login may see (the API token sees all).
        if request.sid in token_sockets:
            refused = []
        elif current_user.is_authenticated:
            refused = sorted(c for c in asked if not access.may_see(r, current_user, c))
        else:  # the login ended since the connection opened
            refused = sorted(asked)
        wanted = {keys.camera_room(c) for c in asked - set(refused)}
        for joined in rooms():
            if joined.startswith(keys.CAMERA_ROOM_PREFIX) and joined not in wanted:
                leave_room(joined)
        for room in wanted:
            join_room(room)
        answer = {"ok": True, "rooms": sorted(wanted)}
        if refused:
            answer["refused"] = refused
        return answer

    @socketio.on("disconnect")
    def on_disconnect(*_args):
        live.discard(request.sid)
        token_sockets.discard(request.sid)

    return app, socketio


class LiveSessions:
    """This process's Socket.IO connections and the login session each belongs to.

    A connection outlives the HTTP request that opened it, so a logout or a removed user
    would not reach it; a background task checks every second that each connection's
    session still exists in Redis and disconnects those whose session has ended."""

    EVERY_S = 1.0

    def __init__(self, socketio: SocketIO, r: redis.Redis):
        self.socketio, self.redis = socketio, r
        self.sockets: dict[str, str] = {}
        self.lock = threading.Lock()
        self.started = False

    def add(self, socket_id: str, session_id: str | None) -> None:
        if not session_id:
            return
        with self.lock:
            self.sockets[socket_id] = session_id
            start, self.started = not self.started, True
        if start:
            self.socketio.start_background_task(self.watch)

    def discard(self, socket_id: str) -> None:
        with self.lock:
            self.sockets.pop(socket_id, None)

    def ended(self) -> list[str]:
        with self.lock:
            pairs = list(self.sockets.items())
        if not pairs:
            return []
        pipe = self.redis.pipeline(transaction=False)  # one round trip for all of them
        for _, session_id in pairs:
            pipe.exists(keys.session(session_id))
        return [sock for (sock, _), found in zip(pairs, pipe.execute(), strict=True)
                if not found]

    def watch(self) -> None:
        while True:
            self.socketio.sleep(self.EVERY_S)
            try:
                for socket_id in self.ended():
                    log.info("closing Socket.IO connection %s: its session ended", socket_id)
                    self.discard(socket_id)
                    self.socketio.server.disconnect(socket_id, namespace="/")
            except redis.RedisError as error:
                log.warning("session check failed: %s", error)
