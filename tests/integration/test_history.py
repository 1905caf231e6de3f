"""History end to end: a real aggregator process writes each 10 s bucket to the history
database with every label in it, and `moodstream up` keeps its history across a restart
(its embedded Redis starts empty; the rows come back from the SQLite file)."""

from __future__ import annotations

import os
import signal
import subprocess
import threading
import time

import pytest

from moodstream import keys
from moodstream.camera_settings import CameraSettings
from moodstream.contract import CLASSES
from moodstream.history import HistoryStore, sqlite_url
from tests.conftest import (
    MOODSTREAM,
    REPO,
    api_get,
    free_port,
    label_set,
    service_env,
    wait_for,
)

pytestmark = pytest.mark.slow
CAMERAS = ("hist-a", "hist-b")


class Publisher(threading.Thread):
    """Labels as a classifier writes them (one face per frame, 5 frames/s per camera),
    remembering the capture time of each."""

    def __init__(self, r):
        super().__init__(daemon=True)
        self.r, self.stop = r, threading.Event()
        self.sent: dict[str, list[tuple[float, str]]] = {cam: [] for cam in CAMERAS}

    def run(self):
        seq = 0
        while not self.stop.wait(0.2):
            pipe = self.r.pipeline(transaction=True)
            now = time.time()
            for i, cam in enumerate(CAMERAS):
                expression = CLASSES[(seq // 25 + i) % len(CLASSES)]  # changes every 5 s
                probs = [0.94 if c == expression else 0.01 for c in CLASSES]
                pipe.xadd(keys.LABELS, label_set(cam, seq, now,
                                                 [((10, 10, 80, 80), probs)]).encode())
                self.sent[cam].append((now, expression))
            pipe.execute()
            seq += 1


def check_buckets(publisher: Publisher, data, started: float, stopped: float) -> None:
    """Every whole bucket between the start and the end of the publishing is in the
    database, with exactly the labels captured in it."""
    first, last = int(started) // 10 * 10 + 10, int(stopped) // 10 * 10 - 10
    assert last - first >= 10
    store = HistoryStore(sqlite_url(data))
    wait_for(lambda: all(store.history(c, last, last + 10) for c in CAMERAS), timeout=60,
             what="the last whole bucket in the database")
    for cam in CAMERAS:
        rows = {p["ts"]: p for p in store.history(cam, first, last + 10, 10)}
        assert sorted(rows) == list(range(first, last + 10, 10))
        for start, row in rows.items():
            expected = dict.fromkeys(CLASSES, 0)
            for ts, expression in publisher.sent[cam]:
                if start <= ts < start + 10:
                    expected[expression] += 1
            assert row["counts"] == expected, (cam, start)
            assert row["faces"] == 1.0
    store.close()


def register(r) -> None:
    for cam in CAMERAS:
        r.sadd(keys.CAMERAS, cam)
        CameraSettings(name=cam).save(r, cam)


def test_the_aggregator_writes_every_label_into_its_bucket(r, services, tmp_path):
    register(r)
    data = tmp_path / "data"
    services.start("aggregator", env={"MOODSTREAM_DATA_DIR": str(data),
                                      "MOODSTREAM_HISTORY_FLUSH_INTERVAL_S": "0.5"})
    wait_for(lambda: all(r.get(keys.lease(c)) for c in CAMERAS), timeout=60,
             what="the aggregator owning the cameras")
    publisher = Publisher(r)
    started = time.time()
    publisher.start()
    time.sleep(32)
    publisher.stop.set()
    publisher.join()
    check_buckets(publisher, data, started, time.time())


def test_a_killed_aggregators_buckets_are_written_by_the_next_owner(r, services, tmp_path):
    """SIGKILL: buckets the dead owner had not closed (or closed but not queued) are written
    by the aggregator that takes its camera over, from the labels it rebuilds."""
    register(r)
    data = tmp_path / "data"
    env = {"MOODSTREAM_DATA_DIR": str(data), "MOODSTREAM_HISTORY_FLUSH_INTERVAL_S": "0.5",
           "MOODSTREAM_AGGREGATOR_LEASE_S": "3", "MOODSTREAM_CLAIM_IDLE_MS": "2000"}
    first = services.start("aggregator", env=env)
    services.start("aggregator", env=env)
    owners = wait_for(lambda: (o := [r.get(keys.lease(c)) for c in CAMERAS])
                      and None not in o and len(set(o)) == 2 and o, timeout=60,
                      what="two aggregators sharing the cameras")
    assert any(f"-{first.pid}-".encode() in o for o in owners)
    publisher = Publisher(r)
    started = time.time()
    publisher.start()
    time.sleep(16)
    first.send_signal(signal.SIGKILL)
    first.wait()
    time.sleep(20)
    publisher.stop.set()
    publisher.join()
    check_buckets(publisher, data, started, time.time())


def run_up(tmp_path, data, name: str):
    port, token = free_port(), "history-up-token-0123456789"
    env = service_env("", MOODSTREAM_TOKEN=token, MOODSTREAM_DATA_DIR=str(data),
                      MOODSTREAM_HISTORY_FLUSH_INTERVAL_S="1")
    env.pop("REDIS_URL", None)  # the embedded one, which keeps nothing across a restart
    log = open(tmp_path / f"{name}.log", "wb")  # noqa: SIM115 - closed by stop_up
    up = subprocess.Popen([*MOODSTREAM, "up", "--fps", "2", "--port", str(port)], cwd=REPO,
                          env=env, stdout=log, stderr=subprocess.STDOUT,
                          start_new_session=True)
    up.port, up.token, up.log, up.log_path = port, token, log, tmp_path / f"{name}.log"
    return up


def stop_up(up) -> None:
    if up.poll() is None:
        os.killpg(up.pid, signal.SIGINT)
        try:
            up.wait(60)
        except subprocess.TimeoutExpired:
            os.killpg(up.pid, signal.SIGKILL)
            up.wait()
    up.log.close()


def test_history_survives_a_restart_of_up(tmp_path):
    data = tmp_path / "data"
    path = f"/api/cameras/demo/history?from={int(time.time()) - 600}&to={{}}&step=10"
    up = run_up(tmp_path, data, "first")
    try:
        def rows():
            assert up.poll() is None, up.log_path.read_text()[-3000:]
            answer = api_get(up.port, up.token, path.format(time.time() + 60))
            return answer and len(answer["points"]) >= 2 and answer["points"]

        before = wait_for(rows, timeout=240, what="history rows from `moodstream up`")
        assert (data / "history.db").is_file()  # `up` made the data directory
    finally:
        stop_up(up)
    assert up.returncode == 0, up.log_path.read_text()[-3000:]

    again = run_up(tmp_path, data, "second")
    try:
        def answered():
            assert again.poll() is None, again.log_path.read_text()[-3000:]
            return api_get(again.port, again.token, path.format(before[-1]["ts"] + 10))

        after = wait_for(answered, timeout=120, what="the restarted dashboard")
        assert after["points"][:len(before)] == before
    finally:
        stop_up(again)
