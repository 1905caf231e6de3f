"""Two aggregators share the cameras, one is killed: its cameras move to the survivor with
nothing counted twice or lost, and a valence shift that spans the takeover is still found."""

from __future__ import annotations

import signal
import threading
import time

import pytest

from moodstream import keys
from moodstream.camera_settings import CameraSettings
from moodstream.contract import CLASSES, LivePoint, Snapshot
from tests.conftest import label_set, wait_for

pytestmark = pytest.mark.slow
CAMERAS = ["cam-a", "cam-b", "cam-c", "cam-d"]
FAST = {"MOODSTREAM_AGGREGATOR_LEASE_S": "3", "MOODSTREAM_CLAIM_IDLE_MS": "2000"}


def probs(expression: str) -> list[float]:
    return [0.94 if c == expression else 0.01 for c in CLASSES]


class Publisher(threading.Thread):
    """Labels as a classifier writes them: one face per frame, 4 frames/s per camera."""

    def __init__(self, r):
        super().__init__(daemon=True)
        self.r, self.stop = r, threading.Event()
        self.expression = dict.fromkeys(CAMERAS, "sad")
        self.sent = dict.fromkeys(CAMERAS, 0)
        self.seq = 0

    def run(self):
        while not self.stop.wait(0.25):
            pipe = self.r.pipeline(transaction=True)
            for cam in CAMERAS:
                label = label_set(cam, self.seq, time.time(),
                                  [((10, 10, 80, 80), probs(self.expression[cam]))])
                pipe.xadd(keys.LABELS, label.encode())
                self.sent[cam] += 1
            pipe.hincrby(keys.STATS, "labels:in", len(CAMERAS))
            pipe.execute()
            self.seq += 1


def owners(r) -> dict[str, str | None]:
    return {cam: (v.decode() if v else None)
            for cam, v in zip(CAMERAS, r.mget([keys.lease(c) for c in CAMERAS]), strict=True)}


def test_a_killed_aggregators_cameras_move_without_double_counting(r, services):
    for cam in CAMERAS:
        r.sadd(keys.CAMERAS, cam)
        CameraSettings(name=cam).save(r, cam)
    first = services.start("aggregator", env=FAST)
    services.start("aggregator", env=FAST)
    publisher = Publisher(r)
    publisher.start()
    try:
        # Both hold a share.
        shared = wait_for(lambda: (o := owners(r)) and None not in o.values()
                          and len(set(o.values())) == 2 and o, timeout=60,
                          what="two aggregators sharing the cameras")
        victim_pid_owner = next(o for o in shared.values() if f"-{first.pid}-" in o)
        moved = [cam for cam, o in shared.items() if o == victim_pid_owner]
        time.sleep(14)  # a history of "sad" long enough for shift detection (10 s + 3 points)
        first.send_signal(signal.SIGKILL)
        first.wait()
        killed_at = time.time()
        for cam in moved:  # the mood turns right when the owner dies
            publisher.expression[cam] = "happy"
        wait_for(lambda: all(o and o != victim_pid_owner for o in owners(r).values()),
                 timeout=30, what="the survivor owning every camera")
        # The shift spans the takeover: the "before" part was seen by the dead aggregator.
        def shifted():
            for cam in moved:
                points = [LivePoint.decode(f) for _, f in r.xrange(keys.live_points(cam))]
                if not any(p.shift and p.ts > killed_at for p in points):
                    return False
            return True

        wait_for(shifted, timeout=30, what="a valence shift on the cameras that moved")
        # Soon after the lease lapsed (3 s): the new owner rebuilt the valence history. From
        # its own points alone it would need 20 s more (10 s of "before" + 10 s of "after").
        assert time.time() - killed_at < 12
    finally:
        publisher.stop.set()
        publisher.join()
    # Every label counted exactly once: the 5-minute window holds all of them.
    last = {}

    def check():
        nonlocal last
        last = {cam: sum(Snapshot.from_json(r.get(keys.mood(cam))).windows["5m"].counts
                         .values()) for cam in CAMERAS}
        return last == publisher.sent

    try:
        wait_for(check, timeout=30, what="every label counted once")
    except AssertionError:
        raise AssertionError(f"counted {last}, sent {publisher.sent}") from None
    for cam in moved:  # the second half is happy, and it is counted once too
        counts = Snapshot.from_json(r.get(keys.mood(cam))).windows["5m"].counts
        assert counts["sad"] + counts["happy"] == publisher.sent[cam] and counts["happy"] > 0
