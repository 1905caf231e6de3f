"""Consumer-group plumbing shared by every stream worker.

One loop, used by the detector, the classifier and the aggregator:

- reads new entries with XREADGROUP and counts them as delivered in the same Lua call,
  so the accounting identity in moodstream.accounting stays exact;
- reclaims entries that a dead worker left pending (XAUTOCLAIM after claim_idle_ms);
- decodes each entry with the shared contract (cheap: no image is decoded here); malformed
  ones become dead letters;
- drops entries older than the staleness bound (counted, acknowledged), entries stamped
  further in the future than the clock-skew bound (dropped:future, at every stage) and, in
  newest-only mode, entries that a newer one of the same camera overtook in the same read;
  only then
  does the handler do the costly work (the detector decodes JPEGs there), and it can reject
  single entries (Batch.rejected) as dead letters;
- writes the outputs, the acknowledgements and the counters in one MULTI/EXEC, so that a
  killed worker never leaves half-written output: either all of a batch lands or none;
- survives Redis restarts (backoff, group re-creation) and stops cleanly on SIGTERM.
"""

from __future__ import annotations

import logging
import signal
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass, field

import redis

from moodstream import keys, metrics
from moodstream.accounting import LAG
from moodstream.config import Settings
from moodstream.contract import MalformedEntry
from moodstream.redis_client import OUTAGE_ERRORS, Backoff, connect, text
from moodstream.registry import Heartbeat

log = logging.getLogger(__name__)

# XREADGROUP and the delivered counter move together, atomically.
READ_AND_COUNT = """
local r = redis.call('XREADGROUP', 'GROUP', ARGV[1], ARGV[2], 'COUNT', ARGV[3],
                     'STREAMS', KEYS[1], '>')
if r and r[1] then
  local n = #r[1][2]
  if n > 0 then redis.call('HINCRBY', KEYS[2], ARGV[4], n) end
  return r[1][2]
end
return {}
"""

# Acknowledge each entry and count its outcome only if the ack took: when a slow worker and
# the one that reclaimed its entries both finish, the entry is counted once, not twice.
ACK_AND_COUNT = """
for i = 2, #ARGV, 2 do
  if redis.call('XACK', KEYS[1], ARGV[1], ARGV[i]) == 1 then
    redis.call('HINCRBY', KEYS[2], ARGV[i + 1], 1)
  end
end
return 1
"""


@dataclass
class Output:
    """An entry to append to a stream when the batch commits."""

    stream: str
    fields: dict
    maxlen: int


@dataclass
class Batch:
    """What a handler gives back for a batch of decoded entries."""

    outputs: list[Output] = field(default_factory=list)
    counters: dict[str, int] = field(default_factory=dict)  # extra HINCRBY on keys.STATS
    latencies_ms: list[float] = field(default_factory=list)  # capture-to-label, if final
    ops: list[Callable] = field(default_factory=list)  # fn(pipeline): more writes, same MULTI
    rejected: dict = field(default_factory=dict)  # entry id -> reason: dead letters, not done

    def merge(self, other: Batch) -> None:
        self.outputs += other.outputs
        self.ops += other.ops
        self.latencies_ms += other.latencies_ms
        self.rejected.update(other.rejected)
        for k, v in other.counters.items():
            self.counters[k] = self.counters.get(k, 0) + v




def ensure_group(r: redis.Redis, stream: str, group: str) -> None:
    try:
        r.xgroup_create(stream, group, id="0", mkstream=True)
    except redis.ResponseError as error:
        if "BUSYGROUP" not in str(error):
            raise


def wake_consumers(pipe, stream: str) -> None:
    """Queue on `pipe` the nudge that wakes the consumers idling on `stream` (keys.wake)."""
    pipe.xadd(keys.wake(stream), {"n": "1"}, maxlen=1, approximate=False)


class StreamConsumer:
    """Runs `handle(items)` over one stage's consumer group until stopped.

    `decode` is the contract's decoder for the stage's entries (Frame.decode, Face.decode,
    Label.decode): items carry `camera` and `ts`. `handle` receives the list of
    (entry_id, item) that survived decoding and the freshness filters and returns a Batch.
    Everything else (Redis, caps, timeouts, the staleness bound) comes from the settings.
    """

    def __init__(self, settings: Settings, stage: str, kind: str,
                 decode: Callable[[dict], object], handle: Callable[[list], Batch], *,
                 count: int = 8, gather_ms: int = 0, stale: bool = False,
                 newest_only: bool = False, block_ms: int = 200,
                 r: redis.Redis | None = None, worker_id: str | None = None):
        """r: the Redis connection to use (a new one if None); worker_id: the consumer's
        name in its group and registry (a new one if None)."""
        s = settings.streams
        self.kind, self.stage = kind, stage
        self.stream, self.group = keys.STAGES[stage]
        self.decode, self.handle = decode, handle
        self.count, self.block_ms, self.gather_ms = count, block_ms, gather_ms
        self.stale_after_s = s.stale_after_s if stale else None
        # A future timestamp would stay inside every window (and hold off alerts) until the
        # clock caught up, so each stage refuses what is ahead by more than the skew bound.
        self.max_skew_s = s.max_clock_skew_s
        # Live mode under overload: of several entries of one camera in one read, only the
        # newest is handled; the older ones are acknowledged as dropped:superseded.
        self.newest_only = newest_only
        self.claim_idle_ms = s.claim_idle_ms
        self.dead_letter_maxlen = s.dead_letter_maxlen
        self.redis = r if r is not None else connect(settings.redis_url)
        self.heartbeat = Heartbeat(self.redis, kind, ttl_s=s.heartbeat_ttl_s,
                                   worker_id=worker_id)
        self.consumer = self.heartbeat.worker_id
        self.stop_event = threading.Event()
        self._read = self.redis.register_script(READ_AND_COUNT)
        self._ack = self.redis.register_script(ACK_AND_COUNT)
        self._lag = self.redis.register_script(LAG)
        self._next_claim = 0.0
        self._claim_cursor = "0-0"
        # Last nudge seen on keys.wake(stream): waiting from it, not from "$", a nudge that
        # came between the empty read and the wait still wakes us at once.
        self._wake_id = "0-0"

    # -- lifecycle -------------------------------------------------------------------------

    def install_signal_handlers(self) -> None:
        def stop(signum, _frame):
            log.info("%s: signal %d, finishing the current batch", self.consumer, signum)
            self.stop_event.set()

        signal.signal(signal.SIGTERM, stop)
        signal.signal(signal.SIGINT, stop)

    def run(self, max_idle_s: float | None = None) -> None:
        """Loop until stopped (or until idle for max_idle_s, for tests and bulk runs)."""
        backoff = Backoff(f"{self.kind} {self.consumer}")
        group_ready = False
        idle_since = time.monotonic()
        log.info("%s %s reading %s", self.kind, self.consumer, self.stream)
        while not self.stop_event.is_set():
            try:
                if not group_ready:
                    ensure_group(self.redis, self.stream, self.group)
                    group_ready = True
                worked = self.step()
                if self.heartbeat.due():
                    self.heartbeat.extra["lag"] = self.lag()
                self.heartbeat.beat()
                backoff.ok()
            except OUTAGE_ERRORS as error:
                metrics.REDIS_OUTAGES.inc()
                group_ready = False
                backoff.sleep_after(error, self.stop_event)
                continue
            except redis.ResponseError as error:
                if "NOGROUP" not in str(error):
                    raise
                # Redis came back empty (restart without persistence): recreate the group.
                log.warning("%s: consumer group %s vanished; recreating", self.kind, self.group)
                group_ready = False
                continue
            now = time.monotonic()
            if worked:
                idle_since = now
            elif max_idle_s is not None and now - idle_since > max_idle_s:
                break
        try:
            self.heartbeat.leave()
        except OUTAGE_ERRORS:
            pass
        log.info("%s %s stopped", self.kind, self.consumer)

    def lag(self) -> int:
        """Entries waiting for this group: not yet read, or read and not yet acknowledged
        (moodstream.accounting.LAG: from counters, without reading the stream)."""
        return int(self._lag(keys=[self.stream, keys.STATS], args=[self.group, self.stage]))

    # -- one iteration ----------------------------------------------------------------------

    def step(self) -> bool:
        entries = self._reclaim()
        if not entries:
            entries = self._read_new(self.count)
            if entries and self.gather_ms and len(entries) < self.count:
                # Batch across cameras: wait a few ms for more before running the model.
                time.sleep(self.gather_ms / 1000)
                entries += self._read_new(self.count - len(entries))
        if not entries:
            # Nothing new: wait for a producer's nudge (a few bytes), at most block_ms.
            woke = self.redis.xread({keys.wake(self.stream): self._wake_id}, count=1,
                                    block=self.block_ms)
            if woke:
                self._wake_id = woke[0][1][-1][0]
            return False
        self.process(entries)
        return True

    def _read_new(self, count: int) -> list:
        raw = self._read(
            keys=[self.stream, keys.STATS],
            args=[self.group, self.consumer, count, f"{self.stage}:delivered"],
        )
        # Lua hands back [id, [field, value, ...]]; make it look like redis-py's XREADGROUP.
        return [(eid, dict(zip(flat[::2], flat[1::2], strict=True))) for eid, flat in raw]

    def _reclaim(self) -> list:
        now = time.monotonic()
        if now < self._next_claim:
            return []
        self._next_claim = now + max(1.0, self.claim_idle_ms / 4000)
        cursor, claimed, *_ = self.redis.xautoclaim(
            self.stream, self.group, self.consumer, self.claim_idle_ms,
            start_id=self._claim_cursor, count=self.count,
        )
        self._claim_cursor = text(cursor)
        claimed = [(eid, f) for eid, f in claimed if f]  # trimmed entries come back empty
        if claimed:
            log.warning("%s: reclaimed %d entries from a dead worker", self.consumer, len(claimed))
        return claimed

    def process(self, entries: list) -> None:
        started = time.perf_counter()
        good, dead, stale, future = [], [], [], []
        now = time.time()
        for eid, fields in entries:
            try:
                item = self.decode(fields)
            except MalformedEntry as error:
                dead.append((eid, fields, str(error)))
                continue
            except Exception as error:  # a decoder bug must not kill the worker either
                dead.append((eid, fields, f"{type(error).__name__}: {error}"))
                continue
            if self.stale_after_s is not None and now - item.ts > self.stale_after_s:
                stale.append(eid)
                continue
            if item.ts - now > self.max_skew_s:
                future.append(eid)
                continue
            good.append((eid, item))
        good, superseded = self.keep_newest(good)
        raw = dict(entries)
        batch = self.run_handler(good, dead, raw)
        for eid, reason in batch.rejected.items():
            dead.append((eid, raw[eid], reason))
        done = [eid for eid, _ in good if eid not in batch.rejected]
        self.commit(batch, good=done, dead=dead, stale=stale, superseded=superseded,
                    future=future)
        metrics.STAGE_SECONDS.labels(self.stage).observe(time.perf_counter() - started)
        self.heartbeat.count(len(entries))

    def keep_newest(self, good: list) -> tuple[list, list]:
        """(kept entries, superseded entry ids); entry ids grow with time within a stream."""
        if not self.newest_only or len(good) < 2:
            return good, []
        newest = {item.camera: eid for eid, item in good}  # later entries win
        kept = set(newest.values())
        return [e for e in good if e[0] in kept], [eid for eid, _ in good if eid not in kept]

    def run_handler(self, good: list, dead: list, raw: dict) -> Batch:
        """Handle the batch; if it fails, retry entry by entry so one poison entry becomes
        a dead letter instead of sinking the whole batch (or the worker)."""
        if not good:
            return Batch()
        try:
            return self.handle(good)
        except OUTAGE_ERRORS:
            raise
        except Exception:
            log.warning("%s: batch failed; retrying its entries one by one", self.consumer)
        merged = Batch()
        for entry in list(good):
            try:
                one = self.handle([entry])
            except OUTAGE_ERRORS:
                raise
            except Exception as error:
                log.exception("%s: entry %s failed", self.consumer, text(entry[0]))
                good.remove(entry)
                reason = f"processing failed: {type(error).__name__}: {error}"
                dead.append((entry[0], raw[entry[0]], reason))
                continue
            merged.merge(one)
        return merged

    def commit(self, batch: Batch, *, good: list, dead: list, stale: list,
               superseded: list = (), future: list = ()) -> None:
        pipe = self.redis.pipeline(transaction=True)
        for out in batch.outputs:
            pipe.xadd(out.stream, out.fields, maxlen=out.maxlen, approximate=True)
        for stream in {out.stream for out in batch.outputs}:
            wake_consumers(pipe, stream)
        for op in batch.ops:
            op(pipe)
        for eid, fields, reason in dead:
            log.warning("%s: dead letter %s: %s", self.consumer, text(eid), reason)
            letter = {k: v for k, v in fields.items() if len(v or b"") <= 1024}
            letter.update({b"_reason": reason, b"_stream": self.stream, b"_id": eid,
                           b"_worker": self.consumer})
            pipe.xadd(keys.DEAD_LETTERS, letter, maxlen=self.dead_letter_maxlen, approximate=True)
        outcomes = [(eid, "done") for eid in good] + [(eid, "dropped:stale") for eid in stale]
        outcomes += [(eid, "dropped:superseded") for eid in superseded]
        outcomes += [(eid, "dropped:future") for eid in future]
        outcomes += [(eid, "dropped:dead") for eid, _, _ in dead]
        args = [self.group]
        for eid, outcome in outcomes:
            args += [eid, f"{self.stage}:{outcome}"]
        self._ack(keys=[self.stream, keys.STATS], args=args, client=pipe)
        for name, value in batch.counters.items():
            if value:
                pipe.hincrby(keys.STATS, name, value)
        if batch.latencies_ms:
            pipe.lpush(keys.LATENCY, *[f"{ms:.1f}" for ms in batch.latencies_ms])
            pipe.ltrim(keys.LATENCY, 0, 2047)
        pipe.execute()
        for outcome, value in (("done", len(good)), ("stale", len(stale)), ("dead", len(dead)),
                               ("superseded", len(superseded)), ("future", len(future))):
            if value:
                metrics.ENTRIES.labels(self.stage, outcome).inc(value)

