"""The edge node's uplink through a real TCP link to a real redis-server: while the link is
cut, labels wait in memory and then in the spill file; once it is back they all arrive, in
capture order; past the spill cap they are dropped and counted."""

from __future__ import annotations

import threading

import pytest

from moodstream import keys
from moodstream.bench.link import LinkProxy
from moodstream.config import EdgeSettings
from moodstream.edge.spill import SpillFile
from moodstream.edge.uplink import Uplink, connect_upstream
from moodstream.redis_client import text
from tests.conftest import label_set, wait_for

PROBS = [0.1, 0.1, 0.1, 0.1, 0.1, 0.1, 0.4]


def record(cam: str, seq: int) -> dict:
    return label_set(cam, seq, 1_780_000_000 + seq / 5, [((10, 10, 40, 40), PROBS)]).encode()


@pytest.fixture
def link(redis_server):
    proxy = LinkProxy(redis_server.port)
    yield proxy
    proxy.close()


def uplink_for(redis_server, link, tmp_path, cam, *, queue_mb, spill_mb):
    url = redis_server.url.replace(f":{redis_server.port}/", f":{link.port}/")
    settings = EdgeSettings(queue_mb=queue_mb, spill_mb=spill_mb, resend_per_s=5000,
                            status_every_s=0.2, link_timeout_s=1.0)
    spill = SpillFile(tmp_path / f"{cam}.labels", int(spill_mb * 1024 * 1024))
    return Uplink(connect_upstream(url, 1.0), cam, settings, spill, 100_000,
                  status={"name": cam, "mode": "driver"})


def arrived(r, cam: str) -> list[int]:
    return [int(f[b"seq"]) for _, f in r.xrange(keys.LABELS) if f[b"camera"] == cam.encode()]


def test_a_cut_link_loses_nothing_and_keeps_the_order(r, redis_server, link, tmp_path):
    cam = "uplink-order"
    uplink = uplink_for(redis_server, link, tmp_path, cam, queue_mb=0.005, spill_mb=1)
    stop = threading.Event()
    sender = threading.Thread(target=uplink.run, args=(stop,), daemon=True)
    sender.start()
    try:
        for seq in range(20):
            uplink.put(record(cam, seq))
        wait_for(lambda: len(arrived(r, cam)) == 20, timeout=20, what="the first labels")
        link.cut()
        for seq in range(20, 220):  # ~70 KB: far past the 5 KB memory bound
            uplink.put(record(cam, seq))
        wait_for(lambda: uplink.spill.pending > 0, timeout=20, what="labels spilled to disk")
        assert len(arrived(r, cam)) == 20
        link.restore()
        wait_for(lambda: uplink.sent == 220, timeout=30, what="the backlog sent")
        assert arrived(r, cam) == list(range(220))
        status = wait_for(lambda: (s := {text(k): text(v) for k, v in r.hgetall(
            keys.camera_status(cam)).items()}) and s.get("sent") == "220" and s, timeout=10,
            what="the status with the counters")
        assert status["kind"] == "edge" and status["dropped"] == "0"
        assert status["queued"] == "0" and status["spilled"] == "0"
        assert uplink.spill.path.stat().st_size == 0
    finally:
        stop.set()
        sender.join(5)


def test_past_the_spill_cap_labels_are_dropped_and_counted(r, redis_server, link, tmp_path):
    cam = "uplink-cap"
    uplink = uplink_for(redis_server, link, tmp_path, cam, queue_mb=0.002, spill_mb=0.01)
    link.cut()
    stop = threading.Event()
    sender = threading.Thread(target=uplink.run, args=(stop,), daemon=True)
    sender.start()
    try:
        for seq in range(300):  # ~100 KB against 2 KB of memory and 10 KB of file
            uplink.put(record(cam, seq))
        wait_for(lambda: uplink.dropped > 0, timeout=20, what="drops past the cap")
        link.restore()
        wait_for(lambda: uplink.waiting == 0, timeout=30, what="what was kept, sent")
        seqs = arrived(r, cam)
        assert seqs == sorted(seqs) and len(set(seqs)) == len(seqs)
        assert len(seqs) + uplink.dropped == 300
        wait_for(lambda: r.hget(keys.camera_status(cam), "dropped") == str(
            uplink.dropped).encode(), timeout=10, what="the drops in the status")
    finally:
        stop.set()
        sender.join(5)


def test_on_the_way_out_what_cannot_go_is_kept_for_the_next_start(redis_server, link,
                                                                  tmp_path, r):
    cam = "uplink-exit"
    uplink = uplink_for(redis_server, link, tmp_path, cam, queue_mb=1, spill_mb=1)
    link.cut()
    for seq in range(5):
        uplink.put(record(cam, seq))
    uplink.flush(2.0)
    assert uplink.spill.pending == 5 and uplink.dropped == 0
    link.restore()
    again = uplink_for(redis_server, link, tmp_path, cam, queue_mb=1, spill_mb=1)
    assert again.spill.pending == 5
    again.flush(5.0)
    wait_for(lambda: again.spill.pending == 0 or again.send_once() is None, timeout=10)
    assert arrived(r, cam) == [0, 1, 2, 3, 4]
