"""Fixtures for the emotion-model tests: a tiny synthetic FER-2013-shaped npz and a tiny
exported ONNX model (small input, few filters) so nothing here needs the real data."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest

from tests.conftest import FER2013

REPO_ROOT = Path(__file__).resolve().parents[2]
SHARED_NPZ = FER2013  # the real FER-2013 (tests/conftest.py: ../shared or MOODSTREAM_SHARED)
SHIPPED_MODEL = REPO_ROOT / "models" / "emotion.onnx"


def _split(rng, n):
    y = np.arange(n) % 7
    x = rng.integers(0, 256, size=(n, 48, 48), dtype=np.uint8)
    x[:, :8, :8] = (y * 36)[:, None, None]  # a learnable corner patch
    return x, y.astype(np.uint8)


@pytest.fixture(scope="session")
def tiny_npz(tmp_path_factory) -> Path:
    rng = np.random.default_rng(0)
    arrays = {}
    for split, n in (("train", 70), ("val", 28), ("test", 35)):
        arrays[f"x_{split}"], arrays[f"y_{split}"] = _split(rng, n)
    path = tmp_path_factory.mktemp("fer") / "tiny.npz"
    np.savez_compressed(path, **arrays)
    return path


TINY_ARCH = {"input_size": 32, "base_filters": 2, "block_filters": [4, 4, 4, 4]}


@pytest.fixture(scope="session")
def tiny_onnx(tmp_path_factory, tiny_npz) -> Path:
    pytest.importorskip("tensorflow")
    from moodstream.models.architecture import build_from_config
    from moodstream.models.export import export

    model = build_from_config(TINY_ARCH)
    out = tmp_path_factory.mktemp("onnx") / "tiny.onnx"
    export(model, out, recipe={"name": "tiny", **TINY_ARCH}, data=tiny_npz,
           extra={"best_epoch": 1})
    return out
