"""The classroom benchmark: N cameras at 5 fps, most of them multi-face, through a real
`moodstream up`, and the most cameras that fit at p99 <= 250 ms.

    python bench/classroom.py [--cameras 8] [--seconds 60] [--capacity] [--quick]
    moodstream bench                 (its "classroom" section)

The workload is made in a temporary folder, never in the repository: one video per camera,
cut from the group photos and the one-face clip in the shared media, each moving a little
(a slow pan and zoom, mild noise, a phase and noise of its own), so no two frames and no two
cameras carry the same bytes. A private redis-server and `moodstream up --no-source
--detectors 2` run the product as shipped; the cameras are registered in Redis the way `up`
registers its own, and `up`'s camera supervisor starts their ingest. After a warm-up, a
measured window gives frames/s published and processed (moodstream.accounting), the
capture-to-label latency of that window only, CPU cores and RSS per process kind (from /proc
through psutil, processes told apart by their command line; PSS at the window's end beside
it, as RSS counts shared libraries once per process) and the Redis traffic per camera.
"""

from __future__ import annotations

import argparse
import math
import os
import subprocess
import sys
import tempfile
import time
from dataclasses import dataclass
from pathlib import Path

import psutil

from moodstream.bench.cli import log, percentile

REPO = Path(__file__).resolve().parent.parent
MEDIA = Path(os.environ.get("MOODSTREAM_SHARED", REPO.parent / "shared")) / "data" / "media"

GOAL_P99_MS = 250.0
CAMERA_FPS = 5.0
SOURCE_FPS = 15.0  # the rate of the made videos, as an IP camera sends it; ingest samples


# ---------------------------------------------------------------- the workload

@dataclass(frozen=True)
class Scene:
    name: str
    media: str  # file in the shared media folder
    faces: int  # by eye (the media README)
    size: tuple[int, int]  # width, height of the camera's frames


GROUP7 = Scene("group-7", "dlib_2007_007763.jpg", 7, (640, 480))
STAGE = Scene("crowd-stage", "oarriaga_test_image.jpg", 6, (640, 360))
GROUP6 = Scene("group-6", "dlib_2008_002470.jpg", 6, (640, 480))
SELFIE = Scene("selfie-7", "deepface_selfie-many-people.jpg", 7, (640, 480))
GROUP3 = Scene("group-3", "dlib_2008_001322.jpg", 3, (640, 480))
ONE_FACE = Scene("one-face", "fer_woman2.mp4", 1, (596, 336))
# Camera i shows MIX[i % 8]: six multi-face cameras and two one-face ones in every eight,
# like the held-out run (four crowd clips, two one-face clips, two 7-face group photos).
MIX = (GROUP7, STAGE, GROUP6, ONE_FACE, SELFIE, STAGE, GROUP3, ONE_FACE)


def scene_for(camera: int) -> Scene:
    return MIX[camera % len(MIX)]


def mix_summary(cameras: int) -> dict:
    """How many cameras show each scene, and the faces per frame a person would count."""
    counts: dict[str, int] = {}
    for i in range(cameras):
        counts[scene_for(i).name] = counts.get(scene_for(i).name, 0) + 1
    faces = sum(scene_for(i).faces for i in range(cameras))
    return {"scenes": counts, "multi_face_cameras": sum(scene_for(i).faces > 1
                                                        for i in range(cameras)),
            "faces_by_eye_per_frame": round(faces / cameras, 2) if cameras else 0.0}


def motion(index: int, frames: int, phase: float) -> tuple[float, float, float]:
    """(dx, dy, zoom) of frame `index`: one slow pan and zoom cycle over the clip, so the
    loop closes without a jump; a few pixels per frame at most."""
    angle = 2 * math.pi * index / frames + phase
    return 12 * math.sin(angle), 6 * math.sin(2 * angle), 1.0 + 0.03 * math.sin(angle)


def moving_frame(base, index: int, frames: int, phase: float, noise):
    """`base` (already at the camera's size plus a margin) panned and zoomed for frame
    `index`, cropped to the camera's size, with the noise added."""
    import cv2
    import numpy as np

    h, w = noise.shape[:2]
    dx, dy, zoom = motion(index, frames, phase)
    bh, bw = base.shape[:2]
    # Zoom about the centre, then shift: the crop stays inside the margin.
    matrix = np.float32([[zoom, 0, (1 - zoom) * bw / 2 + dx - (bw - w) / 2],
                         [0, zoom, (1 - zoom) * bh / 2 + dy - (bh - h) / 2]])
    frame = cv2.warpAffine(base, matrix, (w, h), flags=cv2.INTER_LINEAR,
                           borderMode=cv2.BORDER_REFLECT)
    return np.clip(frame.astype(np.int16) + noise, 0, 255).astype(np.uint8)


def cover(image, size: tuple[int, int], margin: float = 1.1):
    """The image scaled to cover `size` times `margin` (centre crop beyond it)."""
    import cv2

    w, h = size
    ih, iw = image.shape[:2]
    scale = max(w * margin / iw, h * margin / ih)
    out = cv2.resize(image, (round(iw * scale), round(ih * scale)),
                     interpolation=cv2.INTER_AREA if scale < 1 else cv2.INTER_LINEAR)
    oh, ow = out.shape[:2]
    cw, ch = min(ow, round(w * margin)), min(oh, round(h * margin))
    x, y = (ow - cw) // 2, (oh - ch) // 2
    return out[y:y + ch, x:x + cw]


def make_camera_video(scene: Scene, camera: int, out: Path, seconds: float,
                      fps: float = SOURCE_FPS) -> Path:
    """One camera's clip: a still scene panned and zoomed, or the one-face video shifted,
    both with mild noise of the camera's own seed (mp4v, looped by ingest)."""
    import cv2
    import numpy as np

    rng = np.random.default_rng(camera)
    phase = rng.uniform(0, 2 * math.pi)
    w, h = scene.size
    writer = cv2.VideoWriter(str(out), cv2.VideoWriter_fourcc(*"mp4v"), fps, (w, h))
    if not writer.isOpened():
        raise RuntimeError(f"OpenCV cannot write {out} (mp4v)")
    # A few noise planes reused in turn: fresh noise per frame costs more than the rest.
    noises = [rng.integers(-6, 7, (h, w, 3), dtype=np.int16) for _ in range(4)]
    try:
        if scene.media.endswith(".mp4"):
            cap = cv2.VideoCapture(str(MEDIA / scene.media))
            native = cap.get(cv2.CAP_PROP_FPS) or 30.0
            step = max(1, round(native / fps))  # keep the clip's real duration at `fps`
            index = 0
            while True:
                ok, frame = cap.read()
                if not ok:
                    break
                if index % step == 0:
                    base = cover(frame, scene.size, 1.06)
                    n = index // step
                    writer.write(moving_frame(base, n, 10_000, phase, noises[n % 4]))
                index += 1
            cap.release()
        else:
            image = cv2.imread(str(MEDIA / scene.media), cv2.IMREAD_COLOR)
            if image is None:
                raise RuntimeError(f"cannot read {MEDIA / scene.media}")
            base = cover(image, scene.size)
            frames = max(2, round(seconds * fps))
            for n in range(frames):
                writer.write(moving_frame(base, n, frames, phase, noises[n % 4]))
    finally:
        writer.release()
    return out


def make_workload(folder: Path, cameras: int, seconds: float = 12.0) -> list[Path]:
    """One clip per camera in `folder` (made once; a later, larger run reuses them)."""
    if not MEDIA.exists():
        raise FileNotFoundError(f"shared media not found at {MEDIA} (needs ../shared)")
    folder.mkdir(parents=True, exist_ok=True)
    paths = []
    for i in range(cameras):
        scene = scene_for(i)
        path = folder / f"cam{i:02d}-{scene.name}.mp4"
        if not path.exists():
            make_camera_video(scene, i, path.with_suffix(".part.mp4"), seconds).rename(path)
        paths.append(path)
    return paths


# ---------------------------------------------------------------- processes, from /proc

# `moodstream <command>` -> the kind it is reported under. Several cameras per ingest process
# or one per camera: both are "ingest".
COMMAND_KINDS = {"up": "up", "ingest": "ingest", "cameras": "ingest", "detector": "detector",
                 "classifier": "classifier", "aggregator": "aggregator",
                 "dashboard": "dashboard", "bulk-worker": "bulk-worker"}


def process_kind(cmdline: list[str]) -> str:
    """A process's kind from its command line: redis-server, up, ingest, detector,
    classifier, aggregator, dashboard, bulk-worker, another moodstream command by name, or
    other."""
    words = [w for arg in cmdline for w in (arg.split() if arg else [])]
    if not words:
        return "other"
    program = os.path.basename(words[0])
    if program.startswith("redis-server"):
        return "redis-server"
    if "gunicorn" in program or (len(words) > 1 and "gunicorn" in os.path.basename(words[1])):
        return "dashboard"
    for i, word in enumerate(words):
        if word == "moodstream.cli" or os.path.basename(word) == "moodstream":
            # The first word after it that is not an option is the command (a top-level
            # option's value, as in `--log-level INFO`, is skipped with its option).
            rest = iter(words[i + 1:])
            for arg in rest:
                if arg == "--log-level":
                    next(rest, None)
                elif not arg.startswith("-"):
                    return COMMAND_KINDS.get(arg, arg)
            return "moodstream"
    return "other"


def cpu_cores(first: dict, last: dict, kinds: dict, seconds: float) -> dict[str, float]:
    """Cores used per kind over a window: CPU seconds (user + system) at the window's end
    minus at its start, per process, summed per kind, divided by the window's length.
    A process that started inside the window has no start value: all its time counts."""
    out: dict[str, float] = {}
    for key, end in last.items():
        used = max(0.0, end - first.get(key, 0.0))
        out[kinds[key]] = out.get(kinds[key], 0.0) + used / seconds
    out = {kind: round(value, 3) for kind, value in sorted(out.items())}
    out["total"] = round(sum(out.values()), 3)
    return out


def rss_summary(samples: list[dict[str, int]]) -> dict[str, dict[str, float]]:
    """Per kind (and in total), the mean and the largest of the per-second RSS sums, MB."""
    if not samples:
        return {}
    kinds = sorted(set().union(*samples))
    out = {}
    for kind in [*kinds, "total"]:
        values = [sum(s.values()) if kind == "total" else s.get(kind, 0) for s in samples]
        out[kind] = {"mean": round(sum(values) / len(values) / 2**20, 1),
                     "max": round(max(values) / 2**20, 1)}
    return out


class ProcessSampler:
    """CPU time and RSS of some processes and all their descendants, sampled from /proc.
    Processes are keyed by (pid, start time), so a reused pid is a new process; one that
    exits inside the window keeps its last sample."""

    def __init__(self, roots: list[int]):
        self.roots = roots
        self.kinds: dict[tuple, str] = {}
        self.first: dict[tuple, float] = {}
        self.last: dict[tuple, float] = {}
        self.counts: dict[str, int] = {}
        self.rss: list[dict[str, int]] = []
        self.started = 0.0

    def processes(self) -> list[psutil.Process]:
        out = []
        for pid in self.roots:
            try:
                root = psutil.Process(pid)
                out += [root, *root.children(recursive=True)]
            except psutil.NoSuchProcess:
                continue
        return out

    def sample(self, start: bool = False) -> None:
        if start:
            self.started = time.time()
        rss: dict[str, int] = {}
        for proc in self.processes():
            try:
                with proc.oneshot():
                    key = (proc.pid, proc.create_time())
                    cpu = proc.cpu_times()
                    used = cpu.user + cpu.system
                    size = proc.memory_info().rss
                    if key not in self.kinds:
                        self.kinds[key] = process_kind(proc.cmdline())
            except (psutil.NoSuchProcess, psutil.AccessDenied, psutil.ZombieProcess):
                continue
            if start or (key not in self.first and key[1] < self.started):
                self.first[key] = used  # there before the window: count from now
            self.last[key] = used
            kind = self.kinds[key]
            rss[kind] = rss.get(kind, 0) + size
        self.rss.append(rss)
        self.counts = {}
        for key in self.last:
            self.counts[self.kinds[key]] = self.counts.get(self.kinds[key], 0) + 1

    def cores(self, seconds: float) -> dict[str, float]:
        return cpu_cores(self.first, self.last, self.kinds, seconds)

    def pss_mb(self) -> dict[str, float]:
        """Proportional set size per kind now, MB: RSS counts the libraries every process
        maps once per process; PSS shares them out, so its total is the memory really used."""
        out: dict[str, float] = {}
        for proc in self.processes():
            try:
                pss = proc.memory_full_info().pss
                kind = self.kinds.get((proc.pid, proc.create_time())) or \
                    process_kind(proc.cmdline())
            except (psutil.NoSuchProcess, psutil.AccessDenied, psutil.ZombieProcess,
                    AttributeError):  # no PSS on this platform
                continue
            out[kind] = out.get(kind, 0.0) + pss / 2**20
        out = {kind: round(value, 1) for kind, value in sorted(out.items())}
        return out | {"total": round(sum(out.values()), 1)} if out else {}


# ---------------------------------------------------------------- verdicts

# Frames acknowledged unprocessed because the pipeline could not take them (or a fault);
# any other drop reason a future version adds is reported but not held against the case.
LOSSES = ("cap", "stale", "superseded", "dead", "oversize", "future")


def verdict(case: dict, goal_p99_ms: float = GOAL_P99_MS, share: float = 0.95) -> list[str]:
    """Why a case does not fit (empty: it kept up with p99 within the goal). Kept up means:
    the ingest published the offered rate, the detectors processed what was published, no
    frame was lost and the backlog did not grow by more than a frame per camera."""
    reasons = []
    if case["published_fps"] < share * case["offered_fps"]:
        reasons.append(f"published {case['published_fps']} of {case['offered_fps']:g} "
                       "frames/s offered")
    if case["processed_fps"] < share * case["published_fps"]:
        reasons.append(f"processed {case['processed_fps']} of {case['published_fps']} "
                       "frames/s published")
    lost = {k: v for k, v in case["dropped"].items() if k in LOSSES and v}
    if lost:
        reasons.append("dropped " + ", ".join(f"{v} {k}" for k, v in sorted(lost.items())))
    growth = case["pending_end"] - case["pending_start"]
    if growth > max(case["cameras"], 8):
        reasons.append(f"backlog grew by {growth} frames")
    if case["p99_ms"] is None:
        reasons.append("no latency samples")
    elif case["p99_ms"] > goal_p99_ms:
        reasons.append(f"p99 {case['p99_ms']:g} ms > {goal_p99_ms:g} ms")
    return reasons


def capacity_answer(tried: dict[int, bool]) -> int:
    """The most cameras that fit below the fewest that did not (0: none fit)."""
    lowest_fail = min((n for n, ok in tried.items() if not ok), default=math.inf)
    return max((n for n, ok in tried.items() if ok and n < lowest_fail), default=0)


def next_cameras(tried: dict[int, bool], start: int = 8, step: int = 4, limit: int = 64,
                 resolution: int = 1) -> int | None:
    """The camera count to try next, None when the answer is known: step up from `start`
    by `step` until a count does not fit (or `limit`), then halve the gap between the most
    that fit and the fewest that did not until it is at most `resolution` (1: exact)."""
    if not tried:
        return start
    best = capacity_answer(tried)
    lowest_fail = min((n for n, ok in tried.items() if not ok), default=None)
    if lowest_fail is None:
        above = max(best, start - step) + step
        return above if above <= limit else None
    if lowest_fail - best <= resolution:
        return None
    return (best + lowest_fail) // 2


# ---------------------------------------------------------------- one run

def drain_latencies(r) -> list[float]:
    """Take (and clear) the classifiers' capture-to-label latencies (keys.LATENCY, one per
    face label, capped at 2,048): drained every second, the window gets all of its own and
    none from before it."""
    from moodstream import keys

    pipe = r.pipeline(transaction=True)
    pipe.lrange(keys.LATENCY, 0, -1)
    pipe.delete(keys.LATENCY)
    values, _ = pipe.execute()
    return [float(v) for v in values]


def frame_entry_bytes(r, count: int = 200) -> float:
    """Mean size of the newest frames-stream entries (JPEG and fields), bytes."""
    from moodstream import keys

    entries = r.xrevrange(keys.FRAMES, count=count)
    if not entries:
        return 0.0
    return sum(sum(len(k) + len(v) for k, v in fields.items())
               for _, fields in entries) / len(entries)


def frames_counts(stats: dict) -> dict:
    frames = stats["frames"]
    return {"in": frames["in"], "processed": frames["processed"],
            "dropped": dict(frames["dropped"]), "pending": frames["pending"],
            "faces": stats["faces"], "labels": stats["labels"]}


def window_figures(cameras: int, fps: float, seconds: float, before: dict, after: dict,
                   latencies: list[float]) -> dict:
    """Frames/s, losses, backlog and latency over the window, from two accounting
    snapshots (frames_counts) taken at its start and end."""
    published = after["in"] - before["in"]
    processed = after["processed"] - before["processed"]
    reasons = set(before["dropped"]) | set(after["dropped"])
    dropped = {k: after["dropped"].get(k, 0) - before["dropped"].get(k, 0) for k in reasons}
    return {"cameras": cameras, "camera_fps": fps, "offered_fps": round(cameras * fps, 2),
            "window_s": round(seconds, 1),
            "published_fps": round(published / seconds, 2),
            "processed_fps": round(processed / seconds, 2),
            "dropped": {k: v for k, v in sorted(dropped.items()) if v},
            "pending_start": before["pending"], "pending_end": after["pending"],
            "faces_per_frame": round((after["faces"] - before["faces"]) / processed, 2)
            if processed else None,
            "labels_per_s": round((after["labels"] - before["labels"]) / seconds, 1),
            "p50_ms": percentile(latencies, 0.5), "p99_ms": percentile(latencies, 0.99),
            "latency_samples": len(latencies)}


class UpRun:
    """A private redis-server and `moodstream up --no-source` with `videos` registered as
    cameras, stopped on exit."""

    def __init__(self, folder: Path, videos: list[Path], detectors: int, fps: float,
                 up_args: tuple[str, ...] = ()):
        self.folder, self.videos, self.detectors, self.fps = folder, videos, detectors, fps
        self.up_args = up_args
        self.server = None
        self.up: subprocess.Popen | None = None
        self.log_path = folder / "up.log"

    def __enter__(self) -> UpRun:
        from moodstream.embedded_redis import EmbeddedRedis, free_port
        from moodstream.redis_client import connect
        from moodstream.supervisor import register_camera

        self.folder.mkdir(parents=True, exist_ok=True)
        # The product's own embedded Redis (the binary `up` would run), started here so that
        # each run gets a fresh one and its CPU and memory are measured.
        self.server = EmbeddedRedis(directory=str(self.folder))
        self.server.start()
        self.redis = connect(self.server.url)
        for i, video in enumerate(self.videos):
            register_camera(self.redis, f"cam{i:02d}", str(video), "classroom", self.fps)
        env = dict(os.environ, REDIS_URL=self.server.url, PYTHONUNBUFFERED="1",
                   TF_CPP_MIN_LOG_LEVEL="3", MOODSTREAM_DATA_DIR=str(self.folder / "data"))
        cmd = [sys.executable, "-m", "moodstream.cli", "up", "--no-source", "--detectors",
               str(self.detectors), "--port", str(free_port()), *self.up_args]
        with open(self.log_path, "ab") as out:
            self.up = subprocess.Popen(cmd, env=env, stdout=out, stderr=subprocess.STDOUT,
                                       cwd=self.folder)
        return self

    def __exit__(self, *exc) -> None:
        if self.up is not None:
            try:
                tree = psutil.Process(self.up.pid).children(recursive=True)
            except psutil.NoSuchProcess:
                tree = []
            self.up.terminate()
            try:
                self.up.wait(90)
            except subprocess.TimeoutExpired:
                self.up.kill()
                self.up.wait()
            for proc in tree:  # only what this run started, should `up` leave any behind
                if proc.is_running():
                    proc.kill()
        if self.server is not None:
            self.server.stop()

    @property
    def roots(self) -> list[int]:
        return [self.up.pid, self.server.proc.pid]

    def check_alive(self) -> None:
        if self.up.poll() is not None:
            tail = self.log_path.read_text(errors="replace")[-2000:]
            raise RuntimeError(f"moodstream up exited with {self.up.returncode}:\n{tail}")

    def wait_ready(self, timeout: float = 240.0) -> None:
        """Every worker kind registered and every camera connected and publishing."""
        from moodstream import keys
        from moodstream.accounting import pipeline_stats
        from moodstream.redis_client import text

        want = {"detector": self.detectors, "classifier": 1, "aggregator": 1}
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            self.check_alive()
            workers = pipeline_stats(self.redis)["workers"]
            pipe = self.redis.pipeline(transaction=False)
            for i in range(len(self.videos)):
                pipe.hget(keys.camera_status(f"cam{i:02d}"), "state")
            states = [text(s) if s else "" for s in pipe.execute()]
            if all(workers.get(k, 0) >= n for k, n in want.items()) and \
                    all(s == "connected" for s in states):
                return
            time.sleep(1.0)
        raise RuntimeError(f"not ready after {timeout:.0f}s: workers {workers}, cameras "
                           f"{sum(s == 'connected' for s in states)}/{len(states)} connected")

    def measure(self, warmup: float, seconds: float) -> dict:
        from moodstream.accounting import pipeline_stats

        r = self.redis
        self.wait_ready()
        log(f"classroom: {len(self.videos)} cameras up; warm-up {warmup:g} s, window "
            f"{seconds:g} s")
        time.sleep(warmup)
        sampler = ProcessSampler(self.roots)
        me = psutil.Process()
        load_start = os.getloadavg()[0]
        drain_latencies(r)  # what came before the window is not part of it
        before = frames_counts(pipeline_stats(r))
        net0 = r.info("stats")
        own0 = sum(me.cpu_times()[:2])
        sampler.sample(start=True)
        t0 = time.monotonic()
        latencies: list[float] = []
        full_drains = 0
        while (left := t0 + seconds - time.monotonic()) > 0:
            time.sleep(min(1.0, left))
            self.check_alive()
            sampler.sample()
            drained = drain_latencies(r)
            full_drains += len(drained) >= 2048
            latencies += drained
        sampler.sample()
        latencies += drain_latencies(r)
        after = frames_counts(pipeline_stats(r))
        net1 = r.info("stats")
        elapsed = time.monotonic() - t0
        case = window_figures(len(self.videos), self.fps, elapsed, before, after, latencies)
        per_camera = 1 / max(1, len(self.videos)) / elapsed / 1024
        entry = frame_entry_bytes(r)
        case.update(
            detectors=self.detectors,
            cpu_cores=sampler.cores(elapsed),
            processes=dict(sorted(sampler.counts.items())),
            rss_mb=rss_summary(sampler.rss),
            pss_mb=sampler.pss_mb(),
            redis={"frame_entry_kb": round(entry / 1024, 1),
                   "frames_kb_s_per_camera": round(
                       entry * case["published_fps"] / max(1, len(self.videos)) / 1024, 1),
                   "net_in_kb_s_per_camera": round(
                       (net1["total_net_input_bytes"] - net0["total_net_input_bytes"])
                       * per_camera, 1),
                   "net_out_kb_s_per_camera": round(
                       (net1["total_net_output_bytes"] - net0["total_net_output_bytes"])
                       * per_camera, 1)},
            bench_cores=round((sum(me.cpu_times()[:2]) - own0) / elapsed, 3),
            load_avg={"start": round(load_start, 2), "end": round(os.getloadavg()[0], 2)})
        if full_drains:
            case["latency_note"] = f"{full_drains} drain(s) hit the 2,048 cap: samples lost"
        case["reasons"] = verdict(case)
        case["fits"] = not case["reasons"]
        return case


def run_case(folder: Path, cameras: int, detectors: int, warmup: float, seconds: float,
             fps: float = CAMERA_FPS, up_args: tuple[str, ...] = ()) -> dict:
    """One classroom case on a fresh Redis and a fresh `up`: the figures of its window."""
    videos = make_workload(folder / "videos", cameras)
    with tempfile.TemporaryDirectory(prefix=f"run{cameras}-", dir=folder) as run_dir, \
            UpRun(Path(run_dir), videos, detectors, fps, up_args) as run:
        return run.measure(warmup, seconds)


# ---------------------------------------------------------------- the benchmark

def capacity_row(case: dict) -> dict:
    """What the capacity table keeps of a case."""
    return {k: case[k] for k in ("offered_fps", "published_fps", "processed_fps", "p50_ms",
                                 "p99_ms", "faces_per_frame", "fits", "reasons")} | {
        "cpu_cores": case["cpu_cores"]["total"],
        "rss_mb": case["rss_mb"].get("total", {}).get("max")}


def measure_classroom(folder: Path, cameras: int = 8, detectors: int = 2, warmup: float = 15.0,
                      seconds: float = 60.0, capacity: bool = True,
                      capacity_seconds: float = 30.0, start: int = 8, step: int = 4,
                      limit: int = 48, up_args: tuple[str, ...] = ()) -> dict:
    """The classroom case at `cameras`, then (capacity=True) the search for the most
    cameras that fit, each count a shorter run of its own; the main case counts as tried."""
    log(f"classroom: {cameras} cameras x {CAMERA_FPS:g} fps, {detectors} detectors")
    case = run_case(folder, cameras, detectors, warmup, seconds, up_args=up_args)
    out = {"mix": mix_summary(cameras), "source_fps": SOURCE_FPS, "goal_p99_ms": GOAL_P99_MS,
           "up_args": ["--detectors", str(detectors), *up_args], "case": case}
    if not capacity:
        return out
    tried = {cameras: case["fits"]}
    rows = {str(cameras): capacity_row(case) | {"window_s": case["window_s"]}}
    while (n := next_cameras(tried, start, step, limit)) is not None:
        so_far = ", ".join(f"{k} {'fits' if v else 'does not'}" for k, v in sorted(tried.items()))
        log(f"capacity: trying {n} cameras ({so_far})")
        try:
            trial = run_case(folder, n, detectors, warmup, capacity_seconds, up_args=up_args)
        except RuntimeError as error:  # it could not even start: it does not fit
            log(f"capacity: {n} cameras failed to run: {error}")
            trial = {"fits": False, "reasons": [str(error).splitlines()[0]]}
            rows[str(n)] = {"fits": False, "reasons": trial["reasons"]}
        else:
            rows[str(n)] = capacity_row(trial) | {"window_s": trial["window_s"]}
        tried[n] = trial["fits"]
    out["capacity"] = {"cameras": capacity_answer(tried), "window_s": capacity_seconds,
                       "rule": f"{CAMERA_FPS:g} fps each, p99 <= {GOAL_P99_MS:g} ms, kept up",
                       "tried": dict(sorted(rows.items(), key=lambda kv: int(kv[0])))}
    return out


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--cameras", type=int, help="cameras in the main case (default 8; "
                        "quick 4)")
    parser.add_argument("--seconds", type=float, help="measured window (default 60; quick 20)")
    parser.add_argument("--warmup", type=float, help="seconds after every camera is up, "
                        "before the window (default 15; quick 8)")
    parser.add_argument("--detectors", type=int, default=2)
    parser.add_argument("--capacity", action="store_true",
                        help="then search for the most cameras that fit")
    parser.add_argument("--capacity-seconds", type=float, default=30.0)
    parser.add_argument("--capacity-start", type=int, default=8)
    parser.add_argument("--capacity-step", type=int, default=4)
    parser.add_argument("--capacity-max", type=int, default=48)
    parser.add_argument("--quick", action="store_true", help="4 cameras, 20 s window")
    parser.add_argument("--workload", type=Path,
                        help="folder for the camera videos, kept for later runs (default: a "
                        "temporary folder)")
    parser.add_argument("--json", action="store_true", help="the figures as JSON, last line")
    args = parser.parse_args()
    import json

    from moodstream.bench.report import classroom_text

    if not MEDIA.exists():
        log(f"skipped: shared media not found at {MEDIA} (needs ../shared)")
        return 0
    with tempfile.TemporaryDirectory(prefix="bench-classroom-") as tmp:
        folder = Path(tmp)
        if args.workload:
            args.workload.mkdir(parents=True, exist_ok=True)
            (folder / "videos").symlink_to(args.workload.resolve(), target_is_directory=True)
        result = measure_classroom(
            folder, args.cameras or (4 if args.quick else 8), args.detectors,
            args.warmup if args.warmup is not None else (8 if args.quick else 15),
            args.seconds or (20 if args.quick else 60), args.capacity,
            args.capacity_seconds, args.capacity_start, args.capacity_step, args.capacity_max)
    result["machine"] = {"cpus": os.cpu_count()}
    print(classroom_text(result))
    if args.json:
        print(json.dumps(result, separators=(",", ":")))
    return 0


if __name__ == "__main__":
    sys.exit(main())
