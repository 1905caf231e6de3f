"""The edge node's Redis ACL user (docs/security.md) against a real redis-server: it may add
labels entries and write its own camera's status, and nothing else; a real uplink works with
it."""

from __future__ import annotations

import re
import threading
from pathlib import Path

import pytest
import redis

from moodstream import keys
from moodstream.config import EdgeSettings
from moodstream.edge.spill import SpillFile
from moodstream.edge.uplink import Uplink, connect_upstream
from tests.conftest import REPO, label_set, wait_for

CAMERA = "bus-12"
PASSWORD = "edge-password-0123456789"


def acl_rules(camera: str = CAMERA, password: str = PASSWORD) -> list[str]:
    """The rules of docs/security.md's ACL SETUSER line for bus-12, for `camera`."""
    text = (REPO / "docs" / "security.md").read_text()
    line = re.search(r"^\s*(ACL SETUSER edge-bus-12 .*)$", text, re.M)
    assert line, "docs/security.md gives the edge ACL line"
    words = line.group(1).replace("bus-12", camera).split()[3:]
    return [w if w != ">EDGE_PASSWORD" else f">{password}" for w in words]


def edge_user(r, camera: str, password: str = PASSWORD) -> str:
    """Creates the edge ACL user of `camera` (again); returns its name."""
    name = f"edge-{camera}"
    r.acl_deluser(name)
    r.execute_command("ACL", "SETUSER", name, *acl_rules(camera, password))
    return name


@pytest.fixture
def edge_client(r, redis_server):
    name = edge_user(r, CAMERA)
    url = f"redis://{name}:{PASSWORD}@127.0.0.1:{redis_server.port}/0"
    yield url, connect_upstream(url, 2.0)
    r.acl_deluser(name)


def test_the_edge_user_adds_labels_and_writes_its_own_status_only(r, edge_client, tmp_path):
    url, client = edge_client
    uplink = Uplink(client, CAMERA, EdgeSettings(status_every_s=0.1), SpillFile(
        Path(tmp_path) / "bus.labels", 1 << 20), 20000, status={"name": "Bus 12"})
    stop = threading.Event()
    sender = threading.Thread(target=uplink.run, args=(stop,), daemon=True)
    sender.start()
    try:
        entry = label_set(CAMERA, 0, 1_780_000_000.0,
                          [((1, 2, 30, 30), [0.1, 0.1, 0.1, 0.1, 0.1, 0.1, 0.4])])
        uplink.put(entry.encode())
        wait_for(lambda: uplink.sent == 1, timeout=10, what="the labels entry sent")
        wait_for(lambda: r.hget(keys.camera_status(CAMERA), "kind") == b"edge", timeout=10,
                 what="the status")
    finally:
        stop.set()
        sender.join(5)
    assert uplink.dropped == 0
    refused = [
        lambda: client.xrange(keys.LABELS, count=1),  # reading others' labels
        lambda: client.xadd(keys.FRAMES, {"jpeg": b"x"}),
        lambda: client.hset(keys.camera_status("bus-13"), "state", "connected"),
        lambda: client.hset(keys.camera(CAMERA), "source", "file:///etc/passwd"),
        lambda: client.sadd(keys.CAMERAS, "bus-13"),
        lambda: client.get(keys.mood(CAMERA)),
        lambda: client.hgetall(keys.user("admin")),
        lambda: client.keys("*"),
        lambda: client.delete(keys.LABELS),
        lambda: client.xtrim(keys.LABELS, maxlen=0),
        lambda: client.publish(keys.CAMERAS_CHANGED, CAMERA),
        lambda: client.eval("return redis.call('GET', KEYS[1])", 1, keys.mood(CAMERA)),
        lambda: client.config_get("*"),
    ]
    for call in refused:
        with pytest.raises(redis.exceptions.NoPermissionError):
            call()
