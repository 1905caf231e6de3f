"""Per-class output weights fitted on the validation split (models/class_balance.py)."""

from __future__ import annotations

import numpy as np
import pytest

from moodstream.models.class_balance import fit_class_weights, recalls, with_class_weights


def starved(n=700, seed=0):
    """Class 2 is always second to class 0 by a small margin: its recall is 0."""
    rng = np.random.default_rng(seed)
    y = rng.integers(0, 3, n)
    p = rng.random((n, 3)) * 0.1
    p[np.arange(n), y] += 0.6
    p[y == 2, 0] += 0.7
    return p / p.sum(1, keepdims=True), y


def test_weights_lift_a_starved_class_to_the_floor():
    p, y = starved()
    assert recalls(p.argmax(1), y, 3)[2] == 0.0
    w = fit_class_weights(p, y, floor=0.5)
    after = recalls((p * w).argmax(1), y, 3)
    assert after.min() >= 0.5
    assert np.mean((p * w).argmax(1) == y) > np.mean(p.argmax(1) == y)


def test_without_a_floor_and_nothing_to_gain_the_weights_stay_one():
    y = np.repeat(np.arange(3), 50)
    p = np.full((150, 3), 0.1)
    p[np.arange(150), y] = 0.8
    np.testing.assert_allclose(fit_class_weights(p, y), 1.0)


def test_the_weights_in_the_graph_renormalise_the_probabilities():
    onnx = pytest.importorskip("onnx")
    import onnxruntime as ort
    from onnx import TensorProto, helper

    x = helper.make_tensor_value_info("x", TensorProto.FLOAT, [None, 3])
    out = helper.make_tensor_value_info("probabilities", TensorProto.FLOAT, [None, 3])
    graph = helper.make_graph([helper.make_node("Softmax", ["x"], ["probabilities"], axis=1)],
                              "g", [x], [out])
    proto = helper.make_model(graph, opset_imports=[helper.make_opsetid("", 13)])
    w = np.array([1.0, 2.0, 0.5])
    proto = with_class_weights(proto, w)
    onnx.checker.check_model(proto)
    sess = ort.InferenceSession(proto.SerializeToString(), providers=["CPUExecutionProvider"])
    logits = np.random.default_rng(0).normal(size=(4, 3)).astype(np.float32)
    got = sess.run(None, {"x": logits})[0]
    soft = np.exp(logits) / np.exp(logits).sum(1, keepdims=True)
    want = soft * w / (soft * w).sum(1, keepdims=True)
    np.testing.assert_allclose(got, want, rtol=1e-5)
