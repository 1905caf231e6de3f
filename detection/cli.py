"""`moodstream detect IMAGE... [--json] [--detector NAME]`: print the faces found in images."""

from __future__ import annotations

import argparse
import json
import sys

from moodstream.config import Settings
from moodstream.detection.detectors import make_detector
from moodstream.images import ImageRefused, check_image, decode


def configure(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("images", nargs="+", metavar="IMAGE", help="image files")
    parser.add_argument("--json", action="store_true",
                        help="print one JSON array: [{image, faces: [{box, score, landmarks}]}]")
    parser.add_argument("--detector", default=None,
                        help="mtcnn-onnx (default), mtcnn (the package, TensorFlow) or haar")
    parser.add_argument("--min-face", type=int, default=None,
                        help="smallest face in pixels")
    parser.add_argument("--scale-factor", type=float, default=None,
                        help="MTCNN pyramid factor")
    parser.add_argument("--min-confidence", type=float, default=None,
                        help="faces scored below it are dropped "
                             "(MOODSTREAM_DETECTOR_MIN_CONFIDENCE, default 0.9)")
    parser.add_argument("--threads", type=int, default=1)


def run(args: argparse.Namespace, settings: Settings) -> int:
    settings = settings.with_options(
        "detector", name=args.detector, min_face=args.min_face, scale_factor=args.scale_factor,
        min_confidence=args.min_confidence)
    d = settings.detector
    detector = make_detector(d.name, min_face=d.min_face, scale_factor=d.scale_factor,
                             threads=args.threads)
    min_confidence = d.min_confidence
    results, failed = [], 0
    for path in args.images:
        try:
            check_image(path, settings.limits.max_image_pixels)
            image = decode(path)
        except ImageRefused as error:
            reason, image = str(error), None
        else:
            reason = "cannot read this image"
        if image is None:
            failed += 1
            print(f"{path}: {reason}", file=sys.stderr)
            results.append({"image": path, "faces": [], "error": reason})
            continue
        faces = [f for f in detector.detect([image])[0] if f.score >= min_confidence]
        results.append({"image": path, "faces": [f.to_json() for f in faces]})
        if not args.json:
            print(f"{path}: {len(faces)} face{'' if len(faces) == 1 else 's'}")
            for face in faces:
                x, y, w, h = face.box
                line = f"  box x={x} y={y} w={w} h={h}  score {face.score:.3f}"
                if face.landmarks:
                    eyes = [face.landmarks[k] for k in ("left_eye", "right_eye")]
                    line += "  eyes " + " ".join(f"({ex:.0f},{ey:.0f})" for ex, ey in eyes)
                print(line)
    if args.json:
        print(json.dumps(results))
    return 1 if failed else 0
