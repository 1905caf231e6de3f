"""The data directory is 0700 and the history database with its WAL and shared memory 0600,
whether open_store makes them or finds them looser (moodstream.private_files)."""

from __future__ import annotations

import os
import sqlite3
import stat
import time

import pytest

from moodstream.config import HistorySettings
from moodstream.history import open_store
from tests.moodstream.history.test_store import bucket


def mode(path) -> int:
    return stat.S_IMODE(os.stat(path).st_mode)


@pytest.fixture
def loose_umask():
    """The common umask (022) under which files are world-readable unless made private."""
    old = os.umask(0o022)
    yield
    os.umask(old)


def write_one_bucket(store) -> None:
    store.migrate()
    store.write([bucket(int(time.time()) // 10 * 10, happy=3)])


def database_files(data):
    return [data / name for name in ("history.db", "history.db-wal", "history.db-shm")]


def test_a_new_data_directory_and_database_are_private(tmp_path, loose_umask):
    data = tmp_path / "nested" / "data"
    store = open_store(HistorySettings(data_dir=data))
    try:
        write_one_bucket(store)
        assert mode(data) == 0o700
        for path in database_files(data):
            assert path.exists() and mode(path) == 0o600, (path, oct(mode(path)))
    finally:
        store.close()


def test_a_looser_existing_directory_and_database_are_tightened(tmp_path, loose_umask):
    data = tmp_path / "data"
    data.mkdir(mode=0o755)
    keep_open = sqlite3.connect(data / "history.db")  # WAL mode leaves -wal and -shm
    keep_open.execute("PRAGMA journal_mode=WAL")
    keep_open.execute("CREATE TABLE t (x)")
    keep_open.commit()
    os.chmod(data, 0o755)
    for path in database_files(data):
        os.chmod(path, 0o644)
    store = open_store(HistorySettings(data_dir=data))
    try:
        write_one_bucket(store)
        assert mode(data) == 0o700
        for path in database_files(data):
            assert mode(path) == 0o600, (path, oct(mode(path)))
    finally:
        store.close()
        keep_open.close()
