"""Runtime settings, read from MOODSTREAM_* environment variables (and REDIS_URL)."""

from __future__ import annotations

import os
from functools import lru_cache
from pathlib import Path

from pydantic import AliasChoices, Field
from pydantic_settings import BaseSettings, SettingsConfigDict

REPO_ROOT = Path(__file__).resolve().parent.parent
DEFAULT_MODEL = REPO_ROOT / "models" / "emotion.onnx"


class Settings(BaseSettings):
    model_config = SettingsConfigDict(env_prefix="MOODSTREAM_", extra="ignore")

    redis_url: str = Field(
        "redis://127.0.0.1:6379/0",
        validation_alias=AliasChoices("REDIS_URL", "MOODSTREAM_REDIS_URL"),
    )
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
    # Images (uploads, bulk files, frames on the stream, video frames) above this many pixels
    # are refused from their header, before anything is decoded.
    max_image_pixels: int = 50_000_000
    # Frames larger than this (JPEG bytes) are not published: the frames stream's memory is
    # bounded by frames_maxlen x this, whatever the camera sends.
    max_frame_bytes: int = 512 * 1024
    # Networks that camera URLs may reach (comma-separated CIDRs; empty: no restriction),
    # and networks they must never reach. See moodstream.camera_networks.
    camera_networks_allow: str = ""
    camera_networks_deny: str = ""
    # The embedded Redis (`moodstream up`, `analyze`): a memory cap, and the policy at the cap.
    # noeviction refuses new writes rather than silently dropping users or queued jobs.
    redis_maxmemory: str = "1gb"
    redis_maxmemory_policy: str = "noeviction"
    # Live path under overload: detectors handle only the newest frame of each camera among
    # those read together, and count the rest as dropped (superseded).
    newest_only: bool = False
    # A pending entry idle this long belongs to a dead worker and is reclaimed.
    claim_idle_ms: int = 15000
    heartbeat_ttl_s: int = 15
    model_path: Path = DEFAULT_MODEL
    detector_min_face: int = 40
    # Face detector: mtcnn-onnx (MTCNN on onnxruntime, no TensorFlow), mtcnn (the mtcnn
    # package on TensorFlow) or haar; and the MTCNN image pyramid factor.
    detector: str = "mtcnn-onnx"
    detector_scale_factor: float = 0.709
    # Driver alerts POSTed as JSON to this URL (raised and cleared), signed with the secret.
    alert_webhook: str | None = None
    alert_webhook_secret: str | None = None
    classifier_batch: int = 32
    classifier_wait_ms: int = 5
    # The dashboard's server: threads (each live browser holds one) and the longest wait for
    # any read of a request (a client sending half a request must not hold a thread).
    dashboard_threads: int = 100
    dashboard_request_timeout_s: float = 10.0
    token: str | None = None
    secret_key: str | None = None
    metrics_port: int = 0  # 0 = no Prometheus HTTP endpoint


def env_flag(name: str) -> bool:
    """A yes/no switch read from the environment at call time (1, true, yes, on)."""
    return os.environ.get(name, "").lower() in ("1", "true", "yes", "on")


@lru_cache(maxsize=1)
def get_settings() -> Settings:
    return Settings()
