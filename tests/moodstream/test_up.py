"""`moodstream up`'s own parts: the embedded Redis kept alive, and the first camera
registered in the system of record without undoing an admin's edits."""

from __future__ import annotations

import pytest
import redis

from moodstream.camera_settings import CameraSettings
from moodstream.dashboard import cameras
from moodstream.history import HistoryStore, sqlite_url
from moodstream.history.records import Records
from moodstream.redis_fill import fill_redis
from moodstream.up import RedisKeeper, register_camera
from tests.conftest import RedisServer


def test_a_killed_embedded_redis_comes_back_on_its_port_with_its_password(tmp_path):
    server = RedisServer(tmp_path)
    server.start()
    keeper = RedisKeeper(server)
    try:
        port, url = server.port, server.url
        keeper.check()
        assert keeper.restarts == 0
        server.proc.kill()
        server.proc.wait(10)
        keeper.check()
        assert keeper.restarts == 1 and server.running
        assert (server.port, server.url) == (port, url)
        client = redis.Redis.from_url(url)
        assert client.ping()
        with pytest.raises(redis.RedisError):  # still only with its password
            redis.Redis(port=port).ping()
    finally:
        server.stop()


def test_up_registers_its_camera_once_and_later_edits_survive(r, tmp_path):
    store = HistoryStore(sqlite_url(tmp_path))
    records = Records(store)
    register_camera(r, "demo", "demo", "classroom", 5.0, records)
    cameras.update(r, "demo", {"mode": "driver", "negative_threshold": "0.3"},
                   records=records, actor="alice")
    r.flushall()  # a restart of `up`: a new embedded Redis, the same database
    register_camera(r, "demo", "demo", "classroom", 5.0, records)
    stored = records.camera("demo")
    assert (stored["mode"], stored["negative_threshold"]) == ("driver", "0.3")
    assert [c["action"] for c in records.audit()] == ["camera.update", "camera.add"]
    # `up` fills Redis from the database before it registers its camera.
    assert CameraSettings.load(r, "demo") is None
    fill_redis(r, records)
    assert CameraSettings.load(r, "demo").mode == "driver"
    store.close()


def test_up_with_a_database_it_cannot_use_says_so_and_exits(monkeypatch, capsys):
    from moodstream.cli import main

    for name in ("REDIS_URL", "MOODSTREAM_REDIS_URL"):
        monkeypatch.delenv(name, raising=False)
    # Nothing listens on port 9 of this machine: the connection is refused at once.
    monkeypatch.setenv("MOODSTREAM_HISTORY_URL", "postgresql://nobody@127.0.0.1:9/x")
    assert main(["up", "--no-source"]) == 2
    err = capsys.readouterr().err
    assert "moodstream up: the database at postgresql://nobody@127.0.0.1:9/x cannot be used" \
        in err and "Traceback" not in err
