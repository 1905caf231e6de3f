"""Ingest from real network cameras on loopback: an ffmpeg RTSP server and an HTTP server."""

from __future__ import annotations

import http.server
import json
import shutil
import subprocess
import threading
import time

import cv2
import pytest

from moodstream import keys
from tests.conftest import MOODSTREAM, REPO, free_port, service_env, wait_for

pytestmark = pytest.mark.slow


class RtspServer:
    """A real RTSP server (Debian's rtsp-server-perl) fed by ffmpeg playing the video in a loop,
    as an IP camera would be. Cameras read rtsp://127.0.0.1:<port>/live."""

    def __init__(self, video, port: int):
        self.video, self.port, self.source_port = video, port, free_port()
        self.procs: list[subprocess.Popen] = []

    def start(self) -> RtspServer:
        quiet = {"stdout": subprocess.DEVNULL, "stderr": subprocess.DEVNULL}
        self.procs.append(subprocess.Popen(
            ["rtsp-server-perl", "--clientport", str(self.port), "--serverport",
             str(self.source_port), "--client_listen_address", "127.0.0.1",
             "--source_listen_address", "127.0.0.1"], **quiet))
        time.sleep(1)
        self.procs.append(subprocess.Popen(
            ["ffmpeg", "-nostdin", "-loglevel", "error", "-re", "-stream_loop", "-1", "-i",
             str(self.video), "-an", "-c:v", "copy", "-f", "rtsp",
             f"rtsp://127.0.0.1:{self.source_port}/live"], **quiet))
        return self

    def stop(self) -> None:
        for proc in self.procs:
            proc.kill()
            proc.wait()
        self.procs = []


def state(r, cam):
    return (r.hget(keys.camera_status(cam), "state") or b"").decode()


def frames_in(r) -> int:
    return int(r.hget(keys.STATS, "frames:in") or 0)


def test_rtsp_camera_is_read_and_ingest_recovers_when_the_server_restarts(r, services, media):
    if not shutil.which("rtsp-server-perl"):
        pytest.skip("needs Debian's rtsp-server-perl (scripts/setup.sh installs it)")
    server = RtspServer(media / "fer_woman2.mp4", free_port()).start()
    try:
        services.start("ingest", "--camera", "rtsp", "--source",
                       f"rtsp://127.0.0.1:{server.port}/live", "--fps", "5",
                       "--rtsp-transport", "udp")
        wait_for(lambda: frames_in(r) >= 5, timeout=60, what="frames from RTSP")
        assert state(r, "rtsp") == "connected"
        server.stop()
        wait_for(lambda: state(r, "rtsp") == "retrying", timeout=30, what="retrying status")
        reason = r.hget(keys.camera_status("rtsp"), "reason").decode()
        assert "rtsp" in reason
        before = frames_in(r)
        server.start()
        wait_for(lambda: frames_in(r) >= before + 5, timeout=90, what="frames after restart")
        assert state(r, "rtsp") == "connected"
    finally:
        server.stop()


class MjpegHandler(http.server.BaseHTTPRequestHandler):
    jpegs: list[bytes] = []

    def do_GET(self):  # noqa: N802 - the stdlib's name
        if self.path == "/snapshot.jpg":
            self.send_response(200)
            self.send_header("Content-Type", "image/jpeg")
            self.end_headers()
            self.wfile.write(self.jpegs[0])
            return
        self.send_response(200)
        self.send_header("Content-Type", "multipart/x-mixed-replace; boundary=frame")
        self.end_headers()
        try:
            for i in range(200):
                self.wfile.write(b"--frame\r\nContent-Type: image/jpeg\r\n\r\n")
                self.wfile.write(self.jpegs[i % len(self.jpegs)] + b"\r\n")
                time.sleep(0.05)
        except (BrokenPipeError, ConnectionResetError):
            pass

    def log_message(self, *args):
        pass


@pytest.fixture
def http_camera(media):
    cap = cv2.VideoCapture(str(media / "fer_woman2.mp4"))
    MjpegHandler.jpegs = [cv2.imencode(".jpg", cap.read()[1])[1].tobytes() for _ in range(10)]
    server = http.server.ThreadingHTTPServer(("127.0.0.1", free_port()), MjpegHandler)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    yield f"http://127.0.0.1:{server.server_address[1]}"
    server.shutdown()


@pytest.mark.parametrize("path", ["/stream.mjpg", "/snapshot.jpg"])
def test_http_mjpeg_and_snapshot_cameras(r, services, http_camera, path):
    cam = "mjpeg" if "mjpg" in path else "snap"
    services.start("ingest", "--camera", cam, "--source", http_camera + path, "--fps", "4",
                   "--max-frames", "6")
    wait_for(lambda: frames_in(r) >= 6, timeout=30, what=f"frames from {path}")
    assert r.xlen(keys.FRAMES) == 6
    # The camera's JPEGs (596x336, within the 640 px width) are published byte for byte.
    published = [fields[b"jpeg"] for _, fields in r.xrange(keys.FRAMES)]
    assert all(jpeg in MjpegHandler.jpegs for jpeg in published)


def test_rtsp_and_mjpeg_cameras_in_one_process_and_one_drops(r, redis_server, http_camera,
                                                             media, tmp_path):
    """The RTSP server goes away: that camera retries while the MJPEG camera in the same
    ingest process publishes on, and the RTSP camera comes back with the server."""
    if not shutil.which("rtsp-server-perl"):
        pytest.skip("needs Debian's rtsp-server-perl (scripts/setup.sh installs it)")
    server = RtspServer(media / "fer_woman2.mp4", free_port()).start()
    with open(tmp_path / "ingest.log", "wb") as log:
        proc = subprocess.Popen([*MOODSTREAM, "ingest", "--supervised"], cwd=REPO,
                                env=service_env(redis_server.url), stdin=subprocess.PIPE,
                                stdout=log, stderr=log)
    try:
        for line in ({"camera": "rtsp", "source": f"rtsp://127.0.0.1:{server.port}/live",
                      "fps": 5, "rtsp_transport": "udp"},
                     {"camera": "mjpeg", "source": http_camera + "/stream.mjpg", "fps": 5}):
            proc.stdin.write((json.dumps(line) + "\n").encode())
        proc.stdin.flush()
        wait_for(lambda: all(camera_frames(r, c) >= 5 for c in ("rtsp", "mjpeg")),
                 timeout=60, what="frames from both cameras")
        server.stop()
        wait_for(lambda: state(r, "rtsp") == "retrying", timeout=30, what="RTSP retrying")
        before = camera_frames(r, "mjpeg")
        wait_for(lambda: camera_frames(r, "mjpeg") >= before + 10, timeout=30,
                 what="MJPEG frames while RTSP is down")
        assert state(r, "mjpeg") == "connected"
        before = camera_frames(r, "rtsp")
        server.start()
        wait_for(lambda: camera_frames(r, "rtsp") >= before + 5, timeout=90,
                 what="RTSP frames after the server restarts")
    finally:
        server.stop()
        proc.stdin.close()  # end of input: the ingest stops its cameras and exits
        assert proc.wait(30) == 0, (tmp_path / "ingest.log").read_text()[-2000:]
    assert state(r, "rtsp") == "stopped" and state(r, "mjpeg") == "stopped"


def camera_frames(r, cam: str) -> int:
    return int(r.hget(keys.camera_status(cam), "frames") or 0)


def test_unreachable_camera_keeps_retrying_with_the_reason(r, services):
    services.start("ingest", "--camera", "gone", "--source", "rtsp://127.0.0.1:9/none")
    wait_for(lambda: state(r, "gone") == "retrying", timeout=30, what="retrying")
    assert b"cannot open" in r.hget(keys.camera_status("gone"), "reason")
    time.sleep(2)
    assert int(r.hget(keys.camera_status("gone"), "failures")) >= 2, "backs off and tries again"
