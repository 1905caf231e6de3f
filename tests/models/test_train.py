import csv
import json

import pytest

pytest.importorskip("tensorflow")

from moodstream.models.train import lr_at, merge_config, train  # noqa: E402

from .conftest import SHARED_NPZ, TINY_ARCH  # noqa: E402


def test_merge_config_and_cosine():
    cfg = merge_config({"epochs": 10, "augment": {"rotation": 5.0}})
    assert cfg["augment"]["rotation"] == 5.0 and cfg["augment"]["flip"] == 0.5
    with pytest.raises(KeyError):
        merge_config({"nope": 1})
    assert lr_at(0, cfg) == pytest.approx(cfg["lr"])
    assert lr_at(10, cfg) == pytest.approx(cfg["min_lr"])


@pytest.mark.slow
def test_train_resume_and_export(tiny_npz, tmp_path):
    cfg = {"name": "t", "data": str(tiny_npz), "epochs": 1, "batch_size": 16, **TINY_ARCH}
    r1 = train(cfg, runs_dir=tmp_path, verbose=0)
    run = tmp_path / "t"
    for fn in ("best.keras", "last.keras", "log.csv", "config.json", "state.json"):
        assert (run / fn).exists(), fn
    assert r1["epochs_run"] == 1 and 0.0 <= r1["test_accuracy"] <= 1.0
    r2 = train({**cfg, "epochs": 2}, runs_dir=tmp_path, verbose=0)  # resumes at epoch 2
    assert r2["epochs_run"] == 2
    # A bare resume (name only) keeps the run's own settings, not the defaults.
    r3 = train({"name": "t", "data": str(tiny_npz)}, runs_dir=tmp_path, verbose=0)
    assert r3["epochs_run"] == 2 and r3["config"]["epochs"] == 2
    with open(run / "log.csv") as f:
        assert [row["epoch"] for row in csv.DictReader(f)] == ["0", "1"]
    from moodstream.models.export import export, read_metadata

    out = tmp_path / "m.onnx"
    export(run, out, data=tiny_npz)
    meta = read_metadata(out)
    assert json.loads(meta["recipe"])["epochs"] == 2
    assert meta["epochs_run"] == "2"


@pytest.mark.slow
def test_training_at_full_size_with_onednn_does_not_crash(tmp_path):
    """`moodstream train` once died in epoch 1 (segfault, heap corruption) at 64x64 with
    TensorFlow's oneDNN kernels on. 300 steps of the paper's network on the full-size
    pipeline (64 px, augmentation) in a child process, so a crash is a failure, not a dead
    test run."""
    import os
    import subprocess
    import sys

    import numpy as np

    rng = np.random.default_rng(0)
    arrays = {}
    for split, n in (("train", 300 * 32), ("val", 256), ("test", 256)):
        arrays[f"x_{split}"] = rng.integers(0, 256, (n, 48, 48), dtype=np.uint8)
        arrays[f"y_{split}"] = (np.arange(n) % 7).astype(np.uint8)
    npz = tmp_path / "fer.npz"
    np.savez(npz, **arrays)
    env = {k: v for k, v in os.environ.items() if k != "TF_ENABLE_ONEDNN_OPTS"}
    proc = subprocess.run(
        [sys.executable, "-m", "moodstream.models.train", "--name", "smoke",
         "--runs-dir", str(tmp_path),
         "--data", str(npz), "--epochs", "1", "--batch-size", "32", "--input-size", "64",
         "--quiet"],
        env=env, capture_output=True, text=True, timeout=900)
    assert proc.returncode == 0, f"training crashed ({proc.returncode}): {proc.stderr[-2000:]}"
    state = json.loads((tmp_path / "smoke" / "state.json").read_text())
    assert state["epoch"] == 0


@pytest.mark.skipif(not SHARED_NPZ.exists(), reason="needs ../shared/data/fer2013/fer2013.npz")
def test_pipeline_crops_join_the_training_set_with_their_labels():
    import numpy as np

    from moodstream.models.data import load_split
    from moodstream.models.train import _subset, _with_pipeline_crops

    cfg = merge_config({"data": str(SHARED_NPZ), "limit_train": 48, "seed": 5,
                        "input_size": 40, "threads": 1})
    x, y = _subset(*load_split("train", 40, SHARED_NPZ), 48, 5)
    soft = np.log(np.full((48, 7), 1 / 7, np.float32)) + np.arange(48)[:, None]
    x2, y2, soft2 = _with_pipeline_crops(cfg, x, y, soft, verbose=0)
    added = len(x2) - 48
    assert 0.6 * 48 <= added < 48  # most real faces are found, a few are not
    assert x2.shape[1:] == (40, 40, 1) and np.array_equal(x2[:48], x)
    # each crop keeps its own face's label and teacher row (the row's offset is its index)
    rows = soft2[48:, 0] - soft[0, 0]
    assert np.array_equal(y2[48:], y[rows.round().astype(int)])
    assert len(set(rows.round().astype(int))) == added
