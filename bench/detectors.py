"""Face detector benchmark: ms per frame at 640x480 and 1280x720 for mtcnn-onnx, the mtcnn
package (TensorFlow) and OpenCV's Haar cascade, measured in one run on the same frames with
the same settings, with recall on the shared photos beside each, and the resident memory of a
detector worker process for each MTCNN.

    .venv/bin/python bench/detectors.py [--min-face 40] [--rounds 2] [--video-frames 8]
                                         [--batch 4] [--threads 1] [--json OUT]

Frames: evenly spaced frames of the shared video plus every shared photo, each resized to the
frame size (aspect not kept). Detectors run one after another in each round (interleaved, so
that a change in machine load hits all of them); a detector's figure is its best round.
"ms" is wall time per frame, "cpu" the process CPU time per frame (all threads).
"batch N": N frames per detect() call (the live worker's --batch), frames per second then.
Nothing here is a pass/fail test.
"""

from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
import time
from pathlib import Path

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "3")

import cv2  # noqa: E402
import numpy as np  # noqa: E402

REPO = Path(__file__).resolve().parent.parent

sys.path.insert(0, str(REPO))

from moodstream.bench import MEDIA  # noqa: E402
from moodstream.detection.detectors import make_detector  # noqa: E402
from moodstream.detection.detectors.base import iou  # noqa: E402

SIZES = [(640, 480), (1280, 720)]
DETECTORS = ["mtcnn-onnx", "mtcnn", "haar"]
# faces counted by eye (media README); reference boxes from dlib's annotation files
BY_EYE = {"oarriaga_test_image.jpg": 6, "dlib_2007_007763.jpg": 7, "dlib_2008_002470.jpg": 6,
          "dlib_2008_001322.jpg": 3, "deepface_selfie-many-people.jpg": 7,
          "deepface_couple.jpg": 2, "face_recognition_two_people.jpg": 2, "mtcnn_ivan.jpg": 1,
          "fer_justin.jpg": 1, "mtcnn_no-faces.jpg": 0}
DLIB_BOXES = {
    "dlib_2007_007763.jpg": [(194, 90, 37, 37), (158, 114, 37, 37), (381, 89, 45, 44),
                             (94, 198, 37, 37), (178, 214, 37, 37), (294, 86, 37, 37),
                             (309, 233, 45, 44)],
    "dlib_2008_002470.jpg": [(274, 181, 52, 53), (55, 156, 44, 44), (146, 166, 37, 37),
                             (329, 55, 44, 44), (233, 74, 44, 44), (178, 86, 37, 37)],
    "dlib_2008_001322.jpg": [(104, 162, 76, 76), (232, 218, 63, 63), (344, 155, 90, 90)],
}
MATCH_IOU = 0.3  # dlib's boxes are tight squares, MTCNN's run from brow to chin




def source_frames(video_frames: int) -> list[np.ndarray]:
    cap = cv2.VideoCapture(str(MEDIA / "fer_woman2.mp4"))
    total = int(cap.get(cv2.CAP_PROP_FRAME_COUNT)) or 464
    frames = []
    for index in np.linspace(0, total - 1, video_frames).astype(int):
        cap.set(cv2.CAP_PROP_POS_FRAMES, int(index))
        ok, frame = cap.read()
        if ok:
            frames.append(frame)
    cap.release()
    frames += [cv2.imread(str(MEDIA / name)) for name in sorted(BY_EYE)]
    return frames


def timed(detector, frames, batch: int) -> tuple[float, float]:
    """(wall ms, cpu ms) per frame."""
    wall, cpu = time.perf_counter(), time.process_time()
    for i in range(0, len(frames), batch):
        detector.detect(frames[i:i + batch])
    n = len(frames)
    return (time.perf_counter() - wall) * 1000 / n, (time.process_time() - cpu) * 1000 / n


def recall(detector, min_confidence: float) -> dict:
    """On the shared photos at full size: faces found vs counted by eye (capped per photo),
    dlib reference boxes matched (IoU >= MATCH_IOU, one to one), and faces found on the photo
    without faces."""
    found_eye, found_ref, false_on_empty = 0, 0, 0
    for name, count in BY_EYE.items():
        faces = [f for f in detector.detect([cv2.imread(str(MEDIA / name))])[0]
                 if f.score >= min_confidence]
        found_eye += min(len(faces), count)
        if name == "mtcnn_no-faces.jpg":
            false_on_empty = len(faces)
        unused = list(faces)
        for ref in DLIB_BOXES.get(name, []):
            best = max(unused, key=lambda f, r=ref: iou(f.box, r), default=None)
            if best is not None and iou(best.box, ref) >= MATCH_IOU:
                found_ref += 1
                unused.remove(best)
    return {"by_eye": found_eye, "by_eye_total": sum(BY_EYE.values()),
            "dlib_boxes": found_ref, "dlib_total": sum(len(v) for v in DLIB_BOXES.values()),
            "faces_on_no_faces_photo": false_on_empty}


RSS_PROBE = """
import json, sys, time
import cv2, psutil
from moodstream.detection.face_detector import FaceDetector  # all that `moodstream detector` loads
from moodstream.detection.detectors.base import limit_heap, release_memory
limit_heap()  # as the worker's run() does
detector = FaceDetector((64, 64), min_face={min_face}, detector="{name}")
photo = cv2.imread("{photo}")
for size in ((640, 480), (1280, 720)):
    frame = cv2.resize(photo, size)
    for _ in range(5):
        detector.detect([frame] * 4)
busy = psutil.Process().memory_info().rss
release_memory()  # the worker does this every 30 s
hwm = [int(line.split()[1]) * 1024 for line in open("/proc/self/status")
       if line.startswith("VmHWM")][0]
print(json.dumps({{"rss_busy": busy, "rss": psutil.Process().memory_info().rss, "peak": hwm,
                  "tensorflow": "tensorflow" in sys.modules}}))
"""


def worker_rss(name: str, min_face: int) -> dict:
    """A process with what `moodstream detector` imports, after 5 batches of 4 frames at
    640x480 and 5 at 1280x720: RSS then, RSS after release_memory(), peak (VmHWM)."""
    code = RSS_PROBE.format(min_face=min_face, name=name,
                            photo=MEDIA / "oarriaga_test_image.jpg")
    done = subprocess.run([sys.executable, "-c", code], cwd=REPO, capture_output=True,
                          text=True, timeout=300)
    if done.returncode:
        return {"error": done.stderr[-500:]}
    return json.loads(done.stdout.strip().splitlines()[-1])


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--min-face", type=int, default=40)
    parser.add_argument("--scale-factor", type=float, default=0.709)
    parser.add_argument("--min-confidence", type=float, default=0.9)
    parser.add_argument("--rounds", type=int, default=2)
    parser.add_argument("--video-frames", type=int, default=8)
    parser.add_argument("--batch", type=int, default=4)
    parser.add_argument("--threads", type=int, default=1)
    parser.add_argument("--detectors", default=",".join(DETECTORS))
    parser.add_argument("--no-rss", action="store_true")
    parser.add_argument("--json", type=Path, help="also write the figures here")
    args = parser.parse_args(argv)
    if not MEDIA.exists():
        raise SystemExit(f"shared media not found at {MEDIA}")

    names = args.detectors.split(",")
    options = {"min_face": args.min_face, "scale_factor": args.scale_factor,
               "threads": args.threads}
    detectors = {name: make_detector(name, **options) for name in names}
    originals = source_frames(args.video_frames)
    report = {"settings": {**options, "frames": len(originals), "rounds": args.rounds,
                           "batch": args.batch, "cpu_count": os.cpu_count(),
                           "load_avg_at_start": os.getloadavg()},
              "timing": {}, "recall": {}, "rss": {}}
    print(f"{len(originals)} frames ({args.video_frames} video frames + photos), min_face "
          f"{args.min_face}, scale_factor {args.scale_factor}, {args.threads} thread(s), "
          f"load average {os.getloadavg()[0]:.1f} on {os.cpu_count()} CPUs")
    for width, height in SIZES:
        frames = [cv2.resize(f, (width, height), interpolation=cv2.INTER_AREA)
                  for f in originals]
        for detector in detectors.values():
            detector.detect(frames[:2])  # warm up
        best: dict[str, dict] = {}
        for _ in range(args.rounds):
            for name, detector in detectors.items():
                single = timed(detector, frames, 1)
                batched = timed(detector, frames, args.batch) if name != "haar" else single
                got = {"ms": single[0], "cpu": single[1], "batch_ms": batched[0],
                       "batch_cpu": batched[1]}
                entry = best.setdefault(name, got)
                for key, value in got.items():
                    entry[key] = min(entry[key], value)
        report["timing"][f"{width}x{height}"] = best
    for name, detector in detectors.items():
        report["recall"][name] = recall(detector, args.min_confidence)
    if not args.no_rss:
        for name in [n for n in names if n.startswith("mtcnn")]:
            report["rss"][name] = worker_rss(name, args.min_face)

    package = "mtcnn" if "mtcnn" in names else None
    for size, table in report["timing"].items():
        print(f"\n{size}, per frame: 1 frame per call: ms, cpu ms | {args.batch} frames per "
              "call: ms, cpu ms | fps (1 per call) | x the package's speed: by ms, by cpu ms, "
              f"batch {args.batch} by ms, by cpu ms")
        for name, t in table.items():
            ratio = ""
            if package:
                p = table[package]
                ratio = "  ".join(f"{p[k] / t[k]:5.1f}x" for k in ("ms", "cpu", "batch_ms",
                                                                    "batch_cpu"))
                report["timing"][size][name]["x_package"] = {
                    k: round(p[k] / t[k], 2) for k in ("ms", "cpu", "batch_ms", "batch_cpu")}
            print(f"  {name:11s} {t['ms']:7.1f} {t['cpu']:7.1f} | {t['batch_ms']:7.1f} "
                  f"{t['batch_cpu']:7.1f} | {1000 / t['ms']:5.1f} | {ratio}")
    print("\nrecall on the shared photos (full size, score >= "
          f"{args.min_confidence}): by eye, dlib reference boxes (IoU >= {MATCH_IOU}), "
          "faces on mtcnn_no-faces.jpg")
    for name, r in report["recall"].items():
        print(f"  {name:11s} {r['by_eye']}/{r['by_eye_total']}  {r['dlib_boxes']}/"
              f"{r['dlib_total']}  {r['faces_on_no_faces_photo']}")
    if report["rss"]:
        print("\ndetector worker process (what `moodstream detector` imports; batches of 4 "
              "frames at 640x480, then 1280x720): RSS busy | after release_memory() | peak "
              "(VmHWM) | TensorFlow imported")
        for name, r in report["rss"].items():
            if "error" in r:
                print(f"  {name:11s} failed: {r['error']}")
            else:
                print(f"  {name:11s} {r['rss_busy'] / 2**20:6.0f} MB | {r['rss'] / 2**20:6.0f} MB"
                      f" | {r['peak'] / 2**20:6.0f} MB | {r['tensorflow']}")
    if args.json:
        args.json.write_text(json.dumps(report, indent=1))
    return 0


if __name__ == "__main__":
    sys.exit(main())
