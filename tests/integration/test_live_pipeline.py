"""The live path end to end, with real parts: redis-server, MTCNN, the shipped ONNX model."""

from __future__ import annotations

import json
import subprocess
import urllib.request

import numpy as np
import pytest

from moodstream import keys
from moodstream.accounting import pipeline_stats
from moodstream.contract import CLASSES, LabelSet
from tests.conftest import REPO, api_get, free_port, wait_for

pytestmark = pytest.mark.slow


def labels(r) -> list[LabelSet]:
    return [LabelSet.decode(f) for _, f in r.xrange(keys.LABELS)]


def run_workers(r, services, metrics_port: int = 0):
    """Start the workers and wait until they are ready, so no frame goes stale meanwhile."""
    for kind in ("detector", "classifier", "aggregator"):
        services.start(kind, "--metrics-port", str(metrics_port if kind == "classifier" else 0))
    wait_for(lambda: len(pipeline_stats(r)["workers"]) == 3, timeout=120, what="workers up")


def test_video_gives_labels_for_its_frames(r, services, media):
    port = free_port()
    run_workers(r, services, metrics_port=port)
    ingest = services.start("ingest", "--camera", "video", "--source",
                            str(media / "fer_woman2.mp4"), "--fps", "5", "--max-frames", "25")
    assert ingest.wait(60) == 0
    wait_for(lambda: pipeline_stats(r)["frames"]["processed"] == 25 and
             pipeline_stats(r)["labels"] >= 25 and
             pipeline_stats(r)["stages"]["faces"]["pending"] == 0,
             timeout=120, what="25 frames labelled")
    found = [lab for lab in labels(r) if lab.camera == "video"]
    assert len(found) == 25 and len({lab.seq for lab in found}) == 25, "one entry per frame"
    per_frame = {lab.seq for lab in found if lab.count == 1}
    assert len(per_frame) >= 24, "the woman is in every frame"
    assert all(set(lab.labels) <= set(CLASSES) and np.allclose(lab.probs.sum(axis=1), 1,
                                                               atol=0.01) for lab in found)
    assert len({int(t) for lab in found for t in lab.tracks}) <= 3, "one person, one track"
    stats = pipeline_stats(r)
    assert stats["reused"] + stats["classified"] == stats["labels"]
    assert stats["classified"] >= 1
    # The aggregator turns them into a snapshot the dashboard serves.
    def snapshot():
        raw = r.get(keys.mood("video"))
        snap = json.loads(raw) if raw else None
        return snap if snap and sum(snap["windows"]["5m"]["counts"].values()) >= 24 else None

    snap = wait_for(snapshot, timeout=30, what="a snapshot counting the frames' labels")
    assert snap["camera"] == "video" and snap["dominant"] in CLASSES
    stats = pipeline_stats(r)
    assert stats["frames"]["in"] == 25 and stats["frames"]["pending"] == 0
    assert stats["latency_ms"]["p50"] is not None
    metrics = urllib.request.urlopen(f"http://127.0.0.1:{port}/metrics", timeout=5).read()
    assert b'moodstream_capture_latency_seconds_bucket{le="0.25",stage="classifier"}' in metrics
    assert b'moodstream_entries_total{outcome="done",stage="faces"}' in metrics


def test_photo_without_faces_gives_none(r, services, media):
    run_workers(r, services)
    services.start("ingest", "--camera", "empty", "--source", str(media / "mtcnn_no-faces.jpg"),
                   "--fps", "5", "--max-frames", "5")
    wait_for(lambda: pipeline_stats(r)["stages"]["faces"]["processed"] == 5, timeout=120,
             what="5 frames through the classifier")
    found = labels(r)
    assert len(found) == 5 and all(lab.count == 0 for lab in found)
    assert pipeline_stats(r)["faces"] == 0


def test_group_photo_as_still_source_reports_its_faces(r, services, media):
    run_workers(r, services)
    services.start("ingest", "--camera", "group", "--source",
                   str(media / "dlib_2008_001322.jpg"), "--fps", "2", "--max-frames", "3")
    snap = wait_for(lambda: (s := r.get(keys.mood("group"))) and json.loads(s)["faces"] > 0
                    and json.loads(s), timeout=120, what="a snapshot with faces")
    assert snap["faces"] == 3, "three adults, by eye and by dlib's boxes"


def test_unreadable_source_fails_with_a_reason(r, services, tmp_path):
    bogus = tmp_path / "notes.mp4"
    bogus.write_text("this is not a video")
    proc = services.start("ingest", "--camera", "bogus", "--source", str(bogus))
    assert proc.wait(30) == 2
    status = r.hgetall(keys.camera_status("bogus"))
    assert status[b"state"] == b"failed" and b"notes.mp4" in status[b"reason"]
    assert pipeline_stats(r)["frames"]["in"] == 0


def test_console_command_lists_every_service():
    out = subprocess.run([str(REPO / ".venv/bin/moodstream"), "--help"], capture_output=True,
                         text=True, check=True).stdout
    for service in ("up", "ingest", "detector", "classifier", "aggregator", "dashboard"):
        assert service in out



def test_up_runs_the_demo_and_ctrl_c_stops_it_cleanly(media, tmp_path):
    """`moodstream up` on its embedded Redis: labels flow, and Ctrl-C (SIGINT to the whole
    terminal process group) stops every service before their Redis, leaving nothing behind."""
    import os
    import signal

    import psutil

    from tests.conftest import MOODSTREAM, service_env

    port, token = free_port(), "up-test-token-0123456789"
    env = service_env("", MOODSTREAM_TOKEN=token)
    env.pop("REDIS_URL", None)  # the embedded one
    log = tmp_path / "up.log"
    with open(log, "wb") as out:
        up = subprocess.Popen([*MOODSTREAM, "up", "--source", str(media / "fer_woman2.mp4"),
                               "--fps", "2", "--port", str(port)], cwd=REPO, env=env,
                              stdout=out, stderr=subprocess.STDOUT, start_new_session=True)
    try:
        def stats():
            answer = api_get(port, token, "/api/stats", timeout=2)
            if answer is None:
                assert up.poll() is None, log.read_text()[-3000:]
            return answer

        # Labels, and every service running (a service still importing at Ctrl-C would
        # print a KeyboardInterrupt traceback).
        wait_for(lambda: (s := stats() or {}).get("labels", 0) >= 3
                 and s["workers"].get("aggregator"), timeout=180,
                 what="labels through `moodstream up`, and its aggregator")
        family = psutil.Process(up.pid).children(recursive=True)
        commands = [" ".join(p.cmdline()) for p in family]
        assert any("moodstream.cli bulk-worker" in c for c in commands), commands
        os.killpg(up.pid, signal.SIGINT)  # what Ctrl-C in a terminal does
        assert up.wait(60) == 0
        text = log.read_text()
        assert "lost Redis" not in text and "Traceback" not in text, text[-3000:]
        gone, alive = psutil.wait_procs(family, timeout=20)
        assert not alive, f"left running: {[p.cmdline() for p in alive]}"
    finally:
        if up.poll() is None:
            up.kill()
