"""Faults against a real redis-server: killed workers, Redis restarts, bad entries, SIGTERM."""

from __future__ import annotations

import json
import signal
import time
import urllib.request

import pytest

from moodstream import keys
from moodstream.accounting import pipeline_stats
from moodstream.contract import Frame
from tests.conftest import RedisServer, Services, free_port, wait_for

pytestmark = pytest.mark.slow
FAST_RECLAIM = {"MOODSTREAM_CLAIM_IDLE_MS": "2000", "MOODSTREAM_STALE_AFTER_S": "120"}


def workers_ready(r, **kinds):
    wait_for(lambda: all(pipeline_stats(r)["workers"].get(k, 0) >= n for k, n in kinds.items()),
             timeout=120, what=f"workers {kinds}")


def identity_holds(stage: dict) -> bool:
    return stage["in"] == stage["processed"] + sum(stage["dropped"].values()) + stage["pending"]


def quiet(r) -> dict | None:
    stats = pipeline_stats(r)
    stages = [stats["frames"], stats["stages"]["faces"], stats["stages"]["labels"]]
    if all(s["pending"] == 0 for s in stages) and stats["frames"]["in"] > 0:
        return stats
    return None


def test_kill_9_one_of_two_detectors_loses_no_frame(r, services, media):
    victim = services.start("detector", "--batch", "2", env=FAST_RECLAIM)
    services.start("detector", "--batch", "2", env=FAST_RECLAIM)
    services.start("classifier", env=FAST_RECLAIM)
    services.start("aggregator", env=FAST_RECLAIM)
    port = free_port()
    services.start("dashboard", "--port", str(port), env={"MOODSTREAM_TOKEN": "fault-test"})
    workers_ready(r, detector=2, classifier=1, aggregator=1)
    services.start("ingest", "--camera", "cam", "--source", str(media / "fer_woman2.mp4"),
                   "--fps", "8", "--max-frames", "60")
    wait_for(lambda: pipeline_stats(r)["frames"]["processed"] >= 10, timeout=120,
             what="10 frames processed")
    victim.send_signal(signal.SIGKILL)
    victim.wait()
    stats = wait_for(lambda: (s := quiet(r)) and s["frames"]["in"] == 60 and s, timeout=180,
                     what="the pipeline to drain after the kill")
    # The same figures over HTTP, as an operator reads them.
    request = urllib.request.Request(f"http://127.0.0.1:{port}/api/stats",
                                     headers={"Authorization": "Bearer fault-test"})
    stats = wait_for(lambda: json.loads(urllib.request.urlopen(request, timeout=5).read()),
                     timeout=60, what="/api/stats")
    frames = stats["frames"]
    assert identity_holds(frames) and frames["pending"] == 0
    assert frames["processed"] + sum(frames["dropped"].values()) == 60
    # Every processed frame reached the labels stream.
    seqs = {int(f[b"seq"]) for _, f in r.xrange(keys.LABELS)}
    assert len(seqs) == frames["processed"]
    for stage in stats["stages"].values():
        assert identity_holds(stage)


def test_pipeline_resumes_after_a_redis_restart(r, redis_server, services, media):
    workers = [services.start(kind) for kind in ("detector", "classifier", "aggregator")]
    workers_ready(r, detector=1, classifier=1, aggregator=1)
    workers.append(services.start("ingest", "--camera", "cam", "--source",
                                  str(media / "fer_woman2.mp4"), "--fps", "5", "--loop"))
    wait_for(lambda: pipeline_stats(r)["labels"] >= 3, timeout=120, what="labels before")
    redis_server.stop()
    time.sleep(2)
    redis_server.start()
    after = redis_server.client()
    wait_for(lambda: pipeline_stats(after)["labels"] >= 3, timeout=120,
             what="labels after the restart")
    assert all(w.poll() is None for w in workers), "neither ingest nor a worker died with Redis"
    wait_for(lambda: after.get(keys.mood("cam")), timeout=30, what="snapshots again")


def test_corrupt_jpeg_and_malformed_entry_become_dead_letters(r, services):
    good = Frame("cam", 0, time.time(), b"\xff\xd8 not really a jpeg \xff\xd9").encode()
    r.xadd(keys.FRAMES, good)
    r.xadd(keys.FRAMES, {"v": "2", "camera": "cam", "seq": "1"})  # no ts, no jpeg
    r.hincrby(keys.STATS, "frames:in", 2)
    detector = services.start("detector")
    wait_for(lambda: pipeline_stats(r)["dead_letters"] == 2, timeout=90, what="2 dead letters")
    reasons = sorted(f[b"_reason"].decode() for _, f in r.xrange(keys.DEAD_LETTERS))
    assert any(("does not decode" in reason or "not an accepted image format" in reason
                or "not a readable image" in reason) for reason in reasons), reasons
    assert any("missing field" in reason for reason in reasons)
    assert detector.poll() is None, "the worker goes on"
    assert identity_holds(pipeline_stats(r)["frames"])


def test_sigterm_during_a_batch_loses_nothing(r, services, media):
    first = services.start("detector", "--batch", "8", env=FAST_RECLAIM)
    workers_ready(r, detector=1)
    services.start("ingest", "--camera", "cam", "--source", str(media / "fer_woman2.mp4"),
                   "--fps", "10", "--max-frames", "40")
    wait_for(lambda: pipeline_stats(r)["frames"]["processed"] >= 8, timeout=120,
             what="a first batch")
    first.send_signal(signal.SIGTERM)
    assert first.wait(30) == 0, "a clean exit after finishing the batch"
    frames = pipeline_stats(r)["frames"]
    assert identity_holds(frames)
    services.start("detector", env=FAST_RECLAIM)
    frames = wait_for(lambda: (f := pipeline_stats(r)["frames"])["in"] == 40 and
                      f["pending"] == 0 and f, timeout=120, what="the rest of the frames")
    assert frames["processed"] + sum(frames["dropped"].values()) == 40


def test_services_started_before_redis_wait_for_it(tmp_path):
    """As in docker compose, where Redis may come up last: the dashboard and the bulk worker
    wait with backoff instead of crashing, and serve once Redis answers."""
    from rq import Worker

    server = RedisServer(tmp_path)  # its port is chosen, but nothing listens there yet
    services = Services(server.url, tmp_path)
    port = free_port()
    try:
        dashboard = services.start("dashboard", "--port", str(port),
                                   env={"MOODSTREAM_TOKEN": "t" * 20,
                                        "MOODSTREAM_ADMIN_USER": "ops",
                                        "MOODSTREAM_ADMIN_PASSWORD": "ops-password"})
        bulk = services.start("bulk-worker")
        time.sleep(4)
        assert dashboard.poll() is None and bulk.poll() is None, "they wait, not exit"
        server.start()
        r = server.client()

        def healthy():
            try:
                with urllib.request.urlopen(f"http://127.0.0.1:{port}/healthz", timeout=2) as rsp:
                    return rsp.status == 200
            except OSError:
                return False

        wait_for(healthy, timeout=60, what="the dashboard once Redis is up")
        wait_for(lambda: len(Worker.all(connection=r)) == 1, timeout=60,
                 what="the bulk worker to register")
        from moodstream.dashboard.users import get_user

        assert get_user(r, "ops")["role"] == "admin", "the first admin is created after the wait"
        log = open(dashboard.log_path).read()
        assert log.count("lost Redis") == 1 and "Traceback" not in log
    finally:
        services.stop_all()
        server.stop()
