import json

import numpy as np
import pytest

from moodstream.contract import (
    CLASSES,
    ActiveAlert,
    AlertEvent,
    FaceSet,
    Frame,
    LabelSet,
    LivePoint,
    MalformedEntry,
    Person,
    Snapshot,
    ValenceShift,
    Window,
)


def as_redis(fields: dict) -> dict:
    """What comes back from Redis: bytes keys and values."""
    return {k.encode(): v if isinstance(v, bytes) else str(v).encode() for k, v in fields.items()}


def test_frame_round_trip():
    frame = Frame("cam-1", 7, 1700000000.25, b"\xff\xd8jpeg")
    assert Frame.decode(as_redis(frame.encode())) == frame


def faces_of_a_frame(n: int = 3) -> FaceSet:
    crops = np.arange(n * 64 * 48, dtype=np.uint32).astype(np.uint8).reshape(n, 64, 48)
    return FaceSet("c", 1, 2.5, np.arange(n * 4, dtype=np.int32).reshape(n, 4),
                   np.linspace(0.9, 1.0, n).astype(np.float32),
                   np.array([1700000000123 * 256 + i for i in range(n)]), crops)


def test_face_set_round_trip_carries_every_face_of_the_frame_in_one_entry():
    faces = faces_of_a_frame()
    back = FaceSet.decode(as_redis(faces.encode()))
    assert back.count == 3 and back.camera == "c" and back.seq == 1 and back.ts == 2.5
    assert np.array_equal(back.boxes, faces.boxes) and np.array_equal(back.crops, faces.crops)
    assert np.array_equal(back.tracks, faces.tracks)  # 50-bit ids survive the text form
    assert back.scores == pytest.approx(faces.scores, abs=1e-4)
    nobody = FaceSet.decode(as_redis(FaceSet("c", 2, 3.0).encode()))
    assert nobody.count == 0 and nobody.crops.shape[0] == 0


def test_label_set_round_trip_names_the_argmax_and_marks_reused_faces():
    probs = np.array([[0.1, 0, 0, 0.7, 0.1, 0.05, 0.05], [0, 0, 0, 0, 0.9, 0, 0.1]], np.float32)
    label = LabelSet("c", 1, 1.0, np.array([[0, 0, 9, 9], [9, 9, 9, 9]], np.int32),
                     np.array([5, 6]), probs, np.array([True, False]))
    back = LabelSet.decode(as_redis(label.encode()))
    assert back.labels == ["happy", "sad"] and back.probs == pytest.approx(probs, abs=1e-4)
    assert back.fresh.tolist() == [True, False] and back.tracks.tolist() == [5, 6]
    nobody = LabelSet.decode(as_redis(LabelSet("c", 2, 1.0).encode()))
    assert nobody.count == 0 and nobody.labels == []


def test_a_v1_entry_is_refused_with_a_reason_that_says_what_to_do():
    v1_face = {b"v": b"1", b"camera": b"c", b"seq": b"1", b"ts": b"1.0", b"index": b"0",
               b"count": b"1", b"box": b"0,0,9,9", b"score": b"0.99", b"h": b"2", b"w": b"2",
               b"crop": b"abcd"}
    for decode in (FaceSet.decode, LabelSet.decode, Frame.decode):
        with pytest.raises(MalformedEntry, match="v1 .*one entry per frame"):
            decode(v1_face)


@pytest.mark.parametrize("change, reason", [
    ({"count": "300"}, "outside"),
    ({"count": "-1"}, "outside"),
    ({"boxes": "1,2,3"}, "boxes"),
    ({"tracks": "1,2,x"}, "tracks"),
    ({"scores": "0.9,nan,0.9"}, "finite"),
    ({"crops": b"short"}, "crops"),
    ({"h": "4096", "w": "4096"}, "crops"),
])
def test_malformed_face_sets_say_why(change, reason):
    fields = as_redis(faces_of_a_frame().encode())
    fields.update(as_redis(change))
    with pytest.raises(MalformedEntry, match=reason):
        FaceSet.decode(fields)


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


def test_missing_field():
    with pytest.raises(MalformedEntry, match="missing"):
        Frame.decode({b"v": b"2"})


def test_label_probs_must_be_seven_numbers_per_face():
    fields = as_redis(LabelSet("c", 1, 1.0, np.zeros((1, 4), np.int32), np.array([1]),
                               np.full((1, 7), 1 / 7, np.float32), np.array([True])).encode())
    fields[b"probs"] = b"1,2"
    with pytest.raises(MalformedEntry, match="1 x 7"):
        LabelSet.decode(fields)


def test_snapshot_round_trip_and_junk():
    snap = Snapshot("cam", 12.5, "driver", "Cab", 1, {"happy": 2}, "happy", 1.0,
                    {"10s": Window(1.0, 2, {"happy": 2}, "happy", 1.0)}, "happy",
                    [ActiveAlert("absent", 3.0, "m")], ValenceShift(0.5, -0.25),
                    [Person("7", [1, 2, 30, 30], "happy", 10.0, 4)])
    back = Snapshot.from_json(snap.to_json())
    assert back == snap and isinstance(back.windows["10s"], Window)
    assert isinstance(back.alerts[0], ActiveAlert) and isinstance(back.people[0], Person)
    assert json.loads(snap.to_json())["windows"]["10s"]["counts"] == {"happy": 2}
    assert json.loads(snap.to_json())["shift"] == {"from": 0.5, "to": -0.25}  # as browsers read it
    assert Snapshot.from_json(None) is None and Snapshot.from_json("{oops") is None
    assert Snapshot.from_json('{"camera": "c"}') is None  # no time: not a snapshot


def test_history_point_round_trip_and_neutral_fallbacks():
    point = LivePoint(100.25, 2.0, -0.5, "sad", dict.fromkeys(CLASSES, 1),
                      ValenceShift(0.4, -0.5), frames=9)
    assert LivePoint.decode(as_redis(point.encode())) == point
    assert point.to_json()["shift"] == {"from": 0.4, "to": -0.5}
    nan_shift = as_redis({**point.encode(), "shift": '{"from": "nan", "to": 1}'})
    assert LivePoint.decode(nan_shift).shift is None
    junk = LivePoint.decode({b"ts": b"7", b"counts": b"[", b"shift": b"3", b"faces": b"x"})
    assert junk == LivePoint(7.0, 0.0, 0.0, None, dict.fromkeys(CLASSES, 0), None, 0)
    assert LivePoint.decode({b"faces": b"1"}) is None


def test_alert_event_takes_its_time_from_the_entry_id_when_needed():
    event = AlertEvent(5.5, "absent", "no face for 3s", "raised")
    assert AlertEvent.decode(as_redis(event.encode())) == event
    assert AlertEvent.decode({b"kind": b"negative"}, b"1700000000123-0").ts == 1700000000.123
