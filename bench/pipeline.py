"""Live pipeline benchmark: throughput with 1 vs 2 detectors on the same frames, latency at a
stated camera load, latency under overload with and without --newest-only, and resident
memory per worker kind.

    .venv/bin/python bench/pipeline.py [--frames 120] [--video PATH]

Starts its own redis-server and real `moodstream` worker processes; prints a table of figures
and ratios measured in this run. Nothing here is a pass/fail test.
"""

from __future__ import annotations

import argparse
import os
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import cv2
import psutil
import redis

REPO = Path(__file__).resolve().parent.parent

sys.path.insert(0, str(REPO))

from moodstream import keys  # noqa: E402
from moodstream.accounting import pipeline_stats  # noqa: E402
from moodstream.bench import CLIP  # noqa: E402
from moodstream.contract import Frame  # noqa: E402
from moodstream.streams import wake_consumers  # noqa: E402
from tests.conftest import RedisServer  # noqa: E402

DEFAULT_VIDEO = CLIP


def jpeg_frames(video: Path, n: int) -> list[bytes]:
    cap = cv2.VideoCapture(str(video))
    out = []
    while len(out) < n:
        ok, frame = cap.read()
        if not ok:
            cap.set(cv2.CAP_PROP_POS_FRAMES, 0)
            continue
        out.append(cv2.imencode(".jpg", frame, [cv2.IMWRITE_JPEG_QUALITY, 85])[1].tobytes())
    return out


def start(kind: str, url: str, *args: str) -> subprocess.Popen:
    env = dict(os.environ, REDIS_URL=url, TF_CPP_MIN_LOG_LEVEL="3",
               MOODSTREAM_STALE_AFTER_S="600")
    return subprocess.Popen([sys.executable, "-m", "moodstream.cli", kind, *args], env=env,
                            stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL, cwd=REPO)


def wait_ready(r: redis.Redis, kinds: dict[str, int], timeout: float = 120) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        have = pipeline_stats(r)["workers"]
        if all(have.get(k, 0) >= n for k, n in kinds.items()):
            return
        time.sleep(0.2)
    raise RuntimeError(f"workers {kinds} did not register")


def publish(r: redis.Redis, jpegs: list[bytes], fps: float | None, cameras: int = 1) -> None:
    """All at once (fps None) or paced like `cameras` cameras at `fps` each."""
    start = time.monotonic()
    for i, jpeg in enumerate(jpegs):
        if fps:
            delay = start + i / (fps * cameras) - time.monotonic()
            if delay > 0:
                time.sleep(delay)
        pipe = r.pipeline(transaction=True)
        pipe.xadd(keys.FRAMES, Frame(f"cam{i % cameras}", i, time.time(), jpeg).encode(),
                  maxlen=10000)
        pipe.hincrby(keys.STATS, "frames:in", 1)
        wake_consumers(pipe, keys.FRAMES)
        pipe.execute()


def drained(r: redis.Redis, n: int) -> bool:
    s = pipeline_stats(r)
    frames = s["frames"]
    return s["stages"]["faces"]["processed"] + sum(s["stages"]["faces"]["dropped"].values()) \
        >= s["faces"] and frames["processed"] + sum(frames["dropped"].values()) >= n \
        and s["stages"]["faces"]["pending"] == 0


def run_case(server: RedisServer, jpegs, detectors: int, fps: float | None, cameras: int = 1,
             *detector_args: str):
    r = server.client()
    r.flushall()
    procs = [start("detector", server.url, "--batch", "4", *detector_args)
             for _ in range(detectors)]
    procs.append(start("classifier", server.url))
    try:
        wait_ready(r, {"detector": detectors, "classifier": 1})
        t0 = time.monotonic()
        publish(r, jpegs, fps, cameras)
        while not drained(r, len(jpegs)):
            time.sleep(0.05)
        elapsed = time.monotonic() - t0
        stats = pipeline_stats(r)
        rss = {p.pid: psutil.Process(p.pid).memory_info().rss / 2**20 for p in procs}
        return {"fps": len(jpegs) / elapsed, "latency": stats["latency_ms"],
                "processed": stats["frames"]["processed"], "dropped": stats["frames"]["dropped"],
                "rss_detector": max(rss[p.pid] for p in procs[:-1]),
                "rss_classifier": rss[procs[-1].pid]}
    finally:
        for p in procs:
            p.terminate()
        for p in procs:
            p.wait(30)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--frames", type=int, default=120)
    parser.add_argument("--video", type=Path, default=DEFAULT_VIDEO)
    parser.add_argument("--camera-fps", type=float, default=2.0,
                        help="per-camera rate for the latency case")
    parser.add_argument("--cameras", type=int, default=2)
    parser.add_argument("--overload-fps", type=float, default=40.0,
                        help="per-camera rate of the 4 cameras in the overload case")
    args = parser.parse_args()
    if not args.video.exists():
        sys.exit(f"no video at {args.video}")
    jpegs = jpeg_frames(args.video, args.frames)
    with tempfile.TemporaryDirectory() as tmp:
        server = RedisServer(Path(tmp))
        server.start()
        try:
            one = run_case(server, jpegs, 1, None)
            two = run_case(server, jpegs, 2, None)
            live = run_case(server, jpegs[: max(20, args.frames // 2)], 1, args.camera_fps,
                            args.cameras)
            overload = {flag: run_case(server, jpegs * 2, 1, args.overload_fps, 4, flag)
                        for flag in ("--no-newest-only", "--newest-only")}
        finally:
            server.stop()
    print(f"machine: {os.cpu_count()} cores; {args.frames} frames of {args.video.name} "
          f"({cv2.imdecode(__import__('numpy').frombuffer(jpegs[0], 'uint8'), 1).shape[1::-1]})")
    print("| case | frames/s | ratio |")
    print("| --- | --- | --- |")
    print(f"| 1 detector, backlog | {one['fps']:.2f} | 1.00 |")
    print(f"| 2 detectors, backlog | {two['fps']:.2f} | {two['fps'] / one['fps']:.2f} |")
    lat = live["latency"]
    print(f"\nlatency capture->label at {args.cameras} cameras x {args.camera_fps:g} fps: "
          f"p50 {lat['p50']} ms, p99 {lat['p99']} ms ({lat['samples']} samples)")
    print(f"\noverload: 4 cameras x {args.overload_fps:g} fps offered to 1 detector "
          f"({len(jpegs) * 2} frames)")
    print("| detector | frames handled | dropped | latency p50 ms | p99 ms |")
    print("| --- | --- | --- | --- | --- |")
    for flag, case in overload.items():
        dropped = ", ".join(f"{k} {v}" for k, v in case["dropped"].items() if v) or "0"
        print(f"| {flag} | {case['processed']} | {dropped} | {case['latency']['p50']} | "
              f"{case['latency']['p99']} |")
    print(f"resident memory: detector {one['rss_detector']:.0f} MB (target <= 500), "
          f"classifier {one['rss_classifier']:.0f} MB (target <= 150)")


if __name__ == "__main__":
    main()
