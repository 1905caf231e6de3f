import time

import cv2
import numpy as np
import pytest

from moodstream.ingest.sources import CaptureSource, ImageSource, SourceError, open_source


def test_still_image_repeats(media):
    source = open_source(str(media / "fer_justin.jpg"))
    assert isinstance(source, ImageSource)
    frames = source.frames()
    first, second = next(frames), next(frames)
    assert first[0].shape == (384, 381, 3) and second[1] >= first[1]


def test_video_file_plays_at_its_own_rate(media):
    source = open_source(str(media / "fer_woman2.mp4"))
    assert isinstance(source, CaptureSource) and not source.live
    frames = source.frames()
    start = time.monotonic()
    for _ in range(15):
        frame, _ = next(frames)
    assert frame.shape == (336, 596, 3)
    assert time.monotonic() - start >= 14 / 29.97 * 0.9, "paced at 29.97 fps, not decode speed"


def test_missing_file_and_unknown_source_are_clear_errors(tmp_path):
    with pytest.raises(SourceError, match="no such file"):
        open_source(str(tmp_path / "absent.mp4"))
    text = tmp_path / "notes.jpg"
    text.write_text("hello")
    with pytest.raises(SourceError, match="not a readable image"):
        next(open_source(str(text)).frames())


def test_unreachable_http_camera_says_so():
    source = open_source("http://127.0.0.1:9/snapshot.jpg")
    with pytest.raises(SourceError, match="cannot reach"):
        next(source.frames())


def test_mjpeg_parts_are_found_between_jpeg_markers():
    from moodstream.ingest.sources import HttpSource

    jpeg = cv2.imencode(".jpg", np.full((8, 8, 3), 200, np.uint8))[1].tobytes()
    body = b"--frame\r\nContent-Type: image/jpeg\r\n\r\n" + jpeg + b"\r\n"

    class FakeResponse:  # a byte stream split at awkward places, like a real socket
        def __init__(self, data):
            self.data = data

        def read(self, n):
            chunk, self.data = self.data[:7], self.data[7:]
            return chunk

    frames = list(HttpSource._mjpeg(FakeResponse(body * 3)))
    assert len(frames) == 3 and frames[0][0].shape == (8, 8, 3)
