"""HistoryStore on real SQLite and real PostgreSQL: what is stored, downsampling (rollup and
raw must agree), lessons, alerts, summaries, retention and erasure."""

from __future__ import annotations

import random
import threading

import sqlalchemy as sa

from moodstream.contract import CLASSES
from moodstream.expressions import dominant, valence
from moodstream.history import HistoryStore, sqlite_url
from moodstream.history.schema import buckets, metadata
from moodstream.history.store import to_csv

T0 = 1_780_000_200  # a multiple of 600: slot-aligned
DAY = 86400


def bucket(ts: int, cam: str = "cam1", faces: float = 2.0, **counts) -> dict:
    full = {c: counts.get(c, 0) for c in CLASSES}
    return {"camera": cam, "ts": ts, "frames": 20, "faces": faces, "counts": full,
            "valence": valence(full), "dominant": dominant(full)}


def random_buckets(rng: random.Random, start: int, n: int, cam: str = "cam1") -> list[dict]:
    out = []
    for i in range(n):
        if rng.random() < 0.1:
            continue  # a gap: the camera was off
        counts = {c: rng.randrange(0, 8) for c in CLASSES} if rng.random() < 0.8 else {}
        out.append(bucket(start + i * 10, cam, faces=rng.choice([0.0, 1.5, 3.0]), **counts))
    return out


def naive(rows: list[dict], lo: float, hi: float, step: int, offset: int = 0) -> list[dict]:
    """What history() must return, computed the obvious way in Python."""
    groups: dict[int, list[dict]] = {}
    for r in rows:
        if lo <= r["ts"] < hi:
            groups.setdefault((r["ts"] + offset) // step * step - offset, []).append(r)
    out = []
    for ts in sorted(groups):
        g = groups[ts]
        counts = {c: sum(r["counts"][c] for r in g) for c in CLASSES}
        out.append({"ts": ts, "faces": round(sum(r["faces"] for r in g) / len(g), 2),
                    "valence": round(valence(counts), 3), "counts": counts,
                    "dominant": dominant(counts)})
    return out


def test_migrations_create_the_tables_once(store):
    store.migrate()
    store.migrate()
    names = set(sa.inspect(store.engine).get_table_names())
    assert {"history_buckets", "history_rollup_10m", "history_alerts", "history_lessons",
            "history_version"} <= names
    with store.engine.connect() as conn:
        assert conn.execute(sa.text("SELECT version_num FROM history_version")).scalar() == "0002"


def test_the_migration_matches_the_metadata(store):
    store.migrate()
    inspector = sa.inspect(store.engine)
    for table in metadata.tables.values():
        stored = {c["name"] for c in inspector.get_columns(table.name)}
        assert stored == {c.name for c in table.columns}, table.name


def test_sqlite_file_is_in_wal_mode_and_several_processes_can_migrate_at_once(tmp_path):
    url = sqlite_url(tmp_path / "fresh" / "dir")  # the data directory is created
    stores = [HistoryStore(url) for _ in range(4)]
    errors = []

    def go(s):
        try:
            s.migrate()
        except Exception as error:  # pragma: no cover - the assertion shows it
            errors.append(error)

    threads = [threading.Thread(target=go, args=(s,)) for s in stores]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert errors == []
    with stores[0].engine.connect() as conn:
        assert conn.exec_driver_sql("PRAGMA journal_mode").scalar() == "wal"
    assert (tmp_path / "fresh" / "dir" / "history.db").exists()
    for s in stores:
        s.close()


def test_only_aggregates_are_stored_never_identities(store):
    """Extra keys (a track id, people boxes, an image) never reach the database."""
    row = bucket(T0, happy=3)
    row.update(track_id=7, people=[{"id": 7, "box": [1, 2, 3, 4]}], jpeg=b"\xff\xd8")
    store.write([row])
    columns = {c.name for c in buckets.columns}
    assert columns == {"camera", "ts", "frames", "faces", "valence", "dominant", *CLASSES}
    with store.engine.connect() as conn:
        stored = dict(conn.execute(sa.select(buckets)).mappings().one())
    assert stored["happy"] == 3 and stored["dominant"] == "happy"


def test_history_at_the_bucket_step_returns_the_rows_written(store):
    store.write([bucket(T0, happy=4, sad=1), bucket(T0 + 10, faces=0.0),
                 bucket(T0 + 20, neutral=2), bucket(T0 + 40, cam="other", angry=9)])
    points = store.history("cam1", T0, T0 + 60, 10)
    assert [p["ts"] for p in points] == [T0, T0 + 10, T0 + 20]
    assert points[0]["counts"]["happy"] == 4 and points[0]["valence"] == 0.6
    assert points[0]["dominant"] == "happy" and points[0]["faces"] == 2.0
    assert points[1]["dominant"] is None and points[1]["faces"] == 0.0
    assert store.history("cam1", T0 + 30, T0 + 600, 10) == []


def test_downsampling_sums_counts_and_recomputes_valence(store):
    store.write([bucket(T0, happy=4), bucket(T0 + 10, sad=2, faces=1.0),
                 bucket(T0 + 60, neutral=1, faces=3.0)])
    points = store.history("cam1", T0, T0 + 120, 60)
    assert [p["ts"] for p in points] == [T0, T0 + 60]
    first = points[0]
    assert first["counts"]["happy"] == 4 and first["counts"]["sad"] == 2
    assert first["valence"] == round(2 / 6, 3) and first["faces"] == 1.5
    assert first["dominant"] == "happy"


def test_rollup_and_raw_buckets_give_the_same_answer(store):
    """Unaligned ranges at 10-minute, hourly and daily steps (rollup inside, raw at the
    edges) match the obvious computation over the raw rows, and so do odd steps."""
    rng = random.Random(15)
    rows = random_buckets(rng, T0 - 3000, 2400)  # ~6.7 hours with gaps
    store.write(rows[:1000])
    store.write(rows[1000:])
    lo, hi = T0 - 2345, T0 + 17777
    for step in (600, 3600, DAY, 70, 10):
        assert store.history("cam1", lo, hi, step) == naive(rows, lo, hi, step), step


def test_days_can_start_at_local_midnight(store):
    """An offset (a time zone east of UTC) shifts the steps; multiples of 10 minutes keep
    the rollup (UTC+1, UTC+5:30), others read the raw rows (UTC+5:45) with the same result."""
    rng = random.Random(16)
    rows = random_buckets(rng, T0 - 5 * 3600, 3000)
    store.write(rows)
    lo, hi = T0 - 6 * 3600, T0 + 5 * 3600
    for offset in (3600, 19800, 20700, -18000):
        for step in (3600, DAY):
            expected = naive(rows, lo, hi, step, offset % step)
            assert store.history("cam1", lo, hi, step, offset=offset) == expected, offset
    starts = [p["ts"] for p in store.history("cam1", lo, hi, DAY, offset=3600)]
    assert all((ts + 3600) % DAY == 0 for ts in starts)


def test_writing_a_batch_again_changes_nothing_and_a_rewrite_updates_the_rollup(store):
    rows = [bucket(T0 + i * 10, happy=1) for i in range(90)]
    store.write(rows)
    store.write(rows)
    assert store.count("cam1") == 90
    assert store.history("cam1", T0, T0 + 900, 600)[0]["counts"]["happy"] == 60
    store.write([bucket(T0 + 30, sad=5)])  # a late, corrected bucket replaces the first
    point = store.history("cam1", T0, T0 + 900, 600)[0]
    assert point["counts"]["happy"] == 59 and point["counts"]["sad"] == 5


def test_alerts_are_kept_raised_and_cleared(store):
    events = [{"camera": "cam1", "ts": T0 + 1.5, "kind": "negative", "state": "raised",
               "message": "sad for 5s"},
              {"camera": "cam1", "ts": T0 + 9.25, "kind": "negative", "state": "cleared",
               "message": "cleared"},
              {"camera": "cam2", "ts": T0 + 3, "kind": "absent", "state": "raised",
               "message": "no face for 3s"}]
    store.write(alert_rows=events)
    store.write(alert_rows=events[:1])  # a retried batch adds nothing
    got = store.alerts("cam1", T0, T0 + 60)
    assert [(a["state"], a["ts"]) for a in got] == [("raised", T0 + 1.5), ("cleared", T0 + 9.25)]
    assert got[0]["message"] == "sad for 5s"
    assert store.summary("cam1", T0, T0 + 60)["alerts_raised"] == 1


def test_lessons_are_runs_of_presence_split_by_long_absences(store):
    lesson1 = [bucket(T0 + i * 10, happy=1) for i in range(270)]  # 45 minutes
    # A 2-minute gap inside the lesson (everyone out of view) does not split it.
    lesson1 = [b for b in lesson1 if not T0 + 1200 <= b["ts"] < T0 + 1320]
    empty_room = [bucket(T0 + 2700 + i * 10, faces=0.0) for i in range(90)]  # 15 min nobody
    lesson2 = [bucket(T0 + 3600 + i * 10, sad=2) for i in range(180)]  # 30 minutes
    passer_by = [bucket(T0 + 9000 + i * 10, neutral=1) for i in range(3)]
    # Written in pieces that cut lessons in two: the pieces join up.
    everything = lesson1 + empty_room + lesson2 + passer_by
    for i in range(0, len(everything), 77):
        store.write(everything[i:i + 77])
    found = store.lessons("cam1", T0 - DAY, T0 + DAY)
    assert [(x["from"], x["to"]) for x in found] == [(T0, T0 + 2700), (T0 + 3600, T0 + 5400)]
    assert found[0]["dominant"] == "happy" and found[1]["dominant"] == "sad"
    assert found[1]["seconds"] == 1800 and found[1]["valence_avg"] == -1.0
    short = store.lessons("cam1", T0 - DAY, T0 + DAY, min_seconds=0)
    assert (T0 + 9000, T0 + 9030) in [(x["from"], x["to"]) for x in short]


def test_summary_covers_any_range(store):
    store.write([bucket(T0 + i * 10, happy=3, sad=1) for i in range(360)]
                + [bucket(T0 + 3600 + i * 10, faces=0.0) for i in range(60)]
                + [bucket(T0 + 4200, angry=4)])
    s = store.summary("cam1", T0 - 5, T0 + 7200)
    assert s["from"] == T0 and s["to"] == T0 + 4210
    assert s["seconds"] == 4210 and s["seconds_with_faces"] == 3610
    assert s["shares"]["happy"] == round(1080 / 1444, 3)
    assert s["valence_min"] == -1.0 and s["valence_max"] == 0.5
    assert s["dominant"] == "happy"
    assert store.summary("nobody", T0, T0 + 60)["from"] is None


def test_purge_keeps_only_the_retention_period(store):
    now = T0 + 100 * DAY
    store.retention_days = 90
    old = [bucket(T0 + i * 10, happy=1) for i in range(360)]  # 100 days old
    edge_start = now - 90 * DAY - 300  # a slot and a lesson cut by the cutoff
    edge = [bucket(edge_start + i * 10, sad=1) for i in range(120)]
    store.write(old + edge, [{"camera": "cam1", "ts": T0 + 5, "kind": "absent",
                              "state": "raised", "message": "x"}])
    deleted = store.purge(now)
    assert deleted["buckets"] == 360 + 30 and deleted["alerts"] == 1
    cutoff = now - 90 * DAY
    assert store.history("cam1", 0, now, 10)[0]["ts"] == cutoff
    assert store.history("cam1", 0, now, DAY) == naive(edge[30:], 0, now, DAY)
    assert [(x["from"], x["to"]) for x in store.lessons("cam1", 0, now, 0)] == \
        [(cutoff, edge_start + 1200)]


def test_deleting_a_camera_erases_only_its_history(store):
    store.write([bucket(T0, happy=1), bucket(T0, cam="cam2", sad=1)],
                [{"camera": "cam1", "ts": T0, "kind": "absent", "state": "raised",
                  "message": "x"}])
    assert store.delete_camera("cam1") == 1
    assert store.history("cam1", 0, T0 + DAY, 600) == []
    assert store.alerts("cam1", 0, T0 + DAY) == []
    assert store.lessons("cam1", 0, T0 + DAY, 0) == []
    assert store.count("cam2") == 1


def test_csv_has_one_line_per_point_with_counts_per_class():
    points = [{"ts": T0, "faces": 2.5, "valence": 0.25, "dominant": "happy",
               "counts": {c: i for i, c in enumerate(CLASSES)}}]
    text = to_csv(points)
    header, line = text.strip().split("\n")
    assert header == "ts,time_utc,faces,valence,dominant," + ",".join(CLASSES)
    assert line.startswith(f"{T0},2026-05-28T") and line.endswith(",2.5,0.250,happy,0,1,2,3,4,5,6")
