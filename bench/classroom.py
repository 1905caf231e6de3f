"""The classroom benchmark: N cameras at 5 fps through a real `moodstream up`, and the most
cameras that fit at p99 <= 250 ms, for each faces-per-camera workload.

    python bench/classroom.py [--faces 1,5,6,25] [--cameras 8] [--seconds 60] [--capacity]
    moodstream bench [--classroom-only --faces 25 --cameras 12]

The workloads (WORKLOADS), by faces per camera: 1, one face of real video (driver cameras);
5, the mix of group photos and the one-face clip (small groups); 6, six time-shifted copies
of the real clip tiled in one frame (a group in real video motion); 25, a full classroom (the
team photo of about 25 faces). The videos are made in a temporary folder, never in the
repository, one per camera: stills pan and zoom a little with mild noise of the camera's own
seed; real video keeps its own motion, each camera (and each tile) starting at its own
point of the clip; so no two frames and no two cameras carry the same bytes. A private
redis-server and `moodstream up --no-source --detectors 2` run the product as shipped; the
cameras are registered in Redis the way `up` registers its own, and `up`'s camera
supervisor starts their ingest. After a
warm-up, a measured window gives frames/s published and processed (moodstream.accounting),
faces found and labels reused per second, the capture-to-label latency of that window only,
CPU cores and RSS per process kind (from /proc through psutil, processes told apart by their
command line; PSS at the window's end beside it, as RSS counts shared libraries once per
process) and the Redis traffic per camera.
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

from moodstream.bench import MEDIA
from moodstream.bench.cli import log, percentile, print_figures

REPO = Path(__file__).resolve().parent.parent

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
    # "pan": a still (or the clip) panned and zoomed with noise; "video": the clip's own
    # motion; "tiles": copies of the clip side by side, each starting at its own point.
    motion: str = "pan"
    grid: tuple[int, int] = (1, 1)  # columns, rows of tiles


GROUP7 = Scene("group-7", "dlib_2007_007763.jpg", 7, (640, 480))
STAGE = Scene("crowd-stage", "oarriaga_test_image.jpg", 6, (640, 360))
GROUP6 = Scene("group-6", "dlib_2008_002470.jpg", 6, (640, 480))
SELFIE = Scene("selfie-7", "deepface_selfie-many-people.jpg", 7, (640, 480))
GROUP3 = Scene("group-3", "dlib_2008_001322.jpg", 3, (640, 480))
ONE_FACE = Scene("one-face", "fer_woman2.mp4", 1, (596, 336))
# Camera i shows MIX[i % 8]: six multi-face cameras and two one-face ones in every eight,
# like the held-out run (four crowd clips, two one-face clips, two 7-face group photos).
MIX = (GROUP7, STAGE, GROUP6, ONE_FACE, SELFIE, STAGE, GROUP3, ONE_FACE)
# The real clip as a camera sends it: its own motion, no pan, no added noise.
VIDEO1 = Scene("video-1", "fer_woman2.mp4", 1, (596, 336), motion="video")
# Six copies of it, 3 x 2, each a sixth of the clip apart (every other one mirrored): six
# faces of about 55 px, moving as people do.
VIDEO6 = Scene("video-6", "fer_woman2.mp4", 6, (636, 360), motion="tiles", grid=(3, 2))
# The team photo at the ingest's 640 px, covered 1.1 times as the other stills: MTCNN finds
# its 25 clear faces (24 to 26 a frame as it moves) with the detector's default smallest
# face of 40 px.
DENSE = Scene("classroom-25", "retinaface_img3.jpg", 25, (640, 412))


@dataclass(frozen=True)
class Workload:
    key: str  # faces per camera, about: how `--faces` names it
    name: str
    use: str  # what it stands for
    scenes: tuple[Scene, ...]  # camera i shows scenes[i % len(scenes)]
    cameras: int  # the main case's cameras
    step: int = 4  # the capacity search's step up
    limit: int = 48  # and the most it tries


WORKLOADS = {
    "1": Workload("1", "driver", "one face of real video: driver cameras", (VIDEO1,),
                  cameras=8, step=8, limit=64),
    "5": Workload("5", "small groups", "the mix of group photos and the one-face clip "
                  "(about 4.6 faces by eye): small groups", MIX, cameras=8),
    "6": Workload("6", "group, real video", "six tiles of real video: a group in real "
                  "motion", (VIDEO6,), cameras=8),
    "25": Workload("25", "full classroom", "the team photo, about 25 faces: a full "
                   "classroom", (DENSE,), cameras=12),
}


def parse_faces(text: str) -> list[str]:
    """`--faces 1,25` -> ["1", "25"]: the workloads by key, in the order WORKLOADS lists
    them; a clear ValueError for one that does not exist."""
    wanted = [part.strip() for part in text.split(",") if part.strip()]
    unknown = [w for w in wanted if w not in WORKLOADS]
    if unknown or not wanted:
        raise ValueError(f"--faces takes a comma-separated list of {', '.join(WORKLOADS)}; "
                         f"got {text!r}")
    return [key for key in WORKLOADS if key in wanted]


def scene_for(camera: int, scenes: tuple[Scene, ...] = MIX) -> Scene:
    return scenes[camera % len(scenes)]


def mix_summary(cameras: int, scenes: tuple[Scene, ...] = MIX) -> dict:
    """How many cameras show each scene, and the faces per frame a person would count."""
    counts: dict[str, int] = {}
    for i in range(cameras):
        counts[scene_for(i, scenes).name] = counts.get(scene_for(i, scenes).name, 0) + 1
    faces = sum(scene_for(i, scenes).faces for i in range(cameras))
    return {"scenes": counts,
            "multi_face_cameras": sum(scene_for(i, scenes).faces > 1 for i in range(cameras)),
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


def clip_frames(media: Path, fps: float) -> list:
    """The clip's frames at `fps` (every k-th of its own, so it keeps its real duration)."""
    import cv2

    cap = cv2.VideoCapture(str(media))
    if not cap.isOpened():
        raise RuntimeError(f"cannot read {media}")
    native = cap.get(cv2.CAP_PROP_FPS) or 30.0
    step = max(1, round(native / fps))
    frames, index = [], 0
    try:
        while True:
            ok = cap.grab()
            if not ok:
                break
            if index % step == 0:
                frames.append(cap.retrieve()[1])
            index += 1
    finally:
        cap.release()
    if not frames:
        raise RuntimeError(f"no frames in {media}")
    return frames


def tile_offsets(tiles: int, frames: int, camera: int) -> list[int]:
    """Where in the clip each tile of a camera starts: evenly apart, and the whole set
    shifted by a camera's own amount, so that no two tiles or cameras show the same frame."""
    shift = (camera * 37) % frames
    return [(shift + t * frames // tiles) % frames for t in range(tiles)]


def tiled_frame(tiles: list, grid: tuple[int, int]):
    """Tiles (all of one size) laid out `grid` = (columns, rows), row by row."""
    import numpy as np

    columns, rows = grid
    return np.vstack([np.hstack(tiles[r * columns:(r + 1) * columns]) for r in range(rows)])


def split_size(size: tuple[int, int], grid: tuple[int, int]) -> tuple[int, int]:
    """One tile's (width, height) in a frame of `size`; the frame must divide evenly."""
    (w, h), (columns, rows) = size, grid
    if w % columns or h % rows:
        raise ValueError(f"a {w}x{h} frame does not split into {columns}x{rows} tiles")
    return w // columns, h // rows


def scene_frames(scene: Scene, camera: int, seconds: float, fps: float = SOURCE_FPS):
    """Yield one camera's frames of `scene` (BGR at scene.size): see Scene.motion."""
    import cv2
    import numpy as np

    rng = np.random.default_rng(camera)
    phase = rng.uniform(0, 2 * math.pi)
    w, h = scene.size
    media = MEDIA / scene.media
    if scene.motion == "video":
        clip = clip_frames(media, fps)
        first = tile_offsets(1, len(clip), camera)[0]
        for n in range(len(clip)):
            frame = clip[(first + n) % len(clip)]
            yield frame if frame.shape[1::-1] == (w, h) else cover(frame, scene.size, 1.0)
        return
    if scene.motion == "tiles":
        tile = split_size(scene.size, scene.grid)
        clip = [cover(f, tile, 1.0) for f in clip_frames(media, fps)]
        count = scene.grid[0] * scene.grid[1]
        offsets = tile_offsets(count, len(clip), camera)
        for n in range(len(clip)):
            tiles = [clip[(o + n) % len(clip)] for o in offsets]
            tiles = [t[:, ::-1] if i % 2 else t for i, t in enumerate(tiles)]
            yield tiled_frame(tiles, scene.grid)
        return
    if scene.motion != "pan":
        raise ValueError(f"unknown motion {scene.motion!r}")
    # A few noise planes reused in turn: fresh noise per frame costs more than the rest.
    noises = [rng.integers(-6, 7, (h, w, 3), dtype=np.int16) for _ in range(4)]
    if media.suffix == ".mp4":
        for n, frame in enumerate(clip_frames(media, fps)):
            base = cover(frame, scene.size, 1.06)
            yield moving_frame(base, n, 10_000, phase, noises[n % 4])
        return
    image = cv2.imread(str(media), cv2.IMREAD_COLOR)
    if image is None:
        raise RuntimeError(f"cannot read {media}")
    base = cover(image, scene.size)
    frames = max(2, round(seconds * fps))
    for n in range(frames):
        yield moving_frame(base, n, frames, phase, noises[n % 4])


def make_camera_video(scene: Scene, camera: int, out: Path, seconds: float,
                      fps: float = SOURCE_FPS) -> Path:
    """One camera's clip of `scene` (mp4v, looped by ingest): a still's clip lasts
    `seconds`, a video's its own length."""
    import cv2

    writer = cv2.VideoWriter(str(out), cv2.VideoWriter_fourcc(*"mp4v"), fps, scene.size)
    if not writer.isOpened():
        raise RuntimeError(f"OpenCV cannot write {out} (mp4v)")
    try:
        for frame in scene_frames(scene, camera, seconds, fps):
            writer.write(frame)
    finally:
        writer.release()
    return out


def make_workload(folder: Path, cameras: int, seconds: float = 12.0,
                  scenes: tuple[Scene, ...] = MIX) -> list[Path]:
    """One clip per camera in `folder` (made once; a later, larger run reuses them)."""
    if not MEDIA.exists():
        raise FileNotFoundError(f"shared media not found at {MEDIA} (needs ../shared)")
    folder.mkdir(parents=True, exist_ok=True)
    paths = []
    for i in range(cameras):
        scene = scene_for(i, scenes)
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


def reused_labels(r) -> int:
    """Labels a classifier carried over from a track's last classification instead of
    classifying the face again (0 where the classifier classifies every face)."""
    from moodstream import keys

    return int(r.hget(keys.STATS, "labels:reused") or 0)


def frames_counts(stats: dict, reused: int = 0) -> dict:
    """What a window needs of moodstream.accounting's figures. Read leniently: the faces and
    labels counters may be missing (no face yet) or renamed by a later pipeline."""
    frames = stats["frames"]
    return {"in": frames["in"], "processed": frames["processed"],
            "dropped": dict(frames["dropped"]), "pending": frames["pending"],
            "faces": stats.get("faces") or 0, "labels": stats.get("labels") or 0,
            "reused": reused}


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
            "faces_per_s": round((after["faces"] - before["faces"]) / seconds, 1),
            "labels_per_s": round((after["labels"] - before["labels"]) / seconds, 1),
            "reused_per_s": round((after.get("reused", 0) - before.get("reused", 0))
                                  / seconds, 1),
            "p50_ms": percentile(latencies, 0.5), "p99_ms": percentile(latencies, 0.99),
            "latency_samples": len(latencies)}


def cost_per_camera(case: dict) -> dict:
    """A case's cost per camera, all processes in: cores, RSS MB (the largest total over the
    window, shared start-up memory included), and CPU ms per face found per frame
    (cores x 1000 / faces found per second)."""
    cameras = case["cameras"] or 1
    cores = case["cpu_cores"]["total"]
    rss = case["rss_mb"].get("total", {}).get("max")
    faces_s = case.get("faces_per_s")
    if faces_s is None and case.get("faces_per_frame"):  # a case of an older results file
        faces_s = case["faces_per_frame"] * case["processed_fps"]
    return {"cores": round(cores / cameras, 3),
            "rss_mb": round(rss / cameras, 1) if rss is not None else None,
            "cpu_ms_per_face": round(cores * 1000 / faces_s, 3) if faces_s else None}


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
        from moodstream.up import register_camera

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
        before = frames_counts(pipeline_stats(r), reused_labels(r))
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
        after = frames_counts(pipeline_stats(r), reused_labels(r))
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
        case["per_camera"] = cost_per_camera(case)
        if full_drains:
            case["latency_note"] = f"{full_drains} drain(s) hit the 2,048 cap: samples lost"
        case["reasons"] = verdict(case)
        case["fits"] = not case["reasons"]
        return case


def run_case(folder: Path, cameras: int, detectors: int, warmup: float, seconds: float,
             fps: float = CAMERA_FPS, up_args: tuple[str, ...] = (),
             scenes: tuple[Scene, ...] = MIX) -> dict:
    """One classroom case on a fresh Redis and a fresh `up`: the figures of its window."""
    videos = make_workload(folder / "videos", cameras, scenes=scenes)
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


def measure_classroom(folder: Path, cameras: int | None = None, detectors: int = 2,
                      warmup: float = 15.0, seconds: float = 60.0, capacity: bool = True,
                      capacity_seconds: float = 30.0, start: int | None = None,
                      step: int | None = None, limit: int | None = None,
                      up_args: tuple[str, ...] = (),
                      workload: Workload = WORKLOADS["5"]) -> dict:
    """One workload's case at `cameras` (default: the workload's), then (capacity=True) the
    search for the most cameras that fit, each count a shorter run of its own; the main
    case counts as tried. The search starts at the main case's count and steps by the
    workload's step up to its limit unless told otherwise."""
    cameras = cameras or workload.cameras
    scenes = workload.scenes
    log(f"classroom, faces per camera {workload.key} ({workload.name}): {cameras} cameras x "
        f"{CAMERA_FPS:g} fps, {detectors} detectors")
    case = run_case(folder, cameras, detectors, warmup, seconds, up_args=up_args,
                    scenes=scenes)
    out = {"workload": {"faces": workload.key, "name": workload.name, "use": workload.use},
           "mix": mix_summary(cameras, scenes), "source_fps": SOURCE_FPS,
           "goal_p99_ms": GOAL_P99_MS, "up_args": ["--detectors", str(detectors), *up_args],
           "case": case}
    if not capacity:
        return out
    start, step = start or cameras, step or workload.step
    limit = limit or workload.limit
    tried = {cameras: case["fits"]}
    rows = {str(cameras): capacity_row(case) | {"window_s": case["window_s"]}}
    while (n := next_cameras(tried, start, step, limit)) is not None:
        so_far = ", ".join(f"{k} {'fits' if v else 'does not'}" for k, v in sorted(tried.items()))
        log(f"capacity, faces per camera {workload.key}: trying {n} cameras ({so_far})")
        try:
            trial = run_case(folder, n, detectors, warmup, capacity_seconds, up_args=up_args,
                             scenes=scenes)
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


def measure_workloads(folder: Path, faces: list[str], cameras: int | None = None,
                      **options) -> dict[str, dict]:
    """measure_classroom for each workload named in `faces` (WORKLOADS keys), the camera
    videos shared between them: {key: result}, or {key: {"error": why}} for a workload whose
    `up` did not run, so the others still report."""
    out: dict[str, dict] = {}
    for key in faces:
        try:
            out[key] = measure_classroom(folder, cameras, workload=WORKLOADS[key], **options)
        except RuntimeError as error:
            log(f"classroom, faces per camera {key}, failed: {error}")
            out[key] = {"error": (str(error).splitlines() or [repr(error)])[0]}
    return out


def classroom_results(cases: dict[str, dict]) -> dict:
    """Where the workloads' results go in the bench's results: the mix (5 faces) under
    "classroom", as every earlier results file has it (so runs compare), the others under
    "classroom_faces"; a workload that failed under "classroom_error" or in its entry."""
    out: dict = {}
    others = {k: v for k, v in cases.items() if k != "5"}
    if "5" in cases:
        if "error" in cases["5"]:
            out["classroom_error"] = cases["5"]["error"]
        else:
            out["classroom"] = cases["5"]
    if others:
        out["classroom_faces"] = others
    return out


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--faces", default="5",
                        help="workloads by faces per camera, comma-separated among "
                        f"{', '.join(WORKLOADS)} (default 5, the mix)")
    parser.add_argument("--cameras", type=int, help="cameras in each main case (default: the "
                        "workload's, 8; 12 for 25 faces; quick 4)")
    parser.add_argument("--seconds", type=float, help="measured window (default 60; quick 20)")
    parser.add_argument("--warmup", type=float, help="seconds after every camera is up, "
                        "before the window (default 15; quick 8)")
    parser.add_argument("--detectors", type=int, default=2)
    parser.add_argument("--capacity", action="store_true",
                        help="then search for the most cameras that fit")
    parser.add_argument("--capacity-seconds", type=float, default=30.0)
    parser.add_argument("--capacity-start", type=int, help="default: the main case's cameras")
    parser.add_argument("--capacity-step", type=int, help="default: the workload's (4; 8 for "
                        "1 face)")
    parser.add_argument("--capacity-max", type=int, help="default: the workload's (48; 64 for "
                        "1 face)")
    parser.add_argument("--quick", action="store_true", help="4 cameras, 20 s window")
    parser.add_argument("--workload", type=Path,
                        help="folder for the camera videos, kept for later runs (default: a "
                        "temporary folder)")
    parser.add_argument("--json", action="store_true", help="the figures as JSON, last line")
    args = parser.parse_args()

    from moodstream.bench.report import classroom_sections_text

    try:
        faces = parse_faces(args.faces)
    except ValueError as error:
        parser.error(str(error))
    if not MEDIA.exists():
        log(f"skipped: shared media not found at {MEDIA} (needs ../shared)")
        return 0
    with tempfile.TemporaryDirectory(prefix="bench-classroom-") as tmp:
        folder = Path(tmp)
        if args.workload:
            args.workload.mkdir(parents=True, exist_ok=True)
            (folder / "videos").symlink_to(args.workload.resolve(), target_is_directory=True)
        cases = measure_workloads(
            folder, faces, args.cameras or (4 if args.quick else None),
            detectors=args.detectors,
            warmup=args.warmup if args.warmup is not None else (8 if args.quick else 15),
            seconds=args.seconds or (20 if args.quick else 60), capacity=args.capacity,
            capacity_seconds=args.capacity_seconds, start=args.capacity_start,
            step=args.capacity_step, limit=args.capacity_max)
    result = classroom_results(cases) | {"machine": {"cpus": os.cpu_count()}}
    print_figures([classroom_sections_text(result)], result, args.json)
    return 0


if __name__ == "__main__":
    sys.exit(main())
