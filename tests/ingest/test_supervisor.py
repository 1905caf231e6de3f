"""The camera supervisor follows the registry in a real Redis, with real ingest processes."""

import os
import threading

from moodstream import keys
from moodstream.ingest.supervisor import CameraSupervisor
from moodstream.supervisor import register_camera
from tests.conftest import wait_for


def status(r, cam):
    return (r.hget(keys.camera_status(cam), "state") or b"").decode()


def test_cameras_added_and_removed_without_a_restart(r, redis_server, media):
    env = dict(os.environ, REDIS_URL=redis_server.url)
    supervisor = CameraSupervisor(redis_server.client(), env)
    stop = threading.Event()
    thread = threading.Thread(target=supervisor.run, args=(stop, 0.5), daemon=True)
    thread.start()
    try:
        register_camera(r, "room1", str(media / "fer_justin.jpg"), "classroom", 2)
        wait_for(lambda: status(r, "room1") == "connected", timeout=30, what="room1 ingest")
        child = supervisor.children["room1"][1]
        assert child.running
        r.delete(keys.camera("room1"))
        r.srem(keys.CAMERAS, "room1")
        r.publish("ms:cameras:changed", "room1")
        wait_for(lambda: "room1" not in supervisor.children, timeout=30, what="ingest stopped")
        assert child.proc is None or child.proc.poll() is not None
    finally:
        stop.set()
        thread.join(30)
    assert not supervisor.children


def test_a_crashed_ingest_is_restarted(r, redis_server, media):
    env = dict(os.environ, REDIS_URL=redis_server.url)
    supervisor = CameraSupervisor(redis_server.client(), env)
    register_camera(r, "cam", str(media / "fer_justin.jpg"), "classroom", 2)
    try:
        supervisor.sync()
        child = supervisor.children["cam"][1]
        wait_for(lambda: status(r, "cam") == "connected", timeout=30, what="ingest up")
        child.proc.kill()
        child.proc.wait()
        child.next_start = 0
        wait_for(lambda: (supervisor.sync() or True) and child.restarts == 1 and child.running,
                 timeout=30, what="a restart")
    finally:
        supervisor.stop()
