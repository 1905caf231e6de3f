"""Detection that does not redo work: the lean pyramid, motion gating and
track-guided detection, with parity against full detection on the shared media."""

from __future__ import annotations

import cv2
import numpy as np
import pytest

from moodstream import keys
from moodstream.bench.detector_gating import clip_frames, dlib_recall, swaying
from moodstream.detection.detectors.base import iou
from moodstream.detection.detectors.mtcnn_onnx import scale_pyramid, work_step
from moodstream.detection.face_crop import crop_face
from moodstream.detection.face_detector import FaceDetector
from moodstream.detection.lean_detect import (
    TRACK_GAP_S,
    DetectState,
    LeanDetector,
    LeanOptions,
    assign_tracks,
    lost_tracks,
    motion_area,
    motion_outside,
    new_track_id,
    regions,
    scan_phase,
    still,
    thumbnail,
    unmatched,
)

MIN_FACE = 40
PARITY = 0.02  # the bound: within 2% of full detection


@pytest.fixture(scope="module")
def full():
    return FaceDetector((64, 64), MIN_FACE, work_face=0)


def texture(seed=0, size=(480, 640)) -> np.ndarray:
    """A still scene with detail at every scale (smoothed noise), BGR."""
    noise = np.random.default_rng(seed).integers(0, 256, (*size, 3), np.uint8)
    return cv2.GaussianBlur(noise, (0, 0), 6) * 3 - 200


def lean_run(detector, r, frames, options, camera="cam") -> tuple[list[int], LeanDetector]:
    lean = LeanDetector(detector, r, options)
    counts = [len(lean.detect([(camera, k / 5.0, frame)], [MIN_FACE], [0.709])[0])
              for k, frame in enumerate(frames)]
    return counts, lean


def within(counts, reference) -> bool:
    return abs(sum(counts) - sum(reference)) <= PARITY * sum(reference)


# ---------------------------------------------------------------- unit: lean pyramid


def test_max_face_bounds_the_pyramid():
    every = scale_pyramid(640, 480, 40, 0.709)
    bounded = scale_pyramid(640, 480, 40, 0.709, max_face=120)
    assert bounded == every[:len(bounded)] and len(bounded) < len(every)
    # the level for faces just below max_face stays, with one more for the regression
    assert min(bounded) <= 12 / 120 and min(bounded) >= 12 / 120 * 0.709 ** 2


def test_work_step_keeps_the_smallest_face_at_least_work_face():
    assert work_step(40, 20) == 2 and work_step(40, 0) == 1 and work_step(30, 20) == 1
    assert work_step(100, 20) == 5


# ---------------------------------------------------------------- unit: motion


def test_still_frames_pass_the_gate_and_a_change_does_not():
    scene = texture()
    noisy = cv2.add(scene, np.random.default_rng(1).integers(0, 4, scene.shape, np.uint8))
    assert still(thumbnail(scene), thumbnail(noisy), 0.002)
    changed = scene.copy()
    changed[100:180, 200:280] = 255
    assert not still(thumbnail(scene), thumbnail(changed), 0.002)


def test_motion_outside_faces_ignores_sway_and_known_faces_but_sees_a_newcomer():
    scene = texture(2)
    ref = thumbnail(scene)
    nothing = np.zeros(ref.shape, bool)
    shifted = np.roll(scene, (5, -9), axis=(0, 1))  # the whole scene jitters
    assert motion_outside(ref, thumbnail(shifted), nothing) < motion_area(MIN_FACE, 0.125)
    newcomer = scene.copy()
    newcomer[200:280, 300:370] = (40, 90, 200)  # a new object of face size
    assert motion_outside(ref, thumbnail(newcomer), nothing) >= motion_area(MIN_FACE, 0.125)
    # the same change inside a known face's region is the tracker's business
    known = regions([(300, 200, 70, 80)], 0.125, 2.0, ref.shape)
    assert motion_outside(ref, thumbnail(newcomer), known) == 0


def test_camera_state_round_trip_and_garbage():
    state = DetectState(12.5, 10.0, 3, (640, 480), "40/0.709",
                        [{"box": [1, 2, 30, 40], "score": 0.99, "landmarks": None}],
                        np.arange(80 * 60, dtype=np.uint8).reshape(60, 80))
    back = DetectState.decode(state.encode())
    assert back.faces == state.faces and np.array_equal(back.thumb, state.thumb)
    assert (back.ts, back.full_ts, back.since_full, back.size) == (12.5, 10.0, 3, (640, 480))
    assert back.detected()[0].box == (1, 2, 30, 40)
    assert DetectState.decode(b"nonsense") is None and DetectState.decode(None) is None


# ---------------------------------------------------------------- the decisions, real Redis


def test_ways_full_then_gate_then_due_full(r, full):
    frame = texture(3)
    options = LeanOptions(full_every_frames=4, full_every_s=100)
    lean = LeanDetector(full, r, options)
    for k in range(9):
        lean.detect([("c", float(k), frame)], [MIN_FACE], [0.709])
    assert lean.ways["full"] == 3 and lean.ways["gate"] == 6  # full: frames 0, 4, 8
    by_time = LeanDetector(full, r, LeanOptions(full_every_frames=100, full_every_s=1.0))
    r.delete(keys.detect_state("c"))
    for ts in (0.0, 0.5, 1.0, 1.2):
        by_time.detect([("c", ts, frame)], [MIN_FACE], [0.709])
    assert by_time.ways["full"] == 2 and by_time.ways["gate"] == 2
    by_time.detect([("c", 1.4, frame)], [60], [0.709])  # the camera's settings changed
    assert by_time.ways["full"] == 3


def test_state_is_shared_by_detectors_and_never_goes_back(r, full):
    """Two detectors (two processes, two machines) take a camera's frames in turn: the
    second gates on the state the first wrote; an older frame never overwrites it."""
    frame = texture(4)
    first = LeanDetector(full, r, LeanOptions())
    second = LeanDetector(full, r, LeanOptions())
    first.detect([("c", 1.0, frame)], [MIN_FACE], [0.709])
    second.detect([("c", 1.2, frame)], [MIN_FACE], [0.709])
    assert first.ways["full"] == 1 and second.ways["gate"] == 1
    assert r.ttl(keys.detect_state("c")) > 0
    first.save({"c": DetectState(1.1, 1.1, 0, (640, 480), "x", [], thumbnail(frame))})
    assert DetectState.decode(r.hget(keys.detect_state("c"), "state")).ts == 1.2


def test_frames_of_one_camera_in_one_batch_follow_each_other(r, full):
    frame = texture(5)
    lean = LeanDetector(full, r, LeanOptions())
    lean.detect([("a", 0.2, frame), ("a", 0.0, frame), ("b", 0.0, frame), ("a", 0.4, frame)],
                [MIN_FACE] * 4, [0.709] * 4)
    assert lean.ways["full"] == 2 and lean.ways["gate"] == 2  # a: full, gate, gate; b: full


# ---------------------------------------------------------------- real photos


def test_gated_frames_reuse_boxes_but_crop_the_current_frame(r, full, media):
    photo = cv2.resize(cv2.imread(str(media / "fer_justin.jpg")), (640, 480))
    lean = LeanDetector(full, r, LeanOptions())
    (first,) = lean.detect([("c", 0.0, photo)], [MIN_FACE], [0.709])
    x, y, w, h = first[0].box
    smiling = photo.copy()  # a change too small for the gate, inside the face
    smiling[y + h // 2:y + h // 2 + 8, x + w // 3:x + w // 3 + 8] = 0
    (second,) = lean.detect([("c", 0.2, smiling)], [MIN_FACE], [0.709])
    assert lean.ways["gate"] == 1
    assert second[0].box == first[0].box
    assert not np.array_equal(second[0].crop, first[0].crop)
    gray = cv2.cvtColor(smiling, cv2.COLOR_BGR2GRAY)
    expected = crop_face(gray, first[0].box, (64, 64), first[0].left_eye,
                         first[0].right_eye)
    # landmarks kept to 0.1 px in the state: the same crop to rounding
    assert np.abs(second[0].crop.astype(int) - expected).mean() < 1


def test_detect_around_finds_the_faces_of_a_full_scan_after_a_move(full, media):
    for name in ("dlib_2007_007763.jpg", "dlib_2008_002470.jpg", "fer_justin.jpg"):
        photo = cv2.resize(cv2.imread(str(media / name)), (640, 480))
        known = [f.box for f in full.detect([photo])[0]]
        moved = cv2.warpAffine(photo, np.float32([[1, 0, 9], [0, 1, -6]]), (640, 480),
                               borderMode=cv2.BORDER_REFLECT)
        reference = full.detect([moved])[0]
        tracked = full.detect_around([moved], [known])[0]
        assert len(tracked) == len(reference), name
        for face in reference:
            assert max(iou(face.box, t.box) for t in tracked) > 0.7, name


def test_a_face_lost_by_tracking_gets_a_full_scan(r, full, media):
    photo = cv2.resize(cv2.imread(str(media / "dlib_2008_002470.jpg")), (640, 480))
    faces = full.detect([photo])[0]
    wrong = [{"box": [b + 150 for b in f.box[:2]] + list(f.box[2:]), "score": 1.0,
              "landmarks": None} for f in faces]
    state = DetectState(0.0, 0.0, 0, (640, 480), f"{MIN_FACE}/0.709", wrong, thumbnail(photo))
    lean = LeanDetector(full, r, LeanOptions(gate=False, refine_every_frames=1))
    lean.save({"c": state})
    (found,) = lean.detect([("c", 0.2, photo)], [MIN_FACE], [0.709])
    assert lean.ways["searched"] == 1 and lean.ways["retry"] == 1 and len(found) == len(faces)
    # a small move: O-Net alone settles it
    nudged = [{"box": [f.box[0] + 3, f.box[1] - 2, *f.box[2:]], "score": 1.0,
               "landmarks": None} for f in faces]
    lean.save({"c": DetectState(0.3, 0.2, 0, (640, 480), f"{MIN_FACE}/0.709", nudged,
                                thumbnail(photo))})
    (found,) = lean.detect([("c", 0.4, photo)], [MIN_FACE], [0.709])
    assert lean.ways["track"] == 1 and lean.ways["searched"] == 1 and len(found) == len(faces)


# ---------------------------------------------------------------- parity on the shared media


@pytest.mark.slow
def test_lean_pyramid_keeps_recall_on_the_annotated_photos(full, media):
    lean = FaceDetector((64, 64), MIN_FACE, work_face=20)
    matched, total = dlib_recall(lean, media)
    reference, _ = dlib_recall(full, media)
    assert matched >= reference * (1 - PARITY) and total == 16
    photos = sorted(media.glob("*.jpg"))
    lean_count = sum(len(lean.detect([cv2.imread(str(p))])[0]) for p in photos)
    full_count = sum(len(full.detect([cv2.imread(str(p))])[0]) for p in photos)
    assert abs(lean_count - full_count) <= PARITY * full_count


@pytest.mark.slow
def test_gating_and_tracking_keep_faces_per_second_on_the_clip(r, full, media):
    frames = clip_frames(media, fps=5.0)
    assert len(frames) >= 70  # 15.5 s at 5 fps
    reference = [len(f) for f in full.detect(frames)]
    counts, lean = lean_run(full, r, frames, LeanOptions())
    assert within(counts, reference), (sum(counts), sum(reference))
    lighter = lean.ways["track"] + lean.ways["follow"] + lean.ways["gate"]
    assert lighter >= len(frames) // 2, lean.ways


@pytest.mark.slow
def test_moving_group_photos_keep_their_face_count(r, full, media):
    for name in ("dlib_2007_007763.jpg", "dlib_2008_002470.jpg"):
        frames = swaying(cv2.imread(str(media / name)), 25)
        reference = [len(f) for f in full.detect(frames)]
        counts, lean = lean_run(full, r, frames, LeanOptions(), camera=name.split(".")[0])
        assert within(counts, reference), (name, sum(counts), sum(reference))
        assert lean.ways["track"] + lean.ways["follow"] >= len(frames) // 2, lean.ways


# ---------------------------------------------------------------- unit: track ids


def test_faces_keep_their_track_ids_and_new_faces_get_new_ones():
    known = [{"box": [10, 10, 50, 50], "track": 7}, {"box": [200, 10, 50, 50], "track": 9}]
    ids = assign_tracks(known, [(205, 12, 50, 50), (400, 10, 50, 50), (12, 10, 50, 50)], 5.0)
    assert ids[0] == 9 and ids[2] == 7
    assert ids[1] == new_track_id(5.0, 1) and ids[1] not in (7, 9)
    # Two detectors that see one new face in two frames give two ids, never one id twice.
    assert new_track_id(5.0, 0) != new_track_id(5.2, 0) != new_track_id(5.2, 1)


def test_a_face_missed_for_a_moment_keeps_its_id_and_one_gone_for_long_does_not():
    old = DetectState(1.0, 0.0, 1, (640, 480), "s",
                      [{"box": [10, 10, 50, 50], "track": 7}], np.zeros((4, 4), np.uint8))
    lost = lost_tracks(old, [], 1.2)  # frame 1.2 missed the face
    assert lost == [{"box": [10, 10, 50, 50], "track": 7, "ts": 1.0}]
    assert assign_tracks(lost, [(11, 10, 50, 50)], 1.4) == [7]
    later = DetectState(1.2, 0.0, 2, (640, 480), "s", [], old.thumb, lost)
    assert lost_tracks(later, [], 1.0 + TRACK_GAP_S) == [], "gone too long: forgotten"


def test_tracks_survive_gating_tracking_and_full_scans(r, full, media):
    photo = cv2.imread(str(media / "dlib_2007_007763.jpg"))
    lean = LeanDetector(full, r, LeanOptions(full_every_frames=3))
    frames = [np.roll(photo, k, axis=1) for k in (0, 0, 2, 4, 6, 8)]  # still, then a pan
    found = [lean.detect([("cam", k / 5, f)], [MIN_FACE], [0.709])[0]
             for k, f in enumerate(frames)]
    assert lean.ways["full"] >= 2 and lean.ways["gate"] >= 1
    first = sorted(f.track for f in found[0])
    assert len(first) >= 5 and len(set(first)) == len(first)
    for faces in found[1:]:
        assert sorted(f.track for f in faces) == first


def test_first_full_scans_are_spread_over_the_period():
    phases = {scan_phase(f"cam-{i}") for i in range(24)}
    assert all(0 <= p < 0.5 for p in phases) and len(phases) > 12


def test_unmatched_finds_the_lost_boxes():
    assert unmatched([(0, 0, 10, 10), (50, 50, 10, 10)], [(1, 0, 10, 10)]) == [(50, 50, 10, 10)]


def test_followed_frames_keep_the_faces_with_o_net_only_every_few_frames(r, full, media):
    frames = swaying(cv2.imread(str(media / "dlib_2008_002470.jpg")), 15)
    reference = [len(f) for f in full.detect(frames)]
    counts, lean = lean_run(full, r, frames, LeanOptions(refine_every_frames=3),
                            camera="follow")
    assert within(counts, reference), (sum(counts), sum(reference))
    assert lean.ways["follow"] >= 5 and lean.ways["track"] >= 2, lean.ways


def test_the_dense_scene_keeps_its_faces_through_following_and_tracking(r, full, media):
    """The ~25-face team photo swaying at its own size: the live way finds within 2% of the
    faces full detection finds on every frame, and follows most faces without O-Net."""
    photo = cv2.imread(str(media / "retinaface_img3.jpg"))
    frames = swaying(photo, 50, size=(photo.shape[1], photo.shape[0]))
    reference = [len(f) for f in full.detect(frames)]
    assert sum(reference) / len(frames) >= 23
    counts, lean = lean_run(full, r, frames, LeanOptions(), camera="dense")
    assert within(counts, reference), (sum(counts), sum(reference))
    assert lean.ways["follow"] >= 5, lean.ways
