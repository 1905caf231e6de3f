"""The edge benchmark (bench/edge.py) on a short window: a real `moodstream edge` sends only
labels, and the centre's sizing returns figures. Real processes, few seconds each."""

from __future__ import annotations

import pytest

from moodstream.bench import edge
from moodstream.contract import LabelSet

pytestmark = pytest.mark.timeout(120)


def test_one_face_footprint_sends_labels_not_images(tmp_path):
    case = edge.edge_cases()[0][0]
    assert case.source == "demo" and case.faces == 1
    f = edge.measure_footprint(tmp_path, case, seconds=5.0, warmup=1.0)
    assert f["entries"] > 0 and f["frames_per_s"] > 0
    assert f["cpu_cores"] > 0 and f["rss_mb"] > 0
    assert f["up_bytes_per_s"] > 0 and f["down_bytes_per_s"] > 0
    # A 640 px JPEG is tens of KB; a labels entry, with its share of nudges and status, is
    # a few hundred bytes.
    assert 0 < f["up_bytes_per_entry"] < 2000
    assert set(f["goals"]) == set(edge.GOALS)


def test_synthetic_entries_follow_the_contract():
    entries = edge.synthetic_entries("cam1", 25, variants=2)
    label = LabelSet.decode({k.encode(): str(v).encode() for k, v in
                             {**entries[1], "seq": 3, "ts": "1.5"}.items()})
    assert label.camera == "cam1" and label.count == 25 and label.seq == 3


def test_centre_sizing_on_a_tiny_load(tmp_path):
    level = edge.measure_centre(tmp_path, faces=1, cameras=4, seconds=3.0, warmup=1.0)
    assert level["pushed_per_s"] > 0 and level["done_per_s"] > 0
    assert level["redis_cores"] >= 0 and level["aggregator_cores"] > 0
    assert level["redis_cores_per_1000"] is not None
    estimate = edge.sizing_estimate([level])
    assert estimate["cameras_per_aggregator"] > 0
    assert "per central Redis core" in edge.edge_text(
        {"camera_fps": 5.0, "footprint": {}, "sizing": {"1": {"levels": [level],
                                                              "estimate": estimate}}})
