"""Following tracked faces by registration: the batched alignment check matches OpenCV's
warpAffine, and registration follows a moved photo and gives up on noise."""

from __future__ import annotations

import cv2
import numpy as np
import pytest

from moodstream.detection.registration import (
    MIN_CORRELATION,
    PATCH,
    RIM,
    alignments,
    face_patches,
    registered,
    shifted_back,
)
from tests.conftest import need_real_media


@pytest.fixture(scope="module")
def full():
    from moodstream.detection.face_detector import FaceDetector

    return FaceDetector((64, 64), 40, work_face=0)


def textured_patches(n: int, seed: int = 0) -> np.ndarray:
    rng = np.random.default_rng(seed)
    noise = rng.integers(0, 256, (n, PATCH, PATCH)).astype(np.uint8)
    return np.stack([cv2.GaussianBlur(p, (0, 0), 1.5) for p in noise])


def test_shifted_back_is_warp_affine_with_a_replicated_border():
    patches = textured_patches(6)
    shifts = np.array([[0, 0], [2.5, -1.25], [-7.9, 3.3], [0.03, 0.97], [8, 8], [-3, -6.6]])
    ours = shifted_back(patches, shifts)
    for patch, (dx, dy), mine in zip(patches, shifts, ours, strict=True):
        theirs = cv2.warpAffine(patch.astype(np.float32), np.float32([[1, 0, -dx], [0, 1, -dy]]),
                                (PATCH, PATCH), borderMode=cv2.BORDER_REPLICATE)
        np.testing.assert_allclose(mine, theirs[RIM:-RIM, RIM:-RIM], atol=0.05)


def test_alignment_is_high_for_the_same_patch_moved_and_low_for_another():
    before = textured_patches(3)
    moved = np.stack([cv2.warpAffine(p, np.float32([[1, 0, 2.5], [0, 1, -1.5]]), (PATCH, PATCH),
                                     borderMode=cv2.BORDER_REPLICATE) for p in before])
    assert (alignments(before, moved, np.array([[2.5, -1.5]] * 3)) > 0.95).all()
    assert (alignments(before, moved, np.zeros((3, 2))) < MIN_CORRELATION).all()  # not aligned
    others = textured_patches(3, seed=9)
    assert (alignments(before, others, np.zeros((3, 2))) < MIN_CORRELATION).all()
    flat = np.full((1, PATCH, PATCH), 128, np.uint8)  # nothing to correlate: no alignment
    assert alignments(flat, flat, np.zeros((1, 2)))[0] == 0


def test_face_patches_keep_their_scale_at_the_frame_edge():
    gray = np.tile(np.arange(200, dtype=np.uint8), (100, 1))
    inside, edge = face_patches(gray, [(80, 30, 40, 40), (-10, 30, 40, 40)])
    assert inside.shape == (PATCH, PATCH) and edge.shape == (PATCH, PATCH)
    assert inside[:, 0].mean() < inside[:, -1].mean()  # the ramp, left to right
    assert (edge[:, :4] == edge[:, :1]).all()  # replicated where the square leaves the frame


def test_registration_follows_each_face_and_gives_up_on_what_it_cannot_follow(full, media):
    need_real_media("sub-pixel registration on a real photo's texture (pasted faces are flat)")
    photo = cv2.imread(str(media / "dlib_2007_007763.jpg"))
    faces = full.detect([photo])[0]
    known = [{"box": list(f.box), "score": f.score,
              "landmarks": {k: list(v) for k, v in f.landmarks.items()}} for f in faces]
    gray = cv2.cvtColor(photo, cv2.COLOR_BGR2GRAY)
    before = face_patches(gray, [f["box"] for f in known])
    moved_gray = np.roll(gray, (3, 5), axis=(0, 1))  # the scene moves 5 px right, 3 down
    moved, lost = registered(known, before, moved_gray)
    assert lost == [] and len(moved) == len(known)
    for old, new in zip(known, moved, strict=True):
        assert abs(new.box[0] - old["box"][0] - 5) <= 1 and abs(new.box[1] - old["box"][1] - 3) <= 1
        eye = new.landmarks["left_eye"]
        assert abs(eye[0] - old["landmarks"]["left_eye"][0] - 5) <= 1
    noise = np.random.default_rng(0).integers(0, 256, gray.shape, dtype=np.uint8)
    assert len(registered(known, before, noise)[1]) == len(known), "nothing to follow"
