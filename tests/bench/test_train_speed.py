"""bench/train_speed.py runs end to end on a tiny case and prints every row it promises
(figures only; no timing is asserted)."""

from __future__ import annotations

import json

import pytest

pytest.importorskip("tensorflow")

from moodstream.bench import train_speed  # noqa: E402


@pytest.mark.slow
def test_prints_each_case_with_its_ratio_to_the_baseline(capsys):
    assert train_speed.main(["--size", "32", "--batch", "16", "--steps", "2", "--rounds", "1",
                             "--json"]) == 0
    out = capsys.readouterr().out
    result = json.loads(out.strip().splitlines()[-1])
    cases = result["cases"]
    assert set(cases) == {"no augmentation (baseline)", "augmentation (training recipe)",
                          "augmentation, Keras BatchNormalization"}
    assert cases["no augmentation (baseline)"]["ratio_to_baseline"] == 1.0
    for row in cases.values():
        assert row["seconds_per_epoch"] > 0
        assert row["seconds_per_epoch"] == pytest.approx(
            row["ms_per_step"] / 1000 * (train_speed.TRAIN_IMAGES // 16), rel=0.01)
