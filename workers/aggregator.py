"""`moodstream aggregator`: per-camera mood windows, tracks, shifts, alerts and snapshots.

Each camera has one owner among the running aggregators: a lease in Redis (keys.lease),
renewed every tick and taken over when its holder stops renewing it (it died, or it hands
cameras over so that every aggregator holds its share). The owner keeps the camera's state in
memory (per-second counts, recent labels, valence history, active alerts) and persists only
what it publishes: the snapshot (keys.mood), one history point per second and the alert log,
and queues a row per 10 s and each alert change for the history database (moodstream.history).

Labels reach the aggregators through one consumer group, so any aggregator may read a label
of a camera it does not own: it passes it on through keys.handoff(camera), in the same
transaction as its acknowledgement. A new owner rebuilds the camera's state from the labels
stream (the last five minutes), its history (valence, shifts) and its last snapshot (active
alerts), then applies handed-off labels. Stream entry ids make every application idempotent,
so nothing is counted twice however labels arrive (read, handed off, reclaimed, rebuilt).
Snapshots go to the Socket.IO room of their camera only.
"""

from __future__ import annotations

import argparse
import json
import logging
import math
import threading
import time
from collections import deque
from dataclasses import dataclass, field

import socketio

from moodstream import keys, metrics
from moodstream.alert_webhook import AlertWebhook
from moodstream.analysis import mood, tracking
from moodstream.camera_settings import MODES, CameraSettings, announce
from moodstream.config import Settings
from moodstream.contract import (
    ActiveAlert,
    AlertEvent,
    LabelSet,
    LivePoint,
    MalformedEntry,
    Snapshot,
)
from moodstream.history import open_writer
from moodstream.history.rows import AlertRow, BucketRow
from moodstream.redis_client import OUTAGE_ERRORS, Backoff, connect, text
from moodstream.redis_lock import HeldKeys
from moodstream.registry import live_workers, new_worker_id
from moodstream.streams import Batch, StreamConsumer

log = logging.getLogger("moodstream.aggregator")
RECENT_S = 60  # labels entries (frames) kept per camera for tracks, smoothing and alerts
RECENT_MAX = 3000  # and at most this many (60 s at 50 fps)
KEEP_S = mood.KEEP_S
HISTORY_KEEP = 120  # valence points kept for shift detection
HANDOFF_MAX = 20000
# A 10 s history bucket is written once labels captured HISTORY_GRACE_S after its end have
# arrived (so its own, even from a lagging detector, are in), or HISTORY_WAIT_MAX_S after its
# end whatever arrived (the camera stopped sending).
HISTORY_GRACE_S = 2.0
HISTORY_WAIT_MAX_S = 30.0
# A new owner writes the buckets of the last 30 s again from the labels it rebuilt: the one
# before may not have closed them (it died, or handed the camera over within the grace).
HISTORY_REWRITE_S = 30

# The snapshot, its history point and alert events land only while the writer owns the lease:
# a holder that lost it (a long pause) cannot write a second history point for the second.
PUBLISH = """
if redis.call('GET', KEYS[1]) ~= ARGV[1] then return 0 end
redis.call('SET', KEYS[2], ARGV[2])
local point = cjson.decode(ARGV[3])
local flat = {}
for k, v in pairs(point) do flat[#flat + 1] = k; flat[#flat + 1] = tostring(v) end
redis.call('XADD', KEYS[3], 'MAXLEN', '~', 3600, '*', unpack(flat))
for i = 4, #ARGV do
  local event = cjson.decode(ARGV[i])
  local ef = {}
  for k, v in pairs(event) do ef[#ef + 1] = k; ef[#ef + 1] = tostring(v) end
  redis.call('XADD', KEYS[4], 'MAXLEN', '~', 1000, '*', unpack(ef))
end
return 1
"""
DRAIN = """
local items = redis.call('LRANGE', KEYS[1], 0, -1)
redis.call('DEL', KEYS[1])
return items
"""


def configure(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--interval", type=float, default=None,
                        help="seconds between snapshots (MOODSTREAM_AGGREGATOR_INTERVAL_S)")
    parser.add_argument("--exit-when-idle", type=float, default=None, help=argparse.SUPPRESS)


@dataclass
class CameraState:
    """What the owner of one camera knows; rebuilt from Redis when a camera changes hands."""

    counts: mood.SecondCounts = field(default_factory=mood.SecondCounts)
    recent: deque = field(default_factory=lambda: deque(maxlen=RECENT_MAX))  # LabelSets
    applied: dict[str, float] = field(default_factory=dict)  # entry id -> capture time
    history: list[tuple[float, float]] = field(default_factory=list)  # (ts, 10 s valence)
    last_shift: float = 0.0
    alerts: dict[str, float] = field(default_factory=dict)  # active kind -> since
    first_seen: float | None = None
    latest: float = 0.0  # capture time of the newest label applied
    bucket: int | None = None  # start of the open 10 s history bucket
    faces_seen: dict[int, list[float]] = field(default_factory=dict)  # bucket -> snapshots'
    # Closed buckets that late labels (an edge node's backlog) added to: written again.
    late_buckets: set[int] = field(default_factory=set)

    def bucket_done(self, now: float) -> bool:
        end = self.bucket + mood.BUCKET_S
        return now >= end + HISTORY_WAIT_MAX_S or (
            now >= end + HISTORY_GRACE_S and self.latest >= end + HISTORY_GRACE_S)

    def closed_buckets(self, cam: str, now: float, faces: float, *,
                       all_open: bool = False) -> list[BucketRow]:
        """History rows of the 10 s buckets that are done (all of them up to now with
        all_open, when stopping), and the snapshot's faces noted for the open one."""
        current = int(now) // mood.BUCKET_S * mood.BUCKET_S
        if self.bucket is None or self.bucket < current - KEEP_S + mood.BUCKET_S:
            self.bucket = current  # new owner, or back after a long pause: counts are gone
        rows = []
        while self.bucket_done(now) or (all_open and self.bucket <= current):
            row = mood.history_bucket(cam, self.bucket, self.counts,
                                      self.faces_seen.pop(self.bucket, []))
            if row:
                rows.append(row)
            self.bucket += mood.BUCKET_S
        self.faces_seen.setdefault(current, []).append(faces)
        for start in [s for s in self.faces_seen if s < self.bucket]:
            del self.faces_seen[start]
        # A closed bucket that late labels reached is written again from all it now holds
        # (the database keeps the newest row of a bucket).
        for start in sorted(self.late_buckets):
            row = mood.history_bucket(cam, start, self.counts, [])
            if row:
                rows.append(row)
        self.late_buckets.clear()
        return rows

    def apply(self, entry_id: str, label: LabelSet, *, live: bool = True) -> bool:
        """Count one frame's labels once: False if its entry was applied already. A label
        that is not live (captured longer ago than the staleness bound: an edge node's
        backlog after an outage) counts towards its history bucket only: it moves no live
        figure and raises no alert."""
        if entry_id in self.applied:
            return False
        self.applied[entry_id] = label.ts
        self.counts.add(label.ts, label.probs)
        if not live:
            start = int(label.ts) // mood.BUCKET_S * mood.BUCKET_S
            if self.bucket is not None and start < self.bucket:
                self.late_buckets.add(start)
            return True
        self.recent.append(label)
        if self.first_seen is None or label.ts < self.first_seen:
            self.first_seen = label.ts
        self.latest = max(self.latest, label.ts)
        return True

    def prune(self, now: float) -> None:
        while self.recent and self.recent[0].ts < now - RECENT_S:
            self.recent.popleft()
        for eid in [e for e, ts in self.applied.items() if ts < now - KEEP_S - 60]:
            del self.applied[eid]


def register_edge_camera(r, cam: str, status: dict[str, str]) -> None:
    """An edge camera in the registry: its name and mode as its node announced them, unless
    the camera has settings already (an admin's changes stand). No source: nothing central
    reads its frames, and it has no preview."""
    defaults = CameraSettings(name=status.get("name") or cam,
                              mode=status.get("mode") if status.get("mode") in MODES
                              else "classroom", added=time.time())
    pipe = r.pipeline(transaction=True)
    for name, value in defaults.to_hash().items():
        pipe.hsetnx(keys.camera(cam), name, value)
    pipe.sadd(keys.CAMERAS, cam)
    announce(pipe, cam)
    pipe.execute()


def handoff_record(entry_id: str, label: LabelSet) -> str:
    """A label passed to the camera's owner through keys.handoff: its entry id and fields."""
    return json.dumps({"id": entry_id, **label.encode()})


def from_handoff(raw) -> tuple[str, LabelSet] | None:
    try:
        fields = json.loads(raw)
        return str(fields.pop("id")), LabelSet.decode(fields)
    except (ValueError, KeyError, TypeError, MalformedEntry):
        log.warning("dropping an unreadable handed-off label")
        return None


class Aggregator:
    """Owns a share of the cameras, applies their labels, publishes their snapshots."""

    def __init__(self, settings: Settings, owner: str):
        self.redis = connect(settings.redis_url)
        self.owner = owner
        a = settings.aggregator
        self.interval, self.lease_ms = a.interval_s, int(a.lease_s * 1000)
        self.max_skew_s = settings.streams.max_clock_skew_s  # as the consumer loop drops
        self.stale_s = settings.streams.stale_after_s  # older labels are late: history only
        # Cameras whose labels arrived although they are not registered: an edge node's
        # first labels register its camera (register_edges).
        self.known: set[str] = set()
        self.unregistered: set[str] = set()
        # Write-only emitter: the dashboard's Socket.IO server relays through this queue (the
        # channel Flask-SocketIO listens on). python-socketio alone: no Flask in this process.
        self.socketio = socketio.RedisManager(settings.redis_url, channel="flask-socketio",
                                              write_only=True)
        self.webhook = AlertWebhook.from_settings(settings.alerts)
        # History rows go to a capped Redis list; the writer's thread moves them to the
        # database, so a slow or absent database never holds up a snapshot.
        self.history = open_writer(self.redis, settings.history)
        self.states: dict[str, CameraState] = {}
        self.lock = threading.Lock()  # the consumer thread applies, the snapshot thread reads
        self.leases = HeldKeys(self.redis)  # renewed only while held, taken only when free
        self._publish = self.redis.register_script(PUBLISH)
        self._drain = self.redis.register_script(DRAIN)

    # -- labels (the consumer thread) ------------------------------------------------------

    def handle(self, items: list) -> Batch:
        """Apply the labels of owned cameras; hand the others to their owners, in the
        consumer's transaction (so a label is handed off exactly when it is acknowledged)."""
        handoff: dict[str, list[str]] = {}
        late: dict[str, int] = {}
        now = time.time()
        with self.lock:
            for eid, label in items:
                live = now - label.ts <= self.stale_s
                if not live:
                    late[label.camera] = late.get(label.camera, 0) + 1
                state = self.states.get(label.camera)
                if state is not None:
                    state.apply(text(eid), label, live=live)
                else:
                    if label.camera not in self.known:
                        self.unregistered.add(label.camera)
                    handoff.setdefault(label.camera, []).append(handoff_record(text(eid),
                                                                               label))

        def write(pipe):
            for cam, records in handoff.items():
                pipe.rpush(keys.handoff(cam), *records)
                pipe.ltrim(keys.handoff(cam), -HANDOFF_MAX, -1)
                pipe.expire(keys.handoff(cam), KEEP_S)

        return Batch(ops=[write] if handoff else [],
                     counters={keys.late_labels(cam): n for cam, n in late.items()})

    def register_edges(self, cameras: list[str]) -> list[str]:
        """Registers the cameras whose labels arrived unannounced and whose status says they
        are edge nodes (not one an admin removed). Returns the cameras, with those added."""
        self.known = set(cameras)
        with self.lock:
            candidates, self.unregistered = sorted(self.unregistered - self.known), set()
        added = []
        for cam in candidates:
            status = {text(k): text(v) for k, v in
                      self.redis.hgetall(keys.camera_status(cam)).items()}
            if status.get("kind") != "edge" or self.redis.sismember(keys.REMOVED_CAMERAS, cam):
                continue
            register_edge_camera(self.redis, cam, status)
            log.info("camera %s: registered from its edge node (%s)", cam,
                     status.get("host", "unknown host"))
            added.append(cam)
        self.known.update(added)
        return sorted(self.known)

    # -- ownership -------------------------------------------------------------------------

    def fair_share(self, cameras: int) -> int:
        """Cameras per aggregator. A peer counts while its heartbeat is younger than a lease,
        so a dead one's cameras are taken over as soon as their leases lapse."""
        now = time.time()
        peers = sum(1 for w in live_workers(self.redis) if w.get("kind") == "aggregator"
                    and now - float(w.get("seen", 0)) <= self.lease_ms / 1000)
        return math.ceil(cameras / max(1, peers))

    def balance(self, cameras: list[str]) -> None:
        """Renew owned leases, drop lost ones, take free ones up to a fair share, and hand
        one surplus camera back per tick (another aggregator takes it)."""
        for cam in list(self.states):
            if cam not in cameras or not self.leases.renew(keys.lease(cam), self.owner,
                                                           self.lease_ms):
                log.info("camera %s: no longer ours", cam)
                with self.lock:
                    self.states.pop(cam, None)
        share = self.fair_share(len(cameras))
        for cam in cameras:
            if cam in self.states or len(self.states) >= share:
                continue
            if self.leases.take(keys.lease(cam), self.owner, self.lease_ms):
                self.take(cam)
        if len(self.states) > share:
            cam = sorted(self.states)[-1]
            self.publish(cam, time.time())  # the next owner starts from this snapshot
            with self.lock:
                self.states.pop(cam, None)
            self.leases.release(keys.lease(cam), self.owner)
            log.info("camera %s: handed over (holding %d, share %d)", cam,
                     len(self.states) + 1, share)

    def take(self, cam: str) -> None:
        """Become the camera's owner: rebuild its state from what Redis holds."""
        now = time.time()
        state = CameraState()
        start = int((now - KEEP_S) * 1000)
        for eid, fields in self.redis.xrange(keys.LABELS, min=str(start), max="+"):
            if fields.get(b"camera") != cam.encode():  # other cameras': not worth decoding
                continue
            try:
                label = LabelSet.decode(fields)
            except MalformedEntry:
                continue
            # The consumer loop's rule, for labels read again here: none from the future.
            if label.camera == cam and label.ts - now <= self.max_skew_s:
                state.apply(text(eid), label)
        for _, fields in self.redis.xrange(keys.live_points(cam), min=str(int((now - 130) * 1000)),
                                           max="+"):
            point = LivePoint.decode(fields)
            if point is None:
                continue
            if point.frames:
                state.history.append((point.ts, point.valence))
            if point.shift:
                state.last_shift = max(state.last_shift, point.ts)
        previous = Snapshot.from_json(self.redis.get(keys.mood(cam)))
        if previous is not None:
            state.alerts = {a.kind: a.since for a in previous.alerts}
        state.bucket = int(now - HISTORY_REWRITE_S) // mood.BUCKET_S * mood.BUCKET_S
        with self.lock:
            self.states[cam] = state
        self.drain(cam)
        log.info("camera %s: ours now (%d labels of the last %d s rebuilt)", cam,
                 len(state.applied), KEEP_S)

    def drain(self, cam: str) -> None:
        items = self._drain(keys=[keys.handoff(cam)])
        with self.lock:
            state = self.states.get(cam)
            if state is None:  # lost meanwhile: give them back for the next owner
                if items:
                    self.redis.rpush(keys.handoff(cam), *items)
                return
            now = time.time()
            for raw in items:
                record = from_handoff(raw)
                if record is not None:
                    state.apply(*record, live=now - record[1].ts <= self.stale_s)

    # -- snapshots (the snapshot thread) ---------------------------------------------------

    def loop(self, stop: threading.Event) -> None:
        backoff = Backoff("aggregator snapshots")
        while not stop.wait(self.interval):
            try:
                cameras = self.register_edges(
                    sorted(text(c) for c in self.redis.smembers(keys.CAMERAS)))
                self.balance(cameras)
                now = time.time()
                for cam in sorted(self.states):
                    self.drain(cam)
                    self.publish(cam, now)
                backoff.ok()
            except OUTAGE_ERRORS as error:
                backoff.sleep_after(error, stop)
            except Exception:  # one bad camera must not stop the others' snapshots
                log.exception("snapshot failed")
        for cam in list(self.states):  # stopping: let another aggregator take over at once
            try:
                self.queue_open_bucket(cam)
                self.leases.release(keys.lease(cam), self.owner)
            except OUTAGE_ERRORS:
                pass

    def queue_open_bucket(self, cam: str) -> None:
        """On the way out, the history bucket still open goes to the database as it is (a
        next owner that still has the labels writes it again, whole)."""
        with self.lock:
            state = self.states.get(cam)
            if state is None or state.bucket is None:
                return
            rows = state.closed_buckets(cam, time.time(), 0.0, all_open=True)
        if rows:
            self.history.add_buckets(rows)

    def snapshot(self, cam: str, state: CameraState, camera: CameraSettings,
                 now: float) -> tuple[Snapshot, list[dict]]:
        state.prune(now)
        windows = {name: mood.window_stats(state.counts, now, s)
                   for name, s in mood.WINDOWS.items()}
        recent = mood.Recent(list(state.recent))
        latest = recent.latest_frame()
        # Faces present = people tracked in the newest moments (a face missed in one frame
        # still counts), unless the camera has gone quiet.
        fresh = latest is not None and now - latest[0] < 15
        people = tracking.people_present(recent.frames, latest[0]) if fresh else []
        ten = windows["10s"]
        snap = Snapshot(camera=cam, ts=round(now, 3), mode=camera.mode, name=camera.name or cam,
                        faces=max(len(people), latest[1]) if fresh else 0,
                        counts=ten.counts, dominant=ten.dominant, valence=ten.valence,
                        windows=windows,
                        current=mood.smoothed_expression(recent, latest[0]) if fresh else None,
                        people=people)
        if ten.frames:
            state.history.append((now, ten.valence))
        del state.history[:-HISTORY_KEEP]
        changes: list[dict] = []
        if camera.mode == "driver":
            snap.alerts, changes = self.update_alerts(state, recent, camera, now)
        else:
            state.alerts.clear()
            if now - state.last_shift > 30:
                snap.shift = mood.valence_shift(state.history, now)
                if snap.shift:
                    state.last_shift = now
        return snap, changes

    def update_alerts(self, state: CameraState, recent: mood.Recent, camera: CameraSettings,
                      now: float) -> tuple[list[ActiveAlert], list[dict]]:
        active = mood.driver_alerts(recent, now, mood.Thresholds.from_camera(camera),
                                    state.first_seen)
        changes = []
        for kind, message in active.items():
            if kind not in state.alerts:
                state.alerts[kind] = now
                changes.append(AlertEvent(now, kind, message, "raised").encode())
        for kind in [k for k in state.alerts if k not in active]:
            changes.append({**AlertEvent(now, kind, "cleared", "cleared").encode(),
                            "since": state.alerts.pop(kind)})
        return [ActiveAlert(k, state.alerts[k], m) for k, m in active.items()], changes

    def publish(self, cam: str, now: float) -> None:
        camera = CameraSettings.load(self.redis, cam) or CameraSettings()
        with self.lock:
            state = self.states.get(cam)
            if state is None:
                return
            snap, changes = self.snapshot(cam, state, camera, now)
            rows = state.closed_buckets(cam, now, snap.faces)
        point = LivePoint(now, snap.faces, snap.valence, snap.dominant, snap.counts,
                             snap.shift, frames=snap.windows["10s"].frames)
        events = [json.dumps({k: v for k, v in c.items() if k != "since"}) for c in changes]
        written = self._publish(keys=[keys.lease(cam), keys.mood(cam), keys.live_points(cam),
                                      keys.alerts(cam)],
                                args=[self.owner, snap.to_json(), json.dumps(point.encode()),
                                      *events])
        if not written:
            return
        self.record_history(cam, snap, changes, rows)
        if self.webhook is not None:
            for change in changes:
                self.webhook.send({"camera": cam, "name": snap.name, **change,
                                   "ts": round(now, 3)})
        self.socketio.emit("mood", snap.to_dict(), to=keys.camera_room(cam))


    def record_history(self, cam: str, snap: Snapshot, changes: list[dict],
                       rows: list[BucketRow]) -> None:
        """Queues the closed buckets, alert changes and valence shifts for the database."""
        events = [AlertRow(cam, c["ts"], c["kind"], c["state"], c["message"]) for c in changes]
        if snap.shift:
            events.append(AlertRow(cam, snap.ts, "shift", "raised",
                                   f"valence {snap.shift.before:+.2f} → "
                                   f"{snap.shift.after:+.2f}"))
        if rows:
            self.history.add_buckets(rows)
        if events:
            self.history.add_alerts(events)


def run(args: argparse.Namespace, settings: Settings) -> int:
    settings = settings.with_options("aggregator", interval_s=args.interval)
    metrics.serve(settings.metrics_port)
    owner = new_worker_id("aggregator")  # its leases and its consumer carry the same name
    aggregator = Aggregator(settings, owner)
    consumer = StreamConsumer(settings, "labels", "aggregator", LabelSet.decode,
                              aggregator.handle, count=256, worker_id=owner)
    consumer.install_signal_handlers()
    thread = threading.Thread(target=aggregator.loop, args=(consumer.stop_event,), daemon=True)
    thread.start()
    aggregator.history.start(consumer.stop_event)
    consumer.run(max_idle_s=args.exit_when_idle)
    thread.join(timeout=5)
    try:  # what is queued reaches the database before an embedded Redis goes away
        aggregator.history.drain()
    except Exception as error:  # the rows stay queued in Redis for the next start
        log.warning("history: could not write the last rows (%s)", str(error)[:200])
    return 0
