import numpy as np

from moodstream.analysis import mood
from moodstream.contract import CLASSES, LabelSet
from moodstream.expressions import dominant, valence


def probs_for(name: str, p: float = 0.9) -> list[float]:
    out = [(1 - p) / 6] * 7
    out[CLASSES.index(name)] = p
    return out


def test_valence_and_dominant():
    counts = {"happy": 3, "sad": 1}
    assert valence(counts) == 0.5
    assert dominant(counts) == "happy"
    assert dominant({}) is None and valence({}) == 0.0


def seconds_of(rows: dict[int, list[list[str]]]) -> mood.SecondCounts:
    """SecondCounts from {second: [expressions of each frame's faces, ...]}."""
    counts = mood.SecondCounts()
    for second, frames in rows.items():
        for names in frames:
            counts.add(second + 0.5, np.array([probs_for(n) for n in names]).reshape(-1, 7))
    return counts


def test_windows_only_count_their_seconds():
    now = 1000.0
    buckets = seconds_of({999: [["happy", "neutral"], ["happy", "neutral"]], 900: [["sad"] * 5]})
    w10 = mood.window_stats(buckets, now, 10)
    assert w10.counts["happy"] == 2 and w10.counts["sad"] == 0 and w10.faces == 2.0
    assert w10.frames == 2
    assert mood.window_stats(buckets, now, 300).counts["sad"] == 5


def test_second_counts_forget_what_the_ring_no_longer_holds():
    counts = seconds_of({100: [["happy"]]})
    counts.add(100 + mood.KEEP_S + 0.2, np.array([probs_for("sad")]))  # the same row, later
    assert mood.window_stats(counts, 100 + mood.KEEP_S, 10).counts["sad"] == 1
    assert counts.total(100, 101)[:7].sum() == 0, "the old second was overwritten, not added"
    counts.add(100.5, np.array([probs_for("angry")]))  # older than the ring: ignored
    assert counts.total(0, 1 << 40)[CLASSES.index("angry")] == 0


def driver_frames(start: float, seconds: float, name: str | None, fps: float = 5):
    labels = []
    for i in range(int(seconds * fps)):
        ts = start + i / fps
        if name is None:
            labels.append(LabelSet("cab", i, ts))
        else:
            labels.append(LabelSet("cab", i, ts, np.array([[0, 0, 50, 50]], np.int32),
                                   np.array([1]), np.array([probs_for(name)], np.float32),
                                   np.array([True])))
    return labels


def test_sustained_anger_raises_a_negative_alert_and_happiness_does_not():
    t = mood.Thresholds(negative_threshold=0.5, negative_seconds=3, absent_seconds=3)
    angry = mood.Recent(driver_frames(100, 5, "angry"))
    assert "negative" in mood.driver_alerts(angry, 105, t, 100)
    happy = mood.Recent(driver_frames(100, 5, "happy"))
    assert mood.driver_alerts(happy, 105, t, 100) == {}


def test_negative_alert_at_a_low_frame_rate_and_short_window():
    # 2 fps over a 2 s window: 4 frames, 1.5 s from first to last, yet they cover the window.
    t = mood.Thresholds(negative_threshold=0.5, negative_seconds=2, absent_seconds=60)
    sad = mood.Recent(driver_frames(100.1, 5, "sad", fps=2))
    assert "negative" in mood.driver_alerts(sad, 104.95, t, 100)
    # One frame is no evidence that anything was sustained.
    assert mood.driver_alerts(mood.Recent(driver_frames(104.5, 0.5, "sad", fps=2)), 104.95, t,
                              100) == {}


def test_driver_out_of_view_alert_after_n_seconds_only():
    t = mood.Thresholds(absent_seconds=3)
    labels = driver_frames(100, 2, "neutral") + driver_frames(102, 4, None)
    recent = mood.Recent(labels)
    assert "absent" not in mood.driver_alerts(recent, 104, t, 100)
    assert "absent" in mood.driver_alerts(recent, 105.9, t, 100)


def test_smoothing_ignores_a_single_odd_frame():
    labels = driver_frames(100, 2, "happy")
    labels[5].probs = np.array([probs_for("angry", 0.99)], np.float32)
    assert mood.smoothed_expression(mood.Recent(labels), 102) == "happy"


def test_valence_shift_is_noticed():
    history = [(t, -0.5) for t in np.arange(0, 60, 1.0)] + [(t, 0.5) for t in range(60, 70)]
    shift = mood.valence_shift(history, 69.5)
    assert shift and shift.after > shift.before
    assert mood.valence_shift([(t, 0.1) for t in range(70)], 69.5) is None


def test_the_main_face_is_the_biggest_one():
    frame = LabelSet("cab", 1, 10.0, np.array([[0, 0, 20, 20], [50, 0, 90, 90]], np.int32),
                     np.array([1, 2]), np.array([probs_for("happy"), probs_for("fear")],
                                                np.float32), np.array([True, True]))
    ((ts, probs),) = mood.Recent([frame]).main_face_probs(0)
    assert ts == 10.0 and CLASSES[int(np.argmax(probs))] == "fear"


def test_history_bucket_sums_its_ten_seconds_only():
    seconds = seconds_of({
        99: [["happy", "happy"]] * 5,  # the bucket before
        100: [["happy", "happy"]] * 3 + [["sad", "sad"], ["neutral", "neutral"]],
        109: [["neutral"]] * 5,
        110: [[]] * 5})  # the bucket after
    row = mood.history_bucket("cam1", 100, seconds, faces_seen=[])
    assert row.counts["happy"] == 6 and row.counts["neutral"] == 7
    assert row.frames == 10 and row.faces == 1.5  # faces per frame
    assert row.valence == round(4 / 15, 3) and row.dominant == "neutral"
    assert set(row.to_dict()) == {"camera", "ts", "frames", "faces", "counts", "valence",
                                  "dominant"}
    # The snapshots' faces present (tracked people) win over the per-frame detections.
    assert mood.history_bucket("cam1", 100, seconds, faces_seen=[3, 4]).faces == 3.5


def test_history_bucket_without_frames_is_no_data_not_an_empty_room():
    assert mood.history_bucket("cam1", 100, seconds_of({95: [[]] * 5}), faces_seen=[2]) is None
    empty = mood.history_bucket("cam1", 100, seconds_of({101: [[]] * 5}), [])
    assert empty.faces == 0.0 and empty.dominant is None and empty.valence == 0.0
