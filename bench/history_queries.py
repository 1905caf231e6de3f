"""History at a school's scale: fill a synthetic term, then time the dashboard's queries.

    .venv/bin/python bench/history_queries.py [--cameras 8] [--days 90] [--postgres]
                                              [--data DIR] [--repeat 7]

Fills 8 cameras x 90 days of 10 s buckets (about 6.2 million rows, recorded day and night;
lessons on weekdays, an empty room otherwise) into a fresh SQLite file (or a PostgreSQL
server that it starts, with --postgres), builds the rollup and the lessons, and prints the
time of each query the History page makes. Goals (issue 15): a week at 10-minute steps
<= 200 ms and a term at day steps <= 1 s on SQLite on this machine. With --data DIR an
existing filled database there is reused instead of filled again.
"""

from __future__ import annotations

import argparse
import json
import statistics
import sys
import tempfile
import time
from pathlib import Path

import numpy as np

REPO = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(REPO))

from moodstream.contract import CLASSES  # noqa: E402
from moodstream.history import HistoryStore, sqlite_url  # noqa: E402
from moodstream.history.schema import alerts, buckets  # noqa: E402

DAY = 86400
# Lesson periods (start, end) in seconds after midnight UTC.
PERIODS = [(8 * 3600 + 30 * 60, 9 * 3600 + 15 * 60), (9 * 3600 + 20 * 60, 10 * 3600 + 5 * 60),
           (10 * 3600 + 25 * 60, 11 * 3600 + 10 * 60), (11 * 3600 + 15 * 60, 12 * 3600),
           (13 * 3600, 13 * 3600 + 45 * 60), (13 * 3600 + 50 * 60, 14 * 3600 + 35 * 60)]
SHARES = np.array([0.03, 0.01, 0.04, 0.22, 0.08, 0.07, 0.55])  # mostly neutral and happy


def day_rows(rng: np.random.Generator, cam: str, day_start: int) -> list[dict]:
    ts = day_start + np.arange(0, DAY, 10)
    second = ts - day_start
    weekday = time.gmtime(day_start).tm_wday < 5
    in_lesson = np.zeros(len(ts), bool)
    if weekday:
        for a, b in PERIODS:
            in_lesson |= (second >= a) & (second < b)
    faces = np.where(in_lesson, rng.normal(22, 3, len(ts)).clip(0, 35), 0.0).round(2)
    frames = np.full(len(ts), 50)
    labels = (faces * frames).astype(int)
    shares = rng.dirichlet(SHARES * 40, len(ts))
    counts = (shares * labels[:, None]).astype(int)
    total = counts.sum(1)
    positive = counts[:, 3] + counts[:, 5]
    negative = counts[:, 0] + counts[:, 1] + counts[:, 2] + counts[:, 4]
    val = np.where(total > 0, (positive - negative) / np.maximum(total, 1), 0.0).round(3)
    dom = np.argmax(counts, 1)
    out = []
    for i in range(len(ts)):
        row = {"camera": cam, "ts": int(ts[i]), "frames": int(frames[i]),
               "faces": float(faces[i]), "valence": float(val[i]),
               "dominant": CLASSES[dom[i]] if total[i] else None}
        row.update(zip(CLASSES, counts[i].tolist(), strict=True))
        out.append(row)
    return out


def fill(store: HistoryStore, cameras: int, days: int, start: int) -> dict:
    rng = np.random.default_rng(15)
    store.migrate()
    began = time.perf_counter()
    n = 0
    with store.engine.begin() as conn:
        for d in range(days):
            for c in range(cameras):
                rows = day_rows(rng, f"room{c + 1}", start + d * DAY)
                conn.execute(buckets.insert(), rows)
                n += len(rows)
                events = [{"camera": f"room{c + 1}", "ts": float(start + d * DAY + s),
                           "kind": "absent", "state": state, "message": "synthetic"}
                          for s in rng.choice(np.arange(8 * 3600, 15 * 3600, 60), 4,
                                              replace=False).tolist()
                          for state in ("raised", "cleared")]
                conn.execute(alerts.insert(), [{**e, "ts": e["ts"] + (e["state"] == "cleared")}
                                               for e in events])
            if d % 10 == 9:
                print(f"  filled {d + 1} days, {n:,} rows, {time.perf_counter() - began:.0f} s",
                      flush=True)
    inserted = time.perf_counter() - began
    store.rebuild()
    return {"rows": n, "insert_s": round(inserted, 1),
            "rollup_and_lessons_s": round(time.perf_counter() - began - inserted, 1)}


def timed(fn, repeat: int) -> dict:
    times, result = [], None
    for _ in range(repeat):
        t = time.perf_counter()
        result = fn()
        times.append((time.perf_counter() - t) * 1000)
    return {"first_ms": round(times[0], 1), "median_ms": round(statistics.median(times), 1),
            "max_ms": round(max(times), 1), "rows": len(result) if isinstance(result, list)
            else None}


def queries(store: HistoryStore, cam: str, start: int, end: int, repeat: int) -> dict:
    week = end - 7 * DAY
    lesson = (end - 3 * DAY + PERIODS[2][0], end - 3 * DAY + PERIODS[2][1])
    return {
        "week_at_10min": timed(lambda: store.history(cam, week, end, 600), repeat),
        "term_at_1day": timed(lambda: store.history(cam, start, end, DAY), repeat),
        "week_at_10min_raw_only": timed(
            lambda: store.history(cam, week, end, 600, use_rollup=False), repeat),
        "term_at_1day_raw_only": timed(
            lambda: store.history(cam, start, end, DAY, use_rollup=False), min(repeat, 3)),
        "week_at_10min_unaligned": timed(lambda: store.history(cam, week + 137, end - 55, 600),
                                         repeat),
        "day_at_10s": timed(lambda: store.history(cam, end - DAY, end, 10), repeat),
        "two_weeks_side_by_side": timed(lambda: [store.history(cam, week, end, 600),
                                                 store.history(cam, week - 7 * DAY, week, 600)],
                                        repeat),
        "lesson_summary": timed(lambda: store.summary(cam, *lesson), repeat),
        "term_summary": timed(lambda: store.summary(cam, start, end), repeat),
        "week_lessons": timed(lambda: store.lessons(cam, week, end), repeat),
        "term_lessons": timed(lambda: store.lessons(cam, start, end), repeat),
        "week_alerts": timed(lambda: store.alerts(cam, week, end), repeat),
    }


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--cameras", type=int, default=8)
    parser.add_argument("--days", type=int, default=90)
    parser.add_argument("--repeat", type=int, default=7)
    parser.add_argument("--data", type=Path, help="keep (or reuse) the SQLite file here")
    parser.add_argument("--postgres", action="store_true",
                        help="start a PostgreSQL server in a temp dir and use it instead")
    args = parser.parse_args()

    # A term that ended at the last midnight (UTC).
    end = int(time.time()) // DAY * DAY
    start = end - args.days * DAY
    server = None
    tmp = tempfile.TemporaryDirectory(prefix="moodstream-bench-")
    if args.postgres:
        from tests.moodstream.history.conftest import PostgresServer, postgres_bin

        if postgres_bin() is None:
            sys.exit("PostgreSQL server binaries not found (./scripts/setup.sh installs them)")
        server = PostgresServer(postgres_bin())
        server.init()
        server.start()
        url = server.new_database()
    else:
        url = sqlite_url(args.data or tmp.name)
    store = HistoryStore(url, retention_days=args.days + 30)
    try:
        print(f"history benchmark: {args.cameras} cameras x {args.days} days on "
              f"{store.engine.dialect.name}", flush=True)
        if store.count() == 0:
            filled = fill(store, args.cameras, args.days, start)
        else:
            filled = {"rows": store.count(), "reused": True}
        print(f"  {filled}")
        if store.engine.dialect.name == "sqlite":
            path = Path(store.engine.url.database)
            filled["db_mb"] = round(path.stat().st_size / 2**20)
        else:
            with store.engine.connect() as conn:
                filled["db_mb"] = round(conn.exec_driver_sql(
                    "SELECT pg_database_size(current_database())").scalar() / 2**20)
        results = queries(store, f"room{min(3, args.cameras)}", start, end, args.repeat)
        print(f"{'query':28} {'first':>9} {'median':>9} {'max':>9} {'rows':>6}")
        for name, r in results.items():
            print(f"{name:28} {r['first_ms']:>7.1f}ms {r['median_ms']:>7.1f}ms "
                  f"{r['max_ms']:>7.1f}ms {r['rows'] if r['rows'] is not None else '':>6}")
        goals = {"week_at_10min": 200, "term_at_1day": 1000}
        verdict = {k: results[k]["median_ms"] <= v for k, v in goals.items()}
        print("goals (median): " + ", ".join(f"{k} <= {v} ms: {'met' if verdict[k] else 'MISSED'}"
                                             for k, v in goals.items()))
        print(json.dumps({"backend": store.engine.dialect.name, "fill": filled,
                          "queries": results, "goals_met": verdict}))
    finally:
        store.close()
        if server is not None:
            server.stop("immediate")
            server.remove()
        tmp.cleanup()
    return 0


if __name__ == "__main__":
    sys.exit(main())
