"""Redis connections: services that start before Redis wait for it instead of crashing."""

import threading
import time

import pytest
import redis

from moodstream.redis_client import connect, text, wait_until_reachable
from tests.conftest import RedisServer


def test_wait_until_reachable_returns_once_redis_comes_up(tmp_path, caplog):
    server = RedisServer(tmp_path)
    starter = threading.Timer(1.0, server.start)
    starter.start()
    try:
        began = time.monotonic()
        wait_until_reachable(connect(server.url), "test service", timeout=30)
        assert time.monotonic() - began >= 0.9
        assert connect(server.url).ping()
        # One line when it goes away, one when it is back; not one per retry.
        lost = [m for m in caplog.messages if "lost Redis" in m]
        assert len(lost) == 1 and any("Redis is back" in m for m in caplog.messages)
    finally:
        starter.join()
        server.stop()


def test_wait_until_reachable_gives_up_after_its_timeout(tmp_path):
    nobody = RedisServer(tmp_path)  # a free port with no server behind it
    began = time.monotonic()
    with pytest.raises(redis.ConnectionError):
        wait_until_reachable(connect(nobody.url), "test service", timeout=1.0)
    assert time.monotonic() - began < 10


def test_text_reads_bytes_and_str_replies():
    assert text(b"connected") == "connected" and text("ended") == "ended" and text(3) == "3"
