"""The edge node's link to the central Redis: labels go out in capture order, and none is
lost while the link is down.

Labels wait in memory (up to `queue_mb`); past that the oldest move to the spill file (up to
`spill_mb`), so everything in the file is older than everything in memory and sending the
file first, then memory, keeps the order. What the file cannot take is dropped and counted.
A batch leaves in one MULTI/EXEC and is taken off the queue only when Redis confirmed it, so
an outage in the middle of a batch sends it again whole. A backlog goes out at most
`resend_per_s` labels a second, so the central aggregators keep up with it.

The edge node writes only two things centrally (docs/security.md gives the ACL): entries of
the labels stream (and its wake-up stream), and its camera's status hash, which carries the
counters that /api/stats shows (sent, queued, spilled, dropped).
"""

from __future__ import annotations

import logging
import threading
import time
from collections import deque

import redis

from moodstream import keys
from moodstream.config import EdgeSettings
from moodstream.redis_client import OUTAGE_ERRORS, Backoff
from moodstream.streams import wake_consumers

from .spill import SpillFile

log = logging.getLogger("moodstream.edge")
BATCH = 64  # labels entries per MULTI
MiB = 1024 * 1024


def record_size(record: dict) -> int:
    """About what a record costs in memory, for the queue's bound."""
    return 64 + sum(len(str(k)) + len(str(v)) + 16 for k, v in record.items())


def connect_upstream(url: str, timeout_s: float) -> redis.Redis:
    """A client that notices a silent link within `timeout_s` (redis-py's CLIENT SETINFO at
    connect, which the edge ACL does not allow, fails quietly)."""
    return redis.Redis.from_url(url, socket_connect_timeout=timeout_s,
                                socket_timeout=timeout_s, socket_keepalive=True,
                                retry_on_timeout=False, health_check_interval=0)


class Uplink:
    def __init__(self, r: redis.Redis, camera: str, settings: EdgeSettings, spill: SpillFile,
                 labels_maxlen: int, status: dict | None = None):
        self.redis, self.camera, self.settings = r, camera, settings
        self.spill, self.maxlen = spill, labels_maxlen
        self.queue: deque[tuple[dict, int]] = deque()
        self.queued_bytes = 0
        self.lock = threading.Lock()
        self.ready = threading.Event()  # something to send
        self.status = dict(status or {})  # fields of the camera's status hash
        self.sent = self.dropped = 0
        self.link_up = False
        self.backoff = Backoff(f"edge {camera}", first=0.5, cap=5.0)
        self._status_at = 0.0

    # -- the analysis side ---------------------------------------------------------------

    def put(self, record: dict) -> None:
        size = record_size(record)
        with self.lock:
            self.queue.append((record, size))
            self.queued_bytes += size
        self.ready.set()

    def spill_oldest(self) -> None:
        """Past the memory bound, moves the oldest quarter of memory to the spill file. Only
        the sending thread calls it (and `flush`), so a batch in flight stays in memory."""
        if self.queued_bytes <= self.settings.queue_mb * MiB:
            return
        target = self.settings.queue_mb * MiB * 0.75
        moving = []
        with self.lock:
            while self.queue and self.queued_bytes > target:
                record, size = self.queue.popleft()
                self.queued_bytes -= size
                moving.append(record)
        dropped = self.spill.append(moving)
        if dropped:
            if not self.dropped:
                log.warning("camera %s: the spill file is full (%g MiB, "
                            "MOODSTREAM_EDGE_SPILL_MB); dropping labels until the link is back",
                            self.camera, self.settings.spill_mb)
            self.dropped += dropped

    def set_status(self, **fields) -> None:
        with self.lock:
            self.status.update({k: str(v) for k, v in fields.items()})

    @property
    def waiting(self) -> int:
        return len(self.queue) + self.spill.pending

    # -- the sending side ----------------------------------------------------------------

    def _next(self) -> tuple[list[dict], str, int]:
        """The next batch: from the spill file while it holds any (older), else memory."""
        if self.spill.pending:
            records, offset = self.spill.read(BATCH)
            if records:
                return records, "spill", offset
            self.spill.sent(offset, 0)  # only unreadable lines were left
        with self.lock:
            return [r for r, _ in list(self.queue)[:BATCH]], "memory", 0

    def _done(self, records: list[dict], where: str, offset: int) -> None:
        if where == "spill":
            self.spill.sent(offset, len(records))
        else:
            with self.lock:
                for _ in records:
                    _, size = self.queue.popleft()
                    self.queued_bytes -= size
        self.sent += len(records)

    def status_fields(self) -> dict[str, str]:
        with self.lock:
            fields = dict(self.status)
        fields.update(kind="edge", updated=f"{time.time():.3f}", sent=self.sent,
                      queued=len(self.queue), spilled=self.spill.pending,
                      dropped=self.dropped, link="up")
        return {k: str(v) for k, v in fields.items()}

    def send_once(self) -> int:
        """One round: a batch of labels and, when due, the status. Returns the labels sent;
        raises the link's errors."""
        records, where, offset = self._next()
        now = time.monotonic()
        status_due = now - self._status_at >= self.settings.status_every_s
        if not records and not status_due:
            return 0
        pipe = self.redis.pipeline(transaction=True)
        for record in records:
            pipe.xadd(keys.LABELS, record, maxlen=self.maxlen, approximate=True)
        if records:
            wake_consumers(pipe, keys.LABELS)
        if status_due:
            pipe.hset(keys.camera_status(self.camera), mapping=self.status_fields())
        pipe.execute()
        if status_due:
            self._status_at = now
        self._done(records, where, offset)
        return len(records)

    def run(self, stop: threading.Event) -> None:
        while not stop.is_set():
            started = time.monotonic()
            self.spill_oldest()
            try:
                sent = self.send_once()
            except (*OUTAGE_ERRORS, OSError) as error:
                self.link_up = False
                self.backoff.sleep_after(error, stop)
                continue
            except redis.ResponseError as error:
                # Refused (the central Redis is full, or this node's ACL lacks a right):
                # nothing is lost, it is tried again.
                self.link_up = False
                log.warning("camera %s: the central Redis refused the labels: %s",
                            self.camera, error)
                stop.wait(5.0)
                continue
            if not self.link_up:
                log.info("camera %s: link to the central Redis up (%d labels waiting)",
                         self.camera, self.waiting)
            self.link_up = True
            self.backoff.ok()
            if sent >= BATCH:  # a backlog: paced
                stop.wait(max(0.0, sent / self.settings.resend_per_s
                              - (time.monotonic() - started)))
            elif not sent:
                self.ready.wait(0.2)
                self.ready.clear()

    def flush(self, timeout_s: float) -> None:
        """On the way out: send what is queued while the link allows; the rest is spilled
        (kept for the next start)."""
        deadline = time.monotonic() + timeout_s
        self._status_at = 0.0  # the last status goes with the first batch
        while (self.queue or not self._status_at) and time.monotonic() < deadline:
            try:
                if not self.send_once() and not self.spill.pending:
                    break
            except (*OUTAGE_ERRORS, OSError, redis.ResponseError):
                break
        with self.lock:
            left = [r for r, _ in self.queue]
            self.queue.clear()
            self.queued_bytes = 0
            self.dropped += self.spill.append(left)
