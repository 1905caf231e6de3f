"""`moodstream aggregator`: per-camera mood windows, alerts and snapshots for the dashboard.

All state lives in Redis (per-second buckets, a capped list of recent labels, alert state),
so any number of aggregators can share the labels stream; each tick a short lock per camera
decides which one publishes that camera's snapshot.
"""

from __future__ import annotations

import argparse
import json
import logging
import threading
import time

from moodstream import keys
from moodstream.config import Settings
from moodstream.contract import Label
from moodstream.redis_client import OUTAGE_ERRORS, Backoff, connect, text
from moodstream.streams import Batch, StreamConsumer
from moodstream.workers import mood, tracking
from moodstream.workers.alert_webhook import AlertWebhook

log = logging.getLogger("moodstream.aggregator")
RECENT_MAX = 1500  # labels kept per camera for smoothing and alerts (minutes at 5 fps)
BUCKET_KEEP_S = 330


def recent_key(cam: str) -> str:
    return keys.lease(cam) + ":recent"


def alert_state_key(cam: str) -> str:
    return keys.lease(cam) + ":alerts"


def configure(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--interval", type=float, default=1.0, help="seconds between snapshots")
    parser.add_argument("--exit-when-idle", type=float, default=None, help=argparse.SUPPRESS)


def record(labels: list[Label]) -> Batch:
    """Per-second buckets and recent labels, written in the consumer's transaction."""
    batch = Batch()
    buckets: dict[str, dict[str, int]] = {}
    recent: dict[str, list[str]] = {}
    for label in labels:
        second = int(label.ts)
        b = buckets.setdefault(label.camera, {})
        if label.index <= 0:  # one per frame: the first face, or the "nobody" marker
            b[f"{second}:frames"] = b.get(f"{second}:frames", 0) + 1
            b[f"{second}:faces"] = b.get(f"{second}:faces", 0) + label.count
        if label.index >= 0:
            b[f"{second}:{label.label}"] = b.get(f"{second}:{label.label}", 0) + 1
        recent.setdefault(label.camera, []).append(json.dumps(
            {"ts": label.ts, "seq": label.seq, "index": label.index, "count": label.count,
             "box": list(label.box), "probs": [round(p, 3) for p in label.probs]}))

    def write(pipe):
        for cam, fields in buckets.items():
            for name, n in fields.items():
                pipe.hincrby(keys.buckets(cam), name, n)
            pipe.expire(keys.buckets(cam), BUCKET_KEEP_S * 2)
        for cam, items in recent.items():
            pipe.lpush(recent_key(cam), *items)
            pipe.ltrim(recent_key(cam), 0, RECENT_MAX - 1)

    batch.ops.append(write)
    return batch



class Snapshotter:
    """Builds each camera's snapshot once per interval and pushes it to the browsers."""

    def __init__(self, settings: Settings, interval: float):
        self.redis = connect(settings.redis_url)
        self.interval = interval
        from flask_socketio import SocketIO

        # Write-only emitter: the dashboard's Socket.IO server relays through this queue.
        self.socketio = SocketIO(message_queue=settings.redis_url)
        self.valence_history: dict[str, list[tuple[float, float]]] = {}
        self.last_shift: dict[str, float] = {}
        self.webhook = AlertWebhook.from_settings(settings.alerts)

    def loop(self, stop: threading.Event) -> None:
        backoff = Backoff("aggregator snapshots")
        while not stop.wait(self.interval):
            try:
                for cam in sorted(text(c) for c in self.redis.smembers(keys.CAMERAS)):
                    if self.redis.set(keys.lease(cam), "1", nx=True,
                                      px=int(self.interval * 900)):
                        self.publish(cam)
                backoff.ok()
            except OUTAGE_ERRORS as error:
                backoff.sleep_after(error, stop)
            except Exception:  # one bad camera must not stop the others' snapshots
                log.exception("snapshot failed")

    def buckets(self, cam: str, now: float) -> dict[int, dict[str, int]]:
        raw = self.redis.hgetall(keys.buckets(cam))
        out: dict[int, dict[str, int]] = {}
        stale = []
        for name, value in raw.items():
            second, what = text(name).split(":", 1)
            if int(second) < now - BUCKET_KEEP_S:
                stale.append(name)
                continue
            out.setdefault(int(second), {})[what] = int(value)
        if stale:
            self.redis.hdel(keys.buckets(cam), *stale)
        return out

    def snapshot(self, cam: str, now: float) -> dict:
        settings = {text(k): text(v) for k, v in self.redis.hgetall(keys.camera(cam)).items()}
        mode = settings.get("mode", "classroom")
        buckets = self.buckets(cam, now)
        windows = {name: mood.window_stats(buckets, now, s) for name, s in mood.WINDOWS.items()}
        recent = mood.Recent([json.loads(x) for x in self.redis.lrange(recent_key(cam), 0, -1)])
        latest = recent.latest_frame()
        # Faces present = people tracked in the newest moments (a face missed in one frame
        # still counts), unless the camera has gone quiet.
        fresh = latest is not None and now - latest[0] < 15
        people = []
        if fresh:
            window = [lab for lab in recent.labels if lab["ts"] > latest[0] - 60]
            people = tracking.people_present(tracking.build_tracks(window), latest[0])
        faces = max(len(people), latest[1]) if fresh else 0
        snap = {"camera": cam, "ts": round(now, 3), "mode": mode, "name": settings.get("name", cam),
                "faces": faces, "counts": windows["10s"]["counts"],
                "dominant": windows["10s"]["dominant"], "valence": windows["10s"]["valence"],
                "windows": windows,
                "current": mood.smoothed_expression(recent, latest[0]) if fresh else None,
                "alerts": [], "shift": None, "people": people}
        history = self.valence_history.setdefault(cam, [])
        if windows["10s"]["frames"]:
            history.append((now, windows["10s"]["valence"]))
        del history[:-120]
        if mode == "driver":
            snap["alerts"] = self.update_alerts(cam, recent, now, settings)
        elif now - self.last_shift.get(cam, 0) > 30:
            snap["shift"] = mood.valence_shift(history, now)
            if snap["shift"]:
                self.last_shift[cam] = now
        return snap

    def update_alerts(self, cam: str, recent: mood.Recent, now: float, settings: dict) -> list:
        thresholds = mood.Thresholds.from_settings(settings)
        oldest = min((i["ts"] for i in recent.labels), default=None)
        active = mood.driver_alerts(recent, now, thresholds, oldest)
        state = {text(k): float(v) for k, v in self.redis.hgetall(alert_state_key(cam)).items()}
        pipe = self.redis.pipeline(transaction=True)
        changes = []
        for kind, message in active.items():
            if kind not in state:
                state[kind] = now
                pipe.hset(alert_state_key(cam), kind, now)
                changes.append({"kind": kind, "state": "raised", "message": message})
        for kind in [k for k in state if k not in active]:
            changes.append({"kind": kind, "state": "cleared", "message": "cleared",
                            "since": state.pop(kind)})
            pipe.hdel(alert_state_key(cam), kind)
        for change in changes:
            pipe.xadd(keys.alerts(cam), {"ts": now, "kind": change["kind"],
                                        "message": change["message"],
                                        "state": change["state"]}, maxlen=1000,
                      approximate=True)
        pipe.execute()
        if self.webhook is not None:
            for change in changes:
                self.webhook.send({"camera": cam, "name": settings.get("name", cam),
                                   "ts": round(now, 3), **change})
        return [{"kind": k, "since": state[k], "message": m} for k, m in active.items()]

    def publish(self, cam: str) -> None:
        now = time.time()
        snap = self.snapshot(cam, now)
        pipe = self.redis.pipeline(transaction=False)
        pipe.set(keys.mood(cam), json.dumps(snap))
        pipe.xadd(keys.history(cam), {"ts": f"{now:.3f}", "faces": snap["faces"],
                                      "valence": snap["valence"],
                                      "dominant": snap["dominant"] or "",
                                      "counts": json.dumps(snap["counts"]),
                                      "shift": json.dumps(snap["shift"])},
                  maxlen=3600, approximate=True)
        pipe.execute()
        self.socketio.emit("mood", snap)


def run(args: argparse.Namespace, settings: Settings) -> int:
    from moodstream import metrics

    metrics.serve(settings.metrics_port)
    consumer = StreamConsumer(settings, "labels", "aggregator", Label.decode,
                              lambda items: record([lab for _, lab in items]), count=256)
    consumer.install_signal_handlers()
    snapshots = Snapshotter(settings, args.interval)
    thread = threading.Thread(target=snapshots.loop, args=(consumer.stop_event,), daemon=True)
    thread.start()
    consumer.run(max_idle_s=args.exit_when_idle)
    thread.join(timeout=5)
    return 0

