"""The `fer` package on the frames `moodstream bench` uses: what many users run instead.

Runs in a separate environment that has `fer` installed (it brings TensorFlow, PyTorch for
its MTCNN, moviepy: several GB), never in the project's own:

    python3 -m venv /tmp/fer-venv && /tmp/fer-venv/bin/pip install fer opencv-python-headless
    /tmp/fer-venv/bin/python bench/fer_loop.py --video ../shared/data/media/fer_woman2.mp4

`moodstream bench --fer-python /tmp/fer-venv/bin/python` runs it beside everything else.
It imports nothing from moodstream. The last line of output is one JSON object.
"""

from __future__ import annotations

import argparse
import json
import time


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--video", required=True)
    parser.add_argument("--frames", type=int, default=120)
    args = parser.parse_args()

    import cv2

    try:
        from fer import FER  # fer up to 22.x
    except ImportError:
        from fer.fer import FER  # fer 25.x
    from fer import __version__

    cap = cv2.VideoCapture(args.video)
    frames = []
    while len(frames) < args.frames:
        ok, frame = cap.read()
        if not ok:
            break
        frames.append(frame)
    t0 = time.monotonic()
    detector = FER(mtcnn=True)
    detector.detect_emotions(frames[0])  # loads its networks
    startup = time.monotonic() - t0
    t1 = time.monotonic()
    faces = sum(len(detector.detect_emotions(frame)) for frame in frames)
    seconds = time.monotonic() - t1
    print(json.dumps({"version": __version__, "frames": len(frames), "faces": faces,
                      "fps": round(len(frames) / seconds, 2), "startup_s": round(startup, 1)}))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
