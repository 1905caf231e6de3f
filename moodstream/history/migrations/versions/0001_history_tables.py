"""History tables: 10 s buckets, their 10-minute rollup, alerts and lessons.

Revision ID: 0001
Revises:
"""

import sqlalchemy as sa
from alembic import op

revision = "0001"
down_revision = None
branch_labels = None
depends_on = None

# Spelled out, not imported: a migration must keep creating what it created when written.
CLASSES = ("angry", "disgust", "fear", "happy", "sad", "surprise", "neutral")


def upgrade() -> None:
    op.create_table(
        "history_buckets",
        sa.Column("camera", sa.String(64), primary_key=True),
        sa.Column("ts", sa.BigInteger, primary_key=True, autoincrement=False),
        sa.Column("frames", sa.Integer, nullable=False),
        sa.Column("faces", sa.Float, nullable=False),
        sa.Column("valence", sa.Float, nullable=False),
        sa.Column("dominant", sa.String(16)),
        *(sa.Column(c, sa.Integer, nullable=False) for c in CLASSES),
        sqlite_with_rowid=False,
    )
    op.create_table(
        "history_rollup_10m",
        sa.Column("camera", sa.String(64), primary_key=True),
        sa.Column("ts", sa.BigInteger, primary_key=True, autoincrement=False),
        sa.Column("n", sa.Integer, nullable=False),
        sa.Column("n_seen", sa.Integer, nullable=False),
        sa.Column("frames", sa.Integer, nullable=False),
        sa.Column("faces_sum", sa.Float, nullable=False),
        sa.Column("valence_min", sa.Float),
        sa.Column("valence_max", sa.Float),
        *(sa.Column(c, sa.Integer, nullable=False) for c in CLASSES),
        sqlite_with_rowid=False,
    )
    op.create_table(
        "history_alerts",
        sa.Column("id", sa.Integer, primary_key=True),
        sa.Column("camera", sa.String(64), nullable=False),
        sa.Column("ts", sa.Float, nullable=False),
        sa.Column("kind", sa.String(32), nullable=False),
        sa.Column("state", sa.String(8), nullable=False),
        sa.Column("message", sa.String(200), nullable=False),
        sa.UniqueConstraint("camera", "ts", "kind", "state", name="uq_history_alerts_event"),
    )
    op.create_table(
        "history_lessons",
        sa.Column("id", sa.Integer, primary_key=True),
        sa.Column("camera", sa.String(64), nullable=False),
        sa.Column("start_ts", sa.BigInteger, nullable=False),
        sa.Column("end_ts", sa.BigInteger, nullable=False),
    )
    op.create_index("ix_history_lessons_camera_start", "history_lessons",
                    ["camera", "start_ts"])


def downgrade() -> None:
    op.drop_index("ix_history_lessons_camera_start", "history_lessons")
    for name in ("history_lessons", "history_alerts", "history_rollup_10m", "history_buckets"):
        op.drop_table(name)
