import base64
import http.server
import threading
import time

import cv2
import numpy as np
import pytest

from moodstream.config import CameraNetworkSettings
from moodstream.ingest.sources import (
    CaptureSource,
    ImageSource,
    SourceError,
    camera_picture,
    open_source,
)
from tests.image_bombs import radiance_bomb


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
    with pytest.raises(SourceError, match="not an accepted image format"):
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
    picture = camera_picture(small, 50_000_000)
    assert picture.size == (640, 360) and picture.encode(640, 85) is small
    assert picture._pixels is None, "not decoded to be published"
    wide = camera_picture(jpeg_of(2560, 1440), 50_000_000)
    out = cv2.imdecode(np.frombuffer(wide.encode(640, 85), np.uint8), cv2.IMREAD_COLOR)
    assert out.shape == (360, 640, 3)
    odd = camera_picture(jpeg_of(1000, 500), 50_000_000)  # 1/2 would land below 640: full size
    out = cv2.imdecode(np.frombuffer(odd.encode(640, 85), np.uint8), cv2.IMREAD_COLOR)
    assert out.shape == (320, 640, 3)


def test_a_camera_jpeg_above_the_pixel_limit_is_refused_from_its_header():
    with pytest.raises(SourceError, match="pixel limit"):
        camera_picture(jpeg_of(640, 360), 100_000)


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


# ----------------------------------------------- HTTP cameras: credentials, redirects, images


class CameraHandler(http.server.BaseHTTPRequestHandler):
    """A snapshot camera on loopback: /x.jpg, /auth/x.jpg (basic auth cam:s3cret),
    /classroom.png (a Radiance bomb), /redirect (302 to server.target)."""

    def do_GET(self):  # noqa: N802 (the handler's API)
        self.server.seen.append((self.path, self.headers.get("Authorization")))
        if self.path.startswith("/auth/") and self.headers.get("Authorization") != (
                "Basic " + base64.b64encode(b"cam:s3cret").decode()):
            self.send_response(401)
            self.send_header("WWW-Authenticate", 'Basic realm="camera"')
            self.end_headers()
            return
        if self.path == "/redirect":
            self.send_response(302)
            self.send_header("Location", self.server.target)
            self.end_headers()
            return
        body, kind = (radiance_bomb(), "image/png") if self.path == "/classroom.png" else (
            jpeg_of(64, 48), "image/jpeg")
        self.send_response(200)
        self.send_header("Content-Type", kind)
        self.send_header("Content-Length", str(len(body)))
        self.end_headers()
        self.wfile.write(body)

    def log_message(self, *args):
        pass


@pytest.fixture
def camera_server():
    servers = []

    def start(host: str = "127.0.0.1", target: str = ""):
        server = http.server.ThreadingHTTPServer((host, 0), CameraHandler)
        server.seen, server.target = [], target
        threading.Thread(target=server.serve_forever, daemon=True).start()
        servers.append(server)
        return server, f"http://{host}:{server.server_address[1]}"

    yield start
    for server in servers:
        server.shutdown()
        server.server_close()


def test_an_http_camera_with_user_and_password_logs_in(camera_server):
    server, base = camera_server()
    source = open_source(base.replace("http://", "http://cam:s3cret@") + "/auth/x.jpg")
    picture, _ = next(source.pictures())
    assert picture.size == (64, 48)
    assert server.seen[-1][1] == "Basic " + base64.b64encode(b"cam:s3cret").decode()


def test_a_failing_http_camera_never_says_its_secrets(camera_server):
    _, base = camera_server()
    spec = base.replace("http://", "http://cam:wrong-pw@") + "/auth/x.jpg?token=tk-123"
    with pytest.raises(SourceError) as caught:
        next(open_source(spec).pictures())
    assert "401" in str(caught.value)
    assert "wrong-pw" not in str(caught.value) and "tk-123" not in str(caught.value)
    assert "cam:***@" in str(caught.value) and "token=***" in str(caught.value)


def test_a_redirect_to_a_denied_address_is_refused(camera_server):
    denied, denied_base = camera_server("127.0.0.1")
    _, allowed_base = camera_server("127.0.0.2", target=denied_base + "/x.jpg")
    networks = CameraNetworkSettings(deny="127.0.0.1/32")
    source = open_source(allowed_base + "/redirect", networks=networks)  # allowed itself
    with pytest.raises(SourceError, match=r"redirect \(302\) to http://127\.0\.0\.1:\d+/x\.jpg "
                                          "refused: .*not in the allowed camera networks"):
        next(source.pictures())
    assert denied.seen == [], "the denied address was never contacted"


def test_a_redirect_within_the_policy_is_followed(camera_server):
    _, target_base = camera_server("127.0.0.2")
    _, base = camera_server("127.0.0.3", target=target_base + "/x.jpg")
    source = open_source(base + "/redirect", networks=CameraNetworkSettings(deny="127.0.0.1/32"))
    assert next(source.pictures())[0].size == (64, 48)


def test_a_snapshot_that_fools_pillow_is_refused_before_decoding(camera_server):
    """A Radiance HDR of 16000x16000 served as classroom.png, "PCD_" at byte 2048."""
    _, base = camera_server()
    started = time.monotonic()
    with pytest.raises(SourceError, match="did not return an accepted image .*not an accepted "
                                          "image format"):
        next(open_source(base + "/classroom.png").pictures())
    assert time.monotonic() - started < 5
