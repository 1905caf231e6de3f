"""Lesson history that lasts: 10 s aggregates, alerts and lessons in SQLite or PostgreSQL.

Only aggregates are kept: counts per expression, mean faces present, valence and the dominant
expression per camera and 10 s bucket. Never frames, crops or anything that follows a person
(no track ids). See docs/privacy.md.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

from moodstream.history.store import BUCKET_S, HistoryStore, sqlite_url
from moodstream.history.writer import HistoryWriter
from moodstream.private_files import private_dir

if TYPE_CHECKING:
    import redis

    from moodstream.config import HistorySettings

__all__ = ["BUCKET_S", "HistoryStore", "HistoryWriter", "open_store", "open_writer",
           "sqlite_url"]


def open_store(h: HistorySettings) -> HistoryStore:
    """The store the settings name (nothing connects until it is first used)."""
    if not h.url:
        private_dir(h.data_dir)
    return HistoryStore(h.database_url(), retention_days=h.retention_days)


def open_writer(r: redis.Redis, h: HistorySettings) -> HistoryWriter:
    return HistoryWriter(r, open_store(h), buffer_max=h.buffer_max, batch=h.batch,
                         interval=h.flush_interval_s)
