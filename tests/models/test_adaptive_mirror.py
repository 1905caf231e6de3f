"""The mirror pass only where the network is unsure (models/adaptive_mirror.py and its runtime
in detection/emotion_model.py), on the shipped float graph."""

import numpy as np
import pytest

from moodstream.detection.emotion_model import (
    UNWEIGHTED,
    EmotionModel,
    class_weights,
    network_outputs,
    with_mirror_where_unsure,
)
from moodstream.detection.onnx_runtime import cpu_session
from moodstream.models.adaptive_mirror import fit_mirror_below, without_mirror
from moodstream.models.quantize import quantize

from .conftest import SHIPPED_MODEL

onnx = pytest.importorskip("onnx")


def _faces(n: int = 40, seed: int = 0) -> np.ndarray:
    rng = np.random.default_rng(seed)
    return (rng.integers(0, 256, (n, 48, 48, 1)) / 127.5 - 1).astype(np.float32)


def _metadata(model) -> dict[str, str]:
    return {p.key: p.value for p in model.metadata_props}


def test_the_network_without_its_mirror_gives_the_in_graph_average_back():
    shipped = onnx.load(str(SHIPPED_MODEL))
    network = without_mirror(shipped)
    assert not any(n.name.startswith("tta_mirror/") or n.op_type == "Slice"
                   for n in network.graph.node)
    assert [o.name for o in network.graph.output] == ["probabilities", UNWEIGHTED]
    session = cpu_session(network.SerializeToString())
    run = network_outputs(session, session.get_inputs()[0].name)
    x = _faces()
    full = cpu_session(SHIPPED_MODEL).run(None, {"input": x})[0]
    weights = class_weights(_metadata(shipped))
    # Mirroring every face is the graph's own mirror pass; mirroring none is the network.
    np.testing.assert_allclose(with_mirror_where_unsure(run, x, 2.0, weights), full,
                               atol=1e-5)
    np.testing.assert_allclose(with_mirror_where_unsure(run, x, 0.0, weights), run(x)[0],
                               atol=1e-6)
    with pytest.raises(ValueError, match="no mirror pass"):
        without_mirror(network)


def test_only_the_unsure_faces_go_through_the_mirror_pass():
    sure = np.array([[0.9, 0.1], [0.5, 0.5], [0.2, 0.8], [0.6, 0.4]], np.float32)
    calls = []

    def run(batch):  # the network: its probabilities, and the same before class weights
        calls.append(batch[:, 0, :, 0].copy())
        probs = sure.copy() if len(calls) == 1 else np.tile([0.0, 1.0], (len(batch), 1))
        return probs, probs.copy()

    batch = np.arange(4 * 2, dtype=np.float32).reshape(4, 1, 2, 1)
    out = with_mirror_where_unsure(run, batch, 0.7, np.ones(2, np.float32))
    assert len(calls) == 2 and len(calls[1]) == 2  # faces 1 and 3: top probability < 0.7
    np.testing.assert_array_equal(calls[1], batch[[1, 3], 0, ::-1, 0])  # mirrored
    np.testing.assert_allclose(out[[0, 2]], sure[[0, 2]])
    np.testing.assert_allclose(out[1], [0.25, 0.75])
    np.testing.assert_allclose(out[3], [0.3, 0.7])


def test_the_threshold_is_the_lowest_that_keeps_the_accuracy_of_mirroring_every_face():
    rng = np.random.default_rng(2)
    n = 400
    labels = rng.integers(0, 7, n)
    both = np.full((n, 7), 0.05, np.float32)
    both[np.arange(n), labels] = 0.7  # with the mirror every face is right
    plain = both.copy()
    top = rng.uniform(0.2, 0.95, n)
    wrong = top < np.quantile(top, 0.3)  # the network alone errs on its least sure 30%
    plain[np.arange(n), labels] = np.where(wrong, 0.05, top)
    plain[np.arange(n), (labels + 1) % 7] = np.where(wrong, top, 0.05)
    fit = fit_mirror_below(plain, both, labels, max_drop=0.0, min_recall=0.0)
    assert fit["every_face_accuracy"] == 1.0 and fit["accuracy"] == 1.0
    assert 0.3 <= fit["share"] <= 0.36  # the lowest share of SHARES that covers them
    loose = fit_mirror_below(plain, both, labels, max_drop=0.2, min_recall=0.0)
    assert loose["share"] < fit["share"]


@pytest.fixture(scope="module")
def adaptive_int8(tmp_path_factory, tiny_npz):
    out = tmp_path_factory.mktemp("adaptive") / "adaptive-int8.onnx"
    quantize(SHIPPED_MODEL, out, calibration=32, data=tiny_npz, mirror="adaptive")
    return out


def test_quantize_makes_an_adaptive_int8_model_the_classifier_runs(adaptive_int8):
    meta = _metadata(onnx.load(str(adaptive_int8)))
    assert meta["tta"] == "adaptive" and meta["tta_fitted_on"] == "PublicTest"
    assert 0.0 < float(meta["tta_mirror_below"]) <= 1.0
    assert 0.0 < float(meta["tta_mirrored_share"]) <= 1.0
    model = EmotionModel(adaptive_int8)
    assert model.mirror_below == float(meta["tta_mirror_below"])
    crops = np.random.default_rng(3).integers(0, 256, (6, 48, 48), dtype=np.uint8)
    probs = model.predict(crops)
    assert probs.shape == (6, 7) and np.allclose(probs.sum(axis=1), 1, atol=1e-4)


def test_a_model_without_a_mirror_pass_cannot_be_made_adaptive(tmp_path, tiny_npz):
    plain = onnx.load(str(SHIPPED_MODEL))
    for prop in plain.metadata_props:
        if prop.key == "tta":
            prop.value = "none"
    onnx.save(plain, tmp_path / "plain.onnx")
    with pytest.raises(ValueError, match="no mirror pass"):
        quantize(tmp_path / "plain.onnx", tmp_path / "x.onnx", calibration=8, data=tiny_npz,
                 mirror="adaptive")
    with pytest.raises(ValueError, match="mirror pass"):
        quantize(SHIPPED_MODEL, tmp_path / "x.onnx", calibration=8, data=tiny_npz,
                 mirror="sometimes")
