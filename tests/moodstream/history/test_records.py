"""The system of record in the history database: accounts, cameras, the audit log, and
the migration that adds them to an empty or an existing database."""

from __future__ import annotations

import pytest
import sqlalchemy as sa

from moodstream.history import HistoryStore, sqlite_url
from moodstream.history.records import Records
from moodstream.history.store import MIGRATIONS
from tests.moodstream.history.test_store import bucket

T0 = 1_700_000_000


@pytest.fixture
def records(store):
    return Records(store)


def test_accounts_round_trip_with_their_access_and_an_audit_row(records):
    assert records.users() == {} and records.version() == 0
    records.put_user("rita", {"password": "hash-1", "role": "viewer", "cameras": "room-12",
                              "groups": "", "created": "100"},
                     actor="alice", action="user.add", detail={"role": "viewer"})
    records.put_user("rita", {"password": "hash-2", "role": "viewer", "cameras": "room-12",
                              "groups": "year-9", "created": "100"},
                     actor="alice", action="user.update", detail={"groups": "year-9"})
    assert records.user("rita") == {"name": "rita", "password": "hash-2", "role": "viewer",
                                    "cameras": "room-12", "groups": "year-9", "created": "100"}
    assert records.delete_user("rita", actor="bob") is True
    assert records.delete_user("rita", actor="bob") is False
    assert records.user("rita") is None
    trail = records.audit()
    assert [(c["actor"], c["action"], c["target"]) for c in trail] == [
        ("bob", "user.remove", "rita"), ("alice", "user.update", "rita"),
        ("alice", "user.add", "rita")]
    assert trail[1]["detail"] == {"groups": "year-9"} and trail[0]["ts"] > 0
    assert records.version() == 3


def test_cameras_keep_every_setting_and_a_removed_camera_stays_removed(records):
    settings = {"name": "Cab 9", "source": "rtsp://cam/x", "mode": "driver", "fps": "5",
                "negative_threshold": "0.4", "groups": "fleet-north"}
    records.put_camera("cab9", settings, actor="alice", action="camera.add", detail={},
                       new=True)
    with pytest.raises(FileExistsError):
        records.put_camera("cab9", settings, actor="bob", action="camera.add", detail={},
                           new=True)
    assert records.cameras() == {"cab9": settings} and records.camera("cab9") == settings
    records.remove_camera("cab9", actor="alice")
    assert records.cameras() == {} and records.camera("cab9") is None
    assert set(records.cameras(removed=True)) == {"cab9"}
    # Added again: registered once more, with the new settings.
    records.put_camera("cab9", {**settings, "mode": "classroom"}, actor="alice",
                       action="camera.add", detail={}, new=True)
    assert records.cameras()["cab9"]["mode"] == "classroom"
    assert [c["action"] for c in records.audit()] == ["camera.add", "camera.remove",
                                                      "camera.add"]


def test_the_migration_adds_the_records_to_an_existing_history_database(tmp_path):
    """A database made by the release before (revision 0001, with history rows) upgrades in
    place: its rows stay, the new tables come."""
    from alembic import command
    from alembic.config import Config

    old = HistoryStore(sqlite_url(tmp_path))
    with old._write() as conn:
        config = Config()
        config.set_main_option("script_location", str(MIGRATIONS))
        config.attributes["connection"] = conn
        command.upgrade(config, "0001")
    assert "accounts" not in sa.inspect(old.engine).get_table_names()
    old._ready = True  # the old release's schema, as it wrote
    old.write([bucket(T0, happy=2)])
    old.close()

    store = HistoryStore(sqlite_url(tmp_path))
    assert store.count() == 1
    assert {"accounts", "cameras", "audit_log"} <= set(sa.inspect(store.engine).get_table_names())
    with store.engine.connect() as conn:
        assert conn.execute(sa.text("SELECT version_num FROM history_version")).scalar() == "0002"
    Records(store).put_user("x", {"password": "h", "role": "admin", "created": "1"},
                            actor="t", action="user.add", detail={})
    assert set(Records(store).users()) == {"x"}
    store.close()
