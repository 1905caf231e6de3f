import numpy as np
import pytest

from moodstream.contract import CLASSES, Face, Frame, Label, MalformedEntry


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
    assert len(CLASSES) == 7


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
