"""Numbers from requests (query parameters, form and JSON fields), checked against a range.

A number out of range is the client's mistake and gets a 400 that names the parameter and
its range: never an overflow deep in the database (SQLite integers stop at 2**63) or a
silently clamped answer.
"""

from __future__ import annotations

import math

from flask import jsonify, request
from werkzeug.exceptions import BadRequest

# Unix seconds up to the last second of year 9999: any date a history can hold.
MAX_TIME = 253402300799.0
DAY = 86400.0


class NumberOutOfRange(BadRequest):
    """A numeric parameter that is not a finite number within its range; a 400."""


def number(raw, name: str, *, low: float, high: float, default: float | None = None
           ) -> float | None:
    """`raw` (a string, a number or None) as a float within [low, high]; `default` when it
    is absent or empty; NumberOutOfRange otherwise."""
    if raw is None or raw == "":
        return default
    if isinstance(raw, bool):
        raise NumberOutOfRange(f"{name} must be a number")
    try:
        value = float(raw)
    except (TypeError, ValueError, OverflowError):
        raise NumberOutOfRange(f"{name} must be a number") from None
    if not (math.isfinite(value) and low <= value <= high):
        raise NumberOutOfRange(f"{name} must be between {low:g} and {high:g}")
    return value


def query_number(name: str, *, low: float, high: float, default: float | None = None
                 ) -> float | None:
    """A query parameter (?name=) through number()."""
    return number(request.args.get(name), name, low=low, high=high, default=default)


def form_number(name: str, *, low: float, high: float, default: float | None = None
                ) -> float | None:
    """A form field through number()."""
    return number(request.form.get(name), name, low=low, high=high, default=default)


def as_json(error: NumberOutOfRange):
    """The API's answer: {"error": "... must be between ..."} with status 400."""
    return jsonify(error=error.description), 400
