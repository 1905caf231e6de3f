"""The history tables as SQLAlchemy Core metadata; migrations/ creates and upgrades them."""

from __future__ import annotations

import sqlalchemy as sa

from moodstream.contract import CLASSES

ROLLUP_S = 600  # one rollup row per camera and 10 minutes
metadata = sa.MetaData()

# One row per camera and 10 s bucket (ts = the bucket's start, unix s).
buckets = sa.Table(
    "history_buckets", metadata,
    sa.Column("camera", sa.String(64), primary_key=True),
    sa.Column("ts", sa.BigInteger, primary_key=True, autoincrement=False),
    sa.Column("frames", sa.Integer, nullable=False),
    sa.Column("faces", sa.Float, nullable=False),  # mean faces present
    sa.Column("valence", sa.Float, nullable=False),
    sa.Column("dominant", sa.String(16)),
    *(sa.Column(c, sa.Integer, nullable=False) for c in CLASSES),
    sqlite_with_rowid=False,  # clustered on (camera, ts): range scans read adjacent pages
)

# Sums over the buckets of each 10-minute slot, so that weeks and terms read ~60x fewer rows.
rollup = sa.Table(
    "history_rollup_10m", metadata,
    sa.Column("camera", sa.String(64), primary_key=True),
    sa.Column("ts", sa.BigInteger, primary_key=True, autoincrement=False),
    sa.Column("n", sa.Integer, nullable=False),  # buckets
    sa.Column("n_seen", sa.Integer, nullable=False),  # buckets with any expression counted
    sa.Column("frames", sa.Integer, nullable=False),
    sa.Column("faces_sum", sa.Float, nullable=False),
    sa.Column("valence_min", sa.Float),
    sa.Column("valence_max", sa.Float),
    *(sa.Column(c, sa.Integer, nullable=False) for c in CLASSES),
    sqlite_with_rowid=False,
)

alerts = sa.Table(
    "history_alerts", metadata,
    sa.Column("id", sa.Integer, primary_key=True),
    sa.Column("camera", sa.String(64), nullable=False),
    sa.Column("ts", sa.Float, nullable=False),
    sa.Column("kind", sa.String(32), nullable=False),
    sa.Column("state", sa.String(8), nullable=False),  # raised | cleared
    sa.Column("message", sa.String(200), nullable=False),
    # A batch written twice (a retry after a lost commit reply) adds nothing.
    sa.UniqueConstraint("camera", "ts", "kind", "state", name="uq_history_alerts_event"),
)

# Runs of presence: buckets with someone in view, split where nobody was seen for a while.
lessons = sa.Table(
    "history_lessons", metadata,
    sa.Column("id", sa.Integer, primary_key=True),
    sa.Column("camera", sa.String(64), nullable=False),
    sa.Column("start_ts", sa.BigInteger, nullable=False),
    sa.Column("end_ts", sa.BigInteger, nullable=False),  # end of the last bucket
    sa.Index("ix_history_lessons_camera_start", "camera", "start_ts"),
)

# -- the system of record: accounts, cameras and the audit trail of every change to them ------
# Redis holds a runtime copy of accounts and cameras; these tables are what lasts
# (moodstream.redis_fill loads them into an empty Redis).

accounts = sa.Table(
    "accounts", metadata,
    sa.Column("name", sa.String(64), primary_key=True),
    sa.Column("password_hash", sa.String(512), nullable=False),
    sa.Column("role", sa.String(16), nullable=False),
    # Per-camera access, comma-separated: camera ids and camera group names. Both empty:
    # every camera (admins always see every camera).
    sa.Column("cameras", sa.Text, nullable=False),
    sa.Column("camera_groups", sa.Text, nullable=False),
    sa.Column("created", sa.Float, nullable=False),
    sa.Column("updated", sa.Float, nullable=False),
)

cameras = sa.Table(
    "cameras", metadata,
    sa.Column("id", sa.String(64), primary_key=True),
    sa.Column("settings", sa.Text, nullable=False),  # JSON: CameraSettings.to_hash()
    # A removed camera keeps its row, so that nothing re-adds it after a Redis restart.
    sa.Column("removed", sa.Boolean, nullable=False),
    sa.Column("updated", sa.Float, nullable=False),
)

audit_log = sa.Table(
    "audit_log", metadata,
    sa.Column("id", sa.Integer, primary_key=True),
    sa.Column("ts", sa.Float, nullable=False),
    sa.Column("actor", sa.String(80), nullable=False),  # a user name, "token", "cli:<login>"
    sa.Column("action", sa.String(32), nullable=False),  # user.add, camera.update, ...
    sa.Column("target", sa.String(64), nullable=False),
    sa.Column("detail", sa.Text, nullable=False),  # JSON: what changed (never a password)
    sa.Index("ix_audit_log_ts", "ts"),
)
