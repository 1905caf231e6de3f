"""Runtime settings: the one place that reads the environment.

`load_settings()` reads MOODSTREAM_* variables (and REDIS_URL) once into a `Settings` object
with nested groups; the CLI passes that object to the command it runs, and code below takes
what it needs as arguments. No other module reads or writes os.environ (tests/test_layout.py
checks). Variable names stay flat (MOODSTREAM_BULK_DIR is settings.bulk.dir): each group is
its own BaseSettings with its own prefix. A MOODSTREAM_* variable that no field reads is
reported (a typo would otherwise be ignored silently); MOODSTREAM_STRICT=1 refuses to start.

Sizes given in MB are MiB (2**20 bytes), everywhere.
"""

from __future__ import annotations

import difflib
import logging
import os
import tempfile
from pathlib import Path
from typing import Literal

from pydantic import AliasChoices, BaseModel, Field, ValidationError, model_validator
from pydantic_settings import BaseSettings, SettingsConfigDict

from moodstream import assets

log = logging.getLogger("moodstream.config")

PREFIX = "MOODSTREAM_"
DEFAULT_REDIS_URL = "redis://127.0.0.1:6379/0"
MIB = 2**20
# Read by development tools (tests, bench, training), not by the services.
DEV_VARIABLES = {"MOODSTREAM_SHARED", "MOODSTREAM_FER_PYTHON", "MOODSTREAM_BULK_SCREENSHOT",
                 "MOODSTREAM_FER2013"}


def _group(prefix: str) -> SettingsConfigDict:
    return SettingsConfigDict(env_prefix=prefix, extra="ignore", populate_by_name=True)


class RedisSettings(BaseSettings):
    model_config = _group(PREFIX + "REDIS_")
    # None: not configured. `up` and `analyze` then start an embedded Redis; the other
    # commands use DEFAULT_REDIS_URL (see Settings.redis_url).
    url: str | None = Field(None, validation_alias=AliasChoices("REDIS_URL",
                                                                 "MOODSTREAM_REDIS_URL"))
    # The embedded Redis (`moodstream up`, `analyze`): a memory cap, and the policy at the cap.
    # noeviction refuses new writes rather than silently dropping users or queued jobs.
    maxmemory: str = "1gb"
    maxmemory_policy: str = "noeviction"


class StreamSettings(BaseSettings):
    model_config = _group(PREFIX)
    # Stream caps (XADD MAXLEN ~): frames are big, so keep few of them.
    frames_maxlen: int = 500
    faces_maxlen: int = 5000
    labels_maxlen: int = 20000
    dead_letter_maxlen: int = 1000
    # Live path: a frame older than this is dropped instead of processed late.
    stale_after_s: float = 5.0
    # Every stage drops (and counts as dropped:future) an entry stamped further ahead than
    # this: a wrong ingest clock or a forged label must not hold the live windows.
    max_clock_skew_s: float = 5.0
    # Live path under overload: detectors handle only the newest frame of each camera among
    # those read together, and count the rest as dropped (superseded).
    newest_only: bool = False
    # A pending entry idle this long belongs to a dead worker and is reclaimed.
    claim_idle_ms: int = 15000
    heartbeat_ttl_s: int = 15


class LimitSettings(BaseSettings):
    model_config = _group(PREFIX)
    # Images (uploads, bulk files, frames on the stream, video frames) above this many pixels
    # are refused from their header, before anything is decoded.
    max_image_pixels: int = 50_000_000
    # Frames larger than this (JPEG bytes) are not published: the frames stream's memory is
    # bounded by frames_maxlen x this, whatever the camera sends.
    max_frame_bytes: int = 512 * 1024


class CameraNetworkSettings(BaseSettings):
    model_config = _group(PREFIX + "CAMERA_NETWORKS_")
    # Networks that camera URLs may reach (comma-separated CIDRs; empty: no restriction),
    # and networks they must never reach. See moodstream.camera_networks.
    allow: str = ""
    deny: str = ""


class IngestSettings(BaseSettings):
    model_config = _group(PREFIX + "INGEST_")
    # `moodstream cameras` runs up to this many cameras in one ingest process (a thread
    # each), then starts another: a few processes for a big site, not one per camera.
    cameras_per_process: int = Field(8, ge=1)
    # FFmpeg decoder threads per video camera; 0: FFmpeg's default (one per core, each with
    # its own frame buffers). One keeps up with sampling at a few frames per second.
    decoder_threads: int = Field(1, ge=0)
    # Frames are shrunk to this width (the detector's working size) and sent as JPEG of
    # this quality (the edge node analyses at the same width).
    max_width: int = Field(640, ge=64)
    jpeg_quality: int = Field(85, ge=10, le=100)


class DetectorSettings(BaseSettings):
    model_config = _group(PREFIX + "DETECTOR_")
    # mtcnn-onnx (MTCNN on onnxruntime, no TensorFlow), mtcnn (the mtcnn package on
    # TensorFlow) or haar.
    name: str = Field("mtcnn-onnx", validation_alias=AliasChoices("MOODSTREAM_DETECTOR"))
    min_face: int = 40
    scale_factor: float = 0.709  # the MTCNN image pyramid factor
    # Faces the detector scores below this are not faces (MTCNN's O-Net score).
    min_confidence: float = Field(0.9, ge=0, le=1)
    # Detection that does not redo work (docs/detector.md), each on its own switch.
    # Lean pyramid (mtcnn-onnx): no P-Net levels for faces above max_face px (0: no bound);
    # the pyramid built from the frame downscaled by a whole factor while its smallest face
    # stays at least work_face px (0: from the full frame). Off by default: at 640x480 and
    # min_face 40 it saved no more than the noise and changed 10% of the clip's labels
    # (docs/detector.md); it is for large frames with a large min_face.
    max_face: int = 0
    work_face: int = 0
    # Motion gating: a frame like the last detected one of its camera reuses its faces.
    gate: bool = True
    gate_fraction: float = 0.002  # of the 80-px thumbnail's pixels allowed to change
    # Track-guided detection: MTCNN only around the known faces while nothing moves elsewhere.
    track: bool = True
    # A full scan at least this often (frames, capture seconds), whatever the motion: the
    # bound on how late a person who enters without motion is found.
    full_every_frames: int = 10
    full_every_s: float = 2.0
    # Tracked frames: O-Net refines the faces' boxes on every this many; on the others each
    # face up to follow_max_face px follows its own neighbourhood (phase correlation at full
    # resolution), larger ones get O-Net all the same: a close face turns and talks, and
    # followed crops of it changed 15-20% of its labels (docs/detector.md). 1: always O-Net.
    refine_every_frames: int = 4
    follow_max_face: int = 64
    state_ttl_s: float = 30.0  # a camera's state in Redis (keys.detect_state)


class ClassifierSettings(BaseSettings):
    model_config = _group(PREFIX + "CLASSIFIER_")
    # Which shipped emotion model: int8 (the quantized one, faster at the same accuracy) or
    # float. MOODSTREAM_MODEL_PATH, when set, names a file and wins over this.
    precision: Literal["int8", "float"] = "int8"
    model_path: Path = Field(default_factory=assets.emotion_model,
                             validation_alias=AliasChoices("MOODSTREAM_MODEL_PATH"))
    batch: int = 32  # most faces per onnxruntime call
    frames_per_read: int = 8  # faces entries (frames) read and labelled together
    wait_ms: int = 5
    # A tracked face is classified again at least this often (capture time; 0: every
    # frame), and sooner when its crop changed by more than reuse_change_level grey levels
    # (detection/label_reuse.py). In between it carries its last probabilities.
    reuse_max_age_ms: int = 400
    reuse_change_level: float = 6.0
    reuse_max_face: int = 64  # px: larger (close) faces are classified on every frame

    @model_validator(mode="after")
    def _shipped_model_of_the_precision(self) -> ClassifierSettings:
        if "model_path" not in self.model_fields_set:
            self.model_path = assets.emotion_model(self.precision)
        return self

    def model_for(self, precision: str | None = None) -> Path:
        """The model file: the shipped one of ``precision`` when given (a command's
        --precision), else the configured one."""
        return assets.emotion_model(precision) if precision else self.model_path


class AlertSettings(BaseSettings):
    model_config = _group(PREFIX + "ALERT_")
    # Driver alerts POSTed as JSON to this URL (raised and cleared), signed with the secret.
    webhook: str | None = None
    webhook_secret: str | None = None


class AggregatorSettings(BaseSettings):
    model_config = _group(PREFIX + "AGGREGATOR_")
    interval_s: float = 1.0  # between snapshots
    # A camera's owner renews its lease every interval; a lease not renewed for this long
    # (its holder died) is taken over by another aggregator.
    lease_s: float = 5.0


class EdgeSettings(BaseSettings):
    """`moodstream edge`: analysis beside the camera, labels sent to a central Redis."""

    model_config = _group(PREFIX + "EDGE_")
    # Labels waiting for the link, in memory (MiB); past it the oldest go to the spill file
    # in the data directory, which holds at most spill_mb (MiB); past that, labels are
    # dropped and counted (the camera's status, /api/stats).
    queue_mb: float = Field(8.0, gt=0)
    spill_mb: float = Field(64.0, ge=0)
    # After an outage the backlog goes out at this many labels a second at most, so the
    # central aggregators keep up and the labels stream's cap never trims unread entries.
    resend_per_s: float = Field(1000.0, gt=0)
    status_every_s: float = Field(2.0, gt=0)  # the camera's status (and heartbeat)
    # Seconds without an answer before the link counts as lost (a silent network).
    link_timeout_s: float = Field(5.0, gt=0)


def _default_data_dir() -> Path:
    base = os.environ.get("XDG_DATA_HOME") or Path.home() / ".local" / "share"
    return Path(base) / "moodstream"


class HistorySettings(BaseSettings):
    """Lesson history (moodstream.history): where it is kept and for how long."""

    model_config = _group(PREFIX + "HISTORY_")
    # The data directory: the SQLite history file lives here unless a URL is given.
    data_dir: Path = Field(default_factory=_default_data_dir,
                           validation_alias=AliasChoices("MOODSTREAM_DATA_DIR"))
    # A PostgreSQL URL (postgresql://user:password@host/db) for several aggregators or
    # dashboards on more than one machine; empty: SQLite in data_dir.
    url: str | None = None
    retention_days: float = 90.0
    # Rows waiting in Redis while the database is down; beyond it the oldest are dropped
    # (and counted in /api/stats). 50,000 rows: 17 hours of 8 cameras.
    buffer_max: int = 50000
    batch: int = 2000
    flush_interval_s: float = 5.0

    def database_url(self) -> str:
        from moodstream.history.store import sqlite_url

        return self.url or sqlite_url(self.data_dir)


class DashboardSettings(BaseSettings):
    model_config = _group(PREFIX)
    token: str | None = None
    secret_key: str | None = None
    secure_cookies: bool = False
    trusted_proxies: int = 0
    max_upload_mb: float = 512.0  # whole-request cap (MiB)
    admin_user: str = ""
    admin_password: str = ""
    # The dashboard's server: threads (each live browser holds one) and the longest wait for
    # any read of a request (a client sending half a request must not hold a thread).
    threads: int = Field(100, validation_alias=AliasChoices("MOODSTREAM_DASHBOARD_THREADS"))
    request_timeout_s: float = Field(
        10.0, validation_alias=AliasChoices("MOODSTREAM_DASHBOARD_REQUEST_TIMEOUT_S"))
    # A camera whose last snapshot is older than this shows as stale (greyed, no figures).
    stale_after_s: float = Field(
        10.0, gt=0, validation_alias=AliasChoices("MOODSTREAM_DASHBOARD_STALE_AFTER_S"))


class BulkSettings(BaseSettings):
    model_config = _group(PREFIX + "BULK_")
    dir: Path = Field(default_factory=lambda: Path(tempfile.gettempdir()) / "moodstream-bulk")
    max_upload_mb: float = 500.0  # per upload (MiB)
    queue: str = "moodstream-bulk"
    threads: int = 1
    heartbeat_ttl: int = 60
    # Load the models when a worker starts (its first job starts at once) instead of with
    # its first job (an idle worker then holds about 70 MB less: most sites rarely upload).
    preload: bool = False
    # Ship inputs through Redis, for bulk workers on other machines.
    stage: bool = False


class Settings(BaseModel):
    redis: RedisSettings = Field(default_factory=RedisSettings)
    streams: StreamSettings = Field(default_factory=StreamSettings)
    limits: LimitSettings = Field(default_factory=LimitSettings)
    camera_networks: CameraNetworkSettings = Field(default_factory=CameraNetworkSettings)
    ingest: IngestSettings = Field(default_factory=IngestSettings)
    detector: DetectorSettings = Field(default_factory=DetectorSettings)
    classifier: ClassifierSettings = Field(default_factory=ClassifierSettings)
    alerts: AlertSettings = Field(default_factory=AlertSettings)
    aggregator: AggregatorSettings = Field(default_factory=AggregatorSettings)
    history: HistorySettings = Field(default_factory=HistorySettings)
    dashboard: DashboardSettings = Field(default_factory=DashboardSettings)
    bulk: BulkSettings = Field(default_factory=BulkSettings)
    edge: EdgeSettings = Field(default_factory=EdgeSettings)
    log_level: str = "INFO"
    metrics_port: int = 0  # 0 = no Prometheus HTTP endpoint

    @property
    def redis_url(self) -> str:
        """The Redis to use: the configured one, else the local default."""
        return self.redis.url or DEFAULT_REDIS_URL

    def with_options(self, group: str, **options) -> Settings:
        """A copy whose `group` takes a command's options: those given (not None) replace
        the settings of the same name; the others keep the environment's."""
        given = {k: v for k, v in options.items() if v is not None}
        if not given:
            return self
        return self.model_copy(update={group: getattr(self, group).model_copy(update=given)})

    def with_redis(self, url: str | None) -> Settings:
        """A copy pointing at another Redis (a --redis-url option, an embedded server)."""
        if not url:
            return self
        return self.model_copy(update={"redis": self.redis.model_copy(update={"url": url})})

    def child_env(self, **overrides: str) -> dict[str, str]:
        """The environment for child `moodstream` processes: this one plus what differs."""
        env = dict(os.environ, PYTHONUNBUFFERED="1", TF_CPP_MIN_LOG_LEVEL="3")
        if self.redis.url:
            env["REDIS_URL"] = self.redis.url
        env.update(overrides)
        return env


class TopLevel(BaseSettings):
    model_config = _group(PREFIX)
    log_level: str = "INFO"
    metrics_port: int = 0


GROUPS = {"redis": RedisSettings, "streams": StreamSettings, "limits": LimitSettings,
          "camera_networks": CameraNetworkSettings, "ingest": IngestSettings,
          "detector": DetectorSettings,
          "classifier": ClassifierSettings, "alerts": AlertSettings,
          "aggregator": AggregatorSettings, "history": HistorySettings,
          "dashboard": DashboardSettings, "bulk": BulkSettings, "edge": EdgeSettings}


def known_variables() -> set[str]:
    """Every environment variable some setting reads."""
    names = set(DEV_VARIABLES) | {"MOODSTREAM_STRICT"}
    for cls in (*GROUPS.values(), TopLevel):
        prefix = cls.model_config.get("env_prefix", "")
        for name, field in cls.model_fields.items():
            alias = field.validation_alias
            if isinstance(alias, AliasChoices):
                names.update(str(c).upper() for c in alias.choices)
            else:
                names.add((prefix + name).upper())
    return names


def unknown_variables(environ=None) -> list[str]:
    environ = os.environ if environ is None else environ
    known = known_variables()
    return sorted(k for k in environ if k.upper().startswith(PREFIX) and k.upper() not in known)


def load_settings() -> Settings:
    """Read the environment once. Unknown MOODSTREAM_* variables are logged with the closest
    known name; with MOODSTREAM_STRICT=1 they stop the program instead."""
    unknown = unknown_variables()
    for name in unknown:
        close = difflib.get_close_matches(name.upper(), known_variables(), n=1)
        hint = f" (did you mean {close[0]}?)" if close else ""
        log.warning("ignoring unknown setting %s%s", name, hint)
    if unknown and os.environ.get("MOODSTREAM_STRICT", "").lower() in ("1", "true", "yes", "on"):
        raise SystemExit(f"unknown settings: {', '.join(unknown)} (MOODSTREAM_STRICT is on)")
    top = _read(TopLevel)
    return Settings(**{name: _read(cls) for name, cls in GROUPS.items()},
                    log_level=top.log_level, metrics_port=top.metrics_port)


def _variable(cls: type[BaseSettings], field: str) -> str:
    alias = cls.model_fields[field].validation_alias
    if isinstance(alias, AliasChoices):
        return "/".join(str(c).upper() for c in alias.choices)
    return (cls.model_config.get("env_prefix", "") + field).upper()


def _read(cls: type[BaseSettings]) -> BaseSettings:
    """One group from the environment; a bad value stops the program with the variable's
    name and what is wrong, not a traceback."""
    try:
        return cls()
    except ValidationError as error:
        problems = "; ".join(
            f"{_variable(cls, str(e['loc'][0])) if e['loc'] else cls.__name__}: {e['msg']}"
            for e in error.errors())
        raise SystemExit(f"invalid setting: {problems}") from None


def set_opencv_ffmpeg_options(options: str) -> None:
    """OpenCV's FFmpeg backend reads its capture options from the environment at each open."""
    os.environ["OPENCV_FFMPEG_CAPTURE_OPTIONS"] = options


def quiet_tensorflow() -> None:
    """TensorFlow's C++ logging, read from the environment when it loads."""
    os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")


def limit_opencv_decoding() -> None:
    """OpenCV reads its own pixel cap (OPENCV_IO_MAX_IMAGE_PIXELS) once, when cv2 loads:
    give it ours before that, so an image that passes moodstream.images with a lying header
    is still refused by the decoder. Called when the moodstream package is imported."""
    try:
        limit = LimitSettings().max_image_pixels
    except ValueError:  # a malformed setting: load_settings reports it; keep the default
        limit = LimitSettings.model_fields["max_image_pixels"].default
    os.environ["OPENCV_IO_MAX_IMAGE_PIXELS"] = str(limit)
