import numpy as np

from moodstream.analysis.tracking import people_present
from moodstream.contract import CLASSES, LabelSet
from moodstream.detection.detectors.base import iou


def probs(name: str) -> list[float]:
    out = [0.01] * 7
    out[CLASSES.index(name)] = 0.94
    return out


def frame(seq: int, faces: list[tuple[int, tuple, str]], ts: float | None = None) -> LabelSet:
    """faces: (track id, box, expression)."""
    return LabelSet("cam", seq, seq * 0.2 if ts is None else ts,
                    np.array([f[1] for f in faces], np.int32).reshape(-1, 4),
                    np.array([f[0] for f in faces], np.int64),
                    np.array([probs(f[2]) for f in faces], np.float32).reshape(-1, 7),
                    np.ones(len(faces), bool))


def test_iou():
    assert iou((0, 0, 10, 10), (0, 0, 10, 10)) == 1.0
    assert iou((0, 0, 10, 10), (20, 20, 5, 5)) == 0.0


def test_two_tracked_people_are_two_people_not_twenty_detections():
    frames = [frame(s, [(7, (10 + s, 10, 50, 50), "happy"), (9, (200 - s, 30, 60, 60), "sad")])
              for s in range(10)]
    people = people_present(frames, now=9 * 0.2)
    assert sorted(p.expression for p in people) == ["happy", "sad"]
    seven = next(p for p in people if p.id == "7")
    assert seven.seen == 10 and seven.since == 0.0 and seven.box == [19, 10, 50, 50]


def test_a_person_missed_for_a_frame_still_counts_and_one_gone_does_not():
    frames = [frame(0, [(1, (0, 0, 9, 9), "happy"), (2, (50, 0, 9, 9), "sad")]),
              frame(1, [(1, (0, 0, 9, 9), "happy")]),
              frame(20, [(1, (0, 0, 9, 9), "happy")])]
    assert [p.id for p in people_present(frames, now=0.2)] == ["1", "2"]
    assert [p.id for p in people_present(frames, now=4.0)] == ["1"]


def test_one_odd_frame_does_not_flip_the_persons_expression():
    frames = [frame(s, [(3, (10, 10, 50, 50), "angry" if s == 4 else "happy")])
              for s in range(6)]
    (person,) = people_present(frames, now=1.0)
    assert person.expression == "happy"


def test_the_expression_follows_the_last_frames_only():
    frames = [frame(s, [(3, (10, 10, 50, 50), "sad" if s < 10 else "happy")])
              for s in range(16)]
    assert people_present(frames, now=3.0, smooth=5)[0].expression == "happy"


def test_no_frames_no_people():
    assert people_present([], now=1.0) == []
    assert people_present([frame(1, [])], now=1.0) == []
