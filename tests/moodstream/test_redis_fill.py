"""Filling Redis from the system of record: at start, after a restart, after changes made
while Redis was away; a real redis-server and a SQLite database."""

from __future__ import annotations

import time

import pytest

from moodstream import keys
from moodstream.camera_settings import CameraSettings
from moodstream.dashboard import cameras, users
from moodstream.history import HistoryStore, sqlite_url
from moodstream.history.records import Records
from moodstream.redis_fill import fill_redis


@pytest.fixture
def records(tmp_path):
    store = HistoryStore(sqlite_url(tmp_path))
    yield Records(store)
    store.close()


def test_an_emptied_redis_gets_accounts_cameras_and_access_back(r, records):
    users.set_user(r, "alice", "alice-password", "admin", records=records, actor="t")
    users.set_user(r, "rita", "rita-password", "viewer", cameras="room-12",
                   groups="year-9", records=records, actor="t")
    cameras.add(r, {"id": "cab9", "source": "rtsp://cam/x", "mode": "driver",
                    "negative_threshold": "0.4", "negative_seconds": "7", "groups": "fleet"},
                records=records, actor="alice")
    cameras.add(r, {"id": "gone", "source": "rtsp://cam/y"}, records=records, actor="alice")
    cameras.remove(r, "gone", records=records, actor="alice")
    assert fill_redis(r, records) is True  # Redis has not seen this version yet
    assert fill_redis(r, records) is False  # nothing new
    before = {name: users.get_user(r, name) for name in ("alice", "rita")}

    r.flushall()  # what a restarted embedded Redis holds
    pubsub = r.pubsub(ignore_subscribe_messages=True)
    pubsub.subscribe(keys.CAMERAS_CHANGED)
    assert fill_redis(r, records) is True
    assert {name: users.get_user(r, name) for name in ("alice", "rita")} == before
    assert users.authenticate(r, "rita", "rita-password")["cameras"] == "room-12"
    cab = CameraSettings.load(r, "cab9")
    assert (cab.mode, cab.negative_threshold, cab.negative_seconds, cab.groups) == (
        "driver", 0.4, 7.0, "fleet")
    assert cameras.registered(r, "cab9") and not cameras.registered(r, "gone")
    assert r.sismember(keys.REMOVED_CAMERAS, "gone")
    # The camera supervisor hears about the cameras, and starts their ingest.
    announced = set()
    deadline = time.monotonic() + 5
    while len(announced) < 2 and time.monotonic() < deadline:
        message = pubsub.get_message(timeout=0.5)
        if message:
            announced.add(message["data"])
    assert announced == {b"cab9", b"gone"}


def test_changes_made_while_redis_was_away_reach_it(r, records):
    users.set_user(r, "rita", "rita-password", "viewer", records=records, actor="t")
    users.set_user(r, "sam", "sam-password-1", "viewer", records=records, actor="t")
    fill_redis(r, records)
    # `moodstream user` with Redis out of reach writes only the database.
    users.set_user(None, "rita", None, "viewer", cameras="room-1", records=records,
                   actor="cli")
    users.remove_user(None, "sam", records=records, actor="cli")
    assert users.get_user(r, "sam") is not None
    assert fill_redis(r, records) is True
    assert users.get_user(r, "sam") is None
    assert users.get_user(r, "rita")["cameras"] == "room-1"


def test_a_new_database_adopts_what_an_existing_redis_holds(r, records):
    """Upgrading a deployment whose accounts and cameras lived only in Redis: nothing is
    lost, and from then on the database has them."""
    users.set_user(r, "alice", "alice-password", "admin")
    cameras.add(r, {"id": "room1", "source": "rtsp://cam/z", "mode": "driver"})
    # The dashboard may create the first admin from its settings before the first fill.
    users.set_user(None, "root", "root-password", "admin", records=records, actor="settings")
    assert fill_redis(r, records) is True
    assert set(records.users()) == {"alice", "root"}
    assert users.authenticate(r, "root", "root-password")
    assert records.cameras()["room1"]["mode"] == "driver"
    r.flushall()
    fill_redis(r, records)
    assert users.authenticate(r, "alice", "alice-password")
    assert CameraSettings.load(r, "room1").mode == "driver"


def test_a_restored_backup_is_what_redis_gets(r, records, tmp_path):
    """A restore brings back an older database: accounts and cameras made after the backup
    leave Redis too, though its loaded version is newer than the restored database's."""
    from moodstream.history.backup import backup, restore

    users.set_user(r, "alice", "alice-password", "admin", records=records, actor="t")
    cameras.add(r, {"id": "room1", "source": "rtsp://cam/1"}, records=records, actor="t")
    backup(records.store.url, tmp_path / "before.db")
    users.set_user(r, "late", "late-password", "viewer", records=records, actor="t")
    cameras.add(r, {"id": "room2", "source": "rtsp://cam/2"}, records=records, actor="t")
    cameras.update(r, "room1", {"mode": "driver"}, records=records, actor="t")
    fill_redis(r, records)
    records.store.close()
    restore(records.store.url, tmp_path / "before.db")
    assert fill_redis(r, records) is True
    assert users.get_user(r, "late") is None and users.get_user(r, "alice")
    assert not cameras.registered(r, "room2")
    assert CameraSettings.load(r, "room1").mode == "classroom"
