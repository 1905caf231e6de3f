"""Untrusted input on the live path, against a real redis-server and real services:
clock skew and non-finite timestamps, frame byte and pixel caps, camera ids and sources."""

from __future__ import annotations

import subprocess
import time

import pytest

from moodstream import keys
from moodstream.accounting import pipeline_stats
from moodstream.contract import FaceSet, Frame, LabelSet, MalformedEntry, Snapshot
from tests.conftest import MOODSTREAM, REPO, label_set, service_env, wait_for
from tests.moodstream.test_streams import consumer, publish

# --------------------------------------------------------------------- 1. future timestamps


@pytest.mark.parametrize("raw", ["nan", "inf", "-inf", "NaN"])
def test_non_finite_timestamps_are_malformed_at_the_first_stage(raw):
    frame = Frame("cam", 1, 0.0, b"jpeg").encode()
    frame["ts"] = raw
    with pytest.raises(MalformedEntry, match="not finite"):
        Frame.decode(frame)
    for record in (FaceSet("cam", 1, 0.0), LabelSet("cam", 1, 0.0)):
        entry = record.encode()
        entry["ts"] = raw
        with pytest.raises(MalformedEntry):
            type(record).decode(entry)


def test_a_nan_frame_is_a_dead_letter_at_the_detector_stage(r, redis_server):
    r.xadd(keys.FRAMES, {**Frame("cam", 1, 0.0, b"jpeg").encode(), "ts": "nan"})
    r.hincrby(keys.STATS, "frames:in", 1)
    consumer(redis_server).run(max_idle_s=0.3)
    assert pipeline_stats(r)["frames"]["dropped"]["dead"] == 1
    assert r.xlen(keys.FACES) == 0


def test_frames_from_a_clock_running_ahead_are_dropped_as_future(r, redis_server):
    publish(r, 3, ts=time.time() + 3600)
    publish(r, 2)
    consumer(redis_server, stale_after_s=10).run(max_idle_s=0.3)
    frames = pipeline_stats(r)["frames"]
    assert frames["dropped"]["future"] == 3 and frames["processed"] == 2
    assert frames["in"] == frames["processed"] + sum(frames["dropped"].values())


def test_a_label_stamped_an_hour_ahead_is_dropped_by_the_real_aggregator(r, redis_server):
    """It used to enter the windows (and hold off the driver's out-of-view alert)."""
    ahead = time.time() + 3600
    r.xadd(keys.LABELS, label_set("car", 1, ahead, [((1, 2, 3, 4), [0, 0, 0, 1, 0, 0, 0])])
           .encode())
    r.xadd(keys.LABELS, label_set("car", 2, time.time()).encode())
    r.sadd(keys.CAMERAS, "car")
    subprocess.run([*MOODSTREAM, "aggregator", "--exit-when-idle", "3", "--interval", "0.2"],
                   cwd=REPO, env=service_env(redis_server.url), timeout=120, check=True,
                   capture_output=True)
    labels = pipeline_stats(r)["stages"]["labels"]
    assert labels["dropped"].get("future") == 1 and labels["processed"] == 1
    # Applied, the future face would count as present (the newest frame) for an hour.
    snapshot = Snapshot.from_json(r.get(keys.mood("car")))
    assert snapshot is not None and snapshot.faces == 0 and snapshot.current is None


# --------------------------------------------------------------------- 8. camera ids, sources


def test_a_source_that_fails_for_good_backs_off_and_says_why(r, redis_server):
    """An old registry entry with source "--version": the ingest used to die in argparse
    with no status ("unknown") and restart for ever; now the value reaches the ingest as a
    value (a line on its stdin), the camera says why it fails, and it is retried less and
    less often inside its ingest process."""
    import os

    from moodstream.ingest.supervisor import CameraSupervisor

    r.hset(keys.camera("cam9"), mapping={"source": "--version", "fps": "1", "loop": "1"})
    r.sadd(keys.CAMERAS, "cam9")
    supervisor = CameraSupervisor(redis_server.client(), dict(os.environ,
                                                              REDIS_URL=redis_server.url))
    try:
        deadline = time.monotonic() + 15
        while time.monotonic() < deadline:
            supervisor.sync()
            time.sleep(0.2)
        status = {k.decode(): v.decode() for k, v in
                  r.hgetall(keys.camera_status("cam9")).items()}
        assert status["state"] == "failed", status
        assert "--version" in status["reason"] and "next try in" in status["reason"]
        # Backoff 1, 2, 4, 8 s: at most five tries in 15 s, not one every poll.
        assert 1 <= int(status["failures"]) <= 5, status
        assert supervisor.process_of("cam9").child.restarts == 0, "the process did not die"
    finally:
        supervisor.stop()


# --------------------------------------------------------------------- 4, 12. pixels and bytes


def test_ingest_refuses_frames_above_the_byte_cap(r, redis_server, tmp_path):
    """2,000 frames of 0.94 MB took Redis from 40 to 494 MB: now they never reach Redis."""
    import cv2
    import numpy as np

    noise = np.random.default_rng(0).integers(0, 256, (1200, 1600, 3), dtype=np.uint8)
    source = tmp_path / "noise.png"
    cv2.imwrite(str(source), noise)
    proc = subprocess.Popen([*MOODSTREAM, "ingest", "--camera", "big", "--source", str(source),
                             "--fps", "5", "--max-width", "4000", "--quality", "100"],
                            cwd=REPO, env=service_env(redis_server.url),
                            stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    try:
        wait_for(lambda: int(r.hget(keys.STATS, "frames:dropped:oversize") or 0) >= 3,
                 timeout=60, what="oversize frames counted")
        wait_for(lambda: b"above the limit" in (r.hget(keys.camera_status("big"), "reason")
                                                or b""), timeout=10, what="the reason shown")
    finally:
        proc.terminate()
        proc.wait(20)
    assert r.xlen(keys.FRAMES) == 0
    frames = pipeline_stats(r)["frames"]
    assert frames["dropped"]["oversize"] >= 3 and frames["dropped"]["cap"] == 0
    assert frames["in"] == frames["processed"] + sum(frames["dropped"].values()) + frames[
        "pending"]


def test_the_detector_dead_letters_frames_above_the_pixel_or_byte_limit(r, redis_server):
    import cv2
    import numpy as np

    small = cv2.imencode(".jpg", np.zeros((480, 640, 3), np.uint8))[1].tobytes()
    r.xadd(keys.FRAMES, Frame("cam", 1, time.time(), small).encode())
    r.xadd(keys.FRAMES, Frame("cam", 2, time.time(), small + b"\0" * 600_000).encode())
    r.hincrby(keys.STATS, "frames:in", 2)
    subprocess.run([*MOODSTREAM, "detector", "--exit-when-idle", "2"], cwd=REPO,
                   env=service_env(redis_server.url, MOODSTREAM_MAX_IMAGE_PIXELS="100000"),
                   timeout=180, check=True, capture_output=True)
    reasons = sorted(f[b"_reason"].decode() for _, f in r.xrange(keys.DEAD_LETTERS))
    assert len(reasons) == 2
    assert any("above the frame size limit" in reason for reason in reasons)
    assert any("640x480" in reason and "pixel limit of 0.1 Mpx" in reason for reason in reasons)
    assert pipeline_stats(r)["frames"]["dropped"]["dead"] == 2


# --------------------------------------------------------------------- 10. camera networks


def test_the_ingest_checks_the_camera_networks_at_connect(r, redis_server):
    proc = subprocess.run([*MOODSTREAM, "ingest", "--camera", "probe", "--source",
                           "http://127.0.0.1:6379/", "--retries", "1"], cwd=REPO,
                          env=service_env(redis_server.url,
                                          MOODSTREAM_CAMERA_NETWORKS_DENY="127.0.0.0/8"),
                          capture_output=True, timeout=60)
    assert proc.returncode == 2
    reason = r.hget(keys.camera_status("probe"), "reason").decode()
    assert "not in the allowed camera networks" in reason


def test_entries_of_the_old_per_face_contract_become_dead_letters_that_say_why(r, redis_server):
    """A worker of the previous release still writing one entry per face: its entries are
    refused, acknowledged and counted, and the per-frame entries around them are labelled."""
    v1_face = {"v": "1", "camera": "cam", "seq": "1", "ts": repr(time.time()), "index": "0",
               "count": "1", "box": "0,0,9,9", "score": "0.99", "h": "2", "w": "2",
               "crop": b"abcd"}
    v1_label = {k: v for k, v in v1_face.items() if k not in ("score", "h", "w", "crop")}
    r.xadd(keys.FACES, v1_face)
    r.xadd(keys.FACES, FaceSet("cam", 2, time.time()).encode())
    r.xadd(keys.LABELS, {**v1_label, "probs": "[0, 0, 0, 1, 0, 0, 0]", "label": "happy"})
    r.hincrby(keys.STATS, "faces:in", 2)
    r.hincrby(keys.STATS, "labels:in", 1)
    r.sadd(keys.CAMERAS, "cam")
    for kind in ("classifier", "aggregator"):
        subprocess.run([*MOODSTREAM, kind, "--exit-when-idle", "2"], cwd=REPO, timeout=120,
                       env=service_env(redis_server.url), check=True, capture_output=True)
    letters = [(f[b"_stream"].decode(), f[b"_reason"].decode())
               for _, f in r.xrange(keys.DEAD_LETTERS)]
    assert [stream for stream, _ in letters] == [keys.FACES, keys.LABELS]
    assert all("v1" in reason and "one entry per frame" in reason for _, reason in letters)
    stats = pipeline_stats(r)["stages"]
    assert stats["faces"]["processed"] == 1 and stats["faces"]["dropped"]["dead"] == 1
    assert stats["labels"]["processed"] == 1 and stats["labels"]["dropped"]["dead"] == 1


def test_the_ingest_refuses_a_redirect_to_a_denied_address_and_says_so(r, redis_server):
    """A camera on an allowed address (127.0.0.2) that answers 302 to a denied one
    (127.0.0.1, where the test's Redis listens)."""
    import http.server
    import threading

    from tests.conftest import free_port

    class Redirect(http.server.BaseHTTPRequestHandler):
        def do_GET(self):  # noqa: N802 (the handler's API)
            self.send_response(302)
            self.send_header("Location", f"http://127.0.0.1:{free_port()}/x.jpg")
            self.end_headers()

        def log_message(self, *args):
            pass

    server = http.server.ThreadingHTTPServer(("127.0.0.2", 0), Redirect)
    threading.Thread(target=server.serve_forever, daemon=True).start()
    try:
        proc = subprocess.run(
            [*MOODSTREAM, "ingest", "--camera", "probe", "--source",
             f"http://127.0.0.2:{server.server_address[1]}/snapshot.jpg", "--retries", "1"],
            cwd=REPO, capture_output=True, timeout=60,
            env=service_env(redis_server.url, MOODSTREAM_CAMERA_NETWORKS_DENY="127.0.0.1/32"))
    finally:
        server.shutdown()
        server.server_close()
    assert proc.returncode == 2
    reason = r.hget(keys.camera_status("probe"), "reason").decode()
    assert "redirect (302) to http://127.0.0.1:" in reason and "refused" in reason, reason
    assert "not in the allowed camera networks" in reason
