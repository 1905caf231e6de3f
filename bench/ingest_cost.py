"""What ingest costs per camera: CPU share of one core and resident memory of the ingest
process(es) for 1 and for 8 cameras at 5 fps, for 640x360 and 1280x720 video sources, with
one process per camera (`moodstream ingest --camera`) and with the cameras sharing one
process (`moodstream ingest --supervised`, what `moodstream cameras` runs).

    .venv/bin/python bench/ingest_cost.py [--seconds 20] [--designs per-process,shared]
                                          [--pythonpath DIR]

The figure that matters is the cost of each additional camera: (cost at 8 - cost at 1) / 7.
CPU is user + system time from /proc (psutil) over the measured window, divided by its
length. RSS counts shared library pages once per process, PSS shares them out; both are
given. --pythonpath runs the ingest of another install (for example the code before this
benchmark: `pip install --no-deps --target DIR <old checkout>`; that code has only the
per-process design). Starts its own redis-server. Nothing here is a pass/fail test.
"""

from __future__ import annotations

import argparse
import json
import os
import shutil
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import cv2
import psutil

REPO = Path(__file__).resolve().parent.parent

sys.path.insert(0, str(REPO))

from moodstream import keys  # noqa: E402
from moodstream.bench import CLIP  # noqa: E402
from tests.conftest import RedisServer  # noqa: E402

DEFAULT_VIDEO = CLIP
SIZES = ((640, 360), (1280, 720))
MIB = 2**20


def make_video(src: Path, width: int, height: int, out: Path, fps: float = 0) -> Path:
    """The clip scaled to width x height, at its own 29.97 fps or at `fps` (a camera set to
    send fewer frames), H.264 as a camera sends it (ffmpeg's libx264 when there, else
    OpenCV's mp4v at the clip's rate)."""
    if shutil.which("ffmpeg"):
        rate = ["-r", f"{fps:g}"] if fps else []
        subprocess.run(["ffmpeg", "-nostdin", "-loglevel", "error", "-y", "-i", str(src),
                        *rate, "-vf", f"scale={width}:{height}", "-an", "-c:v", "libx264",
                        "-preset", "veryfast", "-pix_fmt", "yuv420p", str(out)], check=True)
        return out
    cap = cv2.VideoCapture(str(src))
    writer = cv2.VideoWriter(str(out), cv2.VideoWriter_fourcc(*"mp4v"),
                             cap.get(cv2.CAP_PROP_FPS) or 29.97, (width, height))
    while True:
        ok, frame = cap.read()
        if not ok:
            break
        writer.write(cv2.resize(frame, (width, height), interpolation=cv2.INTER_AREA))
    writer.release()
    return out


def child_env(redis_url: str, pythonpath: str | None) -> dict:
    env = dict(os.environ, REDIS_URL=redis_url, PYTHONUNBUFFERED="1")
    if pythonpath:
        env["PYTHONPATH"] = pythonpath
    return env


def start(design: str, video: Path, cameras: int, fps: float, env: dict, log) -> list:
    cmd = [sys.executable, "-m", "moodstream.cli", "ingest"]
    if design == "per-process":
        return [subprocess.Popen([*cmd, f"--camera=cam{i}", f"--source={video}", "--loop",
                                  f"--fps={fps:g}"], env=env, stdout=log, stderr=log,
                                 cwd=tempfile.gettempdir())
                for i in range(cameras)]
    proc = subprocess.Popen([*cmd, "--supervised"], env=env, stdin=subprocess.PIPE, stdout=log,
                            stderr=log, cwd=tempfile.gettempdir())
    for i in range(cameras):
        line = {"camera": f"cam{i}", "source": str(video), "fps": fps, "loop": True}
        proc.stdin.write((json.dumps(line) + "\n").encode())
    proc.stdin.flush()
    return [proc]


def cpu_seconds(procs: list[psutil.Process]) -> float:
    return sum(sum(p.cpu_times()[:2]) for p in procs)


def measure(server: RedisServer, design: str, video: Path, cameras: int, fps: float,
            seconds: float, warmup: float, env: dict, log) -> dict:
    r = server.client()
    r.flushall()
    popens = start(design, video, cameras, fps, env, log)
    try:
        procs = [psutil.Process(p.pid) for p in popens]
        time.sleep(warmup)  # imports, opening the sources, the first frames
        frames0, cpu0, t0 = int(r.hget(keys.STATS, "frames:in") or 0), cpu_seconds(procs), \
            time.monotonic()
        time.sleep(seconds)
        cpu1, t1 = cpu_seconds(procs), time.monotonic()
        frames1 = int(r.hget(keys.STATS, "frames:in") or 0)
        memory = [p.memory_full_info() for p in procs]
        if any(p.poll() is not None for p in popens):
            raise RuntimeError(f"an ingest died ({design}, {cameras} cameras); see the log")
    finally:
        for p in popens:
            if p.stdin:
                p.stdin.close()
            p.terminate()
        for p in popens:
            p.wait(30)
    return {"cpu": 100 * (cpu1 - cpu0) / (t1 - t0),
            "rss": sum(m.rss for m in memory) / MIB, "pss": sum(m.pss for m in memory) / MIB,
            "fps": (frames1 - frames0) / (t1 - t0) / cameras, "procs": len(procs)}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--video", type=Path, default=DEFAULT_VIDEO)
    parser.add_argument("--seconds", type=float, default=20.0, help="measured window per case")
    parser.add_argument("--warmup", type=float, default=6.0)
    parser.add_argument("--fps", type=float, default=5.0, help="published per camera")
    parser.add_argument("--source-fps", type=float, default=0,
                        help="re-time the source clip to this rate (0: its own 29.97)")
    parser.add_argument("--cameras", type=int, default=8)
    parser.add_argument("--designs", default="per-process,shared")
    parser.add_argument("--pythonpath", help="run the ingest from this install instead")
    parser.add_argument("--json", action="store_true", help="print the figures as JSON too")
    args = parser.parse_args()
    if not args.video.exists():
        raise SystemExit(f"no video at {args.video} (needs ../shared beside the repository)")

    results = []
    with tempfile.TemporaryDirectory(prefix="ingest-cost-") as tmp:
        server = RedisServer(Path(tmp))
        server.start()
        env = child_env(server.url, args.pythonpath)
        try:
            with open(Path(tmp) / "ingest.log", "ab") as log:
                for width, height in SIZES:
                    video = make_video(args.video, width, height, Path(tmp) / f"{width}.mp4",
                                       args.source_fps)
                    for design in args.designs.split(","):
                        one, many = (measure(server, design, video, n, args.fps, args.seconds,
                                             args.warmup, env, log)
                                     for n in (1, args.cameras))
                        results.append({"size": f"{width}x{height}", "design": design,
                                        "one": one, "many": many})
        except RuntimeError:
            print((Path(tmp) / "ingest.log").read_text()[-3000:], file=sys.stderr)
            raise
        finally:
            server.stop()

    n = args.cameras
    load = os.getloadavg()[0]
    print(f"machine: {os.cpu_count()} cores, load average {load:.1f} at the end; "
          f"{args.fps:g} fps per camera from a {args.source_fps or 29.97:g} fps H.264 clip "
          f"({args.video.name}), "
          f"{args.seconds:g} s measured per case\n")
    print("| source | design | cameras | processes | CPU % of a core | RSS MB | PSS MB | "
          "fps per camera |")
    print("| --- | --- | --- | --- | --- | --- | --- | --- |")
    for res in results:
        for case in (res["one"], res["many"]):
            cams = 1 if case is res["one"] else n
            print(f"| {res['size']} | {res['design']} | {cams} | {case['procs']} | "
                  f"{case['cpu']:.1f} | {case['rss']:.0f} | {case['pss']:.0f} | "
                  f"{case['fps']:.2f} |")
    print(f"\nper additional camera: (cost at {n} - cost at 1) / {n - 1}\n")
    print("| source | design | CPU % of a core | RSS MB | PSS MB |")
    print("| --- | --- | --- | --- | --- |")
    for res in results:
        one, many = res["one"], res["many"]
        print(f"| {res['size']} | {res['design']} | {(many['cpu'] - one['cpu']) / (n - 1):.2f} | "
              f"{(many['rss'] - one['rss']) / (n - 1):.1f} | "
              f"{(many['pss'] - one['pss']) / (n - 1):.1f} |")
    if args.json:
        print(json.dumps(results, indent=1))


if __name__ == "__main__":
    main()
