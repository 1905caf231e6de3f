import json

import numpy as np
import pytest

from moodstream.models import averaging

from .conftest import TINY_ARCH


def test_settings_default_and_refuse_nonsense():
    assert averaging.settings(None) is None and averaging.settings({}) is None
    assert averaging.settings({"start": 0.6}) == {
        "start": 0.6, "bn_batches": averaging.DEFAULT_BN_BATCHES}
    with pytest.raises(KeyError, match="strat"):
        averaging.settings({"strat": 0.5})
    with pytest.raises(ValueError, match="share of the schedule"):
        averaging.settings({"start": 1.0})


def test_progress_counts_epochs_or_the_time_budget():
    by_epochs = {"schedule": "cosine", "epochs": 4, "max_train_seconds": 0}
    assert [averaging.progress(by_epochs, e, 0.0) for e in range(4)] == [.25, .5, .75, 1.0]
    by_time = {"schedule": "cosine_time", "epochs": 400, "max_train_seconds": 100}
    assert averaging.progress(by_time, 3, 40.0) == pytest.approx(0.4)
    assert averaging.progress(by_time, 9, 130.0) == 1.0


def test_running_mean_is_the_mean_of_all_epochs_so_far():
    rng = np.random.default_rng(0)
    epochs = [[rng.normal(size=(3, 2)), rng.normal(size=4)] for _ in range(5)]
    mean = None
    for count, weights in enumerate(epochs):
        mean = averaging.running_mean(mean, weights, count)
    for got, layer in zip(mean, zip(*epochs, strict=True), strict=True):
        np.testing.assert_allclose(got, np.mean(layer, axis=0), rtol=1e-12)
    assert epochs[0][0] is not mean[0]  # the first epoch's arrays are copied, not aliased


def test_batch_norm_statistics_become_the_exact_mean_over_the_batches():
    pytest.importorskip("tensorflow")
    import keras

    from moodstream.models.data import normalise

    inputs = keras.Input((8, 8, 1))
    model = keras.Model(inputs, keras.layers.BatchNormalization(name="bn")(inputs))
    x = np.random.default_rng(1).integers(0, 256, size=(3 * 128 + 50, 8, 8), dtype=np.uint8)
    used = averaging.refresh_batch_norm(model, x, batches=10, seed=3)
    assert used == 3  # only full batches of 128
    picked = x[np.random.default_rng(3).permutation(len(x))[:3 * 128]]
    bn = model.get_layer("bn")
    np.testing.assert_allclose(bn.moving_mean.numpy(), [normalise(picked).mean()], rtol=1e-5)
    assert bn.momentum == 0.99  # restored
    averaging.refresh_batch_norm(model, x[..., None], batches=10, seed=3)  # as load_split gives
    np.testing.assert_allclose(bn.moving_mean.numpy(), [normalise(picked).mean()], rtol=1e-5)


@pytest.mark.slow
def test_a_run_averages_its_last_epochs_and_resumes_the_mean(tiny_npz, tmp_path):
    from moodstream.models.architecture import load_keras
    from moodstream.models.export import export, read_metadata
    from moodstream.models.train import train

    cfg = {"name": "swa", "data": str(tiny_npz), "epochs": 4, "batch_size": 16,
           "swa": {"start": 0.6, "bn_batches": 1}, **TINY_ARCH}
    result = train(cfg, runs_dir=tmp_path, verbose=0)
    run = tmp_path / "swa"
    assert result["averaged"]["epochs"] == 2  # epochs 3 and 4 of 4
    assert 0.0 <= result["averaged"]["test_accuracy"] <= 1.0
    mean = load_keras(run / "averaged.keras").get_weights()
    assert any(not np.array_equal(m, b)
               for m, b in zip(mean, load_keras(run / "best.keras").get_weights(),
                               strict=True))
    resumed = train({"name": "swa", "data": str(tiny_npz), "epochs": 5}, runs_dir=tmp_path,
                    verbose=0)
    assert resumed["averaged"]["epochs"] == 3
    export(run / "averaged.keras", tmp_path / "m.onnx", data=tiny_npz, tta="none")
    meta = read_metadata(tmp_path / "m.onnx")
    assert meta["params"] == str(result["params"])


def test_weight_average_is_one_network_holding_the_mean(tiny_npz, tmp_path):
    pytest.importorskip("tensorflow")
    import onnx

    from moodstream.models.architecture import build_from_config, count_params
    from moodstream.models.export import export

    first, second = build_from_config(TINY_ARCH), build_from_config(TINY_ARCH)
    second.set_weights([w + 1.0 for w in first.get_weights()])
    averaged = averaging.weight_average([first, second])
    for got, w in zip(averaged.get_weights(), first.get_weights(), strict=True):
        np.testing.assert_allclose(got, w + 0.5, rtol=1e-6)
    wider = build_from_config({**TINY_ARCH, "block_filters": [8, 8, 8, 8]})
    with pytest.raises(ValueError, match="one network"):
        averaging.weight_average([first, wider])

    single, soup = tmp_path / "single.onnx", tmp_path / "soup.onnx"
    export(first, single, recipe=TINY_ARCH, data=tiny_npz, sidecar=False, tta="none")
    meta = export([first, second], soup, data=tiny_npz, sidecar=False, tta="none",
                  average_weights=True)
    assert meta["params"] == str(count_params(first)[0])  # one network's cost, not two
    assert len(onnx.load(soup).graph.node) == len(onnx.load(single).graph.node)
    assert json.loads(meta["recipe"])["name"] == "weight average"
