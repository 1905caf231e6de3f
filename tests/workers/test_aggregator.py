"""The aggregator's history buckets: CameraState closes each 10 s bucket once, when the
labels captured after it have arrived (or long after, if none come), from its per-second
counts and the snapshots' faces present; and queues alert changes and shifts."""

from __future__ import annotations

from moodstream.contract import CLASSES
from moodstream.workers.aggregator import HISTORY_GRACE_S, HISTORY_WAIT_MAX_S, CameraState
from tests.conftest import label_set

T = 1_780_000_000  # a multiple of 10


def label(n: int, ts: float, expression: str = "happy"):
    """(entry id, labels entry) of a frame with one face."""
    probs = [0.94 if c == expression else 0.01 for c in CLASSES]
    return f"{n}-0", label_set("cam1", n, ts, [((0, 0, 10, 10), probs)])


def test_a_bucket_closes_once_after_its_grace_with_its_own_labels():
    state = CameraState()
    for i in range(40):  # 4 labels a second for 10 s, from T
        state.apply(*label(i, T + i / 4, "happy" if i < 30 else "sad"))
    assert state.closed_buckets("cam1", T + 1, faces=3) == []  # opens the bucket at T
    assert state.closed_buckets("cam1", T + 9.9, faces=5) == []
    state.apply(*label(99, T + 10.5, "neutral"))  # the next bucket's
    assert state.closed_buckets("cam1", T + 10 + HISTORY_GRACE_S - 0.1, faces=1) == []
    # The grace is over, but the labels read so far end at T + 10.5: a detector may lag.
    assert state.closed_buckets("cam1", T + 10 + HISTORY_GRACE_S + 1, faces=1) == []
    state.apply(*label(100, T + 10 + HISTORY_GRACE_S, "neutral"))
    rows = state.closed_buckets("cam1", T + 10 + HISTORY_GRACE_S + 1.5, faces=1)
    assert len(rows) == 1
    row = rows[0]
    assert row.ts == T and row.frames == 40
    assert row.counts["happy"] == 30 and row.counts["sad"] == 10
    assert row.counts["neutral"] == 0 and row.dominant == "happy"
    assert row.faces == 4.0  # the snapshots taken while it was open (3 and 5)
    assert state.closed_buckets("cam1", T + 14, faces=1) == []  # never twice


def test_a_camera_that_stops_sending_gets_its_last_bucket_after_a_wait():
    state = CameraState()
    state.closed_buckets("cam1", T + 1, faces=1)
    state.apply(*label(1, T + 2))
    assert state.closed_buckets("cam1", T + 10 + HISTORY_WAIT_MAX_S - 1, faces=0) == []
    rows = state.closed_buckets("cam1", T + 10 + HISTORY_WAIT_MAX_S, faces=0)
    assert [r.ts for r in rows] == [T] and rows[0].frames == 1
    # Stopping writes the open bucket as it is.
    state.apply(*label(2, T + 10 + HISTORY_WAIT_MAX_S + 0.5))
    rows = state.closed_buckets("cam1", T + 10 + HISTORY_WAIT_MAX_S + 1, 0, all_open=True)
    assert [r.ts for r in rows] == [T + 40] and rows[0].frames == 1


def test_no_frames_no_row_and_a_long_pause_skips_what_is_gone():
    state = CameraState()
    state.closed_buckets("cam1", T + 1, faces=0)
    assert state.closed_buckets("cam1", T + 25, faces=0) == []  # the camera sent nothing
    state.apply(*label(1, T + 1000.5))
    # Back after a long pause: old buckets (their counts are pruned) are not written empty.
    assert state.closed_buckets("cam1", T + 1001, faces=2) == []
    assert state.bucket == T + 1000
    state.apply(*label(2, T + 1012.5))
    rows = state.closed_buckets("cam1", T + 1013, faces=2)
    assert [r.ts for r in rows] == [T + 1000]


def test_alert_changes_and_shifts_are_queued_for_the_history(r, redis_server, tmp_path):
    from moodstream.contract import Snapshot, ValenceShift
    from moodstream.history.rows import BucketRow
    from moodstream.workers.aggregator import Aggregator
    from tests.conftest import settings_for

    settings = settings_for(redis_server.url)
    settings = settings.model_copy(update={"history": settings.history.model_copy(
        update={"data_dir": tmp_path / "data"})})
    aggregator = Aggregator(settings, "test-owner")
    snap = Snapshot(camera="car1", ts=T + 20.5, shift=ValenceShift(0.5, -0.25))
    changes = [{"ts": T + 20.5, "kind": "absent", "message": "no face for 3s",
                "state": "raised"},
               {"ts": T + 20.5, "kind": "negative", "message": "cleared", "state": "cleared",
                "since": T + 1}]
    row = BucketRow("car1", T, 10, 1.0, {"sad": 4}, -1.0, "sad")
    aggregator.record_history("car1", snap, changes, [row])
    assert aggregator.history.drain() == 4  # one bucket row and three events
    store = aggregator.history.store
    assert [p["counts"]["sad"] for p in store.history("car1", T, T + 10)] == [4]
    events = store.alerts("car1", T, T + 60)
    assert [(e["kind"], e["state"]) for e in events] == [
        ("absent", "raised"), ("negative", "cleared"), ("shift", "raised")]
    assert events[2]["message"] == "valence +0.50 → -0.25"


def test_a_new_owner_writes_the_last_buckets_again_from_the_labels(r, redis_server, tmp_path):
    """The owner before may have died before closing them: the new one has their labels."""
    import time

    from moodstream import keys
    from moodstream.contract import CLASSES
    from moodstream.workers.aggregator import HISTORY_REWRITE_S, Aggregator
    from tests.conftest import label_set, settings_for

    settings = settings_for(redis_server.url)
    settings = settings.model_copy(update={"history": settings.history.model_copy(
        update={"data_dir": tmp_path / "data"})})
    now = time.time()
    probs = [0.94 if c == "surprise" else 0.01 for c in CLASSES]
    sent = [now - 25 + i * 0.5 for i in range(50)]  # the last 25 s, 2 labels a second
    for seq, ts in enumerate(sent):
        r.xadd(keys.LABELS, label_set("bus1", seq, ts, [((0, 0, 9, 9), probs)]).encode())
    aggregator = Aggregator(settings, "new-owner")
    aggregator.take("bus1")
    state = aggregator.states["bus1"]
    rows = state.closed_buckets("bus1", now + HISTORY_WAIT_MAX_S + 10, faces=1)
    first = int(now - HISTORY_REWRITE_S) // 10 * 10
    by_start = {row.ts: row.counts["surprise"] for row in rows}
    assert min(by_start) >= first
    for start, n in by_start.items():
        assert n == sum(1 for ts in sent if start <= ts < start + 10)
    assert sum(by_start.values()) == len(sent)


def test_a_frame_applies_once_however_it_arrives_and_a_bad_handoff_is_dropped():
    from moodstream.workers.aggregator import from_handoff, handoff_record

    state = CameraState()
    eid, frame = label(1, T + 0.5, "sad")
    assert state.apply(eid, frame) and not state.apply(*from_handoff(handoff_record(eid, frame)))
    assert state.counts.total(T, T + 1)[CLASSES.index("sad")] == 1
    assert from_handoff("{not json") is None and from_handoff('{"id": "1-0", "v": "1"}') is None
