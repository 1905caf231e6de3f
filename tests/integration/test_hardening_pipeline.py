"""Issue 13 (hardening) on the live path, against a real redis-server and real services:
clock skew and non-finite timestamps, frame byte and pixel caps, camera ids and sources."""

from __future__ import annotations

import subprocess
import time

import pytest

from moodstream import keys
from moodstream.accounting import pipeline_stats
from moodstream.contract import Face, Frame, Label, MalformedEntry
from tests.conftest import MOODSTREAM, REPO, service_env
from tests.moodstream.test_streams import consumer, publish

# --------------------------------------------------------------------- 1. future timestamps


@pytest.mark.parametrize("raw", ["nan", "inf", "-inf", "NaN"])
def test_non_finite_timestamps_are_malformed_at_the_first_stage(raw):
    frame = Frame("cam", 1, 0.0, b"jpeg").encode()
    frame["ts"] = raw
    with pytest.raises(MalformedEntry, match="not finite"):
        Frame.decode(frame)
    for entry in (Face("cam", 1, 0.0, -1, 0).encode(), Label("cam", 1, 0.0, -1, 0).encode()):
        entry["ts"] = raw
        with pytest.raises(MalformedEntry):
            (Face if "score" in entry else Label).decode(entry)


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
    r.xadd(keys.LABELS, Label("car", 1, ahead, 0, 1, (1, 2, 3, 4),
                              [0, 0, 0, 1, 0, 0, 0]).encode())
    r.xadd(keys.LABELS, Label("car", 2, time.time(), -1, 0).encode())
    subprocess.run([*MOODSTREAM, "aggregator", "--exit-when-idle", "1"], cwd=REPO,
                   env=service_env(redis_server.url), timeout=120, check=True,
                   capture_output=True)
    labels = pipeline_stats(r)["stages"]["labels"]
    assert labels["dropped"].get("future") == 1 and labels["processed"] == 1
    seconds = {int(k.split(b":")[0]) for k in r.hkeys(keys.buckets("car"))}
    assert seconds and max(seconds) < time.time() + 60


# --------------------------------------------------------------------- 8. camera ids, sources


def test_a_source_that_fails_for_good_backs_off_and_says_why(r, redis_server):
    """An old registry entry with source "--version": the ingest used to die in argparse
    with no status ("unknown") and restart for ever; now the value is passed as a value, the
    ingest says why it fails, and the supervisor retries less and less often."""
    import os

    from ingest.supervisor import CameraSupervisor

    r.hset(keys.camera("cam9"), mapping={"source": "--version", "fps": "1", "loop": "1"})
    r.sadd(keys.CAMERAS, "cam9")
    supervisor = CameraSupervisor(redis_server.client(), dict(os.environ,
                                                              REDIS_URL=redis_server.url))
    try:
        deadline = time.monotonic() + 15
        while time.monotonic() < deadline:
            supervisor.sync()
            time.sleep(0.2)
        child = supervisor.children["cam9"][1]
        status = {k.decode(): v.decode() for k, v in
                  r.hgetall(keys.camera_status("cam9")).items()}
        assert status["state"] == "failed", status
        assert "--version" in status["reason"] and "next try in" in status["reason"]
        assert 1 <= child.restarts <= 4 and child.backoff >= 8
    finally:
        supervisor.stop()
