"""Camera settings: the typed model (validation, Redis round trip) and the dashboard helpers."""

from __future__ import annotations

import pytest

from moodstream import keys
from moodstream.camera_settings import CameraSettings, changes_from
from moodstream.dashboard import cameras


@pytest.mark.parametrize("source,masked", [
    ("rtsp://user:secret@10.0.0.5:554/stream", "rtsp://user:***@10.0.0.5:554/stream"),
    ("http://cam.local/mjpeg?x=1", "http://cam.local/mjpeg?x=1"),
    ("/videos/class.mp4", "/videos/class.mp4"),
    ("0", "0"),
])
def test_mask_source(source, masked):
    assert cameras.mask_source(source) == masked


def test_changes_full_and_partial():
    values = changes_from({"id": "c", "source": " rtsp://h/x ", "mode": "driver", "fps": "2.50",
                           "preview": "on", "negative_threshold": 0.7}, partial=False)
    assert values == {"source": "rtsp://h/x", "mode": "driver", "fps": "2.5", "preview": "1",
                      "negative_threshold": "0.7"}
    assert changes_from({"absent_seconds": "4"}, partial=True) == {"absent_seconds": "4"}
    assert changes_from({"fps": ""}, partial=True) == {}  # an empty form field changes nothing
    assert changes_from({"min_face": "80", "scale_factor": 0.6}, partial=True) == {
        "min_face": "80", "scale_factor": "0.6"}
    assert changes_from({"min_face": ""}, partial=True) == {"min_face": ""}  # back to default
    for bad in ({"name": "x" * 81}, {"preview": "maybe"}, {"min_face": 2},
                {"scale_factor": "0.99"}, {"fps": "fast"}, {"colour": "red"}):
        with pytest.raises(cameras.CameraError):
            changes_from(bad, partial=True)
    with pytest.raises(cameras.CameraError, match="source is required"):
        changes_from({"mode": "driver"}, partial=False)  # a new camera needs a source


def test_settings_defaults_and_a_registry_holding_junk():
    out = cameras.settings("cam1", None)
    assert out["name"] == "cam1" and out["mode"] == "classroom" and out["fps"] == 5.0
    assert out["negative_threshold"] == 0.5 and out["negative_seconds"] == 5.0
    assert out["absent_seconds"] == 3.0 and out["preview"] is False
    assert out["registered"] is False and out["min_face"] is None
    odd = CameraSettings.from_hash({b"mode": b"disco", b"fps": b"fast", b"source": b"x",
                                    b"min_face": b"2", b"scale_factor": b"0.5"})
    assert (odd.mode, odd.fps, odd.source, odd.min_face, odd.scale_factor) == (
        "classroom", 5.0, "x", None, 0.5)
    assert cameras.settings("cam1", odd)["registered"] is True


def test_settings_round_trip_through_redis_and_announce(r):
    pubsub = r.pubsub(ignore_subscribe_messages=True)
    pubsub.subscribe(keys.CAMERAS_CHANGED)
    pubsub.get_message(timeout=1)
    camera = CameraSettings(name="Bus 7", source="rtsp://h/x", mode="driver", fps=2.5,
                            min_face=60, scale_factor=0.6, added=1700000000.125)
    camera.save(r, "bus-7")
    assert CameraSettings.load(r, "bus-7") == camera
    assert CameraSettings.load(r, "nobody") is None
    message = pubsub.get_message(timeout=2)
    assert message and message["data"] == b"bus-7"


@pytest.mark.parametrize("cam,ok", [("room-1", True), ("a.b_c", True), ("", False),
                                    ("x" * 65, False), ("a b", False), ("../x", False)])
def test_valid_id(cam, ok):
    assert cameras.valid_id(cam) is ok
