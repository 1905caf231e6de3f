"""The edge benchmark: what one `moodstream edge` node costs beside its camera and sends
upstream, and how many edge cameras one central Redis and one aggregator take.

    python bench/edge.py [--seconds 30] [--sizing-seconds 10] [--json]
    moodstream bench --edge-only [--edge-seconds 30]

Footprint: a private redis-server behind a LinkProxy (bench/link.py, which counts the bytes
each way) and a real `moodstream edge` process, for a one-face driver camera (`--source
demo`, the moving portrait, 5 fps) and a still of about 25 faces (the team photo of the
shared media, shrunk by the edge to 640 px; skipped without ../shared). Once labels flow and
after a warm-up, a window gives the edge process's CPU (cores) and largest RSS, the labels
entries and frames per second, and the bytes up and down the link (all of them: entries,
wake-up nudges, status, replies).

Sizing: no edge process. Synthetic labels entries of the real contract (LabelSet.encode,
1 or 25 faces) go into a private redis-server as live edge nodes send them, one MULTI per
frame and camera (the entry and the wake-up nudge, the status every 2 s), each camera on its
own connection, at 5 fps per camera, while one real `moodstream aggregator` owns every
camera. The CPU of redis-server and of the aggregator per 1000 entries/s, and whether the
aggregator kept up, give the cameras one central Redis core and one aggregator process take.
"""

from __future__ import annotations

import argparse
import os
import subprocess
import sys
import tempfile
import threading
import time
from dataclasses import dataclass
from pathlib import Path

import psutil

from moodstream.bench import MEDIA
from moodstream.bench.cli import log, print_figures

REPO = Path(__file__).resolve().parent.parent

CLASSROOM_IMAGE = MEDIA / "retinaface_img3.jpg"
CAMERA_FPS = 5.0
# What one edge node may cost (docs/edge.md): checked against the one-face camera.
GOALS = {"up_kb_s": 5.0, "rss_mb": 250.0, "cpu_cores": 0.15}
SIZING_CAMERAS = (50, 200)  # load levels of the sizing, cameras at 5 fps each
SIZING_FACES = (1, 25)


@dataclass(frozen=True)
class EdgeCase:
    key: str
    name: str
    source: Path | str
    mode: str
    faces: int  # by eye


def edge_cases() -> tuple[list[EdgeCase], dict[str, str]]:
    """(the cases to run, {case: why skipped})."""
    cases = [EdgeCase("driver", "one face, demo portrait", "demo", "driver", 1)]
    skipped = {}
    if CLASSROOM_IMAGE.exists():
        cases.append(EdgeCase("classroom", "~25 faces, still team photo", CLASSROOM_IMAGE,
                              "classroom", 25))
    else:
        skipped["classroom"] = f"shared media not found at {CLASSROOM_IMAGE} (needs ../shared)"
    return cases, skipped


def child_env(redis_url: str, data_dir: Path) -> dict[str, str]:
    env = dict(os.environ, REDIS_URL=redis_url, MOODSTREAM_DATA_DIR=str(data_dir),
               PYTHONUNBUFFERED="1", TF_CPP_MIN_LOG_LEVEL="3", MOODSTREAM_METRICS_PORT="0")
    env.pop("MOODSTREAM_HISTORY_URL", None)  # history into the temporary data dir only
    return env


def cpu_seconds(proc: psutil.Process) -> float:
    times = proc.cpu_times()
    return times.user + times.system


def stop_process(proc: subprocess.Popen, timeout: float = 30.0) -> None:
    if proc.poll() is None:
        proc.terminate()
        try:
            proc.wait(timeout)
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.wait()


def tail(path: Path, chars: int = 2000) -> str:
    try:
        return path.read_text(errors="replace")[-chars:]
    except OSError:
        return ""


# ---------------------------------------------------------------- edge footprint

class EdgeRun:
    """A private redis-server, a LinkProxy in front of it and one `moodstream edge`."""

    def __init__(self, folder: Path, case: EdgeCase, fps: float = CAMERA_FPS):
        self.folder, self.case, self.fps = folder, case, fps
        self.server = self.proxy = self.proc = None
        self.log_path = folder / f"edge-{case.key}.log"

    def __enter__(self) -> EdgeRun:
        import redis

        from moodstream.bench.link import LinkProxy
        from moodstream.embedded_redis import EmbeddedRedis

        self.folder.mkdir(parents=True, exist_ok=True)
        self.server = EmbeddedRedis(directory=str(self.folder))
        self.server.start()
        self.redis = redis.Redis.from_url(self.server.url)
        self.proxy = LinkProxy(self.server.port)
        url = f"redis://:{self.server.password}@127.0.0.1:{self.proxy.port}/0"
        cmd = [sys.executable, "-m", "moodstream.cli", "edge", "--camera", self.case.key,
               "--source", str(self.case.source), "--mode", self.case.mode,
               "--fps", f"{self.fps:g}", "--max-width", "640"]
        with open(self.log_path, "ab") as out:
            self.proc = subprocess.Popen(cmd, env=child_env(url, self.folder / "data"),
                                         stdout=out, stderr=subprocess.STDOUT,
                                         cwd=self.folder)
        return self

    def __exit__(self, *exc) -> None:
        if self.proc is not None:
            stop_process(self.proc)
        if self.proxy is not None:
            self.proxy.close()
        if self.server is not None:
            self.server.stop()

    def check_alive(self) -> None:
        if self.proc.poll() is not None:
            raise RuntimeError(f"moodstream edge exited with {self.proc.returncode}:\n"
                               f"{tail(self.log_path)}")

    def wait_labels(self, timeout: float = 120.0) -> None:
        from moodstream import keys

        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            self.check_alive()
            if self.redis.xlen(keys.LABELS):
                return
            time.sleep(0.5)
        raise RuntimeError(f"no labels from moodstream edge after {timeout:.0f} s:\n"
                           f"{tail(self.log_path)}")

    def last_id(self) -> bytes:
        from moodstream import keys

        newest = self.redis.xrevrange(keys.LABELS, count=1)
        return newest[0][0] if newest else b"0-0"

    def measure(self, warmup: float, seconds: float) -> dict:
        from moodstream import keys

        self.wait_labels()
        log(f"edge, {self.case.key}: labels flow; warm-up {warmup:g} s, window {seconds:g} s")
        time.sleep(warmup)
        self.check_alive()
        proc = psutil.Process(self.proc.pid)
        start_id = self.last_id()
        up0, down0 = self.proxy.up_bytes, self.proxy.down_bytes
        cpu0, t0 = cpu_seconds(proc), time.monotonic()
        rss = [proc.memory_info().rss]
        while (left := t0 + seconds - time.monotonic()) > 0:
            time.sleep(min(1.0, left))
            self.check_alive()
            rss.append(proc.memory_info().rss)
        cpu1, elapsed = cpu_seconds(proc), time.monotonic() - t0
        up, down = self.proxy.up_bytes - up0, self.proxy.down_bytes - down0
        # The window's entries: counted and sized (their fields as Redis holds them).
        entries = self.redis.xrange(keys.LABELS, min=f"({start_id.decode()}", max="+")
        count = len(entries)
        faces = sum(int(fields.get(b"count", 0)) for _, fields in entries)
        payload = sum(len(k) + len(v) for _, fields in entries for k, v in fields.items())
        return {"case": self.case.name, "source": str(self.case.source)
                if self.case.source == "demo" else self.case.source.name,
                "mode": self.case.mode, "camera_fps": self.fps, "window_s": round(elapsed, 1),
                "cpu_cores": round((cpu1 - cpu0) / elapsed, 3),
                "rss_mb": round(max(rss) / 2**20, 1),
                "entries": count, "frames_per_s": round(count / elapsed, 2),
                "faces_per_frame": round(faces / count, 2) if count else None,
                "up_bytes_per_s": round(up / elapsed, 1),
                "down_bytes_per_s": round(down / elapsed, 1),
                "up_bytes_per_entry": round(up / count, 1) if count else None,
                "entry_bytes": round(payload / count, 1) if count else None}


def goal_check(figures: dict) -> dict:
    """Each goal with the measured figure and whether it is met."""
    measured = {"up_kb_s": figures["up_bytes_per_s"] / 1024, "rss_mb": figures["rss_mb"],
                "cpu_cores": figures["cpu_cores"]}
    return {name: {"goal": goal, "measured": round(measured[name], 3),
                   "met": measured[name] <= goal} for name, goal in GOALS.items()}


def measure_footprint(folder: Path, case: EdgeCase, seconds: float = 30.0,
                      warmup: float = 10.0) -> dict:
    with tempfile.TemporaryDirectory(prefix=f"edge-{case.key}-", dir=folder) as run_dir, \
            EdgeRun(Path(run_dir), case) as run:
        figures = run.measure(warmup, seconds)
    if case.faces == 1:
        figures["goals"] = goal_check(figures)
    return figures


# ---------------------------------------------------------------- sizing of the centre

def synthetic_entries(camera: str, faces: int, variants: int = 8, seed: int = 0) -> list[dict]:
    """`variants` labels entries of one camera (LabelSet.encode): the same people (track
    ids) in slightly moving boxes with changing expressions; seq and ts are set when sent."""
    import numpy as np

    from moodstream.contract import CLASSES, LabelSet

    rng = np.random.default_rng(seed)
    columns = max(1, int(np.ceil(np.sqrt(faces))))
    size = 640 // columns
    base = np.array([[(i % columns) * size + 4, (i // columns) * size + 4, size - 8, size - 8]
                     for i in range(faces)], np.int32)
    tracks = np.arange(1, faces + 1, dtype=np.int64) + seed * 1000
    out = []
    for _ in range(variants):
        boxes = base + rng.integers(-3, 4, base.shape, dtype=np.int32)
        probs = rng.dirichlet(np.ones(len(CLASSES)), faces).astype(np.float32)
        out.append(LabelSet(camera, 0, 0.0, boxes, tracks, probs, np.ones(faces, bool))
                   .encode())
    return out


class Feeder(threading.Thread):
    """Edge cameras as the centre sees them: each on its own connection, one MULTI per
    frame (the labels entry and the wake-up nudge, as edge/uplink.py sends live) and its
    status hash every 2 s, the cameras' sends spread evenly over each frame period."""

    def __init__(self, url: str, cameras: list[str], faces: int, fps: float = CAMERA_FPS,
                 status_every_s: float = 2.0):
        super().__init__(daemon=True, name="edge-feeder")
        import redis

        from moodstream.config import load_settings

        self.cameras, self.fps, self.status_every_s = cameras, fps, status_every_s
        self.maxlen = load_settings().streams.labels_maxlen
        self.clients = [redis.Redis.from_url(url) for _ in cameras]
        self.entries = [synthetic_entries(cam, faces, seed=i) for i, cam in enumerate(cameras)]
        self.sent = 0
        self.behind_s = 0.0  # how late the last round started: the feeder's own limit
        self.error: Exception | None = None
        self.stopping = threading.Event()

    def send(self, index: int, seq: int, status: bool) -> None:
        from moodstream import keys
        from moodstream.streams import wake_consumers

        cam = self.cameras[index]
        fields = dict(self.entries[index][seq % len(self.entries[index])],
                      seq=seq, ts=repr(time.time()))
        pipe = self.clients[index].pipeline(transaction=True)
        pipe.xadd(keys.LABELS, fields, maxlen=self.maxlen, approximate=True)
        wake_consumers(pipe, keys.LABELS)
        if status:
            pipe.hset(keys.camera_status(cam), mapping={
                "kind": "edge", "name": cam, "state": "connected", "link": "up",
                "sent": str(seq + 1), "queued": "0", "spilled": "0", "dropped": "0",
                "updated": f"{time.time():.3f}"})
        pipe.execute()
        self.sent += 1

    def run(self) -> None:
        period = 1.0 / self.fps
        status_every = max(1, round(self.status_every_s * self.fps))
        step = period / len(self.cameras)
        started = time.monotonic()
        seq = 0
        try:
            while not self.stopping.is_set():
                for i in range(len(self.cameras)):
                    due = started + seq * period + i * step
                    wait = due - time.monotonic()
                    if wait > 0:
                        time.sleep(wait)
                    self.send(i, seq, seq % status_every == 0)
                    if self.stopping.is_set():
                        return
                seq += 1
                self.behind_s = max(0.0, time.monotonic() - (started + seq * period))
        except Exception as error:  # noqa: BLE001 - reported by the measurement
            self.error = error

    def stop(self) -> None:
        self.stopping.set()
        self.join(10)
        for client in self.clients:
            client.close()


def group_backlog(r) -> tuple[int, int]:
    """(undelivered, unacknowledged) of the aggregators' group, exactly."""
    from moodstream import keys
    from moodstream.accounting import UNDELIVERED

    try:
        undelivered, pending = r.eval(UNDELIVERED, 1, keys.LABELS, keys.AGGREGATORS)
    except Exception:  # noqa: BLE001 - no stream or group yet
        return 0, 0
    return int(undelivered), int(pending)


def labels_counters(r) -> dict[str, int]:
    from moodstream import keys

    stats = {k.decode(): int(v) for k, v in r.hgetall(keys.STATS).items()}
    return {k.split(":", 1)[1]: v for k, v in stats.items() if k.startswith("labels:")}


def measure_centre(folder: Path, faces: int, cameras: int, seconds: float = 10.0,
                   warmup: float = 3.0) -> dict:
    """One load level: `cameras` synthetic edge cameras of `faces` faces at 5 fps into a
    fresh redis-server, one real aggregator owning them all."""
    import redis

    from moodstream import keys
    from moodstream.embedded_redis import EmbeddedRedis

    ids = [f"edge{i:03d}" for i in range(cameras)]
    mode = "driver" if faces == 1 else "classroom"
    with tempfile.TemporaryDirectory(prefix=f"centre-{faces}x{cameras}-", dir=folder) as tmp:
        tmp = Path(tmp)
        server = EmbeddedRedis(directory=str(tmp))
        server.start()
        r = redis.Redis.from_url(server.url)
        log_path = tmp / "aggregator.log"
        aggregator = feeder = None
        try:
            pipe = r.pipeline(transaction=False)
            for cam in ids:  # registered first, so that the aggregator owns them
                pipe.sadd(keys.CAMERAS, cam)
                pipe.hset(keys.camera(cam), mapping={"name": cam, "mode": mode})
            pipe.execute()
            with open(log_path, "ab") as out:
                aggregator = subprocess.Popen(
                    [sys.executable, "-m", "moodstream.cli", "aggregator"],
                    env=child_env(server.url, tmp / "data"), stdout=out,
                    stderr=subprocess.STDOUT, cwd=tmp)
            deadline = time.monotonic() + 120
            while r.exists(*[keys.lease(cam) for cam in ids]) < cameras:
                if aggregator.poll() is not None or time.monotonic() > deadline:
                    raise RuntimeError(f"the aggregator did not take the {cameras} cameras:\n"
                                       f"{tail(log_path)}")
                time.sleep(0.5)
            feeder = Feeder(server.url, ids, faces)
            feeder.start()
            time.sleep(warmup)
            redis_proc, agg_proc = psutil.Process(server.proc.pid), psutil.Process(aggregator.pid)
            me = psutil.Process()
            c0, b0 = labels_counters(r), group_backlog(r)
            cpu0 = (cpu_seconds(redis_proc), cpu_seconds(agg_proc), cpu_seconds(me))
            sent0, t0 = feeder.sent, time.monotonic()
            backlog_max = sum(b0)
            while (left := t0 + seconds - time.monotonic()) > 0:
                time.sleep(min(1.0, left))
                if aggregator.poll() is not None:
                    raise RuntimeError(f"the aggregator exited:\n{tail(log_path)}")
                if feeder.error:
                    raise RuntimeError(f"feeding failed: {feeder.error}")
                backlog_max = max(backlog_max, sum(group_backlog(r)))
            cpu1 = (cpu_seconds(redis_proc), cpu_seconds(agg_proc), cpu_seconds(me))
            sent1, elapsed = feeder.sent, time.monotonic() - t0
            c1, b1 = labels_counters(r), group_backlog(r)
            entry_kb = (r.memory_usage(keys.LABELS, samples=0) or 0) / max(
                1, r.xlen(keys.LABELS)) / 1024
        finally:
            if feeder is not None:
                feeder.stop()
            if aggregator is not None:
                stop_process(aggregator)
            r.close()
            server.stop()
    pushed = (sent1 - sent0) / elapsed
    done = (c1.get("done", 0) - c0.get("done", 0)) / elapsed
    dropped = {k.split(":", 1)[1]: c1[k] - c0.get(k, 0) for k in c1
               if k.startswith("dropped:") and c1[k] - c0.get(k, 0)}
    redis_cores, agg_cores = ((cpu1[i] - cpu0[i]) / elapsed for i in range(2))
    # Kept up: processed what came, lost none as stale, backlog within a second of input.
    kept_up = done >= 0.95 * pushed and not dropped and sum(b1) <= max(pushed, 64)
    return {"faces": faces, "cameras": cameras, "mode": mode, "window_s": round(elapsed, 1),
            "offered_per_s": round(cameras * CAMERA_FPS, 1),
            "pushed_per_s": round(pushed, 1), "done_per_s": round(done, 1),
            "dropped": dropped, "backlog_end": sum(b1), "backlog_max": backlog_max,
            "kept_up": kept_up, "redis_cores": round(redis_cores, 3),
            "aggregator_cores": round(agg_cores, 3),
            "feeder_cores": round((cpu1[2] - cpu0[2]) / elapsed, 3),
            "feeder_behind_s": round(feeder.behind_s, 2),
            "redis_cores_per_1000": round(redis_cores * 1000 / pushed, 3) if pushed else None,
            "aggregator_cores_per_1000": round(agg_cores * 1000 / done, 3) if done else None,
            "stream_kb_per_entry": round(entry_kb, 2)}


def sizing_estimate(levels: list[dict], fps: float = CAMERA_FPS) -> dict:
    """Cameras at `fps` per Redis core and per aggregator (one core), from the heaviest
    load level: its cost per entry counts each camera's fixed share (snapshots, status)
    as it is at that many cameras. An aggregator that did not keep up is still measured
    per entry it processed; `aggregator_kept_up` says which it was."""
    if not levels:
        return {}
    top = max(levels, key=lambda level: level["pushed_per_s"])
    per_redis = (top["pushed_per_s"] / fps / top["redis_cores"]) if top["redis_cores"] else None
    per_agg = (top["done_per_s"] / fps / top["aggregator_cores"]
               if top["aggregator_cores"] else None)
    return {"from_cameras": top["cameras"],
            "cameras_per_redis_core": round(per_redis) if per_redis else None,
            "cameras_per_aggregator": round(per_agg) if per_agg else None,
            "aggregator_kept_up": top["kept_up"]}


def measure_sizing(folder: Path, faces: tuple[int, ...] = SIZING_FACES,
                   cameras: tuple[int, ...] = SIZING_CAMERAS, seconds: float = 10.0,
                   warmup: float = 3.0) -> dict:
    out = {}
    for n_faces in faces:
        levels = []
        for n in cameras:
            log(f"centre sizing: {n} cameras x {CAMERA_FPS:g} fps, {n_faces} face(s) each, "
                f"window {seconds:g} s")
            levels.append(measure_centre(folder, n_faces, n, seconds, warmup))
        out[str(n_faces)] = {"levels": levels, "estimate": sizing_estimate(levels)}
    return out


# ---------------------------------------------------------------- the whole, and its text

def measure_edge(seconds: float = 30.0, warmup: float = 10.0, sizing_seconds: float = 10.0,
                 sizing_cameras: tuple[int, ...] = SIZING_CAMERAS) -> dict:
    """Footprint of each case and sizing of the centre: the figures as results keep them."""
    cases, skipped = edge_cases()
    out: dict = {"camera_fps": CAMERA_FPS, "warmup_s": warmup, "goals": dict(GOALS),
                 "footprint": {}, "sizing": {}}
    if skipped:
        out["skipped"] = skipped
        for key, why in skipped.items():
            log(f"edge, {key}: skipped: {why}")
    with tempfile.TemporaryDirectory(prefix="bench-edge-") as tmp:
        for case in cases:
            out["footprint"][case.key] = measure_footprint(Path(tmp), case, seconds, warmup)
        out["sizing"] = measure_sizing(Path(tmp), cameras=sizing_cameras,
                                       seconds=sizing_seconds)
    return out


def edge_text(results: dict) -> str:
    lines = [f"Edge node (`moodstream edge`, {results['camera_fps']:g} fps), per camera"]
    head = (f"{'case':<30}{'faces':>6}{'frames/s':>9}{'cores':>7}{'RSS MB':>8}{'up B/s':>8}"
            f"{'up B/entry':>11}{'entry B':>8}{'down B/s':>9}")
    lines += [head, "-" * len(head)]
    for f in results.get("footprint", {}).values():
        lines.append(f"{f['case']:<30}{f['faces_per_frame'] or 0:>6}{f['frames_per_s']:>9}"
                     f"{f['cpu_cores']:>7}{f['rss_mb']:>8}{f['up_bytes_per_s']:>8.0f}"
                     f"{f['up_bytes_per_entry'] or 0:>11.0f}{f['entry_bytes'] or 0:>8.0f}"
                     f"{f['down_bytes_per_s']:>9.0f}")
        for name, g in f.get("goals", {}).items():
            unit = {"up_kb_s": "KB/s upstream", "rss_mb": "MB RSS", "cpu_cores": "cores"}[name]
            lines.append(f"    goal {unit} <= {g['goal']:g}: {g['measured']:g} "
                         f"{'met' if g['met'] else 'NOT MET'}")
    for key, why in results.get("skipped", {}).items():
        lines.append(f"{key}: skipped ({why})")
    sizing = results.get("sizing") or {}
    if sizing:
        lines += ["", "Centre sizing (synthetic edge cameras at 5 fps, one redis-server, one "
                  "aggregator)"]
        head = (f"{'faces':>5}{'cams':>6}{'pushed/s':>9}{'done/s':>8}{'backlog':>8}"
                f"{'redis cores':>12}{'agg cores':>10}{'redis/1k':>9}{'agg/1k':>8}"
                f"{'kept up':>8}")
        lines += [head, "-" * len(head)]
        for faces, part in sizing.items():
            for lv in part["levels"]:
                lines.append(f"{faces:>5}{lv['cameras']:>6}{lv['pushed_per_s']:>9}"
                             f"{lv['done_per_s']:>8}{lv['backlog_end']:>8}"
                             f"{lv['redis_cores']:>12}{lv['aggregator_cores']:>10}"
                             f"{lv['redis_cores_per_1000'] or 0:>9}"
                             f"{lv['aggregator_cores_per_1000'] or 0:>8}"
                             f"{'yes' if lv['kept_up'] else 'no':>8}")
        lines.append("(redis/1k, agg/1k: cores per 1000 labels entries/s)")
        for faces, part in sizing.items():
            e = part["estimate"]
            top = next(lv for lv in part["levels"] if lv["cameras"] == e["from_cameras"])
            lines.append(f"{faces} face(s): edge cameras at 5 fps per central Redis core "
                         f"~{e['cameras_per_redis_core']}; per aggregator process (one core) "
                         f"~{e['cameras_per_aggregator']} (from {e['from_cameras']} cameras: "
                         f"aggregator {top['aggregator_cores']:g} cores, backlog "
                         f"{top['backlog_end']} at the end, "
                         f"{'kept up' if e['aggregator_kept_up'] else 'fell behind'})")
    if sizing:
        lines.append("(beyond the heaviest level the figures are extrapolated; the "
                     "aggregator batches more under load, so its cost per entry falls)")
    return "\n".join(lines)


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--seconds", type=float, default=30.0, help="footprint window")
    parser.add_argument("--warmup", type=float, default=10.0)
    parser.add_argument("--sizing-seconds", type=float, default=10.0)
    parser.add_argument("--json", action="store_true", help="the figures as JSON, last line")
    args = parser.parse_args()
    results = measure_edge(args.seconds, args.warmup, args.sizing_seconds)
    print_figures([edge_text(results)], results, args.json)
    return 0


if __name__ == "__main__":
    sys.exit(main())
