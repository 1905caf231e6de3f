"""moodstream.images: only accepted formats, read twice, within the pixel limit; and OpenCV's
own pixel cap, set when moodstream is imported."""

from __future__ import annotations

import io
import subprocess
import sys
import time

import numpy as np
import pytest
from PIL import Image

from moodstream.images import (
    FRAME_FORMATS,
    ImageRefused,
    ImageTooLarge,
    check_image,
    decode,
    inspect_image,
)
from tests.conftest import REPO
from tests.image_bombs import radiance_bomb

LIMIT = 50_000_000


def encoded(fmt: str, size=(64, 48)) -> bytes:
    out = io.BytesIO()
    Image.new("RGB", size, (30, 120, 200)).save(out, fmt)
    return out.getvalue()


@pytest.mark.parametrize("fmt,kind", [("JPEG", "JPEG"), ("PNG", "PNG"), ("WEBP", "WEBP"),
                                      ("BMP", "BMP")])
def test_the_accepted_formats_pass_with_their_size(fmt, kind):
    data = encoded(fmt)
    assert inspect_image(data, LIMIT) == (kind, (64, 48))
    assert decode(data).shape == (48, 64, 3)


@pytest.mark.parametrize("fmt", ["TIFF", "GIF", "PPM", "ICO"])
def test_other_formats_are_refused_before_decoding(fmt):
    with pytest.raises(ImageRefused, match="not an accepted image format"):
        check_image(encoded(fmt), LIMIT)


def test_a_radiance_bomb_that_fools_pillow_is_refused_fast(tmp_path):
    """Pillow alone reads it as a 768x512 PhotoCD; OpenCV would decode 16000x16000."""
    bomb = tmp_path / "classroom.png"
    bomb.write_bytes(radiance_bomb())
    with Image.open(bomb) as fooled:
        assert (fooled.format, fooled.size) == ("PCD", (768, 512))
    started = time.monotonic()
    with pytest.raises(ImageRefused, match="not an accepted image format"):
        check_image(bomb, LIMIT)
    assert time.monotonic() - started < 1


def test_a_signature_pillow_cannot_confirm_is_refused():
    """The PNG signature followed by a PhotoCD: Pillow may only read it as a PNG."""
    forged = b"\x89PNG\r\n\x1a\n" + radiance_bomb()[8:]
    with pytest.raises(ImageRefused, match=r"not a readable image \(corrupt or truncated PNG"):
        check_image(forged, LIMIT)


def test_frames_must_be_jpeg():
    check_image(encoded("JPEG"), LIMIT, FRAME_FORMATS)
    with pytest.raises(ImageRefused, match=r"accepted: JPEG\)"):
        check_image(encoded("PNG"), LIMIT, FRAME_FORMATS)


def test_the_pixel_limit_is_read_from_the_header():
    with pytest.raises(ImageTooLarge, match="640x480"):
        check_image(encoded("PNG", (640, 480)), 100_000)


OPENCV_PROBE = """
import moodstream, cv2, numpy as np
png = cv2.imencode(".png", np.zeros((200, 200, 3), np.uint8))[1]
try:
    print(cv2.imdecode(png, cv2.IMREAD_COLOR).shape)
except cv2.error:
    print("refused")
"""


@pytest.mark.parametrize("limit,expected", [("10000", "refused"), ("50000", "(200, 200, 3)")])
def test_opencv_gets_the_same_pixel_limit(limit, expected):
    """Set in the environment when moodstream is imported, before cv2 reads it."""
    proc = subprocess.run([sys.executable, "-c", OPENCV_PROBE], cwd=REPO, capture_output=True,
                          text=True, timeout=60,
                          env={"PATH": "/usr/bin:/bin", "MOODSTREAM_MAX_IMAGE_PIXELS": limit})
    assert proc.stdout.strip() == expected, proc.stderr


def test_decode_answers_none_where_opencv_refuses():
    """A lying header that reached OpenCV: its cap raises, decode says None."""
    import cv2

    png = cv2.imencode(".png", np.zeros((8000, 8000), np.uint8))[1].tobytes()
    assert decode(png) is None
