"""Redis connections from a URL (redis://, rediss:// with TLS, passwords), with sane timeouts."""

from __future__ import annotations

import logging
import time

import redis

from moodstream.backoff import Doubling

log = logging.getLogger(__name__)

# Errors that mean "Redis is away for now": callers back off and retry.
OUTAGE_ERRORS = (redis.ConnectionError, redis.TimeoutError, redis.BusyLoadingError)


def text(value) -> str:
    """A Redis reply (bytes from a bytes client, str from a decoding one) as text."""
    return value.decode() if isinstance(value, bytes) else str(value)


def connect(url: str, *, decode_responses: bool = False) -> redis.Redis:
    return redis.Redis.from_url(
        url,
        decode_responses=decode_responses,
        socket_connect_timeout=5,
        socket_timeout=30,
        socket_keepalive=True,
        health_check_interval=15,
        retry_on_timeout=False,
    )


class Backoff:
    """Exponential backoff that logs once per state change, not once per retry."""

    def __init__(self, what: str, first: float = 0.2, cap: float = 5.0):
        self.what = what
        self.delays = Doubling(first, cap)
        self.failing = False

    def failed(self, error: BaseException) -> float:
        if not self.failing:
            log.warning("%s: lost Redis (%s); retrying with backoff", self.what, error)
            self.failing = True
        return self.delays.next()

    def ok(self) -> None:
        if self.failing:
            log.warning("%s: Redis is back", self.what)
        self.failing = False
        self.delays.reset()

    def sleep_after(self, error: BaseException, stop=None) -> None:
        delay = self.failed(error)
        if stop is not None:
            stop.wait(delay)
        else:
            time.sleep(delay)


def wait_until_reachable(r: redis.Redis, what: str, timeout: float | None = None) -> None:
    """Block until Redis answers PING, backing off. In a deployment services may start before
    Redis does (or while it restarts); they wait instead of crashing into a restart loop."""
    backoff = Backoff(what)
    deadline = None if timeout is None else time.monotonic() + timeout
    while True:
        try:
            r.ping()
        except OUTAGE_ERRORS as error:
            if deadline is not None and time.monotonic() >= deadline:
                raise
            backoff.sleep_after(error)
            continue
        backoff.ok()
        return
