"""Worker registry: heartbeats with a TTL, so the dashboard sees who is alive."""

from __future__ import annotations

import os
import socket
import time
import uuid

import redis

from moodstream import keys
from moodstream.redis_client import text


def new_worker_id(kind: str) -> str:
    """A worker's id: its kind, host and pid, and a few random characters."""
    return f"{kind}-{socket.gethostname()}-{os.getpid()}-{uuid.uuid4().hex[:4]}"


class Heartbeat:
    def __init__(self, r: redis.Redis, kind: str, ttl_s: int = 15, every_s: float = 2.0,
                 worker_id: str | None = None):
        self.redis, self.kind, self.ttl_s, self.every_s = r, kind, ttl_s, every_s
        self.worker_id = worker_id or new_worker_id(kind)
        self.started = time.time()
        self.total = 0
        self._window_start, self._window_count = time.monotonic(), 0
        self._last = 0.0
        self.rate = 0.0
        self.extra: dict = {}

    def count(self, n: int) -> None:
        self.total += n
        self._window_count += n

    def due(self) -> bool:
        return time.monotonic() - self._last >= self.every_s

    def beat(self, force: bool = False) -> None:
        now = time.monotonic()
        if not force and now - self._last < self.every_s:
            return
        elapsed = now - self._window_start
        if elapsed > 0:
            self.rate = self._window_count / elapsed
        self._window_start, self._window_count, self._last = now, 0, now
        info = {"kind": self.kind, "host": socket.gethostname(), "pid": os.getpid(),
                "started": f"{self.started:.0f}", "processed": self.total,
                "rate": f"{self.rate:.2f}", "seen": f"{time.time():.3f}", **self.extra}
        pipe = self.redis.pipeline(transaction=False)
        pipe.hset(keys.worker(self.worker_id), mapping=info)
        pipe.expire(keys.worker(self.worker_id), self.ttl_s)
        pipe.zadd(keys.WORKERS, {self.worker_id: time.time()})
        pipe.execute()

    def leave(self) -> None:
        self.redis.delete(keys.worker(self.worker_id))
        self.redis.zrem(keys.WORKERS, self.worker_id)


def live_workers(r: redis.Redis) -> list[dict]:
    """Workers whose heartbeat has not expired, oldest first."""
    out = []
    for wid in r.zrange(keys.WORKERS, 0, -1):
        wid = text(wid)
        info = r.hgetall(keys.worker(wid))
        if not info:
            r.zrem(keys.WORKERS, wid)  # expired: forget it
            continue
        info = {text(k): text(v) for k, v in info.items()}
        info["id"] = wid
        out.append(info)
    return out
