import numpy as np
import pytest

from moodstream.contract import (
    CLASSES,
    AlertEvent,
    Face,
    Frame,
    HistoryPoint,
    Label,
    MalformedEntry,
    Snapshot,
)


def as_redis(fields: dict) -> dict:
    """What comes back from Redis: bytes keys and values."""
    return {k.encode(): v if isinstance(v, bytes) else str(v).encode() for k, v in fields.items()}


def test_frame_round_trip():
    frame = Frame("cam-1", 7, 1700000000.25, b"\xff\xd8jpeg")
    assert Frame.decode(as_redis(frame.encode())) == frame


def test_face_round_trip_with_crop_and_marker():
    crop = np.arange(64 * 48, dtype=np.uint16).astype(np.uint8).reshape(64, 48)
    face = Face("c", 1, 2.5, 0, 1, (1, 2, 3, 4), 0.99, crop)
    back = Face.decode(as_redis(face.encode()))
    assert back.box == (1, 2, 3, 4) and np.array_equal(back.crop, crop)
    marker = Face.decode(as_redis(Face("c", 2, 3.0, -1, 0).encode()))
    assert marker.index == -1 and marker.crop is None


def test_label_round_trip_names_the_argmax():
    probs = [0.1, 0, 0, 0.7, 0.1, 0.05, 0.05]
    back = Label.decode(as_redis(Label("c", 1, 1.0, 0, 1, (0, 0, 9, 9), probs).encode()))
    assert back.label == "happy" and back.probs == pytest.approx(probs)
    nobody = Label("c", 2, 1.0, -1, 0).encode()  # a frame without faces: no probabilities
    assert "probs" not in nobody and "label" not in nobody
    assert Label.decode(as_redis(nobody)).label is None


@pytest.mark.parametrize("change, reason", [
    ({"v": "9"}, "version"),
    ({"camera": "../etc"}, "camera"),
    ({"seq": "seven"}, "number"),
    ({"jpeg": b""}, "empty"),
])
def test_malformed_frames_say_why(change, reason):
    fields = as_redis(Frame("cam", 1, 1.0, b"x").encode())
    fields.update(as_redis(change))
    with pytest.raises(MalformedEntry, match=reason):
        Frame.decode(fields)


def test_missing_field_and_wrong_crop_size():
    with pytest.raises(MalformedEntry, match="missing"):
        Frame.decode({b"v": b"1"})
    fields = as_redis(Face("c", 1, 1.0, 0, 1, (0, 0, 1, 1), 1.0, np.zeros((4, 4), np.uint8))
                      .encode())
    fields[b"crop"] = b"short"
    with pytest.raises(MalformedEntry, match="crop"):
        Face.decode(fields)


def test_label_probs_must_be_seven_numbers():
    fields = as_redis(Label("c", 1, 1.0, 0, 1, (0, 0, 1, 1), [1 / 7] * 7).encode())
    fields[b"probs"] = b"[1, 2]"
    with pytest.raises(MalformedEntry, match="7"):
        Label.decode(fields)


def test_snapshot_round_trip_and_junk():
    snap = Snapshot("cam", 12.5, "driver", "Cab", 1, {"happy": 2}, "happy", 1.0, {},
                    "happy", [{"kind": "absent", "since": 3.0, "message": "m"}])
    assert Snapshot.from_json(snap.to_json()) == snap
    assert Snapshot.from_json(None) is None and Snapshot.from_json("{oops") is None
    assert Snapshot.from_json('{"camera": "c"}') is None  # no time: not a snapshot


def test_history_point_round_trip_and_neutral_fallbacks():
    point = HistoryPoint(100.25, 2.0, -0.5, "sad", dict.fromkeys(CLASSES, 1),
                         {"from": 0.4, "to": -0.5}, frames=9)
    assert HistoryPoint.decode(as_redis(point.encode())) == point
    junk = HistoryPoint.decode({b"ts": b"7", b"counts": b"[", b"shift": b"3", b"faces": b"x"})
    assert junk == HistoryPoint(7.0, 0.0, 0.0, None, dict.fromkeys(CLASSES, 0), None, 0)
    assert HistoryPoint.decode({b"faces": b"1"}) is None


def test_alert_event_takes_its_time_from_the_entry_id_when_needed():
    event = AlertEvent(5.5, "absent", "no face for 3s", "raised")
    assert AlertEvent.decode(as_redis(event.encode())) == event
    assert AlertEvent.decode({b"kind": b"negative"}, b"1700000000123-0").ts == 1700000000.123
