"""The lasting history under /api/cameras/<id>/: rows, summaries, lessons and alert events
from the history database (moodstream.history), over any range.

Ranges are `from` and `to` in unix seconds (default: the hour up to now; `seconds` sets the
length instead of `from`). `step` downsamples (a multiple of 10 s); without it a step is
chosen that gives at most about 1,500 points. `offset` (seconds east of UTC) aligns steps to
the viewer's local midnight.
"""

from __future__ import annotations

import math
import time

import sqlalchemy as sa
from flask import Blueprint, Response, jsonify, request

from moodstream.dashboard import api
from moodstream.dashboard.numbers import DAY, MAX_TIME, NumberOutOfRange, as_json, query_number
from moodstream.history import HistoryStore
from moodstream.history.store import BUCKET_S, to_csv

bp = Blueprint("history", __name__, url_prefix="/api")
bp.before_request(api.require_login)
bp.after_request(api.no_store)

STEPS = (10, 30, 60, 300, 600, 1800, 3600, 3 * 3600, 6 * 3600, 86400, 7 * 86400)
TARGET_POINTS = 1500
MAX_POINTS = 20000


class BadRequest(ValueError):
    pass


def store() -> HistoryStore:
    return api.state().history


def time_range() -> tuple[float, float]:
    to = query_number("to", low=0, high=MAX_TIME, default=time.time())
    start = query_number("from", low=0, high=MAX_TIME)
    if start is None:
        start = to - query_number("seconds", low=1, high=MAX_TIME, default=3600.0)
    if start >= to:
        raise BadRequest("from must be before to")
    return start, to


def auto_step(span: float) -> int:
    return next((s for s in STEPS if span / s <= TARGET_POINTS), STEPS[-1])


def step_for(start: float, to: float, default: int | None = None) -> int:
    """The `step` asked for (else `default`, else one for ~TARGET_POINTS points)."""
    span = to - start
    step = query_number("step", low=1, high=MAX_TIME, default=default)
    step = auto_step(span) if step is None else max(BUCKET_S, int(step) // BUCKET_S * BUCKET_S)
    # However small the step asked for, one answer holds at most MAX_POINTS points.
    floor = math.ceil(span / MAX_POINTS / BUCKET_S) * BUCKET_S
    return max(step, floor)


def tz_offset() -> int:
    """`offset`: the viewer's time zone in seconds east of UTC, so that days (and hours, in
    half-hour zones) start at local midnight."""
    return int(query_number("offset", low=-14 * 3600, high=14 * 3600, default=0))


def wants_csv() -> bool:
    return request.accept_mimetypes.best_match(["application/json", "text/csv"]) == "text/csv"


def csv_response(cam: str, points: list[dict], start: float, to: float) -> Response:
    stamp = "-".join(time.strftime("%Y%m%d-%H%M%S", time.gmtime(t)) for t in (start, to))
    return Response(to_csv(points), mimetype="text/csv", headers={
        "Content-Disposition": f'attachment; filename="{cam}-history-{stamp}.csv"'})


@bp.errorhandler(BadRequest)
def bad_request(error):
    return jsonify(error=str(error)), 400


bp.register_error_handler(NumberOutOfRange, as_json)


@bp.errorhandler(sa.exc.SQLAlchemyError)
def database_down(error):
    first = str(error).splitlines()[0][:200]
    return jsonify(error=f"the history database is unavailable: {first}"), 503


@bp.get("/cameras/<camera:cam>/history")
def get_history(cam):
    """Rows {ts, faces, valence, counts, dominant} per step; CSV with Accept: text/csv."""
    start, to = time_range()
    step = step_for(start, to)
    points = store().history(cam, start, to, step, offset=tz_offset())
    if wants_csv():
        return csv_response(cam, points, start, to)
    return jsonify({"camera": cam, "from": start, "to": to, "step": step, "points": points})


@bp.get("/cameras/<camera:cam>/history.csv")
def get_history_csv(cam):
    """The same rows as CSV, at 10 s unless a step is given."""
    start, to = time_range()
    step = step_for(start, to, default=BUCKET_S)
    points = store().history(cam, start, to, step, offset=tz_offset())
    return csv_response(cam, points, start, to)


@bp.get("/cameras/<camera:cam>/summary")
def get_summary(cam):
    """The range at a glance: presence, faces, valence, shares, alerts, shifts."""
    start, to = time_range()
    summary = store().summary(cam, start, to)
    shifts = store().alerts(cam, start, to, kinds=("shift",), limit=1000)
    return jsonify({"camera": cam, "range": {"from": start, "to": to}, **summary,
                    "shifts": [{"ts": s["ts"], "message": s["message"]} for s in shifts]})


@bp.get("/cameras/<camera:cam>/lessons")
def get_lessons(cam):
    """Lessons (runs of presence) overlapping the range, each with its summary."""
    start, to = time_range()
    min_seconds = query_number("min_seconds", low=0, high=366 * DAY)
    kwargs = {} if min_seconds is None else {"min_seconds": int(min_seconds)}
    return jsonify(camera=cam, lessons=store().lessons(cam, start, to, **kwargs))


@bp.get("/cameras/<camera:cam>/events")
def get_events(cam):
    """Alerts raised and cleared, and valence shifts, in the range (oldest first)."""
    start, to = time_range()
    return jsonify(camera=cam, events=store().alerts(cam, start, to))
