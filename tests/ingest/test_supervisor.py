"""The camera supervisor follows the registry in a real Redis, with real ingest processes
that each carry several cameras."""

import os
import signal
import threading

import pytest

from moodstream import keys
from moodstream.camera_settings import CameraSettings
from moodstream.ingest.supervisor import CameraSupervisor
from moodstream.up import register_camera
from tests.conftest import wait_for


def status(r, cam):
    return (r.hget(keys.camera_status(cam), "state") or b"").decode()


def seqs(r) -> dict[str, list[int]]:
    """Each camera's seq numbers in the order its frames entered the stream."""
    out: dict[str, list[int]] = {}
    for _, fields in r.xrange(keys.FRAMES):
        out.setdefault(fields[b"camera"].decode(), []).append(int(fields[b"seq"]))
    return out


@pytest.fixture
def supervisor(redis_server):
    """A supervisor running in a thread (as in `moodstream up`), at most `per_process`
    cameras in a process; stopped after the test."""
    started = []

    def start(per_process: int = 8) -> CameraSupervisor:
        sup = CameraSupervisor(redis_server.client(), dict(os.environ, REDIS_URL=redis_server.url),
                               per_process)
        stop = threading.Event()
        thread = threading.Thread(target=sup.run, args=(stop, 0.3), daemon=True)
        thread.start()
        started.append((sup, stop, thread))
        return sup

    yield start
    for sup, stop, thread in started:
        stop.set()
        thread.join(30)
        assert not sup.processes


def test_cameras_added_and_removed_without_a_restart(r, supervisor, media):
    sup = supervisor()
    register_camera(r, "room1", str(media / "fer_justin.jpg"), "classroom", 2)
    wait_for(lambda: status(r, "room1") == "connected", timeout=30, what="room1 ingest")
    child = sup.process_of("room1").child
    assert child.running
    r.delete(keys.camera("room1"))
    r.srem(keys.CAMERAS, "room1")
    r.publish(keys.CAMERAS_CHANGED, "room1")
    wait_for(lambda: sup.process_of("room1") is None, timeout=30, what="camera removed")
    # Its process had no other camera: it stops too.
    wait_for(lambda: not child.running, timeout=30, what="the empty ingest process stopped")
    assert not sup.processes


def test_several_cameras_share_a_process_with_their_own_seq_and_status(r, supervisor, media):
    sup = supervisor()
    sources = {"jpeg": media / "fer_justin.jpg", "photo": media / "mtcnn_ivan.jpg",
               "video": media / "fer_woman2.mp4"}
    for cam, path in sources.items():
        register_camera(r, cam, str(path), "classroom", 5)
    wait_for(lambda: all(len(seqs(r).get(cam, [])) >= 6 for cam in sources), timeout=60,
             what="frames from the three cameras")
    assert len(sup.processes) == 1 and len({sup.process_of(c) for c in sources}) == 1
    for cam, numbers in seqs(r).items():
        assert numbers == list(range(len(numbers))), f"{cam}: its own seq from 0, no gaps"
    for cam in sources:
        fields = {k.decode(): v.decode() for k, v in r.hgetall(keys.camera_status(cam)).items()}
        assert fields["state"] == "connected" and int(fields["frames"]) >= 1, fields
        assert 0 < float(fields["fps"]) < 8, fields


def test_cameras_per_process_caps_each_process(r, supervisor, media):
    sup = supervisor(per_process=2)
    for cam in ("a", "b", "c"):
        register_camera(r, cam, str(media / "fer_justin.jpg"), "classroom", 2)
    wait_for(lambda: all(status(r, c) == "connected" for c in "abc"), timeout=60,
             what="three cameras")
    assert len(sup.processes) == 2
    assert sorted(len(p.cameras) for p in sup.processes) == [1, 2]
    pids = {p.child.proc.pid for p in sup.processes}
    assert len(pids) == 2


def test_a_failing_camera_leaves_the_others_in_its_process_publishing(r, supervisor, media):
    sup = supervisor()
    register_camera(r, "gone", "rtsp://127.0.0.1:9/none", "classroom", 5)
    register_camera(r, "ok", str(media / "fer_justin.jpg"), "classroom", 5)
    wait_for(lambda: status(r, "gone") == "retrying", timeout=30, what="the bad camera retrying")
    assert sup.process_of("gone") is sup.process_of("ok")
    before = len(seqs(r).get("ok", []))
    wait_for(lambda: len(seqs(r).get("ok", [])) >= before + 10, timeout=30,
             what="the good camera publishing on")
    assert status(r, "ok") == "connected"
    assert b"cannot open" in r.hget(keys.camera_status("gone"), "reason")


def test_a_killed_ingest_process_is_restarted_and_its_cameras_come_back(r, supervisor, media):
    sup = supervisor()
    for cam in ("k1", "k2"):
        register_camera(r, cam, str(media / "fer_justin.jpg"), "classroom", 5)
    wait_for(lambda: all(status(r, c) == "connected" for c in ("k1", "k2")), timeout=30,
             what="two cameras")
    proc = sup.process_of("k1")
    old_pid = proc.child.proc.pid
    os.kill(old_pid, signal.SIGKILL)
    wait_for(lambda: proc.child.restarts == 1, timeout=30, what="the crash seen")
    r.delete(keys.FRAMES)
    wait_for(lambda: all(len(seqs(r).get(c, [])) >= 3 for c in ("k1", "k2")), timeout=60,
             what="both cameras publishing again")
    assert proc.child.proc.pid != old_pid
    assert all(status(r, c) == "connected" for c in ("k1", "k2"))


def test_a_registry_change_restarts_only_the_changed_camera(r, supervisor, media):
    sup = supervisor()
    register_camera(r, "same", str(media / "fer_justin.jpg"), "classroom", 5)
    register_camera(r, "edit", str(media / "fer_justin.jpg"), "classroom", 5)
    wait_for(lambda: all(len(seqs(r).get(c, [])) >= 5 for c in ("same", "edit")), timeout=30,
             what="two cameras")
    pid = sup.process_of("edit").child.proc.pid
    camera = CameraSettings.load(r, "edit")
    camera.source = str(media / "mtcnn_ivan.jpg")
    camera.save(r, "edit")
    # The changed camera starts again (seq from 0); the other never stops (no gap, no reset).
    wait_for(lambda: seqs(r)["edit"].count(0) == 2 and seqs(r)["edit"][-1] >= 3, timeout=30,
             what="the changed camera restarted")
    wait_for(lambda: len(seqs(r)["same"]) >= 30, timeout=30, what="the other one going on")
    same = seqs(r)["same"]  # one read: the camera goes on publishing meanwhile
    assert same == list(range(len(same)))
    assert sup.process_of("edit").child.proc.pid == pid, "the process was not restarted"
    assert "mtcnn_ivan" in r.hget(keys.camera_status("edit"), "reason").decode()


def test_a_process_that_keeps_crashing_is_split_so_a_bad_camera_ends_up_alone(r, supervisor,
                                                                              media):
    sup = supervisor()
    cams = ("s1", "s2", "s3", "s4")
    for cam in cams:
        register_camera(r, cam, str(media / "fer_justin.jpg"), "classroom", 5)
    wait_for(lambda: all(status(r, c) == "connected" for c in cams), timeout=30,
             what="four cameras")
    proc = sup.process_of("s1")
    os.kill(proc.child.proc.pid, signal.SIGKILL)
    wait_for(lambda: proc.child.restarts == 1 and proc.child.running, timeout=30,
             what="the first crash and its restart")
    assert len(sup.processes) == 1, "one crash: restarted as it was"
    os.kill(proc.child.proc.pid, signal.SIGKILL)  # again, before it ran a quiet 30 s
    wait_for(lambda: len(sup.processes) == 2, timeout=30, what="the process split in two")
    assert sorted(len(p.cameras) for p in sup.processes) == [2, 2]
    r.delete(keys.FRAMES)
    wait_for(lambda: all(len(seqs(r).get(c, [])) >= 3 for c in cams), timeout=60,
             what="all four cameras publishing again")
