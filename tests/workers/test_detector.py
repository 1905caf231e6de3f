"""The live detector's decoding (workers/detector.py): only checked JPEG frames decode."""

from __future__ import annotations

import time

import cv2
import numpy as np

from moodstream.config import LimitSettings
from moodstream.contract import Frame
from moodstream.workers.detector import decode_images
from tests.image_bombs import radiance_bomb


def test_a_frame_that_fools_pillow_is_refused_unread():
    """A Radiance HDR of 16000x16000 with "PCD_" at byte 2048, sent as a frame."""
    jpeg = cv2.imencode(".jpg", np.zeros((48, 64, 3), np.uint8))[1].tobytes()
    items = [("1-0", Frame("cam", 1, time.time(), jpeg)),
             ("2-0", Frame("cam", 2, time.time(), radiance_bomb()))]
    started = time.monotonic()
    decoded, rejected = decode_images(items, LimitSettings(max_frame_bytes=1 << 20))
    assert time.monotonic() - started < 1
    assert [eid for eid, _, _ in decoded] == ["1-0"] and decoded[0][2].shape == (48, 64, 3)
    assert rejected == {"2-0": "frame: not an accepted image format (accepted: JPEG)"}


def test_frames_that_are_not_jpeg_are_refused():
    png = cv2.imencode(".png", np.zeros((48, 64, 3), np.uint8))[1].tobytes()
    _, rejected = decode_images([("1-0", Frame("cam", 1, time.time(), png))], LimitSettings())
    assert "not an accepted image format" in rejected["1-0"]
