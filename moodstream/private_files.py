"""Files only this account may read: the data directory (0700) and the history database
with its WAL and shared-memory files (0600). The history holds a classroom's moods and
alerts; other local users have no business reading it. Modes are tightened on every start,
so a directory or database made by an older version, or copied in, is closed too."""

from __future__ import annotations

import os
from pathlib import Path

DIR_MODE = 0o700
FILE_MODE = 0o600


def private_dir(path: Path) -> None:
    path.mkdir(mode=DIR_MODE, parents=True, exist_ok=True)
    os.chmod(path, DIR_MODE)


def private_file(path: Path) -> None:
    """Created empty if absent (SQLite takes an empty file as a new database), else its mode
    tightened."""
    fd = os.open(path, os.O_RDWR | os.O_CREAT, FILE_MODE)
    try:
        os.fchmod(fd, FILE_MODE)
    finally:
        os.close(fd)


def private_sqlite(database: Path) -> None:
    """The database file 0600 (SQLite gives its -wal and -shm files the database's mode when
    it makes them), and those two tightened where they already exist."""
    database.parent.mkdir(mode=DIR_MODE, parents=True, exist_ok=True)
    private_file(database)
    for suffix in ("-wal", "-shm", "-journal"):
        companion = database.with_name(database.name + suffix)
        if companion.exists():
            os.chmod(companion, FILE_MODE)
