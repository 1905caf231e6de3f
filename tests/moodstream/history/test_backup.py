"""`moodstream db backup|restore`: SQLite's online backup, round trip, and clear refusals."""

from __future__ import annotations

import threading

import pytest

from moodstream.cli import main
from moodstream.history import HistoryStore, sqlite_url
from moodstream.history.backup import BackupError, backup, check_backup, restore
from moodstream.history.records import Records
from tests.moodstream.history.test_store import bucket

T0 = 1_700_000_000


def test_backup_and_restore_round_trip_while_a_writer_runs(tmp_path):
    url = sqlite_url(tmp_path / "data")
    store = HistoryStore(url)
    records = Records(store)
    records.put_user("rita", {"password": "h", "role": "viewer", "cameras": "room-12",
                              "created": "1"}, actor="alice", action="user.add", detail={})
    records.put_camera("room-12", {"source": "rtsp://cam/x", "mode": "driver"},
                       actor="alice", action="camera.add", detail={})
    store.write([bucket(T0 + 10 * i) for i in range(100)])
    stop = threading.Event()

    def keep_writing():  # the aggregator's flusher does not stop for a backup
        i = 100
        while not stop.is_set():
            store.write([bucket(T0 + 10 * i)])
            i += 1

    writer = threading.Thread(target=keep_writing)
    writer.start()
    try:
        target = backup(url, tmp_path / "copy.db")
    finally:
        stop.set()
        writer.join()
    assert target.stat().st_mode & 0o777 == 0o600  # it holds password hashes
    assert check_backup(target) == "0002"

    # Lose things after the backup; the restore brings the backup's state back.
    records.delete_user("rita", actor="alice")
    records.remove_camera("room-12", actor="alice")
    store.delete_camera("cam1")
    store.close()
    assert restore(url, target) == "0002"
    store = HistoryStore(url)
    records = Records(store)
    assert records.user("rita")["cameras"] == "room-12"
    assert records.cameras()["room-12"]["mode"] == "driver"
    assert store.count("cam1") >= 100
    store.close()


def test_the_command_backs_up_and_refuses_what_it_cannot_restore(tmp_path, monkeypatch, capsys):
    monkeypatch.setenv("MOODSTREAM_DATA_DIR", str(tmp_path / "data"))
    store = HistoryStore(sqlite_url(tmp_path / "data"))
    store.write([bucket(T0)])
    store.close()
    assert main(["db", "backup", str(tmp_path / "b.db")]) == 0
    assert "backed up" in capsys.readouterr().out
    assert main(["db", "restore", str(tmp_path / "b.db")]) == 0
    not_a_backup = tmp_path / "notes.db"
    not_a_backup.write_text("hello")
    assert main(["db", "restore", str(not_a_backup)]) == 2
    assert "is not a moodstream database backup" in capsys.readouterr().err
    assert main(["db", "restore", str(tmp_path / "missing.db")]) == 2
    monkeypatch.setenv("MOODSTREAM_HISTORY_URL", "postgresql://u@127.0.0.1:9/x")
    assert main(["db", "backup", str(tmp_path / "c.db")]) == 2
    assert "pg_dump" in capsys.readouterr().err


def test_a_postgresql_url_is_refused_with_the_tool_to_use():
    with pytest.raises(BackupError, match="pg_dump"):
        backup("postgresql://u@h/db", "x.db")
