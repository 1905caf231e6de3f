"""Face detectors: MTCNN on onnxruntime against the mtcnn package, Haar, `moodstream detect`,
and the detector worker running without TensorFlow."""

from __future__ import annotations

import json
import subprocess
import sys
import time

import cv2
import numpy as np
import pytest

from moodstream import assets, keys
from moodstream.contract import FaceSet, Frame
from moodstream.detection.detectors import make_detector
from moodstream.detection.detectors.base import iou
from moodstream.detection.detectors.mtcnn_onnx import area_pyramid, nms, pack, patches
from tests.conftest import MOODSTREAM, REPO, service_env, wait_for

PARITY_MIN_FACE = 20  # the mtcnn package's default
PARITY_MAX_SIDE = 1200  # larger photos are halved: the package takes seconds on them




def photos(media):
    return sorted(media.glob("*.jpg"))


@pytest.fixture(scope="module")
def parity_runs(request):
    """Both MTCNNs on every shared photo, once for the module (the package is slow)."""
    from tests.conftest import MEDIA, need

    media = need(MEDIA)
    onnx = make_detector("mtcnn-onnx", min_face=PARITY_MIN_FACE)
    package = make_detector("mtcnn", min_face=PARITY_MIN_FACE)
    runs = {}
    for path in photos(media):
        image = cv2.imread(str(path))
        while max(image.shape[:2]) > PARITY_MAX_SIDE:
            image = cv2.resize(image, None, fx=0.5, fy=0.5, interpolation=cv2.INTER_AREA)
        runs[path.name] = (onnx.detect([image])[0], package.detect([image])[0])
    return runs


def test_onnx_networks_are_committed_and_small():
    for name in ("pnet", "rnet", "onet"):
        path = assets.mtcnn_dir() / f"{name}.onnx"
        assert path.exists(), "run python -m moodstream.models.mtcnn_to_onnx"
        assert path.stat().st_size < 2_000_000


@pytest.mark.slow
def test_every_face_the_package_finds_is_found(parity_runs):
    checked = 0
    for name, (ours, theirs) in parity_runs.items():
        for face in theirs:
            best = max((iou(face.box, f.box) for f in ours), default=0.0)
            assert best >= 0.9, f"{name}: package face {face.box} best IoU {best:.2f}"
            checked += 1
    assert checked >= 30, "the shared photos hold over 30 faces the package finds"


@pytest.mark.slow
def test_no_faces_on_the_photo_without_faces(parity_runs):
    ours, theirs = parity_runs["mtcnn_no-faces.jpg"]
    assert ours == [] and theirs == []


@pytest.mark.slow
def test_no_face_the_package_does_not_find(parity_runs):
    for name, (ours, theirs) in parity_runs.items():
        for face in ours:
            best = max((iou(face.box, f.box) for f in theirs), default=0.0)
            assert best >= 0.9, f"{name}: extra face {face.box} (score {face.score:.3f})"


@pytest.mark.slow
def test_landmarks_within_two_pixels_of_the_package(parity_runs):
    for name, (ours, theirs) in parity_runs.items():
        for face in theirs:
            mine = max(ours, key=lambda f: iou(face.box, f.box))
            for point, (x, y) in face.landmarks.items():
                mx, my = mine.landmarks[point]
                assert np.hypot(mx - x, my - y) <= 2.0, f"{name} {point}"


def test_area_pyramid_matches_float_area_resize(media):
    image = cv2.imread(str(media / "dlib_2008_001322.jpg"))
    sizes = [(112, 150), (79, 106), (13, 17)]
    ours = area_pyramid(image, sizes)
    floats = image.astype(np.float32)
    for (h, w), level in zip(sizes, ours, strict=True):
        expected = cv2.resize(floats, (w, h), interpolation=cv2.INTER_AREA)
        assert level.shape == (h, w, 3)
        assert np.abs(level - expected).max() < 1e-2


def test_patches_sample_like_crop_and_resize():
    image = np.arange(20 * 30 * 3, dtype=np.uint8).reshape(20, 30, 3)
    # A box over the whole image samples its corners exactly (crop_and_resize maps box
    # coordinates normalised by the size onto 0 .. size-1).
    cut = patches(image, np.array([[0.0, 0.0, 30.0, 20.0]]), 24)
    assert cut.shape == (1, 24, 24, 3)
    assert np.allclose(cut[0, 0, 0], image[0, 0]) and np.allclose(cut[0, -1, -1], image[-1, -1])
    outside = patches(image, np.array([[-100.0, -100.0, -50.0, -50.0]]), 24)
    assert np.all(outside == 127.5)


def test_nms_drops_boxes_that_any_better_box_overlaps():
    boxes = np.array([[0, 0, 10, 10], [1, 0, 11, 10], [30, 30, 40, 40]], float)
    assert nms(boxes, 0.5).tolist() == [0, 2]


def test_pack_places_levels_at_even_offsets_without_overlap():
    sizes = [(144, 192), (102, 136), (72, 96), (51, 68), (13, 17)]
    positions, height, width = pack(sizes)
    rects = []
    for (y, x), (h, w) in zip(positions, sizes, strict=True):
        assert y % 2 == 0 and x % 2 == 0 and y + h <= height and x + w <= width
        rects.append((y, x, h, w))
    for i, (y, x, h, w) in enumerate(rects):
        for y2, x2, h2, w2 in rects[i + 1:]:
            assert y + h <= y2 or y2 + h2 <= y or x + w <= x2 or x2 + w2 <= x


def test_a_batch_gives_what_single_frames_give_with_one_call_per_network(media):
    images = [cv2.imread(str(media / name)) for name in
              ("dlib_2007_007763.jpg", "dlib_2008_002470.jpg", "fer_justin.jpg",
               "mtcnn_no-faces.jpg")]
    alone = make_detector("mtcnn-onnx", min_face=30, pnet_batching="levels")
    singles = [alone.detect([img])[0] for img in images]
    for mode in ("mosaic", "levels"):
        batched = make_detector("mtcnn-onnx", min_face=30, pnet_batching=mode)
        together = batched.detect(images)
        if mode == "mosaic":
            assert batched.calls == {"pnet": 1, "rnet": 1, "onet": 1}
        assert together == singles  # exactly: the mosaic's mask makes it so


def test_settings_per_image(media):
    image = cv2.imread(str(media / "dlib_2007_007763.jpg"))  # faces of about 37-45 px
    detector = make_detector("mtcnn-onnx", min_face=20)
    small, large = detector.detect([image, image], min_face=[20, 120])
    assert len(small) == 7 and large == []
    coarse = detector.detect([image], scale_factor=0.5)[0]
    assert 0 < len(coarse) <= 7
    with pytest.raises(ValueError):
        detector.detect([image], scale_factor=1.5)


def test_haar_finds_faces_on_simple_photos(media):
    haar = make_detector("haar", min_face=40)
    justin, couple, none = haar.detect([cv2.imread(str(media / n)) for n in
                                        ("fer_justin.jpg", "face_recognition_two_people.jpg",
                                         "mtcnn_no-faces.jpg")])
    assert len(justin) == 1 and len(couple) == 2 and none == []
    assert justin[0].landmarks is None and justin[0].score == 1.0
    mtcnn = make_detector("mtcnn-onnx", min_face=40).detect(
        [cv2.imread(str(media / "fer_justin.jpg"))])[0][0]
    assert iou(justin[0].box, mtcnn.box) > 0.4


def test_unknown_detector_is_refused(monkeypatch):
    from moodstream.config import load_settings

    with pytest.raises(ValueError, match="unknown detector"):
        make_detector("yolo")
    assert make_detector().name == "mtcnn-onnx"
    monkeypatch.setenv("MOODSTREAM_DETECTOR", "haar")
    assert make_detector(load_settings().detector.name).name == "haar"


def test_detect_cli_json(media):
    names = ["fer_justin.jpg", "mtcnn_no-faces.jpg"]
    paths = [str(media / n) for n in names]
    done = subprocess.run([*MOODSTREAM, "detect", "--json", *paths], cwd=REPO,
                          capture_output=True, text=True, timeout=120)
    assert done.returncode == 0, done.stderr
    result = json.loads(done.stdout)
    assert [item["image"] for item in result] == paths
    (face,) = result[0]["faces"]
    assert result[1]["faces"] == []
    assert len(face["box"]) == 4 and all(isinstance(v, int) for v in face["box"])
    assert 0.9 <= face["score"] <= 1.0
    assert set(face["landmarks"]) == {"left_eye", "right_eye", "nose", "mouth_left",
                                      "mouth_right"}
    x, y, w, h = face["box"]
    ex, ey = face["landmarks"]["left_eye"]
    assert x <= ex <= x + w and y <= ey <= y + h


PROBE = """
import atexit, json, sys
import psutil
def report():
    print("PROBE " + json.dumps({"tensorflow": "tensorflow" in sys.modules,
                                 "rss": psutil.Process().memory_info().rss}), flush=True)
atexit.register(report)
from moodstream.cli import main
sys.exit(main(sys.argv[1:]))
"""


@pytest.mark.slow
def test_detector_worker_runs_without_tensorflow(r, redis_server, media, tmp_path):
    pytest.importorskip("psutil")
    jpeg = (media / "fer_justin.jpg").read_bytes()
    for seq in range(3):
        r.xadd(keys.FRAMES, Frame("probe", seq, time.time() + 30, jpeg).encode())
    r.hset(keys.camera("probe"), mapping={"min_face": "60", "scale_factor": "0.6"})
    done = subprocess.run([sys.executable, "-c", PROBE, "detector", "--exit-when-idle", "2"],
                          cwd=REPO, capture_output=True, text=True, timeout=120,
                          # frames stamped ahead so that a slow start finds them fresh
                          env=service_env(redis_server.url, MOODSTREAM_MAX_CLOCK_SKEW_S="60"))
    assert done.returncode == 0, done.stdout + done.stderr
    wait_for(lambda: r.xlen(keys.FACES) >= 3, timeout=10, what="faces")
    faces = [FaceSet.decode(f) for _, f in r.xrange(keys.FACES)]
    assert [f.seq for f in faces if f.count == 1] == [0, 1, 2]
    assert len({int(f.tracks[0]) for f in faces}) == 1, "one person, one track"
    probe = json.loads(done.stdout.split("PROBE ", 1)[1].splitlines()[0])
    assert probe["tensorflow"] is False
    assert probe["rss"] <= 300 * 2**20, f"RSS {probe['rss'] / 2**20:.0f} MB"


@pytest.mark.slow
def test_newest_only_detector_skips_a_backlog_to_the_newest_frame(r, redis_server, media):
    from moodstream.accounting import pipeline_stats

    jpeg = (media / "fer_justin.jpg").read_bytes()
    for seq in range(10):  # ten frames queued before the detector starts: it is behind
        r.xadd(keys.FRAMES, Frame("cab", seq, time.time() + 30, jpeg).encode())
        r.hincrby(keys.STATS, "frames:in", 1)
    done = subprocess.run([*MOODSTREAM, "detector", "--newest-only", "--exit-when-idle", "2"],
                          cwd=REPO, capture_output=True, text=True, timeout=120,
                          env=service_env(redis_server.url, MOODSTREAM_MAX_CLOCK_SKEW_S="60"))
    assert done.returncode == 0, done.stdout + done.stderr
    faces = [FaceSet.decode(f) for _, f in r.xrange(keys.FACES)]
    assert [(f.seq, f.count) for f in faces] == [(9, 1)]
    frames = pipeline_stats(r)["frames"]
    assert frames["dropped"].get("superseded") == 9
    assert frames["in"] == frames["processed"] + sum(frames["dropped"].values()) == 10


@pytest.mark.slow
def test_per_camera_min_face_reaches_the_detector(r, redis_server, media):
    """The camera's min_face (set as the dashboard API sets it) overrides the worker's: the
    same photo gives a face on one camera and none on the camera that wants huge faces."""
    from moodstream.camera_settings import changes_from, save_changes

    save_changes(r, "far", changes_from({"min_face": 1000}, partial=True))
    save_changes(r, "near", changes_from({"min_face": 20, "scale_factor": 0.6}, partial=True))
    jpeg = (media / "fer_justin.jpg").read_bytes()
    for seq, cam in enumerate(["far", "near"]):
        r.xadd(keys.FRAMES, Frame(cam, seq, time.time() + 30, jpeg).encode())
        r.hincrby(keys.STATS, "frames:in", 1)
    done = subprocess.run([*MOODSTREAM, "detector", "--exit-when-idle", "2"], cwd=REPO,
                          capture_output=True, text=True, timeout=120,
                          # frames stamped ahead so that a slow start finds them fresh
                          env=service_env(redis_server.url, MOODSTREAM_MAX_CLOCK_SKEW_S="60"))
    assert done.returncode == 0, done.stdout + done.stderr
    found = {f.camera: f.count for f in (FaceSet.decode(e) for _, e in r.xrange(keys.FACES))}
    assert found == {"far": 0, "near": 1}


def test_camera_options_follow_the_registry(r):
    from moodstream.camera_settings import CameraSettings
    from moodstream.workers.detector import CameraOptions

    CameraSettings(source="0", min_face=64, scale_factor=0.6).save(r, "door")
    r.hset(keys.camera("odd"), mapping={"min_face": "big", "scale_factor": "3"})
    options = CameraOptions(r, every_s=0)
    assert options.get("door").detector_options == {"min_face": 64, "scale_factor": 0.6}
    assert options.get("odd").detector_options == {"min_face": None, "scale_factor": None}
    assert options.get("unknown").detector_options == {"min_face": None, "scale_factor": None}
    r.hset(keys.camera("door"), "min_face", "32")
    assert options.get("door").min_face == 32


def test_detect_cli_refuses_an_image_that_fools_pillow(tmp_path):
    from tests.image_bombs import radiance_bomb

    bomb = tmp_path / "classroom.png"
    bomb.write_bytes(radiance_bomb())
    done = subprocess.run([*MOODSTREAM, "detect", "--json", str(bomb)], cwd=REPO,
                          capture_output=True, text=True, timeout=120)
    assert done.returncode == 1
    assert json.loads(done.stdout)[0]["error"].startswith("not an accepted image format")
