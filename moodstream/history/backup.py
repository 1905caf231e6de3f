"""`moodstream db`: back up and restore the database (history and the system of record),
and read the audit log.

    moodstream db backup FILE     a consistent copy of the SQLite database, while it runs
    moodstream db restore FILE    replace the database with a backup (stop `up` first)
    moodstream db audit           the newest changes to accounts and cameras (JSON lines)

SQLite's online backup API copies a consistent snapshot while services keep writing. A
PostgreSQL database is backed up with its own tools (pg_dump / pg_restore).
"""

from __future__ import annotations

import argparse
import json
import os
import sqlite3
import sys
from pathlib import Path

import sqlalchemy as sa

from moodstream.config import Settings

VERSION_TABLE = "history_version"  # Alembic's, in every database this product made


class BackupError(RuntimeError):
    """A backup or restore that cannot be done; the message says why."""


def sqlite_path(url: str) -> Path:
    parsed = sa.engine.make_url(url)
    if parsed.get_backend_name() != "sqlite" or not parsed.database \
            or parsed.database == ":memory:":
        raise BackupError("the database is not a SQLite file: back up PostgreSQL with "
                          "pg_dump and restore it with pg_restore (docs/privacy.md)")
    return Path(parsed.database)


def _copy(source: sqlite3.Connection, target: Path) -> None:
    """The online backup into `target` (a new file, 0600), through a temporary name so that
    a failed copy leaves no half file."""
    partial = target.with_name(target.name + ".partial")
    partial.unlink(missing_ok=True)
    fd = os.open(partial, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
    os.close(fd)
    destination = sqlite3.connect(partial)
    try:
        source.backup(destination)
    finally:
        destination.close()
    partial.replace(target)


def backup(url: str, target: Path) -> Path:
    path = sqlite_path(url)
    if not path.is_file():
        raise BackupError(f"no database at {path} yet")
    source = sqlite3.connect(f"file:{path}?mode=ro", uri=True)
    try:
        _copy(source, target)
    finally:
        source.close()
    return target


def check_backup(path: Path) -> str:
    """The schema revision of a backup file, or BackupError when it is not one of ours."""
    if not path.is_file():
        raise BackupError(f"no such file: {path}")
    try:
        connection = sqlite3.connect(f"file:{path}?mode=ro", uri=True)
        try:
            row = connection.execute(f"SELECT version_num FROM {VERSION_TABLE}").fetchone()
        finally:
            connection.close()
    except sqlite3.DatabaseError as error:
        raise BackupError(f"{path} is not a moodstream database backup ({error})") from None
    if row is None:
        raise BackupError(f"{path} is not a moodstream database backup (no schema version)")
    return row[0]


def restore(url: str, source_file: Path) -> str:
    """Copies a backup over the database (online: a running reader sees the old or the new
    database, never a mix). Returns the backup's schema revision; migrations bring an
    older one up to date at the next use."""
    revision = check_backup(source_file)
    path = sqlite_path(url)
    path.parent.mkdir(parents=True, exist_ok=True)
    if not path.exists():
        os.close(os.open(path, os.O_WRONLY | os.O_CREAT, 0o600))
    source = sqlite3.connect(f"file:{source_file}?mode=ro", uri=True)
    destination = sqlite3.connect(path, timeout=30)
    try:
        source.backup(destination)
    finally:
        destination.close()
        source.close()
    return revision


def configure(parser: argparse.ArgumentParser) -> None:
    actions = parser.add_subparsers(dest="action", required=True, metavar="ACTION")
    p = actions.add_parser("backup", help="copy the SQLite database to FILE, while it runs")
    p.add_argument("file", type=Path)
    p = actions.add_parser("restore", help="replace the SQLite database with the backup FILE "
                                           "(stop `moodstream up` first)")
    p.add_argument("file", type=Path)
    p = actions.add_parser("audit", help="the newest changes to accounts and cameras")
    p.add_argument("--limit", type=int, default=50)


def run(args: argparse.Namespace, settings: Settings) -> int:
    url = settings.history.database_url()
    try:
        if args.action == "backup":
            print(f"backed up {sqlite_path(url)} to {backup(url, args.file)}")
        elif args.action == "restore":
            revision = restore(url, args.file)
            print(f"restored {sqlite_path(url)} from {args.file} (schema {revision}); "
                  "`moodstream up` loads its accounts and cameras at its next start")
        else:
            from moodstream.history.records import open_records

            for change in open_records(settings.history).audit(max(1, args.limit)):
                print(json.dumps(change, sort_keys=True))
    except BackupError as error:
        print(f"moodstream db: {error}", file=sys.stderr)
        return 2
    except (sqlite3.Error, sa.exc.SQLAlchemyError) as error:
        print(f"moodstream db: the database cannot be used: {str(error).splitlines()[0][:300]}",
              file=sys.stderr)
        return 2
    return 0
