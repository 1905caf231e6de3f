"""Bulk analysis as RQ jobs: planning, the job functions and the worker class.

One job per image, one per chunk of a video. Each job reports progress in ``job.meta``
(``done`` / ``total`` frames) and returns plain data: the face rows of its frames plus any
per-file errors. Nothing is written to disk by a job; frames and crops stay in memory.

The worker class ``BulkWorker`` is an RQ ``SimpleWorker`` (no fork, so the face detector and
the onnxruntime model load once per process and stay loaded between jobs) with a
heartbeat thread, so that a worker killed mid-job leaves a job that RQ finds abandoned after
``MOODSTREAM_BULK_HEARTBEAT_TTL`` seconds and retries (``Retry``) on another worker.
"""

from __future__ import annotations

import logging
import shutil
import threading
import time
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING

from rq import Queue, Retry, SimpleWorker, get_current_job
from rq.job import Job
from rq.serializers import JSONSerializer

from moodstream.bulk.results import Group, unique_name
from moodstream.bulk.staging import StagedFiles, StagingError, is_staged
from moodstream.config import MIB, BulkSettings, LimitSettings, Settings
from moodstream.images import ImageRefused, ImageTooLarge, check_image, check_pixels, decode

if TYPE_CHECKING:  # OpenCV and numpy load with the first job: an idle worker stays light
    import cv2
    import numpy as np

log = logging.getLogger("moodstream.bulk")

IMAGE_SUFFIXES = {".jpg", ".jpeg", ".png", ".bmp", ".webp"}  # moodstream.images.STILL_FORMATS
VIDEO_SUFFIXES = {".mp4", ".m4v", ".mov", ".avi", ".mkv", ".webm", ".mpg", ".mpeg", ".wmv",
                  ".flv", ".3gp", ".ts", ".mts"}
DEFAULT_VIDEO_FPS = 5.0
DEFAULT_CHUNK_SECONDS = 30.0
DEFAULT_MAX_MB = 2048.0
DEFAULT_RETRIES = 2
RESULT_TTL_S = 7 * 24 * 3600
JOB_TIMEOUT_S = 3600
PROGRESS_EVERY_S = 0.5
DEFAULT_MAX_PIXELS = LimitSettings.model_fields["max_image_pixels"].default
# Job records are JSON, never pickle: whoever can write to Redis must not be able to run code
# in a worker or the dashboard through the unpickler. Everything a job takes and returns is
# plain data already.
SERIALIZER = JSONSerializer
# ... and a worker runs only these functions, whatever function a job record names.
JOB_FUNCTIONS = frozenset({"moodstream.bulk.jobs.analyze_image",
                           "moodstream.bulk.jobs.analyze_video_chunk",
                           "moodstream.bulk.jobs.discard_inputs"})
# ... and only these callbacks (on_success, on_failure, on_stopped): the bulk jobs use none.
JOB_CALLBACKS: frozenset[str] = frozenset()


def uploads_dir() -> Path:
    """Where the dashboard keeps uploads (settings.bulk.dir, MOODSTREAM_BULK_DIR; workers
    see the same path): this worker's setting (configure_process)."""
    return Path(_PROCESS["bulk_dir"])


def discard_inputs(folder: str) -> int:
    """The job that runs after an upload's jobs have all ended: deletes its originals.
    Only a folder of the uploads directory, so a forged job cannot delete anything else."""
    path = Path(folder).resolve()
    root = uploads_dir().resolve()
    if path.parent.parent != root or path.name != "photos":
        raise PermissionError(f"{folder} is not an upload folder")
    removed = sum(1 for p in path.rglob("*") if p.is_file())
    shutil.rmtree(path, ignore_errors=True)
    return removed


def enqueue_discard(queue: Queue, jobs: list, folder: str):
    """Delete the originals once every job has ended, finished or failed (RQ dependency)."""
    from rq.job import Dependency

    return queue.enqueue(discard_inputs, folder, depends_on=Dependency(jobs, allow_failure=True),
                         result_ttl=RESULT_TTL_S, failure_ttl=RESULT_TTL_S,
                         description="delete the uploaded originals")


def make_queue(name: str, connection) -> Queue:
    return Queue(name, connection=connection, serializer=SERIALIZER)


def fetch_jobs(ids: list[str], connection) -> list:
    return Job.fetch_many(ids, connection, serializer=SERIALIZER)


class BulkJob(Job):
    """A job that refuses to run anything but a bulk analysis function, and never imports
    or calls a success, failure or stopped callback outside JOB_CALLBACKS."""

    def _execute(self):
        if self.func_name not in JOB_FUNCTIONS:
            raise PermissionError(f"{self.func_name!r} is not a bulk analysis job")
        for name in self.refused_callbacks():
            raise PermissionError(f"callback {name!r} is not allowed for bulk jobs")
        return super()._execute()

    def refused_callbacks(self) -> list[str]:
        names = (self._success_callback_name, self._failure_callback_name,
                 self._stopped_callback_name)
        return [name for name in names if name and name not in JOB_CALLBACKS]

    def _allowed(self, name: str | None) -> bool:
        if name and name not in JOB_CALLBACKS:
            log.warning("job %s: callback %r refused (not a bulk job callback)", self.id, name)
            return False
        return True

    # RQ imports a callback by the name the job record holds, when it is first asked for.
    @property
    def success_callback(self):
        return super().success_callback if self._allowed(self._success_callback_name) else None

    @property
    def failure_callback(self):
        return super().failure_callback if self._allowed(self._failure_callback_name) else None

    @property
    def stopped_callback(self):
        return super().stopped_callback if self._allowed(self._stopped_callback_name) else None


def default_options(settings: Settings, **overrides) -> dict:
    """What a job needs besides its file; JSON-safe so it travels in the job's kwargs.
    model None: the worker's own (its settings.classifier.model_path)."""
    d = settings.detector
    options = {"fps": DEFAULT_VIDEO_FPS, "min_face": d.min_face, "min_confidence": d.min_confidence,
               "model": None, "batch": 4, "detector": d.name, "scale_factor": d.scale_factor}
    options.update({k: v for k, v in overrides.items() if v is not None})
    return options


# --------------------------------------------------------------------------- planning


@dataclass
class Task:
    """One RQ job: an image, or frames [start, end) of a video."""

    file: str
    kind: str  # "image" or "video"
    group: str  # output name it belongs to
    start: int = 0
    end: int = 1
    total: int = 1  # frames this job will analyse (its progress bar's total)
    path: str = ""  # absolute path the worker opens (file is as the user wrote it)

    def __post_init__(self):
        self.path = self.path or str(Path(self.file).resolve())


@dataclass
class BulkPlan:
    groups: dict[str, Group] = field(default_factory=dict)
    tasks: list[Task] = field(default_factory=list)
    ignored: list[str] = field(default_factory=list)  # files of other types inside folders


def check_video_size(cap: cv2.VideoCapture, max_pixels: int) -> None:
    """InputError when the container declares frames above the pixel limit."""
    import cv2

    width = int(cap.get(cv2.CAP_PROP_FRAME_WIDTH) or 0)
    height = int(cap.get(cv2.CAP_PROP_FRAME_HEIGHT) or 0)
    try:
        check_pixels(width, height, max_pixels)
    except ImageTooLarge as error:
        raise InputError(f"video frames: {error}") from None


def probe_video(path: str, max_pixels: int = DEFAULT_MAX_PIXELS) -> tuple[int, float]:
    """Frame count and frame rate from the container, or InputError."""
    import cv2

    cap = cv2.VideoCapture(path)
    try:
        if not cap.isOpened():
            raise InputError("cannot open as a video: not a video file, or truncated/corrupt")
        count = int(cap.get(cv2.CAP_PROP_FRAME_COUNT) or 0)
        fps = float(cap.get(cv2.CAP_PROP_FPS) or 0.0)
        check_video_size(cap, max_pixels)  # before the first frame is decoded
        ok = cap.grab()
        if not ok:
            raise InputError("no frames could be decoded: truncated or corrupt video")
    finally:
        cap.release()
    if not 1 <= fps <= 240:
        fps = 25.0
    return max(count, 0), fps


def sample_indices(start: int, end: int, native_fps: float, fps: float) -> list[int]:
    """Frame indices in [start, end) that sampling at `fps` keeps (all when fps <= 0 or
    fps >= the video's rate). Global, so chunks of a video sample exactly like one pass."""
    if fps <= 0 or fps >= native_fps:
        return list(range(start, end))
    step = native_fps / fps
    first = max(0, int(start // step) - 1)
    out = []
    k = first
    while True:
        index = int(round(k * step))
        if index >= end:
            break
        if index >= start and (not out or index != out[-1]):
            out.append(index)
        k += 1
    return out


def plan_chunks(count: int, native_fps: float, chunk_seconds: float) -> list[tuple[int, int]]:
    if count <= 0:
        return [(0, 0)]  # unknown length: one job that reads to the end
    size = max(1, int(round(chunk_seconds * native_fps))) if chunk_seconds > 0 else count
    return [(s, min(s + size, count)) for s in range(0, count, size)]


def _human(size: float) -> str:
    return f"{size / MIB:.1f} MB" if size >= MIB else f"{size / 1024:.0f} kB"


def _size_error(path: Path, max_bytes: float) -> str | None:
    size = path.stat().st_size
    if size > max_bytes:
        return f"file is {_human(size)}, above the size limit of {_human(max_bytes)}"
    return None


def _pixel_error(path: Path, max_pixels: int) -> str | None:
    try:
        check_image(path, max_pixels)
    except ImageRefused as error:
        return str(error)
    return None


def plan(paths: list[str], fps: float = DEFAULT_VIDEO_FPS,
         chunk_seconds: float = DEFAULT_CHUNK_SECONDS,
         max_bytes: float = DEFAULT_MAX_MB * MIB,
         max_pixels: int = DEFAULT_MAX_PIXELS) -> BulkPlan:
    """Inputs -> output groups and jobs. Errors found here (missing path, empty folder, too
    large, not a video) go into the groups' errors and make no job."""
    result = BulkPlan()
    taken: set[str] = set()

    def new_group(stem: str, kind: str, source: str) -> Group:
        group = Group(unique_name(stem, taken), kind, source)
        result.groups[group.name] = group
        return group

    def add_video(path: Path, group: Group) -> None:
        group.files.append(str(path))
        error = _size_error(path, max_bytes)
        if error:
            group.add_error(str(path), error)
            return
        try:
            count, native = probe_video(str(path), max_pixels)
        except InputError as e:
            group.add_error(str(path), str(e))
            return
        group.fps, group.sample_fps = native, min(fps, native) if fps > 0 else native
        group.duration_s = count / native if count else None
        for start, end in plan_chunks(count, native, chunk_seconds):
            total = len(sample_indices(start, end, native, fps)) if end else 0
            result.tasks.append(Task(str(path), "video", group.name, start, end, total))

    def add_image(path: Path, group: Group) -> None:
        group.files.append(str(path))
        error = _size_error(path, max_bytes) or _pixel_error(path, max_pixels)
        if error:
            group.add_error(str(path), error)
        else:
            result.tasks.append(Task(str(path), "image", group.name))

    for raw in paths:
        path = Path(raw)
        if path.is_dir():
            files = sorted(p for p in path.rglob("*") if p.is_file()
                           and not any(part.startswith(".") for part in p.relative_to(path).parts))
            images = [p for p in files if p.suffix.lower() in IMAGE_SUFFIXES]
            videos = [p for p in files if p.suffix.lower() in VIDEO_SUFFIXES]
            result.ignored += [str(p) for p in files if p not in images and p not in videos]
            if not images and not videos:
                new_group(path.resolve().name, "images", raw).add_error(
                    raw, "folder has no images or videos (looked for "
                    f"{', '.join(sorted(IMAGE_SUFFIXES | VIDEO_SUFFIXES))})")
                continue
            by_folder: dict[Path, list[Path]] = {}
            for p in images:
                by_folder.setdefault(p.parent, []).append(p)
            for folder, members in by_folder.items():
                rel = folder.relative_to(path)
                stem = "_".join((path.resolve().name, *rel.parts))
                group = new_group(stem, "images", str(folder))
                for p in members:
                    add_image(p, group)
            for p in videos:
                add_video(p, new_group(p.stem, "video", str(p)))
        elif path.is_file():
            suffix = path.suffix.lower()
            if suffix in IMAGE_SUFFIXES:
                add_image(path, new_group(path.stem, "images", raw))
            elif suffix in VIDEO_SUFFIXES:
                add_video(path, new_group(path.stem, "video", raw))
            else:  # unknown suffix: a video if FFmpeg can read it
                group = new_group(path.stem, "video", raw)
                add_video(path, group)
                if group.errors and "cannot open" in group.errors[-1]["error"]:
                    group.errors[-1]["error"] = (f"not an image or video file (type "
                                                 f"{suffix or 'none'} that FFmpeg cannot read)")
        else:
            new_group(path.stem or "input", "images", raw).add_error(
                raw, "no such file or folder")
    return result


# --------------------------------------------------------------------------- models


class InputError(ValueError):
    """A file that cannot be analysed; the message says why, for the user."""


_MODELS: dict[tuple, object] = {}
_MODELS_LOCK = threading.Lock()


# What this worker process was started with (configure_process); jobs run in it.
_PROCESS = {"threads": 1, "model_path": None, "max_pixels": DEFAULT_MAX_PIXELS,
            "bulk_dir": str(BulkSettings.model_fields["dir"].default_factory())}


def configure_process(settings: Settings) -> None:
    _PROCESS.update(threads=settings.bulk.threads,
                    model_path=str(settings.classifier.model_path),
                    max_pixels=settings.limits.max_image_pixels, bulk_dir=str(settings.bulk.dir))


def get_models(options: dict):
    """(FaceDetector, EmotionModel), built once per process for each setting."""
    from moodstream import assets
    from moodstream.detection.emotion_model import EmotionModel
    from moodstream.detection.face_detector import FaceDetector

    threads = _PROCESS["threads"]
    model_path = str(options.get("model") or _PROCESS["model_path"] or assets.emotion_model())
    with _MODELS_LOCK:
        model = _MODELS.get(("model", model_path))
        if model is None:
            model = _MODELS[("model", model_path)] = EmotionModel(model_path, threads=threads)
        key = ("detector", (model.height, model.width), int(options["min_face"]),
               float(options["min_confidence"]), options.get("detector"),
               options.get("scale_factor"))
        detector = _MODELS.get(key)
        if detector is None:
            detector = _MODELS[key] = FaceDetector(key[1], key[2], key[3], threads,
                                                   detector=key[4], scale_factor=key[5])
    return detector, model


# --------------------------------------------------------------------------- jobs


class Progress:
    """Writes done/total into job.meta at most every PROGRESS_EVERY_S."""

    def __init__(self, total: int):
        self.job = get_current_job()
        self.done, self.total, self.saved_at = 0, total, 0.0
        if self.job is not None:
            self.job.meta["attempts"] = int(self.job.meta.get("attempts", 0)) + 1
            self.job.meta.update(done=0, total=total, started=time.time())
            self.job.save_meta()

    def attempts(self) -> int:
        return int(self.job.meta["attempts"]) if self.job is not None else 1

    def add(self, n: int, force: bool = False) -> None:
        self.done += n
        if self.job is not None and (force or time.monotonic() - self.saved_at
                                     > PROGRESS_EVERY_S):
            self.job.meta.update(done=self.done, total=self.total)
            self.job.save_meta()
            self.saved_at = time.monotonic()


def label_frames(detector, model, frames: list[np.ndarray]) -> list[list[tuple]]:
    """Frames -> per frame a list of (box, probs): MTCNN then the classifier, batched."""
    found = detector.detect(frames)
    crops = [face.crop for faces in found for face in faces]
    probs = iter(model.predict(crops))
    return [[(face.box, [float(p) for p in next(probs)]) for face in faces]
            for faces in found]


def _result(file: str, kind: str, progress: Progress, **extra) -> dict:
    base = {"file": file, "kind": kind, "frames": 0, "frames_with_faces": 0, "rows": [],
            "errors": [], "attempts": progress.attempts()}
    base.update(extra)
    return base


STAGED = StagedFiles()  # this worker's copies of inputs shipped through Redis


def local_input(path: str) -> str:
    """The path to open: the path itself, or a local copy of a staged input."""
    if not is_staged(path):
        return path
    return STAGED.local_path(get_current_job().connection, path)


def analyze_image(path: str, options: dict) -> dict:

    progress = Progress(1)
    result = _result(path, "image", progress)
    try:
        local = local_input(path)
        check_image(local, _PROCESS["max_pixels"])  # from the header, before decoding
        image = decode(local)
    except (StagingError, ValueError) as error:
        result["errors"].append(str(error))
        progress.add(1, force=True)
        return result
    if image is None:
        result["errors"].append("not a readable image (corrupt, truncated or unsupported format)")
        progress.add(1, force=True)
        return result
    detector, model = get_models(options)
    faces = label_frames(detector, model, [image])[0]
    result.update(frames=1, frames_with_faces=int(bool(faces)), width=image.shape[1],
                  height=image.shape[0],
                  rows=[[0, None, *box, *probs] for box, probs in faces])
    progress.add(1, force=True)
    return result


def read_frames(path: str, start: int, end: int, wanted: list[int]):
    """Yields (index, BGR frame) for the wanted indices in [start, end) (end 0: to the end),
    decoding only what it must. Stops early (without raising) where the video ends."""
    import cv2

    cap = cv2.VideoCapture(path)
    if not cap.isOpened():
        raise InputError("cannot open as a video: not a video file, or truncated/corrupt")
    try:
        if start > 0:
            cap.set(cv2.CAP_PROP_POS_FRAMES, start)
        keep = set(wanted)
        index = start
        while end <= 0 or index < end:
            if index in keep or (end <= 0 and not wanted):
                ok, frame = cap.read()
                if not ok or frame is None:
                    return
                yield index, frame
            elif not cap.grab():
                return
            index += 1
    finally:
        cap.release()


def analyze_video_chunk(path: str, start: int, end: int, options: dict) -> dict:
    """Frames [start, end) of a video sampled at options['fps'] (end 0: the whole video)."""
    import cv2

    try:
        local = local_input(path)
    except StagingError as error:
        return _result(path, "video", Progress(0), start=start, end=end, errors=[str(error)])
    cap = cv2.VideoCapture(local)
    native = float(cap.get(cv2.CAP_PROP_FPS) or 0.0) if cap.isOpened() else 0.0
    try:
        if cap.isOpened():
            check_video_size(cap, _PROCESS["max_pixels"])
    except InputError as error:
        return _result(path, "video", Progress(0), start=start, end=end, errors=[str(error)])
    finally:
        cap.release()
    native = native if 1 <= native <= 240 else 25.0
    fps = float(options.get("fps") or 0)
    wanted = sample_indices(start, end, native, fps) if end > 0 else []
    progress = Progress(len(wanted))
    result = _result(path, "video", progress, start=start, end=end, fps=native)
    if end > 0 and not wanted:
        return result
    detector, model = get_models(options)
    batch_size = max(1, int(options.get("batch", 4)))
    step = native / fps if 0 < fps < native else 1.0
    next_kept = 0.0
    last = start - 1
    batch: list[tuple[int, np.ndarray]] = []

    def flush():
        labelled = label_frames(detector, model, [frame for _, frame in batch])
        for (index, _), faces in zip(batch, labelled, strict=True):
            result["frames"] += 1
            result["frames_with_faces"] += int(bool(faces))
            for box, probs in faces:
                result["rows"].append([index, round(index / native, 4), *box, *probs])
        progress.add(len(batch))
        batch.clear()

    try:
        for index, frame in read_frames(local, start, end, wanted):
            last = index
            if end <= 0:  # unknown length: sample as we go
                if fps > 0 and index + 1e-9 < next_kept:
                    continue
                next_kept += step
            batch.append((index, frame))
            if len(batch) >= batch_size:
                flush()
        if batch:
            flush()
    except InputError as error:
        result["errors"].append(str(error))
        return result
    expected_last = (wanted[-1] if wanted else end - 1) if end > 0 else last
    if expected_last - last > 2:  # containers may overstate their frame count by a frame
        result["errors"].append(
            f"video ends early: frame {last + 1} of {end} could not be decoded "
            f"(truncated or corrupt); frames before it were analysed")
    progress.total = max(progress.total, progress.done)
    progress.add(0, force=True)
    return result


# --------------------------------------------------------------------------- queueing


def enqueue(queue: Queue, tasks: list[Task], options: dict,
            retries: int = DEFAULT_RETRIES, job_timeout: int = JOB_TIMEOUT_S) -> list:
    """One RQ job per task, retried `retries` times when it fails or its worker dies."""
    jobs = []
    for task in tasks:
        meta = {"file": task.file, "group": task.group, "done": 0, "total": task.total,
                "kind": task.kind, "start": task.start, "end": task.end}
        common = dict(job_timeout=job_timeout, result_ttl=RESULT_TTL_S,
                      failure_ttl=RESULT_TTL_S, retry=Retry(max=retries) if retries else None,
                      meta=meta, description=f"analyse {Path(task.file).name}"
                      + (f" frames {task.start}-{task.end}" if task.kind == "video" else ""))
        if task.kind == "image":
            job = queue.enqueue(analyze_image, task.path, options, **common)
        else:
            job = queue.enqueue(analyze_video_chunk, task.path, task.start, task.end, options,
                                **common)
        jobs.append(job)
    return jobs


def failure_reason(job) -> str:
    """The last line of a failed job's traceback, or why RQ gave up on it."""
    try:
        result = job.latest_result()
        text = (result.exc_string if result is not None else None) or job.exc_info or ""
    except Exception:  # an old or partial job hash
        text = job.exc_info or ""
    lines = [line.strip() for line in text.strip().splitlines() if line.strip()]
    reason = lines[-1] if lines else "unknown failure"
    if "Abandoned" in text:
        reason = "its worker died (abandoned job) and no retries were left"
    return reason


def merge(group: Group, task: Task, result: dict | None, failure: str | None,
          attempts: int = 1) -> None:
    """Adds one job's outcome to its output group."""
    group.attempts = max(group.attempts, attempts)
    if failure is not None:
        group.add_error(task.file, f"job failed: {failure}")
        return
    result = result or {}
    group.frames += int(result.get("frames", 0))
    group.frames_with_faces += int(result.get("frames_with_faces", 0))
    group.add_rows(task.file, result.get("rows", []))
    for error in result.get("errors", []):
        if {"file": task.file, "error": error} not in group.errors:
            group.add_error(task.file, error)


def plan_to_dict(plan: BulkPlan, job_ids: list[str]) -> dict:
    """JSON-safe form of a plan and its job ids (the dashboard keeps it in Redis)."""
    groups = [{k: v for k, v in asdict(g).items() if k != "rows"} for g in plan.groups.values()]
    tasks = [dict(asdict(t), job_id=j) for t, j in zip(plan.tasks, job_ids, strict=True)]
    return {"groups": groups, "tasks": tasks, "ignored": plan.ignored}


def plan_from_dict(data: dict) -> tuple[BulkPlan, list[str]]:
    plan = BulkPlan(ignored=list(data.get("ignored", [])))
    for g in data["groups"]:
        plan.groups[g["name"]] = Group(**g)
    ids = []
    for t in data["tasks"]:
        t = dict(t)
        ids.append(t.pop("job_id"))
        plan.tasks.append(Task(**t))
    return plan, ids


# --------------------------------------------------------------------------- worker


class BulkWorker(SimpleWorker):
    """An RQ worker that keeps its models loaded: no fork per job (SimpleWorker), models
    loaded once at start (``preload``), and a heartbeat thread that keeps a long job's
    registration alive so that only a dead worker's job is ever treated as abandoned.

    Works with ``rq worker -w moodstream.bulk.jobs.BulkWorker`` and ``rq worker-pool``.
    """

    heartbeat_ttl = 60  # run_worker sets settings.bulk.heartbeat_ttl
    preload_options: dict | None = None
    preload_at_start = True  # run_worker sets settings.bulk.preload
    job_class = BulkJob

    def __init__(self, *args, **kwargs):
        kwargs.setdefault("serializer", SERIALIZER)
        kwargs.setdefault("job_class", BulkJob)
        super().__init__(*args, **kwargs)

    def get_heartbeat_ttl(self, job) -> int:
        return self.heartbeat_ttl

    def preload(self) -> None:
        try:
            started = time.monotonic()
            if self.preload_options is None:  # started by `rq worker -w ...BulkWorker`
                from moodstream.config import load_settings

                self.preload_options = default_options(load_settings())
            get_models(self.preload_options)
            self.log.info("bulk models loaded in %.1f s", time.monotonic() - started)
        except Exception as error:  # jobs will fail with the reason; the worker still runs
            self.log.error("could not preload the models: %s", error)

    def work(self, *args, **kwargs):
        if self.preload_at_start:
            self.preload()
        return super().work(*args, **kwargs)

    def execute_job(self, job, queue):
        stop = threading.Event()
        beat = threading.Thread(target=self._beat, args=(job, stop), daemon=True,
                                name="rq-heartbeat")
        beat.start()
        try:
            return super().execute_job(job, queue)
        finally:
            stop.set()
            beat.join(5)

    def _beat(self, job, stop: threading.Event) -> None:
        while not stop.wait(max(1.0, self.heartbeat_ttl / 4)):
            try:
                if getattr(self, "execution", None) is not None:
                    self.maintain_heartbeats(job)
            except Exception as error:  # Redis away for a moment: try again next beat
                self.log.warning("heartbeat failed: %s", error)
