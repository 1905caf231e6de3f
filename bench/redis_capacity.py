"""What one Redis carries: frames/s through the frames stream at 640x480 JPEG.

    .venv/bin/python bench/redis_capacity.py [--seconds 5] [--producers 2]

Producers XADD real 640x480 JPEGs (as ingest does, with the counter in the same MULTI);
consumers read them in a group and acknowledge (as detectors do, without running MTCNN).
It prints frames/s and MB/s, and the redis-server's CPU share, against a baseline of the
same loop with 1 KB payloads measured in the same run.
"""

from __future__ import annotations

import argparse
import multiprocessing as mp
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
from moodstream.bench import CLIP  # noqa: E402
from moodstream.contract import Frame  # noqa: E402
from tests.conftest import RedisServer  # noqa: E402

VIDEO = CLIP


def sample_jpeg() -> bytes:
    cap = cv2.VideoCapture(str(VIDEO))
    ok, frame = cap.read()
    if not ok:
        sys.exit(f"cannot read {VIDEO}")
    frame = cv2.resize(frame, (640, 480))
    return cv2.imencode(".jpg", frame, [cv2.IMWRITE_JPEG_QUALITY, 85])[1].tobytes()


def produce(url: str, payload: bytes, seconds: float, counter) -> None:
    r = redis.Redis.from_url(url)
    end, n = time.monotonic() + seconds, 0
    while time.monotonic() < end:
        pipe = r.pipeline(transaction=True)
        pipe.xadd(keys.FRAMES, Frame("cam", n, time.time(), payload).encode(), maxlen=500,
                  approximate=True)
        pipe.hincrby(keys.STATS, "frames:in", 1)
        pipe.execute()
        n += 1
    with counter.get_lock():
        counter.value += n


def consume(url: str, seconds: float, name: str, counter) -> None:
    r = redis.Redis.from_url(url)
    end, n = time.monotonic() + seconds + 0.5, 0
    while time.monotonic() < end:
        got = r.xreadgroup(keys.DETECTORS, name, {keys.FRAMES: ">"}, count=8, block=100)
        for _, entries in got or []:
            ids = [eid for eid, _ in entries]
            r.xack(keys.FRAMES, keys.DETECTORS, *ids)
            n += len(ids)
    with counter.get_lock():
        counter.value += n


def measure(server: RedisServer, payload: bytes, producers: int, seconds: float) -> dict:
    r = server.client()
    r.flushall()
    r.xgroup_create(keys.FRAMES, keys.DETECTORS, id="0", mkstream=True)
    produced, consumed = mp.Value("i", 0), mp.Value("i", 0)
    procs = [mp.Process(target=produce, args=(server.url, payload, seconds, produced))
             for _ in range(producers)]
    procs += [mp.Process(target=consume, args=(server.url, seconds, f"c{i}", consumed))
              for i in range(producers)]
    redis_proc = psutil.Process(server.proc.pid)
    redis_proc.cpu_percent()
    for p in procs:
        p.start()
    for p in procs:
        p.join()
    cpu = redis_proc.cpu_percent()
    fps = produced.value / seconds
    return {"fps": fps, "mb_s": fps * len(payload) / 2**20, "consumed": consumed.value,
            "redis_cpu": cpu}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--seconds", type=float, default=5)
    parser.add_argument("--producers", type=int, default=2)
    args = parser.parse_args()
    jpeg = sample_jpeg()
    with tempfile.TemporaryDirectory() as tmp:
        server = RedisServer(Path(tmp))
        server.start()
        try:
            small = measure(server, b"x" * 1024, args.producers, args.seconds)
            big = measure(server, jpeg, args.producers, args.seconds)
        finally:
            server.stop()
    print(f"{args.producers} producers + {args.producers} consumers, {args.seconds:g}s each, "
          f"{psutil.cpu_count()} cores")
    print("| payload | frames/s | MB/s | redis-server CPU % |")
    print("| --- | --- | --- | --- |")
    print(f"| 1 KB (baseline) | {small['fps']:.0f} | {small['mb_s']:.1f} | "
          f"{small['redis_cpu']:.0f} |")
    print(f"| 640x480 JPEG, {len(jpeg) / 1024:.0f} KB | {big['fps']:.0f} | {big['mb_s']:.1f} | "
          f"{big['redis_cpu']:.0f} |")
    print(f"ratio JPEG/baseline frames/s: {big['fps'] / small['fps']:.2f}")


if __name__ == "__main__":
    main()
