"""Lesson history that lasts: 10 s aggregates, alerts and lessons in SQLite or PostgreSQL.

Only aggregates are kept: counts per expression, mean faces present, valence and the dominant
expression per camera and 10 s bucket. Never frames, crops or anything that follows a person
(no track ids). See docs/privacy.md.
"""

from moodstream.history.store import BUCKET_S, HistoryStore, sqlite_url
from moodstream.history.writer import HistoryWriter

__all__ = ["BUCKET_S", "HistoryStore", "HistoryWriter", "sqlite_url"]
