"""`moodstream bench [--quick] [--json]`: every figure of the system beside its baselines, in
one run, on the same frames.

Baselines measured in the same run: the paper's loop as written (the mtcnn package and Keras
``predict`` of the paper's model, one frame and one face at a time, in one process), and the
figures of a previous results file (bench/results.json) when one is present. The full run
writes docs/benchmarks.md, its plots under docs/benchmarks/ and bench/results.json.
Run it from a checkout (it starts a private redis-server and real worker processes).
"""

from __future__ import annotations

import argparse
import json
import os
import sys
import tempfile
import time
from pathlib import Path

REPO = Path(__file__).resolve().parent.parent
RESULTS = REPO / "bench" / "results.json"
DOCS = REPO / "docs"


def repo_relative(path) -> str:
    """Paths inside the checkout as the repository names them, so results travel."""
    path = Path(path).resolve()
    return str(path.relative_to(REPO)) if path.is_relative_to(REPO) else str(path)


def configure(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--quick", action="store_true",
                        help="fewer frames, 1 and 4 cameras, writes nothing (< 2 minutes)")
    parser.add_argument("--json", action="store_true",
                        help="print the figures as one JSON object on the last line")
    parser.add_argument("--frames", type=int, help="frames for the throughput runs "
                        "(default 24 quick, 120 full)")
    parser.add_argument("--cameras", help="camera counts for the live runs "
                        "(default 1,4 quick, 1,4,8 full); with --classroom-only, the "
                        "cameras of each classroom case (one number)")
    parser.add_argument("--camera-fps", type=float, default=5.0,
                        help="frames per second each camera publishes in the live runs")
    parser.add_argument("--detectors", type=int, default=os.cpu_count() or 1,
                        help="detector workers in the live pipeline (default: one per core)")
    parser.add_argument("--keras", type=Path, help="Keras model for the paper loop (default: "
                        "the run the shipped model came from, else the newest, else untrained)")
    parser.add_argument("--previous", type=Path, default=RESULTS,
                        help="results file of a previous release to compare with")
    parser.add_argument("--no-write", action="store_true",
                        help="full run without writing docs/benchmarks.md and results.json")
    parser.add_argument("--fer-python", type=Path,
                        default=os.environ.get("MOODSTREAM_FER_PYTHON") or None,
                        help="Python of a separate environment with the `fer` package: adds "
                        "it as a baseline on the same frames (bench/fer_loop.py)")
    parser.add_argument("--faces", default=None,
                        help="classroom workloads by faces per camera, comma-separated "
                        "among 1 (one face of real video: driver cameras), 5 (the mix of "
                        "group photos: small groups), 6 (six tiles of real video), 25 (the "
                        "team photo: a full classroom); default all, 5 with --quick")
    parser.add_argument("--classroom-cameras", type=int,
                        help="cameras in each classroom case (default 4 quick; else the "
                        "workload's: 8, and 12 for 25 faces)")
    parser.add_argument("--classroom-seconds", type=float,
                        help="its measured window (default 20 quick, 60 full)")
    parser.add_argument("--classroom-warmup", type=float,
                        help="seconds after every camera is up, before the window "
                        "(default 8 quick, 15 full)")
    parser.add_argument("--no-classroom", action="store_true", help="skip the classroom case")
    parser.add_argument("--classroom-only", action="store_true",
                        help="run only the classroom cases (and their capacity searches), "
                        "the detector gating and the agreement figures; writes nothing "
                        "(one case alone: --classroom-only --faces 25 --cameras 12)")
    parser.add_argument("--no-gating", action="store_true",
                        help="skip the detector gating and tracking parity figures "
                        "(bench/detector_gating.py; measured by default, also with "
                        "--classroom-only)")
    parser.add_argument("--capacity", action=argparse.BooleanOptionalAction, default=None,
                        help="search for the most cameras at p99 <= 250 ms (default: on in a "
                        "full run, off with --quick)")
    parser.add_argument("--capacity-seconds", type=float, default=30.0,
                        help="measured window of each camera count the search tries")
    parser.add_argument("--edge-only", action="store_true",
                        help="run only the edge figures (bench/edge.py): one edge node's "
                        "CPU, memory and upstream bytes, and the edge cameras one central "
                        "Redis and one aggregator take; writes nothing")
    parser.add_argument("--edge-seconds", type=float,
                        help="the edge footprint's measured window (default 10 quick, 30 full)")
    parser.add_argument("--no-edge", action="store_true", help="skip the edge figures")
    parser.add_argument("--render", action="store_true",
                        help="measure nothing: rewrite docs/benchmarks.md and its plots from "
                        "bench/results.json")


# ---------------------------------------------------------------- helpers without I/O

def last_json_line(text: str) -> dict:
    """The JSON object on the last non-empty line of `text` (the --json contract)."""
    lines = [line for line in text.splitlines() if line.strip()]
    if not lines:
        raise ValueError("no output")
    value = json.loads(lines[-1])
    if not isinstance(value, dict):
        raise ValueError("last line is not a JSON object")
    return value


def flatten(tree: dict, prefix: str = "") -> dict[str, float]:
    """Numeric leaves of a nested dict as {"a.b.c": value} (lists and text are skipped)."""
    out: dict[str, float] = {}
    for key, value in tree.items():
        name = f"{prefix}{key}"
        if isinstance(value, dict):
            out.update(flatten(value, name + "."))
        elif isinstance(value, int | float) and not isinstance(value, bool):
            out[name] = float(value)
    return out


def compared(key: str) -> bool:
    """Detail tables of their own (about 200 numbers a run) would drown the comparison:
    of the gating figures only the ratios to full detection, no capacity trial rows of any
    classroom workload."""
    if key.startswith("detector_gating."):
        return key.endswith((".x_full_cpu", ".faces_vs_full"))
    return ".capacity.tried." not in key



def compare(current: dict, previous: dict | None) -> dict[str, dict]:
    """Figures present in both runs: {"name": {"now", "before", "ratio"}}."""
    if not previous:
        return {}
    now, before = flatten(current), flatten(previous)
    return {k: {"now": now[k], "before": before[k],
                "ratio": round(now[k] / before[k], 3) if before[k] else None}
            for k in sorted(now.keys() & before.keys()) if compared(k)}


def percentile(values: list[float], q: float) -> float | None:
    """As moodstream.accounting picks them: the value at index int(q * n) of the sorted list."""
    if not values:
        return None
    ordered = sorted(values)
    return round(ordered[min(len(ordered) - 1, int(q * len(ordered)))], 1)


def speedup(pipeline_fps: float | None, paper_fps: float | None) -> float | None:
    if not pipeline_fps or not paper_fps:
        return None
    return round(pipeline_fps / paper_fps, 2)


# ---------------------------------------------------------------- measurements

def log(message: str) -> None:
    print(message, file=sys.stderr, flush=True)


def print_figures(sections: list[str], figures: dict, as_json: bool) -> None:
    """The report's non-empty sections, then (with --json) the figures as one last line."""
    for section in sections:
        if section:
            print(section)
    if as_json:
        print(json.dumps(figures, separators=(",", ":")))


def choose_keras(explicit: Path | None, meta: dict, tmp: Path) -> tuple[Path, str]:
    """(path, what it is). The run the shipped ONNX was trained in, else the newest run's
    best.keras, else an untrained model of the paper's architecture (same speed)."""
    from moodstream.bench.bulk_throughput import find_keras

    if explicit:
        return explicit, "given with --keras"
    recipe = json.loads(meta.get("recipe", "{}") or "{}")
    # An ensemble's first member is the paper-sized network: the paper loop's baseline.
    recipe = (recipe.get("members") or [recipe])[0].get("name")
    candidates = [REPO / "models" / "runs" / recipe / "best.keras"] if recipe else []
    newest = find_keras(None)
    candidates += [newest] if newest else []
    for path in candidates:
        if path.exists():
            try:
                from moodstream.models.architecture import load_keras

                load_keras(path)
                return path, f"trained ({path.relative_to(REPO)})"
            except Exception as error:  # noqa: BLE001 - a half-written file: try the next
                log(f"cannot load {path}: {error}")
    from moodstream.models.architecture import build_mini_xception

    path = tmp / "untrained.keras"
    build_mini_xception().save(path)
    return path, "untrained, paper architecture (no trained .keras loadable; same speed)"


def measure_classifier(model_path: Path, faces: int) -> dict:
    """onnxruntime, 1 thread, faces/s at batch 32 and at batch 1, on FER-2013 PrivateTest's
    faces (an adaptive model mirrors only the faces it is unsure of, and random pixels are
    all unsure), or random crops where the data is absent (`crops` says which)."""
    import numpy as np

    from moodstream.detection.emotion_model import EmotionModel
    from moodstream.models.data import dataset_path, load_split

    model = EmotionModel(model_path, threads=1)
    size = model.height if model.height == model.width else (model.height, model.width)
    if dataset_path().exists():
        crops = np.resize(load_split("test", size)[0][..., 0], (faces, model.height,
                                                              model.width))
        source = "FER-2013 PrivateTest"
    else:
        crops = np.random.default_rng(0).integers(0, 256, (faces, model.height, model.width),
                                                  dtype=np.uint8)
        source = "random pixels"
    out = {"crops": source}
    for batch in (32, 1):
        model.predict(crops[:batch])
        t = time.perf_counter()
        for i in range(0, faces, batch):
            model.predict(crops[i:i + batch])
        out[f"batch{batch}_faces_per_s"] = round(faces / (time.perf_counter() - t), 1)
    return out


def measure_keras_per_face(keras_path: Path, faces: int) -> float:
    """The paper's classification: model.predict on one face at a time; faces/s."""
    import numpy as np

    from moodstream.models.architecture import load_keras

    model = load_keras(keras_path)
    height, width = model.input_shape[1:3]
    face = np.zeros((1, height, width, 1), np.float32)
    model.predict(face, verbose=0)
    t = time.perf_counter()
    for _ in range(faces):
        model.predict(face, verbose=0)
    return round(faces / (time.perf_counter() - t), 1)


def measure_detectors(names: list[str], video_frames: int, batch: int = 4) -> dict:
    """ms (wall) and cpu ms per 640x480 frame, 1 frame per call and `batch` per call."""
    import cv2

    from moodstream.bench.detectors import make_detector, source_frames, timed

    frames = [cv2.resize(f, (640, 480), interpolation=cv2.INTER_AREA)
              for f in source_frames(video_frames)]
    out = {}
    for name in names:
        detector = make_detector(name, min_face=40, threads=1)
        detector.detect(frames[:2])
        ms, cpu = timed(detector, frames, 1)
        entry = {"ms": round(ms, 1), "cpu_ms": round(cpu, 1)}
        if name != "haar":
            b_ms, b_cpu = timed(detector, frames, batch)
            entry.update(batch_ms=round(b_ms, 1), batch_cpu_ms=round(b_cpu, 1))
        out[name] = entry
    return {"frames": len(frames), "size": "640x480", "batch": batch, "min_face": 40,
            "detectors": out}


def measure_codec(video: Path) -> dict:
    """JPEG encode (ingest) and decode (detector) ms per 640x480 frame."""
    import cv2

    cap = cv2.VideoCapture(str(video))
    ok, frame = cap.read()
    cap.release()
    frame = cv2.resize(frame, (640, 480))
    t = time.perf_counter()
    for _ in range(20):
        jpeg = cv2.imencode(".jpg", frame, [cv2.IMWRITE_JPEG_QUALITY, 85])[1]
    encode = (time.perf_counter() - t) * 50
    t = time.perf_counter()
    for _ in range(20):
        cv2.imdecode(jpeg, cv2.IMREAD_COLOR)
    return {"encode_ms": round(encode, 2), "decode_ms": round((time.perf_counter() - t) * 50, 2),
            "jpeg_kb": round(len(jpeg) / 1024, 1)}


def measure_pipeline(video: Path, frames: int, cameras: list[int], camera_fps: float,
                     detectors: int, per_camera: int) -> dict:
    """Backlog (sustained frames/s) then cameras x camera_fps paced runs (latency)."""
    from moodstream import keys
    from moodstream.bench.pipeline import jpeg_frames, run_case
    from tests.conftest import RedisServer

    jpegs = jpeg_frames(video, max(frames, max(cameras) * per_camera))
    out: dict = {"detectors": detectors, "classifiers": 1, "camera_fps": camera_fps,
                 "cameras": {}}
    with tempfile.TemporaryDirectory(prefix="bench-live-") as tmp:
        server = RedisServer(Path(tmp))
        server.start()
        try:
            log(f"live pipeline: backlog of {frames} frames, {detectors} detector(s)")
            t = time.monotonic()
            sustained = run_case(server, jpegs[:frames], detectors, None)
            out["sustained"] = {"frames": frames, "fps": round(sustained["fps"], 2),
                                "latency_ms": sustained["latency"],
                                "case_wall_s": round(time.monotonic() - t, 1)}
            out["rss_mb"] = {"detector": round(sustained["rss_detector"]),
                             "classifier": round(sustained["rss_classifier"])}
            for n in cameras:
                count = n * per_camera
                log(f"live pipeline: {n} camera(s) x {camera_fps:g} fps, {count} frames")
                case = run_case(server, jpegs[:count], detectors, camera_fps, n)
                samples = [float(v) for v in server.client().lrange(keys.LATENCY, 0, -1)]
                out["cameras"][str(n)] = {
                    "frames": count, "offered_fps": n * camera_fps,
                    "fps": round(case["fps"], 2), "p50_ms": percentile(samples, 0.5),
                    "p99_ms": percentile(samples, 0.99), "samples": samples}
        finally:
            server.stop()
    return out


def measure_bulk(video: Path, frames: int, workers: list[int], model_path: Path) -> dict:
    from types import SimpleNamespace

    from moodstream.bench.bulk_throughput import clip_frames, run_bulk

    end, native = clip_frames(video, frames / 29.97)
    end = min(end, frames)
    options = SimpleNamespace(detector=None, fps=0.0, chunk_seconds=max(0.2, end / native / 4))
    out = {}
    for n in workers:
        log(f"bulk: {n} worker(s), {end} frames")
        r = run_bulk(video, end, native, options, n, str(model_path))
        out[str(n)] = {"frames": r["frames"], "faces": r["faces"],
                       "fps": round(r["frames"] / r["seconds"], 2),
                       "startup_s": round(r["startup"], 1)}
    return out


def measure_paper_loop(video: Path, frames: int, keras_path: Path) -> dict:
    from moodstream.bench.bulk_throughput import clip_frames, run_paper_loop

    end, native = clip_frames(video, 0)
    r = run_paper_loop(video, min(end, frames), native, 0.0, keras_path)
    return {"frames": r["frames"], "faces": r["faces"],
            "fps": round(r["frames"] / r["seconds"], 2), "startup_s": round(r["startup"], 1)}


def measure_fer(python: Path, video: Path, frames: int) -> dict:
    """The fer package's own loop in its own environment (bench/fer_loop.py)."""
    import subprocess

    cmd = [str(python), str(REPO / "bench" / "fer_loop.py"), "--video", str(video),
           "--frames", str(frames)]
    try:
        done = subprocess.run(cmd, capture_output=True, text=True, timeout=3600,
                              env=dict(os.environ, TF_CPP_MIN_LOG_LEVEL="3"))
        return last_json_line(done.stdout)
    except (OSError, ValueError, subprocess.TimeoutExpired) as error:
        log(f"fer baseline skipped: {error}")
        return {"error": str(error)}


def classroom_choice(args: argparse.Namespace, quick: bool) -> tuple[list[str], int | None]:
    """(workload keys, cameras per case or None for each workload's own) from the options;
    a ValueError that says what is wrong with them."""
    from moodstream.bench.classroom import WORKLOADS, parse_faces

    faces = parse_faces(args.faces) if args.faces else (["5"] if quick else list(WORKLOADS))
    cameras = args.classroom_cameras
    if args.classroom_only and args.cameras:
        if not args.cameras.strip().isdigit() or int(args.cameras) < 1:
            raise ValueError(f"with --classroom-only, --cameras takes one number of cameras "
                             f"(got {args.cameras!r})")
        cameras = int(args.cameras)
    return faces, cameras or (4 if quick else None)


def measure_classroom(args: argparse.Namespace, quick: bool) -> dict:
    """The classroom workloads (bench/classroom.py) with this command's options, as the
    results keep them (classroom.classroom_results)."""
    from moodstream.bench.classroom import MEDIA, classroom_results, measure_workloads

    if not MEDIA.exists():
        raise SystemExit(f"classroom case: shared media not found at {MEDIA} (needs ../shared)")
    faces, cameras = classroom_choice(args, quick)
    capacity = (not quick) if args.capacity is None else args.capacity
    with tempfile.TemporaryDirectory(prefix="bench-classroom-") as tmp:
        return classroom_results(measure_workloads(
            Path(tmp), faces, cameras, detectors=args.detectors,
            warmup=args.classroom_warmup if args.classroom_warmup is not None
            else (8 if quick else 15),
            seconds=args.classroom_seconds or (20 if quick else 60), capacity=capacity,
            capacity_seconds=args.capacity_seconds))


AGREEMENT_MODULE = "moodstream.bench.agreement"


def measure_agreement(results: dict) -> None:
    """The parity and agreement figures: whatever dict `measure()` of AGREEMENT_MODULE
    returns, into results["agreement"]; nothing when that module does not exist, and its
    failure into results["agreement_error"] (every other figure is kept)."""
    import importlib

    try:
        module = importlib.import_module(AGREEMENT_MODULE)
    except ModuleNotFoundError as error:
        if error.name != AGREEMENT_MODULE:  # it exists but needs something missing
            results["agreement_error"] = str(error)
        return
    log("parity and agreement")
    try:
        figures = module.measure()
    except Exception as error:  # noqa: BLE001 - keep every other figure
        log(f"agreement failed: {error}")
        results["agreement_error"] = (str(error).splitlines() or [repr(error)])[0]
        return
    if not isinstance(figures, dict):
        results["agreement_error"] = f"measure() returned {type(figures).__name__}, not a dict"
        return
    results["agreement"] = figures


GATING_SECONDS = {"quick": 3.0, "full": 8.0}  # frames of each workload, at 5 fps
GATING_ROUNDS = {"quick": 1, "full": 2}


def measure_gating(results: dict, quick: bool) -> None:
    """bench/detector_gating.py's figures into results["detector_gating"]; a failure (no
    shared media, no redis-server) into results["detector_gating_error"] instead."""
    mode = "quick" if quick else "full"
    log(f"detector gating and tracking parity ({GATING_SECONDS[mode]:g} s per workload, "
        f"{GATING_ROUNDS[mode]} round(s))")
    try:
        from moodstream.bench.detector_gating import measure_gating as gating

        results["detector_gating"] = gating(GATING_SECONDS[mode], GATING_ROUNDS[mode])
    except Exception as error:  # noqa: BLE001 - keep every other figure
        log(f"detector gating failed: {error}")
        results["detector_gating_error"] = (str(error).splitlines() or [repr(error)])[0]


EDGE_SECONDS = {"quick": 10.0, "full": 30.0}  # the footprint's window
EDGE_SIZING_SECONDS = {"quick": 5.0, "full": 10.0}  # each sizing load level's window


def measure_edge(results: dict, quick: bool, seconds: float | None = None) -> None:
    """bench/edge.py's figures into results["edge"]; a failure into results["edge_error"]
    (every other figure is kept)."""
    mode = "quick" if quick else "full"
    log("edge node footprint and centre sizing")
    try:
        from moodstream.bench.edge import measure_edge as edge

        results["edge"] = edge(seconds or EDGE_SECONDS[mode],
                               sizing_seconds=EDGE_SIZING_SECONDS[mode])
    except Exception as error:  # noqa: BLE001 - keep every other figure
        log(f"edge figures failed: {error}")
        results["edge_error"] = (str(error).splitlines() or [repr(error)])[0]


def edge_section(results: dict) -> str:
    from moodstream.bench.edge import edge_text

    if results.get("edge"):
        return edge_text(results["edge"])
    return f"edge figures failed: {results['edge_error']}" if "edge_error" in results else ""


def measure_accuracy(model_path: Path, evaluate: bool) -> dict:
    from moodstream.detection.emotion_model import read_metadata

    meta = read_metadata(model_path)
    out = {"params": int(meta.get("params", 0)) or None,
           "privatetest_accuracy_metadata": float(meta["privatetest_accuracy"])
           if "privatetest_accuracy" in meta else None,
           "file_kb": round(model_path.stat().st_size / 1024, 1)}
    if evaluate:
        try:
            from moodstream.models.evaluate import evaluate as run_evaluate

            out["privatetest_accuracy"] = round(
                run_evaluate(model_path, threads=1, timing=False)["accuracy"], 4)
            out["evaluated"] = True
        except Exception as error:  # noqa: BLE001 - no FER-2013 here: metadata figure only
            log(f"evaluation skipped: {error}")
    out.setdefault("privatetest_accuracy", out["privatetest_accuracy_metadata"])
    out.setdefault("evaluated", False)
    return out


# ---------------------------------------------------------------- the command

def run(args: argparse.Namespace, settings) -> int:
    os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "3")
    if args.render:
        from moodstream.bench.report import plot_all, render_markdown

        results = json.loads(RESULTS.read_text())
        (DOCS / "benchmarks.md").write_text(render_markdown(results) + "\n")
        for path in [DOCS / "benchmarks.md", *plot_all(results, DOCS / "benchmarks")]:
            print(f"wrote {path}")
        return 0
    from moodstream.bench.pipeline import DEFAULT_VIDEO
    from moodstream.detection.emotion_model import read_metadata

    started = time.monotonic()
    quick = args.quick
    try:
        classroom_choice(args, quick)
    except ValueError as error:
        raise SystemExit(f"moodstream bench: {error}") from None
    if args.edge_only:
        only = {}
        measure_edge(only, quick, args.edge_seconds)
        print_figures([edge_section(only)], only, args.json)
        return 0 if "edge" in only else 1
    if args.classroom_only:
        from moodstream.bench.report import (
            agreement_text,
            classroom_sections_text,
            gating_section_text,
        )

        only = measure_classroom(args, quick)
        if not args.no_gating:
            measure_gating(only, quick)
        measure_agreement(only)
        print_figures([classroom_sections_text(only), gating_section_text(only),
                       agreement_text(only)], only, args.json)
        return 0
    frames = args.frames or (24 if quick else 120)
    cameras = [int(c) for c in (args.cameras or ("1,4" if quick else "1,4,8")).split(",")]
    model_path = Path(settings.classifier.model_path)
    video = DEFAULT_VIDEO
    if not video.exists():
        raise SystemExit(f"shared media not found: {video}")
    results: dict = {"mode": "quick" if quick else "full",
                     "when": time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime()),
                     "machine": {"cpus": os.cpu_count(), "load_avg_at_start":
                                 round(os.getloadavg()[0], 2)},
                     "video": video.name, "model": repo_relative(model_path)}
    with tempfile.TemporaryDirectory(prefix="bench-") as tmp:
        log(f"accuracy and classifier ({model_path.name})")
        results["accuracy"] = measure_accuracy(model_path, evaluate=not quick)
        results["classifier"] = measure_classifier(model_path, 256 if quick else 2048)
        results["codec"] = measure_codec(video)
        log("detectors")
        results["detector"] = measure_detectors(
            ["mtcnn-onnx", "mtcnn"] if quick else ["mtcnn-onnx", "mtcnn", "haar"],
            2 if quick else 8)
        results["pipeline"] = measure_pipeline(video, frames, cameras, args.camera_fps,
                                               args.detectors, 6 if quick else 30)
        results["bulk"] = measure_bulk(video, frames, [1] if quick else [1, 2], model_path)
        log("paper loop (mtcnn package + Keras predict per face)")
        keras_path, keras_what = choose_keras(args.keras, read_metadata(model_path),
                                              Path(tmp))
        paper = measure_paper_loop(video, frames, keras_path)
        paper["keras_model"] = keras_what
        paper["keras_faces_per_s"] = measure_keras_per_face(keras_path, 16 if quick else 64)
        results["paper_loop"] = paper
        if args.fer_python:
            log(f"the fer package ({args.fer_python})")
            results["fer_package"] = measure_fer(args.fer_python, video, frames)
    if not args.no_classroom:
        results.update(measure_classroom(args, quick))  # a failed `up`: its error, kept
    if not args.no_gating:
        measure_gating(results, quick)
    if not args.no_edge:
        measure_edge(results, quick, args.edge_seconds)
    measure_agreement(results)
    sustained = results["pipeline"]["sustained"]["fps"]
    results["speedup_vs_paper_loop"] = speedup(sustained, paper["fps"])
    results["bulk_speedup_vs_paper_loop"] = speedup(results["bulk"]["1"]["fps"], paper["fps"])
    fer_fps = results.get("fer_package", {}).get("fps")
    if fer_fps:
        results["speedup_vs_fer"] = speedup(sustained, fer_fps)
        results["bulk_speedup_vs_fer"] = speedup(results["bulk"]["1"]["fps"], fer_fps)
    previous = None
    if args.previous and args.previous.exists():
        previous = json.loads(args.previous.read_text())
    results["vs_previous"] = compare(strip_samples(results), strip_samples(previous or {}))
    results["previous_file"] = repo_relative(args.previous) if previous else None
    results["previous_mode"] = (previous or {}).get("mode")
    results["wall_s"] = round(time.monotonic() - started, 1)

    from moodstream.bench.report import (
        agreement_text,
        classroom_sections_text,
        gating_section_text,
        render_text,
    )

    print(render_text(results))
    for section in (classroom_sections_text(results), gating_section_text(results),
                    edge_section(results), agreement_text(results)):
        if section:
            print(section)
    if not quick and not args.no_write:
        from moodstream.bench.report import write_report

        for path in write_report(results, DOCS, RESULTS):
            print(f"wrote {path}")
    print_figures([], strip_samples(results), args.json)
    return 0


def strip_samples(results: dict) -> dict:
    """The results without per-sample lists (and without the comparison itself)."""
    out = {}
    for key, value in results.items():
        if key in ("samples", "vs_previous"):
            continue
        out[key] = strip_samples(value) if isinstance(value, dict) else value
    return out
