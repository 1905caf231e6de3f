"""The crop-change measure of label reuse (detection/label_reuse.py)."""

from __future__ import annotations

import numpy as np

from moodstream.detection.label_reuse import GRID, change, signature


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
