import time

import cv2
import numpy as np
import pytest

from moodstream.ingest.sources import (
    CaptureSource,
    ImageSource,
    SourceError,
    jpeg_picture,
    open_source,
)


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
    assert len(frames) == 3 and frames[0][0].pixels().shape == (8, 8, 3)
    assert frames[0][0].encode(640, 85) == jpeg, "a small JPEG part is published as it came"


def jpeg_of(width: int, height: int) -> bytes:
    image = np.zeros((height, width, 3), np.uint8)
    cv2.circle(image, (width // 2, height // 2), height // 3, (40, 200, 90), -1)
    return cv2.imencode(".jpg", image, [cv2.IMWRITE_JPEG_QUALITY, 90])[1].tobytes()


def test_a_jpeg_within_the_width_passes_through_and_a_wider_one_is_reduced():
    small = jpeg_of(640, 360)
    picture = jpeg_picture(small, 50_000_000)
    assert picture.size == (640, 360) and picture.encode(640, 85) is small
    assert picture._pixels is None, "not decoded to be published"
    wide = jpeg_picture(jpeg_of(2560, 1440), 50_000_000)
    out = cv2.imdecode(np.frombuffer(wide.encode(640, 85), np.uint8), cv2.IMREAD_COLOR)
    assert out.shape == (360, 640, 3)
    odd = jpeg_picture(jpeg_of(1000, 500), 50_000_000)  # 1/2 would land below 640: full size
    out = cv2.imdecode(np.frombuffer(odd.encode(640, 85), np.uint8), cv2.IMREAD_COLOR)
    assert out.shape == (320, 640, 3)


def test_a_camera_jpeg_above_the_pixel_limit_is_refused_from_its_header():
    with pytest.raises(SourceError, match="pixel limit"):
        jpeg_picture(jpeg_of(640, 360), 100_000)


def test_a_still_jpeg_is_published_as_it_is_and_encoded_once(media, tmp_path):
    source = open_source(str(media / "fer_justin.jpg"))
    pictures = source.pictures()
    (first, _), (second, _) = next(pictures), next(pictures)
    assert first is second
    assert first.encode(640, 85) == (media / "fer_justin.jpg").read_bytes()
    png = tmp_path / "face.png"
    cv2.imwrite(str(png), cv2.imread(str(media / "fer_justin.jpg")))
    still = next(open_source(str(png)).pictures())[0]
    assert still.encode(640, 85) is still.encode(640, 85), "encoded once, then the same bytes"


def test_video_frames_the_sampling_skips_are_never_converted(media):
    source = open_source(str(media / "fer_woman2.mp4"))
    pictures = source.pictures()
    skipped = [next(pictures)[0] for _ in range(3)]
    taken = next(pictures)[0]
    assert taken.pixels().shape == (336, 596, 3)
    assert all(p._pixels is None for p in skipped)
