"""Bulk analysis throughput: frames per second on the shared video with 1 and 2 RQ workers,
against the paper's loop as written (the mtcnn package and Keras ``predict``, one frame and
one face at a time, in one process), all in the same run on the same frames.

    .venv/bin/python bench/bulk_throughput.py [--seconds 8] [--fps 0] [--chunk-seconds 1]

Bulk runs start a private redis-server and real `moodstream bulk-worker` processes; the clock
runs from enqueueing the chunks to the last result, with the workers' models already loaded
(their start-up time is printed separately). The paper loop needs a Keras model file
(models/runs/*/best.keras, or --keras); without one that baseline is skipped with a reason.
Nothing here is a pass/fail test; the machine's other load shows in the figures.
"""

from __future__ import annotations

import argparse
import os
import subprocess
import sys
import time
from pathlib import Path

import cv2
import numpy as np
import redis

REPO = Path(__file__).resolve().parent.parent

sys.path.insert(0, str(REPO))

from moodstream.bench import CLIP  # noqa: E402
from moodstream.bulk import jobs as bulk_jobs  # noqa: E402
from moodstream.config import load_settings  # noqa: E402
from tests.conftest import RedisServer  # noqa: E402

DEFAULT_VIDEO = CLIP


def clip_frames(video: Path, seconds: float) -> tuple[int, float]:
    count, fps = bulk_jobs.probe_video(str(video))
    end = count if seconds <= 0 else min(count, int(round(seconds * fps)))
    return end, fps


def run_bulk(video: Path, end: int, native: float, args, workers: int, model: str) -> dict:
    import tempfile

    from rq import Worker
    from rq.job import JobStatus

    server = RedisServer(Path(tempfile.mkdtemp(prefix="bench-bulk-")))
    server.start()
    procs = []
    try:
        env = dict(os.environ, REDIS_URL=server.url, TF_CPP_MIN_LOG_LEVEL="3",
                   MOODSTREAM_MODEL_PATH=model)
        if args.detector:
            env["MOODSTREAM_DETECTOR"] = args.detector
        t0 = time.monotonic()
        for _ in range(workers):
            procs.append(subprocess.Popen(
                [sys.executable, "-m", "moodstream.cli", "bulk-worker", "--queue", "bench"],
                env=env, cwd=REPO, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL))
        connection = redis.Redis.from_url(server.url)
        queue = bulk_jobs.make_queue("bench", connection)
        while Worker.count(queue=queue) < workers:
            if any(p.poll() is not None for p in procs):
                raise RuntimeError("a bulk worker exited at start")
            time.sleep(0.2)
        startup = time.monotonic() - t0
        tasks = []
        for start, stop in bulk_jobs.plan_chunks(end, native, args.chunk_seconds):
            n = len(bulk_jobs.sample_indices(start, stop, native, args.fps))
            tasks.append(bulk_jobs.Task(str(video), "video", "bench", start, stop, n))
        options = bulk_jobs.default_options(load_settings(), fps=args.fps, model=model,
                                            detector=args.detector)
        t1 = time.monotonic()
        jobs = bulk_jobs.enqueue(queue, tasks, options, retries=0)
        ids = [j.id for j in jobs]
        while True:
            statuses = [j.get_status(refresh=False) for j in bulk_jobs.fetch_jobs(ids, connection)]
            if any(s == JobStatus.FAILED for s in statuses):
                raise RuntimeError("a bulk job failed")
            if all(s == JobStatus.FINISHED for s in statuses):
                break
            time.sleep(0.05)
        elapsed = time.monotonic() - t1
        results = [job.return_value() for job in bulk_jobs.fetch_jobs(ids, connection)]
        frames = sum(r["frames"] for r in results)
        faces = sum(len(r["rows"]) for r in results)
        return {"frames": frames, "faces": faces, "seconds": elapsed, "startup": startup}
    finally:
        for p in procs:
            p.terminate()
        for p in procs:
            try:
                p.wait(15)
            except subprocess.TimeoutExpired:
                p.kill()
        server.stop()


def find_keras(path: str | None) -> Path | None:
    if path:
        return Path(path)
    runs = sorted((REPO / "models" / "runs").glob("*/best.keras"),
                  key=lambda p: p.stat().st_mtime, reverse=True)
    return runs[0] if runs else None


def run_paper_loop(video: Path, end: int, native: float, fps: float, keras_path: Path) -> dict:
    """As the paper's demo does it: MTCNN().detect_faces per frame, then for every face a gray
    crop resized to the model input and model.predict on that one face."""
    t0 = time.monotonic()
    from mtcnn import MTCNN

    from moodstream.models.architecture import load_keras
    from moodstream.models.data import OFFSET, SCALE

    detector = MTCNN()
    model = load_keras(keras_path)
    height, width = model.input_shape[1:3]
    startup = time.monotonic() - t0
    wanted = set(bulk_jobs.sample_indices(0, end, native, fps))
    cap = cv2.VideoCapture(str(video))
    frames = faces = 0
    t1 = time.monotonic()
    for index in range(end):
        ok, frame = cap.read()
        if not ok:
            break
        if index not in wanted:
            continue
        rgb = cv2.cvtColor(frame, cv2.COLOR_BGR2RGB)
        gray = cv2.cvtColor(frame, cv2.COLOR_BGR2GRAY)
        for face in detector.detect_faces(rgb):
            x, y, w, h = (max(0, int(v)) for v in face.box)
            crop = cv2.resize(gray[y:y + h, x:x + w], (width, height))
            batch = crop[None, :, :, None].astype(np.float32) * SCALE + OFFSET
            model.predict(batch, verbose=0)
            faces += 1
        frames += 1
    cap.release()
    return {"frames": frames, "faces": faces, "seconds": time.monotonic() - t1,
            "startup": startup}


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--video", type=Path, default=DEFAULT_VIDEO)
    parser.add_argument("--seconds", type=float, default=8.0,
                        help="analyse the first this many seconds (0 = the whole video)")
    parser.add_argument("--fps", type=float, default=0.0,
                        help="frames analysed per second of video (0 = every frame)")
    parser.add_argument("--chunk-seconds", type=float, default=1.0,
                        help="bulk job size; small enough that 2 workers share the clip")
    parser.add_argument("--workers", default="1,2", help="worker counts to run")
    parser.add_argument("--keras", help="Keras model for the paper loop "
                        "(default: the newest models/runs/*/best.keras)")
    parser.add_argument("--model", help="ONNX model for the bulk workers (default: settings)")
    parser.add_argument("--detector", help="bulk face detector (default: as configured, "
                        "$MOODSTREAM_DETECTOR or mtcnn-onnx)")
    args = parser.parse_args()
    os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "3")

    settings = load_settings()
    model = str(args.model or settings.classifier.model_path)
    end, native = clip_frames(args.video, args.seconds)
    print(f"video {args.video.name}: frames 0-{end - 1} at {native:.2f} fps, analysing "
          f"{'every frame' if args.fps <= 0 else f'{args.fps:g} frames/s'}; "
          f"{os.cpu_count()} CPU cores; ONNX model {model}; bulk detector "
          f"{args.detector or settings.detector.name}", flush=True)
    rows = []
    keras_path = find_keras(args.keras)
    if keras_path is None or not keras_path.exists():
        print("paper loop skipped: no Keras model (models/runs/*/best.keras or --keras)")
    else:
        print(f"paper loop: mtcnn package + Keras predict per face, {keras_path}", flush=True)
        rows.append(("paper loop (mtcnn + Keras predict)",
                     run_paper_loop(args.video, end, native, args.fps, keras_path)))
    if not Path(model).exists():
        print(f"bulk runs skipped: no ONNX model at {model}")
    else:
        for n in (int(x) for x in args.workers.split(",")):
            print(f"bulk: {n} worker(s)...", flush=True)
            rows.append((f"bulk, {n} worker{'s' if n > 1 else ''}",
                         run_bulk(args.video, end, native, args, n, model)))
    base = rows[0][1] if rows and rows[0][0].startswith("paper") else None
    print(f"\n{'method':36} {'frames':>6} {'faces':>6} {'seconds':>8} {'frames/s':>9} "
          f"{'vs paper':>9} {'start-up s':>10}")
    for name, r in rows:
        rate = r["frames"] / r["seconds"] if r["seconds"] else float("nan")
        ratio = f"{rate / (base['frames'] / base['seconds']):.2f}x" if base else "-"
        print(f"{name:36} {r['frames']:6d} {r['faces']:6d} {r['seconds']:8.1f} {rate:9.2f} "
              f"{ratio:>9} {r['startup']:10.1f}")
    bulk = [r for name, r in rows if name.startswith("bulk")]
    if len(bulk) >= 2:
        one, two = (r["frames"] / r["seconds"] for r in bulk[:2])
        print(f"\n{rows[-1][0]} vs {rows[-2][0]}: {two / one:.2f}x")
    return 0


if __name__ == "__main__":
    sys.exit(main())
