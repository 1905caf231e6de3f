"""The crop-change measure of label reuse (detection/label_reuse.py)."""

from __future__ import annotations

import numpy as np

from moodstream.detection.label_reuse import (
    GRID,
    SHIFT,
    LabelReuse,
    change,
    change_at_best_shift,
    shifted_signatures,
    shifted_signatures_of,
    signature,
    signatures,
)


def test_change_is_the_90th_percentile_of_the_block_differences():
    rng = np.random.default_rng(3)
    for _ in range(200):
        a, b = (rng.normal(0, 20, (GRID, GRID)).astype(np.float32) for _ in range(2))
        assert abs(change(a, b) - float(np.percentile(np.abs(a - b), 90))) < 1e-4
    same = rng.normal(0, 20, (GRID, GRID)).astype(np.float32)
    assert change(same, same) == 0.0


def test_a_brightness_change_alone_is_no_change():
    crop = np.random.default_rng(4).integers(0, 200, (48, 48)).astype(np.uint8)
    assert change(signature(crop), signature(crop + 40)) < 1e-3
    smile = crop.copy()
    smile[30:40, 12:36] = 255  # a mouth that opens moves a few blocks a lot
    assert change(signature(crop), signature(smile)) > 6


def _textured(seed: int) -> np.ndarray:
    """A crop with structure at the scale of the blocks (a face has eyes, a mouth, a rim)."""
    rng = np.random.default_rng(seed)
    coarse = rng.integers(30, 220, (12, 12)).astype(np.float32)
    return np.kron(coarse, np.ones((4, 4), np.float32)).astype(np.uint8)


def test_the_unshifted_signature_is_the_plain_one():
    crop = _textured(5)
    assert np.abs(shifted_signatures(crop)[SHIFT, SHIFT] - signature(crop)).max() < 1e-3


def test_the_detector_placing_a_face_a_pixel_or_two_further_is_no_change():
    crop = _textured(6)
    for dy, dx in ((1, 0), (0, -2), (2, 2), (-1, 1)):
        moved = np.roll(crop, (dy, dx), axis=(0, 1))
        assert change(signature(crop), signature(moved)) > 6  # the plain measure sees it
        assert change_at_best_shift(signature(crop), moved) < 1e-3
    far = np.roll(crop, (0, SHIFT + 3), axis=(0, 1))  # the face moved in its crop: look again
    assert change_at_best_shift(signature(crop), far) > 6


def test_an_expression_that_changes_is_a_change_at_every_shift():
    crop = _textured(7)
    smile = crop.copy()
    smile[30:40, 12:36] = 255  # a mouth that opens
    assert change_at_best_shift(signature(crop), smile) > 6
    assert change_at_best_shift(signature(crop), np.roll(smile, (1, 1), axis=(0, 1))) > 6


def test_a_shifted_crop_carries_the_probabilities_of_its_track():
    crop, probs = _textured(8), np.full(7, 1 / 7, np.float32)
    reuse = LabelReuse(max_age_s=0.4, change_level=6.0)
    reuse.remember("cam", 3, 10.0, signature(crop), probs)
    moved = np.roll(crop, (1, -1), axis=(0, 1))
    assert reuse.reusable("cam", 3, 10.2, signature(moved), 40, moved) is probs
    assert reuse.reusable("cam", 3, 10.2, signature(moved), 40) is None  # no crop, no shifts


def test_a_frame_of_faces_is_judged_as_each_face_alone():
    """reusable_faces decides for a frame's faces at once what reusable decides for each:
    unchanged, moved by the detector's jitter, changed, too old, too large, unknown."""
    crops = np.stack([_textured(seed) for seed in range(6)])
    probs = [np.full(7, k, np.float32) for k in range(6)]
    reuse = LabelReuse(max_age_s=0.4, change_level=6.0, max_face=64)
    for track in range(5):
        reuse.remember("cam", track, 10.0 if track != 3 else 9.0, signature(crops[track]),
                       probs[track])
    now = crops.copy()
    now[1] = np.roll(crops[1], (2, 1), axis=(0, 1))  # jitter
    now[2, 30:40, 12:36] = 255  # a mouth that opens
    sides = [40, 40, 40, 40, 90, 40]  # track 3 is too old, 4 too large, 5 unknown
    alone = [reuse.reusable("cam", t, 10.2, signature(now[t]), sides[t], now[t])
             for t in range(6)]
    together = reuse.reusable_faces("cam", np.arange(6), 10.2, signatures(now), sides, now)
    assert [p is None for p in together] == [p is None for p in alone]
    assert [p is None for p in together] == [False, False, True, True, True, True]
    assert together[0] is probs[0] and together[1] is probs[1]
    assert np.allclose(shifted_signatures_of(now)[3], shifted_signatures(now[3]))
