"""HistoryWriter with a real redis-server and real databases: batching, the capped buffer and
its drop counter, catching up after a PostgreSQL outage, several writers, and the purge."""

from __future__ import annotations

import threading
import time

from moodstream import keys
from moodstream.history import HistoryStore, HistoryWriter, sqlite_url
from moodstream.history.rows import AlertRow, BucketRow
from moodstream.history.writer import erase_camera, history_stats
from tests.conftest import wait_for
from tests.moodstream.history.test_store import bucket

# Yesterday, slot-aligned: well inside the retention period that the writer's purge keeps.
T0 = int(time.time()) // 600 * 600 - 86400


def rows(n: int, start: int = T0, cam: str = "cam1") -> list[BucketRow]:
    return [BucketRow.parse(bucket(start + i * 10, cam, happy=i % 5, sad=1)) for i in range(n)]


def stored_ts(store: HistoryStore, cam: str = "cam1") -> list[int]:
    return [p["ts"] for p in store.history(cam, 0, 2**40, 10)]


def accounted(r) -> bool:
    s = history_stats(r)
    return s["in"] == s["written"] + s["dropped"]["full"] + s["pending"]


def test_rows_go_through_redis_to_the_database_in_batches(r, store):
    writer = HistoryWriter(r, store, batch=40)
    writer.add_buckets(rows(100))
    writer.add_alerts([AlertRow("cam1", T0 + 5, "absent", "raised", "no face for 3s")])
    assert store.count() == 0  # the live path only queued them
    assert writer.flush_once() == 40
    assert history_stats(r) == {"in": 101, "written": 40, "dropped": {"full": 0},
                                "pending": 61}
    assert writer.drain() == 61
    assert stored_ts(store) == [T0 + i * 10 for i in range(100)]
    points = store.history("cam1", T0, T0 + 1000, 10)
    assert [p["counts"]["happy"] for p in points] == [i % 5 for i in range(100)]
    assert {p["counts"]["sad"] for p in points} == {1} and points[1]["dominant"] == "happy"
    assert store.alerts("cam1", T0, T0 + 10)[0]["kind"] == "absent"
    assert history_stats(r)["pending"] == 0 and accounted(r)


def test_a_full_buffer_drops_the_oldest_rows_and_counts_them(r, tmp_path):
    store = HistoryStore(sqlite_url(tmp_path))
    writer = HistoryWriter(r, store, buffer_max=5)
    assert writer.add_buckets(rows(3)) == 0
    assert writer.add_buckets(rows(5, start=T0 + 30)) == 3
    assert history_stats(r)["dropped"] == {"full": 3}
    writer.drain()
    assert stored_ts(store) == [T0 + 30 + i * 10 for i in range(5)]
    assert history_stats(r) == {"in": 8, "written": 5, "dropped": {"full": 3}, "pending": 0}


def test_a_malformed_pending_row_is_skipped_not_stuck(r, tmp_path):
    store = HistoryStore(sqlite_url(tmp_path))
    writer = HistoryWriter(r, store)
    writer.add_buckets(rows(1))
    for body in ("{not json", '{"k":"b","camera":"x","ts":"soon"}',
                 '{"k":"b","camera":"' + "x" * 65 + '","ts":1}', '{"k":"a","ts":1}'):
        seq = r.incr(keys.HISTORY_SEQ)
        r.rpush(keys.HISTORY_PENDING, f"{seq}|{body}")
        r.hincrby(keys.STATS, "history:in", 1)
    writer.add_buckets(rows(1, start=T0 + 10))
    writer.drain()
    assert stored_ts(store) == [T0, T0 + 10]
    assert history_stats(r)["pending"] == 0 and accounted(r)


def test_erasing_a_camera_also_discards_its_queued_rows(r, store):
    writer = HistoryWriter(r, store)
    writer.add_buckets(rows(5) + rows(5, cam="cam2"))
    writer.drain()
    writer.add_buckets(rows(5, start=T0 + 50) + rows(5, start=T0 + 50, cam="cam2"))
    writer.add_alerts([AlertRow("cam1", T0 + 60, "absent", "raised", "x")])
    assert erase_camera(r, store, "cam1") == 5
    writer.drain()
    assert stored_ts(store, "cam1") == [] and store.alerts("cam1", 0, 2**40) == []
    assert len(stored_ts(store, "cam2")) == 10
    assert accounted(r) and history_stats(r)["pending"] == 0
    # A new camera of the same id: its rows are kept.
    writer.add_buckets([BucketRow.parse(bucket(int(time.time()) + 60, "cam1", happy=1))])
    writer.drain()
    assert len(stored_ts(store, "cam1")) == 1


def test_two_writers_draining_together_write_each_row_once(r, store):
    writers = [HistoryWriter(r, store, batch=17) for _ in range(2)]
    stop = threading.Event()

    def keep_draining(writer: HistoryWriter) -> None:
        while not stop.wait(0.005):
            writer.drain()

    threads = [threading.Thread(target=keep_draining, args=(w,)) for w in writers]
    for t in threads:
        t.start()
    try:
        for i in range(0, 300, 25):
            writers[i % 2].add_buckets(rows(25, start=T0 + i * 10))
        wait_for(lambda: history_stats(r)["pending"] == 0, timeout=60, what="drained")
    finally:
        stop.set()
        for t in threads:
            t.join()
    assert stored_ts(store) == [T0 + i * 10 for i in range(300)]
    assert history_stats(r)["written"] == 300


def test_the_writer_purges_expired_history_by_itself(r, tmp_path):
    store = HistoryStore(sqlite_url(tmp_path), retention_days=1)
    now = time.time()
    store.write(rows(10, start=int(now - 3 * 86400)) + rows(10, start=int(now - 600)))
    writer = HistoryWriter(r, store, interval=0.05)
    stop = threading.Event()
    thread = writer.start(stop)
    try:
        wait_for(lambda: store.count() == 10, timeout=30, what="the purge")
    finally:
        stop.set()
        thread.join()
    assert min(stored_ts(store)) >= now - 86400


def run_outage(r, postgres, buffer_max: int, during: int) -> tuple[HistoryStore, list[int]]:
    """Writes 100 rows live, stops PostgreSQL, queues `during` more, restarts it and waits
    until the writer has caught up. Returns the store and every bucket start produced."""
    store = HistoryStore(postgres.new_database())
    writer = HistoryWriter(r, store, buffer_max=buffer_max, batch=50, interval=0.1)
    stop = threading.Event()
    thread = writer.start(stop)
    produced: list[int] = []

    def produce(n: int) -> None:
        for row in rows(n, start=T0 + len(produced) * 10):
            writer.add_buckets([row])
            produced.append(row.ts)

    try:
        produce(100)
        wait_for(lambda: store.count() == 100, timeout=60, what="live writes")
        postgres.stop("fast")
        try:
            produce(during)
            wait_for(lambda: writer.failing, timeout=30, what="the writer to notice")
            assert history_stats(r)["pending"] > 0
        finally:
            postgres.start()
        wait_for(lambda: history_stats(r)["pending"] == 0 and not writer.failing,
                 timeout=90, what="catching up")
    finally:
        stop.set()
        thread.join(timeout=30)
    return store, produced


def test_postgres_outage_rows_are_written_after_the_restart(r, postgres):
    store, produced = run_outage(r, postgres, buffer_max=10000, during=400)
    assert stored_ts(store) == produced
    assert history_stats(r) == {"in": 500, "written": 500, "dropped": {"full": 0},
                                "pending": 0}
    store.close()


def test_postgres_outage_longer_than_the_buffer_counts_what_it_dropped(r, postgres):
    store, produced = run_outage(r, postgres, buffer_max=150, during=400)
    stats = history_stats(r)
    kept = stored_ts(store)
    assert stats["dropped"]["full"] > 0
    # Every row is either in the database or counted as dropped (the oldest queued ones).
    assert len(kept) + stats["dropped"]["full"] == len(produced) == stats["in"]
    assert set(kept) <= set(produced) and kept[-150:] == produced[-150:]
    store.close()
