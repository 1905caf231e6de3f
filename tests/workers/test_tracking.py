from moodstream.contract import CLASSES
from moodstream.workers.tracking import build_tracks, iou, people_present


def label(seq, index, box, name="happy", ts=None):
    probs = [0.01] * 7
    probs[CLASSES.index(name)] = 0.94
    return {"ts": ts if ts is not None else seq * 0.2, "seq": seq, "index": index,
            "count": 2, "box": box, "probs": probs}


def test_iou():
    assert iou((0, 0, 10, 10), (0, 0, 10, 10)) == 1.0
    assert iou((0, 0, 10, 10), (20, 20, 5, 5)) == 0.0


def test_two_people_moving_slowly_are_two_tracks_not_twenty_detections():
    labels = []
    for seq in range(10):
        labels.append(label(seq, 0, (10 + seq, 10, 50, 50)))
        labels.append(label(seq, 1, (200 - seq, 30, 60, 60), "sad"))
    tracks = build_tracks(labels)
    assert len(tracks) == 2 and all(len(t.labels) == 10 for t in tracks)
    people = people_present(tracks, now=9 * 0.2)
    assert sorted(p["expression"] for p in people) == ["happy", "sad"]


def test_a_person_who_leaves_and_a_new_one_far_away_are_different_tracks():
    labels = [label(0, 0, (10, 10, 50, 50)), label(1, 0, (400, 300, 50, 50))]
    assert len(build_tracks(labels)) == 2
    gone = build_tracks([label(0, 0, (10, 10, 50, 50), ts=0),
                         label(1, 0, (10, 10, 50, 50), ts=10)])
    assert len(gone) == 2, "a gap longer than max_gap_s starts a new track"


def test_one_odd_frame_does_not_flip_the_persons_expression():
    labels = [label(s, 0, (10, 10, 50, 50)) for s in range(6)]
    labels[4] = label(4, 0, (10, 10, 50, 50), "angry")
    (track,) = build_tracks(labels)
    assert track.expression() == "happy"
