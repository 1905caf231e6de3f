"""Several cameras in one ingest (MultiIngest), driven by lines as the supervisor sends them,
against a real Redis: a camera whose source hangs, a change while it hangs, bad lines."""

import json
import os
import socket
import threading
import time

import pytest

from moodstream import keys
from moodstream.ingest.service import MultiIngest
from tests.conftest import settings_for, wait_for


def status(r, cam) -> dict[str, str]:
    return {k.decode(): v.decode() for k, v in r.hgetall(keys.camera_status(cam)).items()}


def frames(r, cam) -> int:
    return sum(1 for _, f in r.xrange(keys.FRAMES) if f[b"camera"] == cam.encode())


@pytest.fixture
def ingest(redis_server):
    """A MultiIngest in a thread; yields a function that sends it one line."""
    read_fd, write_fd = os.pipe()
    stop = threading.Event()
    multi = MultiIngest(settings_for(redis_server.url), stop)
    with os.fdopen(read_fd) as reading, os.fdopen(write_fd, "w") as writing:
        thread = threading.Thread(target=multi.run, args=(reading,), daemon=True)
        thread.start()

        def send(line):
            writing.write((line if isinstance(line, str) else json.dumps(line)) + "\n")
            writing.flush()

        send.multi = multi
        yield send
        writing.close()  # end of input: every camera stops
        thread.join(30)
        assert not thread.is_alive() and stop.is_set()


@pytest.fixture
def silent_camera():
    """An HTTP camera that accepts the connection and then never answers (a hung camera)."""
    server = socket.socket()
    server.bind(("127.0.0.1", 0))
    server.listen(8)
    yield f"http://127.0.0.1:{server.getsockname()[1]}/snapshot.jpg"
    server.close()


def test_a_hung_camera_leaves_the_others_alone_and_can_be_changed_at_once(
        r, ingest, silent_camera, media):
    ingest({"camera": "ok", "source": str(media / "fer_justin.jpg"), "fps": 5})
    ingest({"camera": "hung", "source": silent_camera, "fps": 5})
    wait_for(lambda: status(r, "hung").get("state") == "connecting", timeout=10,
             what="the hung camera connecting")
    wait_for(lambda: frames(r, "ok") >= 10, timeout=20, what="the other camera publishing")
    # Changed while its old source still hangs in a read: the new source takes over now,
    # and the old thread, when its read times out, says nothing about the camera.
    ingest({"camera": "hung", "source": str(media / "mtcnn_ivan.jpg"), "fps": 5})
    started = time.monotonic()
    wait_for(lambda: frames(r, "hung") >= 3, timeout=10, what="the new source publishing")
    assert time.monotonic() - started < 4, "did not wait for the hung read (5 s timeout)"
    time.sleep(6)  # past the old read's timeout
    assert status(r, "hung")["state"] == "connected", status(r, "hung")
    assert "mtcnn_ivan" in status(r, "hung")["reason"]


def test_bad_lines_are_ignored_and_a_stop_line_stops_one_camera(r, ingest, media):
    ingest("not json")
    ingest({"camera": "../x", "source": str(media / "fer_justin.jpg")})
    ingest({"camera": "a", "source": str(media / "fer_justin.jpg"), "fps": "fast"})
    ingest(["a list"])
    for cam in ("a", "b"):
        ingest({"camera": cam, "source": str(media / "fer_justin.jpg"), "fps": 5})
    wait_for(lambda: frames(r, "a") >= 3 and frames(r, "b") >= 3, timeout=20,
             what="both cameras")
    ingest({"camera": "a", "stop": True})
    wait_for(lambda: status(r, "a").get("state") == "stopped", timeout=10, what="a stopped")
    before = frames(r, "b")
    wait_for(lambda: frames(r, "b") >= before + 5, timeout=20, what="b going on")
    assert set(ingest.multi.runners) == {"b"}


def test_camera_status_and_the_ingest_log_never_carry_camera_secrets(r, caplog):
    """A source's error quotes its URL; the status and the log line get it masked."""
    import logging

    from moodstream.ingest.service import StatusWriter

    caplog.set_level(logging.INFO, logger="moodstream")
    StatusWriter(r, "cam1").set(
        "retrying", "cannot open rtsp://admin:hunter2@10.0.0.5/live?token=tk-9; next try in 1s")
    reason = status(r, "cam1")["reason"]
    assert reason == "cannot open rtsp://admin:***@10.0.0.5/live?token=***; next try in 1s"
    assert "hunter2" not in caplog.text and "tk-9" not in caplog.text
    assert "admin:***@" in caplog.text
