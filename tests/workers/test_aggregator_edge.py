"""The aggregator and edge cameras: an edge node's first labels register its camera from its
status, and labels that arrive after the staleness bound (its backlog after an outage) fill
their history buckets, written again when closed, and move no live figure or alert."""

from __future__ import annotations

import time

import pytest

from moodstream import keys
from moodstream.analysis.mood import Recent, Thresholds, driver_alerts
from moodstream.camera_settings import CameraSettings
from moodstream.contract import CLASSES
from moodstream.workers.aggregator import HISTORY_WAIT_MAX_S, Aggregator, CameraState
from tests.conftest import label_set, settings_for

T = 1_780_000_000


def label(n: int, ts: float, expression: str = "happy", cam: str = "cam1"):
    probs = [0.94 if c == expression else 0.01 for c in CLASSES]
    return f"{n}-0", label_set(cam, n, ts, [((0, 0, 10, 10), probs)])


def test_late_labels_rewrite_their_closed_bucket_with_all_it_holds():
    state = CameraState()
    state.closed_buckets("cam1", T + 1, faces=1)
    for i in range(10):  # the first 5 s of the bucket came live, then the link went down
        state.apply(*label(i, T + i / 2))
    rows = state.closed_buckets("cam1", T + 10 + HISTORY_WAIT_MAX_S, faces=1)
    assert [(r.ts, r.frames) for r in rows] == [(T, 10)]
    # The backlog: the rest of that bucket and all of the next one, late.
    for i in range(10, 40):
        state.apply(*label(i, T + i / 2, "sad"), live=False)
    assert not [f for f in state.recent if f.ts >= T + 5]  # no live figure moved
    rows = state.closed_buckets("cam1", T + 10 + HISTORY_WAIT_MAX_S + 1, faces=0)
    assert [r.ts for r in rows] == [T]
    assert rows[0].frames == 20
    assert rows[0].counts["happy"] == 10 and rows[0].counts["sad"] == 10
    assert state.closed_buckets("cam1", T + 10 + HISTORY_WAIT_MAX_S + 2, faces=0) == []
    # The next bucket was still open: it closes as usual, with its late labels.
    rows = state.closed_buckets("cam1", T + 20 + HISTORY_WAIT_MAX_S, faces=0)
    assert [(r.ts, r.frames, r.counts["sad"]) for r in rows] == [(T + 10, 20, 20)]


def test_a_late_negative_stretch_raises_no_driver_alert():
    live, late = CameraState(), CameraState()
    late.closed_buckets("car", T + 30, faces=1)
    for i in range(40):  # 8 s of anger at 5 fps
        live.apply(*label(i, T + 20 + i / 5, "angry", "car"))
        late.apply(*label(i, T + 20 + i / 5, "angry", "car"), live=False)
    now = T + 28.1
    assert "negative" in driver_alerts(Recent(list(live.recent)), now, Thresholds(), T + 20)
    assert driver_alerts(Recent(list(late.recent)), now, Thresholds(), late.first_seen) == {}


@pytest.fixture
def aggregator(redis_server, tmp_path):
    settings = settings_for(redis_server.url)
    settings = settings.model_copy(update={"history": settings.history.model_copy(
        update={"data_dir": tmp_path / "data"})})
    return Aggregator(settings, "edge-test-owner")


def edge_status(r, cam: str, **fields) -> None:
    r.hset(keys.camera_status(cam), mapping={"kind": "edge", "state": "connected",
                                             "name": "Bus 12", "mode": "driver", **fields})


def test_an_edge_nodes_first_labels_register_its_camera(r, aggregator):
    cams = ["edge-reg-1", "edge-reg-2", "plain-unknown", "edge-reg-removed"]
    for cam in cams:
        r.delete(keys.camera(cam), keys.camera_status(cam))
        r.srem(keys.CAMERAS, cam)
    edge_status(r, "edge-reg-1")
    edge_status(r, "edge-reg-2", mode="nonsense", name="")
    edge_status(r, "edge-reg-removed")
    r.sadd(keys.REMOVED_CAMERAS, "edge-reg-removed")
    r.hset(keys.camera_status("plain-unknown"), mapping={"state": "connected"})
    now = time.time()
    batch = aggregator.handle([(f"{k}-0".encode(), label(k, now, cam=cam)[1])
                               for k, cam in enumerate(cams)])
    assert batch.counters == {}  # nothing late
    known = aggregator.register_edges(sorted(t.decode() for t in r.smembers(keys.CAMERAS)))
    assert {"edge-reg-1", "edge-reg-2"} <= set(known)
    assert not {"plain-unknown", "edge-reg-removed"} & set(known)
    first = CameraSettings.load(r, "edge-reg-1")
    assert (first.name, first.mode, first.source, first.preview) == ("Bus 12", "driver", "",
                                                                    False)
    second = CameraSettings.load(r, "edge-reg-2")
    assert (second.name, second.mode) == ("edge-reg-2", "classroom")
    # An admin's change stands when the node registers again (after a Redis restart).
    r.hset(keys.camera("edge-reg-1"), "mode", "classroom")
    aggregator.known.discard("edge-reg-1")
    aggregator.unregistered.add("edge-reg-1")
    aggregator.register_edges([])
    assert CameraSettings.load(r, "edge-reg-1").mode == "classroom"
    r.srem(keys.REMOVED_CAMERAS, "edge-reg-removed")


def test_late_labels_are_counted_per_camera(r, aggregator):
    now = time.time()
    items = [(f"{k}-0".encode(), label(k, now - 60 + k, cam="edge-late")[1]) for k in range(5)]
    items.append((b"9-0", label(9, now, cam="edge-late")[1]))
    batch = aggregator.handle(items)
    assert batch.counters == {keys.late_labels("edge-late"): 5}
