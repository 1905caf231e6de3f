"""Who may see what: sessions (password or token link), bearer tokens, roles, CSRF.

- Browser sessions come from the login form (Flask-WTF, CSRF-protected) or from the token link
  /login?token=<MOODSTREAM_TOKEN>, which logs in as an admin.
- Scripts use `Authorization: Bearer <MOODSTREAM_TOKEN>`; bearer requests carry no cookie, so
  they need no CSRF token. Session requests that change something need one (X-CSRFToken).
- A session remembers a fingerprint of the password hash (or of the token): changing a password,
  removing a user or rotating the token ends the sessions that used the old one.
- Sessions are also recorded in Redis (keys.session): the signed cookie alone is not
  enough. Logout, removing a user or changing their role deletes the record, so a copied cookie
  stops working at once, and the Socket.IO connections of that session are closed.
"""

from __future__ import annotations

import functools
import hashlib
import hmac
import time
from urllib.parse import urlsplit

from flask import (
    Blueprint,
    abort,
    current_app,
    flash,
    jsonify,
    redirect,
    render_template,
    request,
    session,
    url_for,
)
from flask_login import LoginManager, UserMixin, current_user, login_user, logout_user
from flask_wtf import FlaskForm
from wtforms import HiddenField, PasswordField, StringField
from wtforms.validators import DataRequired, Length

from moodstream import keys
from moodstream.dashboard import users

bp = Blueprint("auth", __name__)
login_manager = LoginManager()
login_manager.login_view = "auth.login"
login_manager.login_message = None
login_manager.session_protection = "basic"

MAX_FAILURES = 10  # failed logins per user name (and per client address) ...
FAILURE_WINDOW_S = 300  # ... within this many seconds, before logins are refused for a while


class User(UserMixin):
    def __init__(self, name: str, role: str, via: str, tag: str = "", *,
                 cameras: tuple[str, ...] = (), groups: tuple[str, ...] = ()):
        self.name, self.role, self.via, self.tag = name, role, via, tag
        # Per-camera access (moodstream.dashboard.access); both empty: every camera.
        self.cameras, self.groups = cameras, groups

    @classmethod
    def from_record(cls, record: dict, tag: str) -> User:
        return cls(record["name"], record.get("role", "viewer"), "user", tag,
                   cameras=tuple(filter(None, record.get("cameras", "").split(","))),
                   groups=tuple(filter(None, record.get("groups", "").split(","))))

    def get_id(self) -> str:
        return f"{self.via}:{self.tag}:{self.name}"

    @property
    def is_admin(self) -> bool:
        return self.role == "admin"


def state():
    return current_app.extensions["moodstream"]


def token_tag(token: str) -> str:
    return hashlib.sha256(b"moodstream-token:" + token.encode()).hexdigest()[:16]


def token_matches(candidate: str | None) -> bool:
    token = state().token
    if not token or not candidate:
        return False
    return hmac.compare_digest(candidate.encode(), token.encode())


@login_manager.user_loader
def load_user(user_id: str) -> User | None:
    sid = session.get("sid")
    if not sid or users.session_owner(state().redis, sid) != user_id:
        return None  # logged out, revoked or expired on the server
    via, _, rest = user_id.partition(":")
    tag, _, name = rest.partition(":")
    if via == "token":
        token = state().token
        if token and hmac.compare_digest(tag, token_tag(token)):
            return User("token", "admin", "token", tag)
        return None
    if via == "user":
        record = users.get_user(state().redis, name)
        if record and hmac.compare_digest(tag, users.session_tag(record)):
            return User.from_record(record, tag)
    return None


@login_manager.request_loader
def load_bearer(req) -> User | None:
    header = req.headers.get("Authorization", "")
    scheme, _, value = header.partition(" ")
    if scheme.lower() == "bearer" and token_matches(value.strip()):
        return User("api", "admin", "bearer")
    return None


@login_manager.unauthorized_handler
def unauthorized():
    if wants_json():
        response = jsonify(error="authentication required: log in, or send "
                                 "Authorization: Bearer <MOODSTREAM_TOKEN>")
        response.status_code = 401
        response.headers["WWW-Authenticate"] = 'Bearer realm="moodstream"'
        return response
    return redirect(url_for("auth.login", next=request.full_path.rstrip("?")))


def wants_json() -> bool:
    return request.path.startswith("/api/") or request.path.startswith("/socket.io")


def admin_required(view):
    @functools.wraps(view)
    def wrapped(*args, **kwargs):
        if not current_user.is_authenticated:
            return login_manager.unauthorized()
        if not current_user.is_admin:
            if wants_json():
                return jsonify(error="admin role required"), 403
            abort(403)
        return view(*args, **kwargs)

    return wrapped


class LoginForm(FlaskForm):
    username = StringField("User name", validators=[DataRequired(), Length(max=64)])
    password = PasswordField("Password", validators=[DataRequired(), Length(max=512)])
    next = HiddenField()


def safe_next(target: str | None) -> str:
    """Only same-site relative paths: no open redirects, and nothing that breaks the header.

    Browsers drop tabs and newlines from URLs and read a backslash as a slash, so
    "/%09/evil.example" (a tab) means "//evil.example"; any control character, space or
    backslash makes the whole target unacceptable rather than cleaned up."""
    if not target or len(target) > 2048 or not target.startswith("/") or target.startswith("//"):
        return url_for("pages.index")
    if any(ord(c) < 33 or ord(c) == 127 or c == "\\" for c in target):
        return url_for("pages.index")
    try:
        parts = urlsplit(target)
    except ValueError:
        return url_for("pages.index")
    if parts.scheme or parts.netloc or not parts.path.startswith("/") \
            or parts.path.startswith("//"):
        return url_for("pages.index")
    return target


def _failure_keys(name: str) -> list[str]:
    return [keys.login_failures("user", name.lower()[:64]),
            keys.login_failures("addr", request.remote_addr or "-")]


def _locked_out(name: str) -> bool:
    r = state().redis
    values = r.mget(_failure_keys(name))
    return any(int(v or 0) >= MAX_FAILURES * (1 if i == 0 else 5) for i, v in enumerate(values))


def _count_failure(name: str) -> None:
    pipe = state().redis.pipeline()
    for key in _failure_keys(name):
        pipe.incr(key)
        pipe.expire(key, FAILURE_WINDOW_S)
    pipe.execute()


def _start_session(user: User) -> None:
    old = session.get("sid")
    if old:
        users.end_session(state().redis, old)
    session.clear()  # no fixation: nothing from before the login survives
    session.permanent = True
    login_user(user)
    session["login_at"] = int(time.time())
    lifetime = current_app.permanent_session_lifetime.total_seconds()
    session["sid"] = users.start_session(state().redis, user.get_id(),
                                         user.name if user.via == "user" else None,
                                         int(lifetime))


@bp.route("/login", methods=["GET", "POST"])
def login():
    token = request.args.get("token")
    if token is not None:
        if token_matches(token):
            _start_session(User("token", "admin", "token", token_tag(state().token)))
            return redirect(safe_next(request.args.get("next")))
        flash("That login link is not valid.", "error")
        return render_template("login.html", form=LoginForm()), 401
    form = LoginForm()
    if request.method == "GET":
        form.next.data = request.args.get("next", "")
        return render_template("login.html", form=form)
    if not form.validate_on_submit():
        flash("Enter a user name and a password.", "error")
        return render_template("login.html", form=form), 400
    name = form.username.data.strip()
    if _locked_out(name):
        flash("Too many failed logins; wait a few minutes.", "error")
        return render_template("login.html", form=form), 429
    record = users.authenticate(state().redis, name, form.password.data)
    if record is None:
        _count_failure(name)
        flash("Wrong user name or password.", "error")
        return render_template("login.html", form=form), 401
    _start_session(User.from_record(record, users.session_tag(record)))
    return redirect(safe_next(form.next.data))


@bp.route("/logout", methods=["POST"])
def logout():
    sid = session.get("sid")
    if sid:
        users.end_session(state().redis, sid)  # the cookie, wherever copied, is dead now
    logout_user()
    session.clear()
    flash("You are logged out.", "info")
    return redirect(url_for("auth.login"))


def init_app(app) -> None:
    login_manager.init_app(app)
    app.register_blueprint(bp)
