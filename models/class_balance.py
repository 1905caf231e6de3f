"""Class weights on the output, fitted on PublicTest, so that no expression is starved.

FER-2013's Training split has 436 disgust faces against 7,215 happy ones, and a network
trained on it under-calls the rare and the confusable classes (fear, disgust). Weighting the
probabilities per class (p_c * w_c, then renormalised: a shift of the class priors) moves
the decision boundaries without retraining. The weights are fitted on the validation split
(PublicTest) and go into the ONNX graph; PrivateTest stays untouched for measuring.
"""

from __future__ import annotations

import numpy as np

PENALTY = 2.0  # accuracy points given up per point of recall below the floor


def recalls(pred: np.ndarray, y: np.ndarray, classes: int) -> np.ndarray:
    return np.array([np.mean(pred[y == c] == c) if np.any(y == c) else 1.0
                     for c in range(classes)])


def _score(probs, y, log_w, floor: float) -> float:
    pred = (probs * np.exp(log_w)).argmax(1)
    shortfall = np.clip(floor - recalls(pred, y, probs.shape[1]), 0, None).sum()
    return float(np.mean(pred == y) - PENALTY * shortfall)


def fit_class_weights(probs: np.ndarray, y: np.ndarray, floor: float = 0.0,
                      rounds: int = 4, span: float = 1.0, steps: int = 41) -> np.ndarray:
    """Per-class weights that maximise accuracy on (probs, y) while lifting every class's
    recall towards ``floor``: coordinate ascent over log-weights in [-span, span]."""
    log_w = np.zeros(probs.shape[1])
    grid = np.linspace(-span, span, steps)
    for _ in range(rounds):
        for c in range(len(log_w)):
            best, best_g = _score(probs, y, log_w, floor), log_w[c]
            for g in grid:
                trial = log_w.copy()
                trial[c] = g
                score = _score(probs, y, trial, floor)
                if score > best + 1e-12:
                    best, best_g = score, g
            log_w[c] = best_g
    return np.exp(log_w)


def fold_into_classifier_bias(model, weights, layer: str = "classifier_conv") -> bool:
    """Put the weights into the network itself where that is exact; return whether it was.

    The mini-Xception's probabilities are softmax(mean over the map of the last convolution),
    so p_c * w_c renormalised is softmax(logits + log w_c): the last convolution's bias plus
    log w_c. The graph keeps the network's own nodes and parameter count. Not exact after an
    average of several passes (mirror, ensemble), which keep ``with_class_weights``."""
    try:
        conv = model.get_layer(layer)
    except ValueError:
        return False
    kernel, *bias = conv.get_weights()
    if not bias or bias[0].shape != (len(weights),) or model.layers[-1].name != "probabilities":
        return False
    conv.set_weights([kernel, bias[0] + np.log(np.asarray(weights, dtype=bias[0].dtype))])
    return True


def with_class_weights(proto, weights):
    """Append p * w / sum(p * w) to the graph's output (same name, same shape)."""
    from onnx import TensorProto, helper

    graph = proto.graph
    out = graph.output[0]
    inner = f"{out.name}__unweighted"
    for node in graph.node:
        node.output[:] = [inner if name == out.name else name for name in node.output]
    graph.initializer.extend([
        helper.make_tensor("class_weights", TensorProto.FLOAT, [len(weights)],
                           [float(w) for w in weights]),
        helper.make_tensor("class_weight_axes", TensorProto.INT64, [1], [1]),
    ])
    graph.node.extend([
        helper.make_node("Mul", [inner, "class_weights"], ["weighted"], name="class_weight"),
        # Opset 13: ReduceSum takes its axes as an input.
        helper.make_node("ReduceSum", ["weighted", "class_weight_axes"], ["weighted_sum"],
                         keepdims=1, name="class_weight_sum"),
        helper.make_node("Div", ["weighted", "weighted_sum"], [out.name],
                         name="class_weight_norm"),
    ])
    return proto
