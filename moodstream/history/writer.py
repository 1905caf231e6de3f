"""HistoryWriter: the aggregator's way into the history database.

The live path only appends rows to a capped Redis list (one script call) and never waits on
the database. A flusher thread drains the list in batches into the store and removes what
was committed; while the database is down the rows wait in Redis and are written once it is
back. When the list is full the oldest rows are dropped and counted, so that in the keys.STATS
hash  history:in = history:written + history:dropped:full + rows still pending.
"""

from __future__ import annotations

import json
import logging
import threading
import time
import uuid

import redis

from moodstream import keys
from moodstream.backoff import Doubling
from moodstream.history.rows import AlertRow, BucketRow
from moodstream.history.store import HistoryStore
from moodstream.redis_client import OUTAGE_ERRORS, text
from moodstream.redis_lock import HeldKeys

log = logging.getLogger("moodstream.history")

# KEYS: pending list, stats hash, sequence. ARGV: cap, then rows. Numbers each row, appends,
# and drops (counting them) the oldest rows beyond the cap.
PUSH = """
local n = #ARGV - 1
local first = redis.call('INCRBY', KEYS[3], n) - n
local rows = {}
for i = 2, #ARGV do rows[#rows + 1] = (first + i - 1) .. '|' .. ARGV[i] end
redis.call('RPUSH', KEYS[1], unpack(rows))
redis.call('HINCRBY', KEYS[2], 'history:in', n)
local over = redis.call('LLEN', KEYS[1]) - tonumber(ARGV[1])
if over > 0 then
  redis.call('LTRIM', KEYS[1], over, -1)
  redis.call('HINCRBY', KEYS[2], 'history:dropped:full', over)
  return over
end
return 0
"""

# KEYS: pending list, stats hash. ARGV: the last sequence number committed. Removes committed
# rows by number, not by position: rows the cap dropped meanwhile are counted once, as dropped.
ACK = """
local last = tonumber(ARGV[1])
local n = 0
while true do
  local head = redis.call('LINDEX', KEYS[1], 0)
  if not head or tonumber(string.match(head, '^(%d+)|')) > last then break end
  redis.call('LPOP', KEYS[1])
  n = n + 1
end
if n > 0 then redis.call('HINCRBY', KEYS[2], 'history:written', n) end
return n
"""

PUSH_CHUNK = 1000  # rows per script call (Lua's unpack has a limit)


class HistoryWriter:
    def __init__(self, r: redis.Redis, store: HistoryStore, *, buffer_max: int = 50000,
                 batch: int = 2000, interval: float = 5.0, purge_every_s: float = 3600.0,
                 lock_ms: int = 60000):
        self.redis, self.store = r, store
        self.buffer_max, self.batch, self.interval = buffer_max, batch, interval
        self.purge_every_s, self.lock_ms = purge_every_s, lock_ms
        self._push = r.register_script(PUSH)
        self._ack = r.register_script(ACK)
        self.lock = HeldKeys(r)
        self._last_purge = 0.0
        self.failing = False

    # -- the live path --------------------------------------------------------------------

    def add_buckets(self, rows: list[BucketRow]) -> int:
        """Queues 10 s bucket rows; returns how many old rows a full buffer dropped."""
        return self._queue([{"k": "b", **row.to_dict()} for row in rows])

    def add_alerts(self, events: list[AlertRow]) -> int:
        """Queues alert events (and valence shifts)."""
        return self._queue([{"k": "a", **event.to_dict()} for event in events])

    def _queue(self, items: list[dict]) -> int:
        dropped = 0
        for i in range(0, len(items), PUSH_CHUNK):
            rows = [json.dumps(item, separators=(",", ":")) for item in items[i:i + PUSH_CHUNK]]
            dropped += int(self._push(keys=[keys.HISTORY_PENDING, keys.STATS, keys.HISTORY_SEQ],
                                      args=[self.buffer_max, *rows]))
        return dropped

    # -- the flusher ----------------------------------------------------------------------

    def flush_once(self) -> int:
        """Writes up to one batch of pending rows; returns rows committed (0 if another
        writer holds the lock or nothing waits). Database errors propagate; the rows stay."""
        token = uuid.uuid4().hex
        if not self.lock.take(keys.HISTORY_FLUSH, token, self.lock_ms):
            return 0
        try:
            raw = self.redis.lrange(keys.HISTORY_PENDING, 0, self.batch - 1)
            if not raw:
                return 0
            erased = {text(k): float(v) for k, v in self.redis.hgetall(keys.HISTORY_ERASED).items()}
            bucket_rows, events, last = [], [], 0
            for entry in raw:
                seq, _, body = text(entry).partition("|")
                last = max(last, int(seq))
                # A row that cannot be stored is skipped here, or it would fail its whole
                # batch again and again.
                try:
                    item = json.loads(body)
                    if float(item["ts"]) <= erased.get(item["camera"], -1):
                        continue  # its camera's history was erased after it was queued
                    if item.pop("k") == "b":
                        bucket_rows.append(BucketRow.parse(item))
                    else:
                        events.append(AlertRow.parse(item))
                except (ValueError, KeyError, TypeError, AttributeError):
                    log.warning("history: skipping a malformed pending row %.80r", body)
            self.store.write(bucket_rows, events)
            return int(self._ack(keys=[keys.HISTORY_PENDING, keys.STATS], args=[last]))
        finally:
            self.lock.release(keys.HISTORY_FLUSH, token)

    def drain(self) -> int:
        """Flushes until nothing is pending (or another writer holds the lock)."""
        total = 0
        while n := self.flush_once():
            total += n
        return total

    def maybe_purge(self, now: float | None = None) -> None:
        now = time.time() if now is None else now
        if now - self._last_purge >= self.purge_every_s:
            deleted = self.store.purge(now)
            self._last_purge = now
            if any(deleted.values()):
                log.info("history: retention purge deleted %s", deleted)

    def loop(self, stop: threading.Event) -> None:
        retry = Doubling(max(1.0, self.interval * 2), 30.0)  # while the database refuses
        while not stop.is_set():
            try:
                self.drain()
                self.maybe_purge()
                if self.failing:
                    log.warning("history: database is back; caught up")
                self.failing = False
                retry.reset()
                delay = self.interval
            except OUTAGE_ERRORS:
                delay = self.interval  # Redis is down: the aggregator's own backoff reports it
            except Exception as error:  # the database is down or refused: keep the rows
                if not self.failing:
                    log.warning("history: cannot write to the database (%s); buffering in "
                                "Redis", str(error).splitlines()[0][:200])
                self.failing = True
                delay = retry.next()
            stop.wait(delay)

    def start(self, stop: threading.Event) -> threading.Thread:
        thread = threading.Thread(target=self.loop, args=(stop,), name="history-writer",
                                  daemon=True)
        thread.start()
        return thread


def erase_camera(r: redis.Redis, store: HistoryStore, camera: str, wait_s: float = 10.0) -> int:
    """Erases a camera's history: the database rows, and the rows still queued in Redis
    (marked, so the flusher discards them). Waits for a flush in progress, so that it cannot
    write rows back after the delete. Returns the buckets deleted."""
    r.hset(keys.HISTORY_ERASED, camera, time.time())
    token = uuid.uuid4().hex
    deadline = time.monotonic() + wait_s
    lock = HeldKeys(r)
    while not lock.take(keys.HISTORY_FLUSH, token, 60000):
        if time.monotonic() > deadline:
            break  # a stuck flusher: delete anyway; its rows are marked erased
        time.sleep(0.05)
    try:
        return store.delete_camera(camera)
    finally:
        lock.release(keys.HISTORY_FLUSH, token)


def history_stats(r: redis.Redis) -> dict:
    """The writer's accounting for /api/stats: nothing written, dropped or pending is lost."""
    pipe = r.pipeline(transaction=True)
    pipe.hmget(keys.STATS, "history:in", "history:written", "history:dropped:full")
    pipe.llen(keys.HISTORY_PENDING)
    (entered, written, dropped), pending = pipe.execute()
    return {"in": int(entered or 0), "written": int(written or 0),
            "dropped": {"full": int(dropped or 0)}, "pending": int(pending)}
