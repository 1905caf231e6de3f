"""Camera settings validation and helpers (no Redis needed)."""

from __future__ import annotations

import pytest

from moodstream.dashboard import cameras


@pytest.mark.parametrize("source,masked", [
    ("rtsp://user:secret@10.0.0.5:554/stream", "rtsp://user:***@10.0.0.5:554/stream"),
    ("http://cam.local/mjpeg?x=1", "http://cam.local/mjpeg?x=1"),
    ("/videos/class.mp4", "/videos/class.mp4"),
    ("0", "0"),
])
def test_mask_source(source, masked):
    assert cameras.mask_source(source) == masked


def test_clean_full_and_partial():
    values = cameras.clean({"id": "c", "source": " rtsp://h/x ", "mode": "driver", "fps": "2.50",
                            "preview": "on", "negative_threshold": 0.7}, partial=False)
    assert values == {"source": "rtsp://h/x", "mode": "driver", "fps": "2.5", "preview": "1",
                      "negative_threshold": "0.7"}
    assert cameras.clean({"absent_seconds": "4"}, partial=True) == {"absent_seconds": "4"}
    assert cameras.clean({"fps": ""}, partial=True) == {}  # an empty form field changes nothing
    with pytest.raises(cameras.CameraError):
        cameras.clean({"name": "x" * 81}, partial=True)
    with pytest.raises(cameras.CameraError):
        cameras.clean({"preview": "maybe"}, partial=True)
    with pytest.raises(cameras.CameraError):
        cameras.clean({"mode": "driver"}, partial=False)  # a new camera needs a source


def test_settings_defaults():
    out = cameras.settings("cam1", {})
    assert out["name"] == "cam1" and out["mode"] == "classroom" and out["fps"] == 5.0
    assert out["negative_threshold"] == 0.5 and out["negative_seconds"] == 5.0
    assert out["absent_seconds"] == 3.0 and out["preview"] is False
    assert out["registered"] is False
    odd = cameras.settings("cam1", {"mode": "disco", "fps": "fast", "source": "x"})
    assert odd["mode"] == "classroom" and odd["fps"] == 5.0 and odd["registered"] is True


@pytest.mark.parametrize("cam,ok", [("room-1", True), ("a.b_c", True), ("", False),
                                    ("x" * 65, False), ("a b", False), ("../x", False)])
def test_valid_id(cam, ok):
    assert cameras.valid_id(cam) is ok
