"""HistoryStore: writes and reads the history tables, on SQLite (default) or PostgreSQL.

Migrations run by themselves before the first use, so a new release upgrades the schema
when a service first touches the database. Reads downsample in SQL: a 10-minute rollup
serves every step that is a multiple of 10 minutes, the raw 10 s buckets the rest and the
partial slots at a range's edges, so the answer is the same whichever table served it.
"""

from __future__ import annotations

import csv
import functools
import io
import operator
import random
import sqlite3
import threading
import time
from collections.abc import Iterable
from contextlib import contextmanager
from dataclasses import dataclass, field
from pathlib import Path

import sqlalchemy as sa

from moodstream.contract import CLASSES
from moodstream.expressions import dominant, valence
from moodstream.history.rows import BUCKET_S, AlertRow, BucketRow
from moodstream.history.schema import ROLLUP_S, alerts, buckets, lessons, rollup
from moodstream.private_files import private_sqlite

DAY_S = 86400
LESSON_GAP_S = 180  # nobody in view this long ends a lesson (breaks are ~5 min)
SHIFT = "shift"  # the alert kind under which classroom valence shifts are kept
LESSON_MIN_S = 300  # shorter runs of presence (someone walking past) are not lessons
MIGRATIONS = Path(__file__).parent / "migrations"
MIGRATION_LOCK = 0x6D6F6F64  # PostgreSQL advisory lock id: one migrator at a time
VALUES = ("frames", "faces", "valence", "dominant", *CLASSES)


def sqlite_url(data_dir: str | Path) -> str:
    return f"sqlite:///{Path(data_dir).resolve() / 'history.db'}"


def engine_for(url: str) -> sa.Engine:
    if url.startswith(("postgres://", "postgresql://")):
        url = "postgresql+psycopg://" + url.split("://", 1)[1]  # psycopg 3, not psycopg2
    if url.startswith("sqlite"):
        path = sa.engine.make_url(url).database
        if path and path != ":memory:":
            private_sqlite(Path(path))
        engine = sa.create_engine(url, connect_args={"timeout": 30})
        _sqlite_setup(engine)
        return engine
    return sa.create_engine(url, pool_pre_ping=True, connect_args={"connect_timeout": 5})


def _sqlite_setup(engine: sa.Engine) -> None:
    """WAL (readers never wait on the writer), and BEGIN emitted by us so that writes can
    take the lock up front (BEGIN IMMEDIATE) instead of failing when they upgrade to it."""

    @sa.event.listens_for(engine, "connect")
    def connect(dbapi_connection, _record):
        dbapi_connection.isolation_level = None
        cursor = dbapi_connection.cursor()
        cursor.execute("PRAGMA busy_timeout=30000")
        _wal_mode(cursor)
        cursor.execute("PRAGMA synchronous=NORMAL")  # WAL keeps it consistent on power loss
        cursor.close()

    @sa.event.listens_for(engine, "begin")
    def begin(conn):
        conn.exec_driver_sql("BEGIN " + conn.get_execution_options().get("sqlite_begin", ""))


def _wal_mode(cursor, patience_s: float = 30.0) -> None:
    """Puts the file in WAL mode (which it keeps). Switching needs the file to itself and
    SQLite answers "database is locked" at once, without waiting, when several processes
    open a new file together; so a file already in WAL mode is left alone and the switch
    is retried until the others are done."""
    if cursor.execute("PRAGMA journal_mode").fetchone()[0].lower() == "wal":
        return
    deadline = time.monotonic() + patience_s
    while True:
        try:
            cursor.execute("PRAGMA journal_mode=WAL")
            return
        except sqlite3.OperationalError as error:
            if "locked" not in str(error) or time.monotonic() > deadline:
                raise
            time.sleep(0.02 + random.random() * 0.05)


def slot_of(column, step: int, offset: int = 0):
    """The start of the `step`-second slot a timestamp column falls in, slots starting at
    multiples of `step` minus `offset` (literals, so that PostgreSQL sees the same
    expression in SELECT and GROUP BY)."""
    n = sa.literal_column(str(int(step)), sa.BigInteger)
    if not offset:
        return (column // n) * n
    off = sa.literal_column(str(int(offset)), sa.BigInteger)
    return ((column + off) // n) * n - off


def _total(table):
    return functools.reduce(operator.add, (table.c[c] for c in CLASSES))


def _bucket_aggregates():
    seen = _total(buckets) > 0
    return [sa.func.count().label("n"),
            sa.func.sum(sa.case((seen, 1), else_=0)).label("n_seen"),
            sa.func.sum(buckets.c.frames).label("frames"),
            sa.func.sum(buckets.c.faces).label("faces_sum"),
            sa.func.min(sa.case((seen, buckets.c.valence))).label("valence_min"),
            sa.func.max(sa.case((seen, buckets.c.valence))).label("valence_max"),
            *(sa.func.sum(buckets.c[c]).label(c) for c in CLASSES)]


def _rollup_aggregates():
    c = rollup.c
    return [sa.func.sum(c.n).label("n"), sa.func.sum(c.n_seen).label("n_seen"),
            sa.func.sum(c.frames).label("frames"), sa.func.sum(c.faces_sum).label("faces_sum"),
            sa.func.min(c.valence_min).label("valence_min"),
            sa.func.max(c.valence_max).label("valence_max"),
            *(sa.func.sum(c[name]).label(name) for name in CLASSES)]


@dataclass
class Agg:
    """Sums over some buckets, from either table; merged in Python across tables."""

    n: int = 0
    n_seen: int = 0
    frames: int = 0
    faces_sum: float = 0.0
    valence_min: float | None = None
    valence_max: float | None = None
    counts: dict[str, int] = field(default_factory=lambda: dict.fromkeys(CLASSES, 0))

    def add(self, row) -> None:
        self.n += int(row["n"] or 0)
        self.n_seen += int(row["n_seen"] or 0)
        self.frames += int(row["frames"] or 0)
        self.faces_sum += float(row["faces_sum"] or 0.0)
        for name, pick in (("valence_min", min), ("valence_max", max)):
            value, mine = row[name], getattr(self, name)
            if value is not None:
                setattr(self, name, float(value) if mine is None else pick(mine, float(value)))
        for c in CLASSES:
            self.counts[c] += int(row[c] or 0)

    def merge(self, other: Agg) -> None:
        self.add({**vars(other), **other.counts})

    def point(self, ts: int) -> dict:
        return {"ts": ts, "faces": round(self.faces_sum / self.n, 2) if self.n else 0.0,
                "valence": round(valence(self.counts), 3), "counts": dict(self.counts),
                "dominant": dominant(self.counts)}

    def summary(self) -> dict:
        total = sum(self.counts.values())
        return {
            "seconds": self.n * BUCKET_S, "seconds_with_faces": self.n_seen * BUCKET_S,
            "faces_avg": round(self.faces_sum / self.n, 2) if self.n else 0.0,
            "valence_avg": round(valence(self.counts), 3) if total else None,
            "valence_min": _round(self.valence_min), "valence_max": _round(self.valence_max),
            "shares": {c: round(self.counts[c] / total, 3) if total else 0.0 for c in CLASSES},
            "dominant": dominant(self.counts),
        }


def _round(value: float | None) -> float | None:
    return None if value is None else round(value, 3)


class HistoryStore:
    def __init__(self, url: str, *, retention_days: float = 90, lesson_gap_s: int = LESSON_GAP_S):
        self.url = url
        self.engine = engine_for(url)
        self.retention_days = retention_days
        self.lesson_gap_s = lesson_gap_s
        self._ready = False
        self._ready_lock = threading.Lock()
        self._postgres = self.engine.dialect.name == "postgresql"

    def close(self) -> None:
        self.engine.dispose()

    # -- connections and migrations -------------------------------------------------------

    def migrate(self) -> None:
        """Brings the schema to the newest revision; several processes may call it at once."""
        with self._ready_lock:
            if self._ready:
                return
            # Imported here: Alembic takes a good part of a second, which a service that
            # never writes (or not yet) should not pay at start.
            from alembic import command
            from alembic.config import Config

            with self._write() as conn:
                if self._postgres:
                    conn.execute(sa.text(f"SELECT pg_advisory_xact_lock({MIGRATION_LOCK})"))
                config = Config()
                config.set_main_option("script_location", str(MIGRATIONS))
                config.attributes["connection"] = conn
                command.upgrade(config, "head")
            self._ready = True

    @contextmanager
    def _write(self):
        with self.engine.connect() as conn:
            conn.execution_options(sqlite_begin="IMMEDIATE")
            with conn.begin():
                yield conn

    @contextmanager
    def _read(self):
        self.migrate()
        with self.engine.connect() as conn:
            yield conn

    def _insert(self, table):
        if self._postgres:
            from sqlalchemy.dialects.postgresql import insert
        else:
            from sqlalchemy.dialects.sqlite import insert
        return insert(table)

    # -- writing --------------------------------------------------------------------------

    def write(self, bucket_rows: Iterable[BucketRow | dict] = (),
              alert_rows: Iterable[AlertRow | dict] = ()) -> None:
        """Stores buckets and alert events in one transaction (a dict is parsed into its
        record first). Writing the same batch twice changes nothing, so a retry after an
        unknown outcome is safe."""
        rows = {}
        for row in bucket_rows:
            row = (row if isinstance(row, BucketRow) else BucketRow.parse(row)).columns()
            rows[row["camera"], row["ts"]] = row  # one statement may touch a row only once
        events = {}
        for event in alert_rows:
            event = (event if isinstance(event, AlertRow) else AlertRow.parse(event)).to_dict()
            events[event["camera"], event["ts"], event["kind"], event["state"]] = event
        if not rows and not events:
            return
        self.migrate()
        with self._write() as conn:
            if rows:
                insert = self._insert(buckets)
                conn.execute(insert.on_conflict_do_update(
                    index_elements=["camera", "ts"],
                    set_={name: insert.excluded[name] for name in VALUES}), list(rows.values()))
                by_camera: dict[str, list[dict]] = {}
                for row in rows.values():
                    by_camera.setdefault(row["camera"], []).append(row)
                for cam, cam_rows in by_camera.items():
                    slots = [r["ts"] // ROLLUP_S * ROLLUP_S for r in cam_rows]
                    self._rebuild_rollup(conn, min(slots), max(slots) + ROLLUP_S, cam)
                    self._extend_lessons(conn, cam, sorted(r["ts"] for r in cam_rows
                                                           if r["faces"] > 0))
            if events:
                insert = self._insert(alerts)
                conn.execute(insert.on_conflict_do_nothing(
                    index_elements=["camera", "ts", "kind", "state"]), list(events.values()))

    def _rebuild_rollup(self, conn, lo: int, hi: int, camera: str | None = None) -> None:
        """Recomputes the rollup slots in [lo, hi) from the buckets (idempotent, exact)."""
        where = [rollup.c.ts >= lo, rollup.c.ts < hi]
        source = [buckets.c.ts >= lo, buckets.c.ts < hi]
        if camera is not None:
            where.append(rollup.c.camera == camera)
            source.append(buckets.c.camera == camera)
        conn.execute(rollup.delete().where(*where))
        slot = slot_of(buckets.c.ts, ROLLUP_S)
        select = (sa.select(buckets.c.camera, slot, *_bucket_aggregates())
                  .where(*source).group_by(buckets.c.camera, slot))
        names = ["camera", "ts", "n", "n_seen", "frames", "faces_sum", "valence_min",
                 "valence_max", *CLASSES]
        conn.execute(rollup.insert().from_select(names, select))

    def _extend_lessons(self, conn, camera: str, present: list[int]) -> None:
        """Merges buckets with someone in view into the camera's lessons: a run of presence
        whose gaps are at most lesson_gap_s, joined with any lesson it touches."""
        gap = self.lesson_gap_s
        runs: list[list[int]] = []
        for ts in present:
            if runs and ts - runs[-1][1] <= gap:
                runs[-1][1] = ts + BUCKET_S
            else:
                runs.append([ts, ts + BUCKET_S])
        for start, end in runs:
            near = conn.execute(sa.select(lessons.c.id, lessons.c.start_ts, lessons.c.end_ts)
                                .where(lessons.c.camera == camera,
                                       lessons.c.start_ts <= end + gap,
                                       lessons.c.end_ts >= start - gap)).all()
            if near:
                start = min(start, *(r.start_ts for r in near))
                end = max(end, *(r.end_ts for r in near))
                conn.execute(lessons.delete().where(lessons.c.id.in_([r.id for r in near])))
            conn.execute(lessons.insert().values(camera=camera, start_ts=start, end_ts=end))

    def bulk_load(self, bucket_rows: Iterable[BucketRow | dict], chunk: int = 20000) -> int:
        """Plain inserts of new buckets (no upsert, rollup or lessons): for imports and the
        benchmark; call rebuild() afterwards."""
        self.migrate()
        done = 0
        batch: list[dict] = []
        with self._write() as conn:
            for row in bucket_rows:
                batch.append((row if isinstance(row, BucketRow)
                              else BucketRow.parse(row)).columns())
                if len(batch) >= chunk:
                    conn.execute(buckets.insert(), batch)
                    done += len(batch)
                    batch = []
            if batch:
                conn.execute(buckets.insert(), batch)
                done += len(batch)
        return done

    def rebuild(self) -> None:
        """Recomputes the whole rollup and every lesson from the buckets."""
        self.migrate()
        with self._write() as conn:
            lo, hi = conn.execute(sa.select(sa.func.min(buckets.c.ts),
                                            sa.func.max(buckets.c.ts))).one()
            conn.execute(lessons.delete())
            if lo is None:
                conn.execute(rollup.delete())
                return
            self._rebuild_rollup(conn, lo // ROLLUP_S * ROLLUP_S, hi + ROLLUP_S)
            cams = conn.execute(sa.select(buckets.c.camera).distinct()).scalars().all()
            for cam in cams:
                present = conn.execute(sa.select(buckets.c.ts).where(
                    buckets.c.camera == cam, buckets.c.faces > 0).order_by(buckets.c.ts))
                self._extend_lessons(conn, cam, list(present.scalars()))

    # -- erasing --------------------------------------------------------------------------

    def purge(self, now: float | None = None) -> dict[str, int]:
        """Deletes everything older than the retention period; returns rows deleted."""
        self.migrate()
        now = time.time() if now is None else now
        cutoff = int(now - self.retention_days * DAY_S) // BUCKET_S * BUCKET_S
        slot = cutoff // ROLLUP_S * ROLLUP_S
        with self._write() as conn:
            deleted = {
                "buckets": conn.execute(buckets.delete().where(buckets.c.ts < cutoff)).rowcount,
                "alerts": conn.execute(alerts.delete().where(alerts.c.ts < cutoff)).rowcount,
                "lessons": conn.execute(
                    lessons.delete().where(lessons.c.end_ts <= cutoff)).rowcount,
            }
            conn.execute(rollup.delete().where(rollup.c.ts < slot))
            self._rebuild_rollup(conn, slot, slot + ROLLUP_S)  # the slot the cutoff splits
            conn.execute(lessons.update().where(lessons.c.start_ts < cutoff)
                         .values(start_ts=cutoff))
        return deleted

    def delete_camera(self, camera: str) -> int:
        """Erases all history of one camera; returns the buckets deleted."""
        self.migrate()
        with self._write() as conn:
            n = conn.execute(buckets.delete().where(buckets.c.camera == camera)).rowcount
            for table in (rollup, alerts, lessons):
                conn.execute(table.delete().where(table.c.camera == camera))
        return n

    # -- reading --------------------------------------------------------------------------

    def _fold(self, conn, out: dict[int, Agg], table, camera: str, lo: int, hi: int,
              step: int, offset: int = 0) -> None:
        slot = slot_of(table.c.ts, step, offset)
        aggregates = _bucket_aggregates() if table is buckets else _rollup_aggregates()
        rows = conn.execute(sa.select(slot.label("slot"), *aggregates)
                            .where(table.c.camera == camera, table.c.ts >= lo, table.c.ts < hi)
                            .group_by(slot))
        for row in rows.mappings():
            out.setdefault(int(row["slot"]), Agg()).add(row)

    def _groups(self, conn, camera: str, start: float, end: float, step: int,
                use_rollup: bool = True, offset: int = 0) -> dict[int, Agg]:
        """Sums per `step`-aligned slot (shifted by `offset`) over the buckets that start in
        [start, end). A rollup slot lies within one group when both step and offset are
        multiples of its 10 minutes."""
        lo, hi = int(start // 1), int(-(-end // 1))
        out: dict[int, Agg] = {}
        inner_lo = -(-lo // ROLLUP_S) * ROLLUP_S
        inner_hi = hi // ROLLUP_S * ROLLUP_S
        if use_rollup and step % ROLLUP_S == 0 and offset % ROLLUP_S == 0 \
                and inner_lo < inner_hi:
            self._fold(conn, out, rollup, camera, inner_lo, inner_hi, step, offset)
            edges = [(lo, inner_lo), (inner_hi, hi)]
        else:
            edges = [(lo, hi)]
        for a, b in edges:
            if a < b:
                self._fold(conn, out, buckets, camera, a, b, step, offset)
        return out

    def history(self, camera: str, start: float, end: float, step: int = BUCKET_S, *,
                offset: int = 0, use_rollup: bool = True) -> list[dict]:
        """Points {ts, faces, valence, counts, dominant} per `step` seconds (a multiple of
        10), oldest first; steps with no data are absent. Steps start at multiples of
        `step` minus `offset`: a time zone's seconds east of UTC makes days start at local
        midnight. use_rollup=False reads only the raw buckets (the benchmark's baseline)."""
        step = max(BUCKET_S, int(step) // BUCKET_S * BUCKET_S)
        offset = int(offset) % step
        with self._read() as conn:
            groups = self._groups(conn, camera, start, end, step, use_rollup, offset)
        return [groups[ts].point(ts) for ts in sorted(groups)]

    def summary(self, camera: str, start: float, end: float) -> dict:
        """The range at a glance: coverage, faces, valence, shares, alerts and lessons."""
        total = Agg()
        with self._read() as conn:
            # One step as long as the range (rollup-aligned): a group or two, not thousands.
            step = (int(end - start) // ROLLUP_S + 1) * ROLLUP_S
            for agg in self._groups(conn, camera, start, end, step).values():
                total.merge(agg)
            inside = (buckets.c.camera == camera, buckets.c.ts >= int(start),
                      buckets.c.ts < end)
            first = conn.execute(sa.select(buckets.c.ts).where(*inside)
                                 .order_by(buckets.c.ts).limit(1)).scalar()
            last = conn.execute(sa.select(buckets.c.ts).where(*inside)
                                .order_by(buckets.c.ts.desc()).limit(1)).scalar()
            raised = conn.execute(sa.select(sa.func.count()).select_from(alerts).where(
                alerts.c.camera == camera, alerts.c.ts >= start, alerts.c.ts < end,
                alerts.c.state == "raised", alerts.c.kind != SHIFT)).scalar()
        return {"from": first, "to": None if last is None else last + BUCKET_S,
                **total.summary(), "alerts_raised": raised}

    def lessons(self, camera: str, start: float, end: float,
                min_seconds: int = LESSON_MIN_S) -> list[dict]:
        """Lessons overlapping [start, end), each with its own summary, oldest first."""
        on = sa.and_(buckets.c.camera == lessons.c.camera, buckets.c.ts >= lessons.c.start_ts,
                     buckets.c.ts < lessons.c.end_ts)
        query = (sa.select(lessons.c.start_ts, lessons.c.end_ts, *_bucket_aggregates())
                 .select_from(lessons.join(buckets, on))
                 .where(lessons.c.camera == camera, lessons.c.end_ts > start,
                        lessons.c.start_ts < end,
                        lessons.c.end_ts - lessons.c.start_ts >= min_seconds)
                 .group_by(lessons.c.id, lessons.c.start_ts, lessons.c.end_ts)
                 .order_by(lessons.c.start_ts))
        out = []
        with self._read() as conn:
            for row in conn.execute(query).mappings():
                agg = Agg()
                agg.add(row)
                out.append({"from": row["start_ts"], "to": row["end_ts"], **agg.summary()})
        return out

    def alerts(self, camera: str, start: float, end: float, limit: int = 5000,
               kinds: Iterable[str] | None = None) -> list[dict]:
        """Alert events (and valence shifts, kind "shift") in [start, end), oldest first."""
        query = (sa.select(alerts.c.ts, alerts.c.kind, alerts.c.state, alerts.c.message)
                 .where(alerts.c.camera == camera, alerts.c.ts >= start, alerts.c.ts < end)
                 .order_by(alerts.c.ts, alerts.c.id).limit(limit))
        if kinds is not None:
            query = query.where(alerts.c.kind.in_(list(kinds)))
        with self._read() as conn:
            return [dict(r) for r in conn.execute(query).mappings()]

    def count(self, camera: str | None = None) -> int:
        """Buckets stored (for one camera, or all)."""
        query = sa.select(sa.func.count()).select_from(buckets)
        if camera is not None:
            query = query.where(buckets.c.camera == camera)
        with self._read() as conn:
            return int(conn.execute(query).scalar())


def to_csv(points: Iterable[dict]) -> str:
    """History points as CSV: one line per point, counts per class as columns."""
    out = io.StringIO()
    writer = csv.writer(out, lineterminator="\n")
    writer.writerow(["ts", "time_utc", "faces", "valence", "dominant", *CLASSES])
    for p in points:
        writer.writerow([p["ts"], time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime(p["ts"])),
                         f"{p['faces']:g}", f"{p['valence']:.3f}", p["dominant"] or "",
                         *(p["counts"][c] for c in CLASSES)])
    return out.getvalue()
