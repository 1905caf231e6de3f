"""What classifying a tracked face only when it can have changed costs in agreement, and what
track-guided detection costs in faces found, on the shared clip and the dense scene.

    .venv/bin/python -m moodstream.bench.agreement [--seconds 20] [--json OUT]

Each workload goes frame by frame (5 fps of capture time) through the live detector's code
(LeanDetector with the default settings, a real redis-server for its state) and the live
classifier's code (`label_frames`) twice: with the shipped reuse settings, and with every face
classified on every frame. Figures:
- `smoothed_agree`: per frame and track, the smoothed expression (mean of the track's last 5
  probabilities, as the dashboard shows a person) is the same in both runs;
- `distribution_max_diff_points`: the largest difference, in points, of any class's share of
  the labels in any 10 s window (the classroom distribution);
- `reused_share`: faces that carried their probabilities instead of being classified;
- `faces_vs_full`: faces found by the live detector (gating, tracking, spread full scans)
  against full detection of every frame (detection parity).
"""

from __future__ import annotations

import argparse
import json
from pathlib import Path

import cv2
import numpy as np

from moodstream.bench import MEDIA
from moodstream.contract import CLASSES, LabelSet

REPO = Path(__file__).resolve().parent.parent

FPS = 5.0
WINDOW_S = 10
SMOOTH = 5
DENSE = "retinaface_img3.jpg"  # 1000x644: 25 faces at min_face 40
DENSE_MIN_FACE = 40  # the default: the ~25 clear faces (20 px finds ~94, the crowd behind)


def workloads(media: Path, seconds: float) -> dict[str, tuple[list[np.ndarray], int]]:
    """name -> (frames at FPS, min_face)."""
    from moodstream.bench.detector_gating import clip_frames, swaying

    dense = cv2.imread(str(media / DENSE))
    h, w = dense.shape[:2]
    return {"clip": (clip_frames(media, FPS, seconds), 40),
            "dense": (swaying(dense, int(seconds * FPS), FPS, (w, h)), DENSE_MIN_FACE)}


def smoothed(labels: list[LabelSet]) -> list[int]:
    """Per face of every frame, in order: the argmax of its track's last SMOOTH probabilities."""
    history: dict[int, list[np.ndarray]] = {}
    out = []
    for frame in labels:
        for track, probs in zip(frame.tracks.tolist(), frame.probs, strict=True):
            kept = history.setdefault(track, [])
            kept.append(probs)
            del kept[:-SMOOTH]
            out.append(int(np.argmax(np.mean(kept, axis=0))))
    return out


def shares(labels: list[LabelSet]) -> np.ndarray:
    """(windows, 7): each class's share of the labels in each WINDOW_S window, in points."""
    per_window = int(WINDOW_S * FPS)
    rows = []
    for start in range(0, len(labels), per_window):
        counts = np.zeros(len(CLASSES))
        for frame in labels[start:start + per_window]:
            counts += np.bincount(np.argmax(frame.probs, axis=1), minlength=len(CLASSES)) \
                if frame.count else 0
        rows.append(100 * counts / max(1, counts.sum()))
    return np.array(rows)


def run_workload(r, frames: list[np.ndarray], min_face: int, camera: str) -> dict:
    from moodstream.config import load_settings
    from moodstream.contract import Frame
    from moodstream.detection.emotion_model import EmotionModel
    from moodstream.detection.face_detector import FaceDetector, face_set
    from moodstream.detection.label_reuse import LabelReuse
    from moodstream.detection.labelling import label_frames
    from moodstream.detection.lean_detect import LeanDetector, LeanOptions

    settings = load_settings()
    model = EmotionModel(settings.classifier.model_path)
    detector = FaceDetector((model.height, model.width), min_face)
    lean = LeanDetector(detector, r, LeanOptions.from_settings(settings.detector))
    c = settings.classifier
    policies = {"reuse": LabelReuse(c.reuse_max_age_ms / 1000, c.reuse_change_level,
                                    c.reuse_max_face),
                "every": LabelReuse(0, 0)}
    out: dict[str, list[LabelSet]] = {name: [] for name in policies}
    found = full = 0
    for k, image in enumerate(frames):
        ts = 1_800_000_000 + k / FPS
        faces = lean.detect([(camera, ts, image)], [min_face], [detector.scale_factor])[0]
        found += len(faces)
        full += len(detector.detect([image])[0])
        entry = face_set(Frame(camera, k, ts, b""), faces)
        for name, policy in policies.items():
            batch = label_frames(model, policy, [entry], maxlen=1)
            out[name].append(LabelSet.decode(batch.outputs[0].fields))
    a, b = smoothed(out["reuse"]), smoothed(out["every"])
    faces = sum(f.count for f in out["reuse"])
    reused = sum(int((~f.fresh).sum()) for f in out["reuse"])
    diff = np.abs(shares(out["reuse"]) - shares(out["every"]))
    return {"frames": len(frames), "faces": faces, "faces_per_frame": round(faces / len(frames), 1),
            "smoothed_agree": round(float(np.mean(np.equal(a, b))) if a else 1.0, 4),
            "distribution_max_diff_points": round(float(diff.max()) if diff.size else 0.0, 2),
            "reused_share": round(reused / max(1, faces), 3),
            "faces_vs_full": round(found / max(1, full), 4), "ways": dict(lean.ways),
            "min_face": min_face}


def measure(seconds: float = 20.0, media: Path = MEDIA) -> dict:
    """The figures of every workload; raises FileNotFoundError without the shared media."""
    import redis

    from moodstream.config import load_settings
    from moodstream.embedded_redis import EmbeddedRedis

    if not (media / DENSE).exists():
        raise FileNotFoundError(f"shared media not found at {media}")
    c = load_settings().classifier
    server = EmbeddedRedis()
    server.start()
    try:
        r = redis.Redis.from_url(server.url)
        results = {name: run_workload(r, frames, min_face, f"cam-{name}")
                   for name, (frames, min_face) in workloads(media, seconds).items()}
    finally:
        server.stop()
    return {"workloads": results, "seconds": seconds, "fps": FPS,
            "reuse_max_age_ms": c.reuse_max_age_ms, "reuse_change_level": c.reuse_change_level,
            "reuse_max_face": c.reuse_max_face,
            "goals": {"smoothed_agree": 0.97, "distribution_max_diff_points": 2.0,
                      "faces_vs_full": [0.98, 1.02]}}


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--seconds", type=float, default=20.0)
    parser.add_argument("--json", type=Path, help="also write the figures here")
    args = parser.parse_args()
    figures = measure(args.seconds)
    text = json.dumps(figures, indent=2)
    print(text)
    if args.json:
        args.json.write_text(text + "\n")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
