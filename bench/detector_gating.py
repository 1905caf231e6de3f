"""Detection that does not redo work (issue 14): ms per frame of full MTCNN on every frame
against each mechanism (lean pyramid, motion gating, track-guided detection) and all of them
together, on three workloads, with the parity figures beside them.

    .venv/bin/python bench/detector_gating.py [--rounds 2] [--seconds 8] [--json OUT]

Workloads (all at 5 frames per second, as a camera sends them):
- clip: the shared fer_woman2.mp4 (596x336, one face), every 6th frame;
- group: the two dlib group photos (7 and 6 faces) at 640x480, swaying, zooming and turning a
  little from frame to frame as the demo camera does (nothing repeats byte for byte);
- still: one group photo, the same frame again and again (nothing moved).

Each configuration runs every workload through LeanDetector with a real redis-server (the
state goes through Redis as in the worker; one camera, one frame per call). "cpu" is the
process CPU time per frame, steadier than wall time on a shared machine; the ratio is to
full detection measured in the same round, and each figure is the best of the rounds.
Parity: faces found against full detection (labels per second follow faces one to one); the
share of full detection's faces that get the same label from the shipped emotion model on
the crop of the matching face (reused or refined boxes frame the crop a little differently);
and for the lean pyramid, recall of the dlib reference boxes on the annotated photos.
Nothing here is a pass/fail test. `moodstream bench` runs it too (measure_gating, fewer
seconds and one round with --quick; --no-gating skips it) and reports the figures beside
the classroom case.
"""

from __future__ import annotations

import argparse
import json
import os
import sys
import time
from pathlib import Path

import cv2
import numpy as np

REPO = Path(__file__).resolve().parent.parent

sys.path.insert(0, str(REPO))

from moodstream.bench import MEDIA  # noqa: E402
from moodstream.bench.detectors import DLIB_BOXES, MATCH_IOU  # noqa: E402
from moodstream.detection.detectors.base import iou  # noqa: E402

FPS = 5.0
MIN_FACE = 40
GROUPS = ("dlib_2007_007763.jpg", "dlib_2008_002470.jpg")
CONFIGS = {  # name -> (FaceDetector options, LeanOptions or None for no state at all)
    "full": ({"work_face": 0}, None),
    "lean pyramid": ({"work_face": 20}, None),
    "gate": ({"work_face": 0}, {"gate": True, "track": False}),
    "track": ({"work_face": 0}, {"gate": False, "track": True}),
    "gate+track": ({"work_face": 0}, {"gate": True, "track": True}),  # the defaults
    "all": ({"work_face": 20}, {"gate": True, "track": True}),
}


def clip_frames(media: Path, fps: float = FPS, seconds: float | None = None) -> list:
    """fer_woman2.mp4 sampled at fps (its own size)."""
    cap = cv2.VideoCapture(str(media / "fer_woman2.mp4"))
    step = max(1, round((cap.get(cv2.CAP_PROP_FPS) or 29.97) / fps))
    frames, index = [], 0
    while True:
        ok, frame = cap.read()
        if not ok or (seconds and len(frames) >= seconds * fps):
            break
        if index % step == 0:
            frames.append(frame)
        index += 1
    cap.release()
    return frames


def swaying(image: np.ndarray, count: int, fps: float = FPS, size=(640, 480)) -> list:
    """`count` frames of a photo at `size` that sways a few pixels, turns a degree or two and
    zooms by a few percent (ingest's DemoSource motion)."""
    image = cv2.resize(image, size, interpolation=cv2.INTER_AREA)
    w, h = size
    frames = []
    for k in range(count):
        phase = 2 * np.pi * (k / fps) / 8.0
        matrix = cv2.getRotationMatrix2D((w / 2, h / 2), 2.0 * np.sin(phase),
                                         1.0 + 0.04 * np.sin(2 * phase))
        matrix[0, 2] += 12 * np.sin(phase)
        matrix[1, 2] += 6 * np.cos(phase)
        frames.append(cv2.warpAffine(image, matrix, size, borderMode=cv2.BORDER_REFLECT))
    return frames


def dlib_recall(detector, media: Path) -> tuple[int, int]:
    """(dlib reference boxes matched one to one at IoU >= MATCH_IOU, boxes), full-size photos."""
    matched = total = 0
    for name, refs in DLIB_BOXES.items():
        faces = detector.detect([cv2.imread(str(media / name))])[0]
        unused = [f.box for f in faces]
        for ref in refs:
            total += 1
            best = max(unused, key=lambda b, r=ref: iou(b, r), default=None)
            if best is not None and iou(best, ref) >= MATCH_IOU:
                matched += 1
                unused.remove(best)
    return matched, total


def run_stream(detector, lean, frames, camera: str) -> tuple[list[list[dict]], float, float]:
    """One camera's frames one per call: (faces of each frame, wall ms, cpu ms per frame)."""
    counts = []
    wall, cpu = time.perf_counter(), time.process_time()
    for k, frame in enumerate(frames):
        if lean is None:
            found = detector.detect([frame])
        else:
            found = lean.detect([(camera, k / FPS, frame)], [MIN_FACE], [0.709])
        counts.append(found[0])
    n = len(frames)
    return counts, (time.perf_counter() - wall) * 1000 / n, (time.process_time() - cpu) * 1000 / n


def label_agreement(model, found: list[list[dict]], reference: list[list[dict]]) -> float:
    """Share of the reference's faces whose best-matching face (IoU) in `found` gets the same
    label from the emotion model (a face missing counts as a disagreement)."""
    same = total = 0
    for faces, ref in zip(found, reference, strict=True):
        for face in ref:
            total += 1
            best = max(faces, key=lambda f, b=face.box: iou(f.box, b), default=None)
            if best is not None:
                labels = model.predict([face.crop, best.crop]).argmax(axis=1)
                same += int(labels[0] == labels[1])
    return same / max(1, total)


def measure_gating(seconds: float = 8.0, rounds: int = 2, media: Path = MEDIA) -> dict:
    """Every configuration on every workload (`seconds` of frames each), best of `rounds`:
    {"workloads": {workload: {configuration: figures}}, "recall": {configuration: [matched,
    boxes]}, ...}. Raises FileNotFoundError without the shared media."""
    if not media.exists():
        raise FileNotFoundError(f"shared media not found at {media}")
    import redis

    from moodstream import assets
    from moodstream.detection.emotion_model import EmotionModel
    from moodstream.detection.face_detector import FaceDetector
    from moodstream.detection.lean_detect import LeanDetector, LeanOptions
    from moodstream.embedded_redis import EmbeddedRedis

    count = int(seconds * FPS)
    photos = [cv2.imread(str(media / name)) for name in GROUPS]
    workloads = {
        "clip": clip_frames(media, FPS, seconds),
        "group": [f for p in photos for f in swaying(p, count // len(photos))],
        "still": [cv2.resize(photos[1], (640, 480), interpolation=cv2.INTER_AREA)] * count,
    }
    load_at_start = round(os.getloadavg()[0], 2)
    server = EmbeddedRedis()
    server.start()
    r = redis.Redis.from_url(server.url)
    model = EmotionModel(assets.emotion_model())
    try:
        built = {name: (FaceDetector((64, 64), MIN_FACE, **options),
                        LeanOptions(**lean) if lean is not None else None)
                 for name, (options, lean) in CONFIGS.items()}
        best: dict = {}
        for _ in range(rounds):
            for work, frames in workloads.items():
                for name, (detector, options) in built.items():
                    r.flushall()
                    lean = LeanDetector(detector, r, options) if options else None
                    faces, wall, cpu = run_stream(detector, lean, frames, f"cam-{work}")
                    entry = best.setdefault(work, {}).setdefault(name, {
                        "ms": wall, "cpu": cpu, "faces": sum(len(f) for f in faces),
                        "frames": len(frames),
                        "ways": dict(lean.ways) if lean else {"full": len(frames)}})
                    if name == "full":
                        reference = faces
                    entry["labels_agree"] = label_agreement(model, faces, reference)
                    entry["ms"], entry["cpu"] = min(entry["ms"], wall), min(entry["cpu"], cpu)
        recall = {name: list(dlib_recall(built[name][0], media))
                  for name in ("full", "lean pyramid")}
    finally:
        server.stop()
    for table in best.values():
        base = table["full"]
        for t in table.values():
            t["x_full_cpu"] = round(t["cpu"] / base["cpu"], 3)
            t["faces_vs_full"] = round(t["faces"] / max(1, base["faces"]), 4)
            t["ms"], t["cpu"] = round(t["ms"], 2), round(t["cpu"], 2)
            t["labels_agree"] = round(t["labels_agree"], 4)
    return {"workloads": best, "recall": recall, "seconds": seconds, "rounds": rounds,
            "fps": FPS, "min_face": MIN_FACE, "cpus": os.cpu_count(),
            "load_avg_at_start": load_at_start, "load_avg": list(os.getloadavg())}


def gating_text(report: dict) -> str:
    """The figures of measure_gating as the script prints them."""
    works = report["workloads"]
    sizes = ", ".join(f"{k}: {t['full']['frames']} frames" for k, t in works.items())
    lines = [f"{sizes}; min_face {report.get('min_face', MIN_FACE)}, 1 thread, "
             f"{report.get('rounds', '-')} rounds, load average "
             f"{report.get('load_avg_at_start', '-')} on {report.get('cpus', '-')} CPUs"]
    for work, table in works.items():
        lines += [f"\n{work} ({table['full']['frames']} frames): ms, cpu ms per frame | "
                  "x full (cpu) | faces (x full) | same label as full | frames "
                  "full/track/gate (tracked frames that needed P-Net, a full scan)"]
        for name, t in table.items():
            ways = t["ways"]
            lines.append(
                f"  {name:13s} {t['ms']:6.1f} {t['cpu']:6.1f} | {t['x_full_cpu']:5.2f} | "
                f"{t['faces']:4d} ({t['faces_vs_full']:.3f}) | {t['labels_agree']:.3f} | "
                f"{ways.get('full', 0)}/{ways.get('track', 0)}/{ways.get('gate', 0)} "
                f"({ways.get('searched', 0)}, {ways.get('retry', 0)})")
    lines.append("\nrecall of the dlib reference boxes on the annotated photos (full size):")
    lines += [f"  {name:13s} {matched}/{total}"
              for name, (matched, total) in report["recall"].items()]
    return "\n".join(lines)


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--rounds", type=int, default=2)
    parser.add_argument("--seconds", type=float, default=8.0, help="per workload")
    parser.add_argument("--json", type=Path)
    args = parser.parse_args(argv)
    try:
        report = measure_gating(args.seconds, args.rounds)
    except FileNotFoundError as error:
        raise SystemExit(str(error)) from None
    print(gating_text(report))
    if args.json:
        args.json.write_text(json.dumps(report, indent=1))
    return 0


if __name__ == "__main__":
    sys.exit(main())
