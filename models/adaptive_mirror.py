"""The mirror pass only where the network is unsure ("tta": "adaptive").

Averaging a face with its mirror image buys the shipped network 1.7 points of PrivateTest at
twice the cost a face. The gain comes from the faces the network is unsure of: a face whose
top probability is high keeps its label with or without its mirror. So the adaptive model is
the network alone, and the runtime (detection/emotion_model.with_mirror_where_unsure) runs
the mirror pass on the faces whose top probability is under ``tta_mirror_below``, a
threshold fitted on PublicTest: the lowest that keeps PublicTest accuracy within
``max_drop`` of mirroring every face, with every class's recall at the floor or above.

The quantizer (models/quantize.py) removes the mirror from the float graph first, so that
the INT8 network is calibrated once and both passes of a face run through the same one.
"""

from __future__ import annotations

import numpy as np

from moodstream.detection.emotion_model import (
    UNWEIGHTED,
    class_weights,
    network_outputs,
    with_mirror_where_unsure,
)

# Thresholds tried: the top probabilities under which these shares of PublicTest's faces fall.
SHARES = tuple(round(0.05 * k, 2) for k in range(1, 21))


def without_mirror(proto):
    """A copy of a graph made by export.with_flip_tta with the mirror branch removed: the
    mirror mean becomes the network's own probabilities, and every node that only fed the
    mirror branch goes (the Slice, the twin network, and in an INT8 graph its quantize
    pairs)."""
    import onnx
    from onnx import helper

    model = onnx.ModelProto()
    model.CopyFrom(proto)
    graph = model.graph
    mean = next((n for n in graph.node if n.name == "tta_mean"), None)
    if mean is None:
        raise ValueError("the model has no mirror pass in its graph (export with tta='flip')")
    nodes = [helper.make_node("Identity", [mean.input[0]], list(mean.output),
                              name="tta_network_only") if n is mean else n
             for n in graph.node]
    if mean.output[0] != graph.output[0].name:  # class weights follow: keep what they weigh
        if mean.output[0] != UNWEIGHTED:
            nodes.append(helper.make_node("Identity", [mean.output[0]], [UNWEIGHTED],
                                          name="tta_unweighted"))
        out = onnx.ValueInfoProto()
        out.CopyFrom(graph.output[0])
        out.name = UNWEIGHTED
        graph.output.append(out)
    needed = {o.name for o in graph.output}
    kept = []
    for node in reversed(nodes):  # topological order: consumers come after producers
        if any(name in needed for name in node.output):
            kept.append(node)
            needed.update(name for name in node.input if name)
    del graph.node[:]
    graph.node.extend(reversed(kept))
    initializers = [t for t in graph.initializer if t.name in needed]
    del graph.initializer[:]
    graph.initializer.extend(initializers)
    values = [v for v in graph.value_info if v.name in needed]
    del graph.value_info[:]
    graph.value_info.extend(values)
    onnx.checker.check_model(model)
    return model


def _min_recall(labels: np.ndarray, predicted: np.ndarray) -> float:
    return min(float(np.mean(predicted[labels == c] == c)) for c in np.unique(labels))


def fit_mirror_below(plain: np.ndarray, both: np.ndarray, labels: np.ndarray,
                     max_drop: float = 0.001, min_recall: float = 0.45) -> dict:
    """The threshold for with_mirror_where_unsure from the probabilities of faces without the
    mirror pass (``plain``) and with it (``both``): the lowest of the SHARES thresholds whose
    accuracy is within ``max_drop`` of mirroring every face and whose lowest class recall is
    at least ``min_recall`` (or at least mirroring every face's, when that is lower).
    Returns the threshold, the share of faces mirrored and both accuracies."""
    full_accuracy = float(np.mean(both.argmax(axis=1) == labels))
    floor = min(min_recall, _min_recall(labels, both.argmax(axis=1)))
    top = plain.max(axis=1)
    for share in SHARES:
        below = 1.0 if share >= 1 else float(np.quantile(top, share))
        unsure = top < below
        probs = np.where(unsure[:, None], both, plain)
        predicted = probs.argmax(axis=1)
        accuracy = float(np.mean(predicted == labels))
        if accuracy >= full_accuracy - max_drop and _min_recall(labels, predicted) >= floor:
            return {"below": below, "share": float(unsure.mean()), "accuracy": accuracy,
                    "every_face_accuracy": full_accuracy}
    raise AssertionError("mirroring every face meets its own accuracy")  # share 1.0 does


def adaptive_metadata(network, meta: dict[str, str], faces: np.ndarray, labels: np.ndarray,
                      max_drop: float = 0.001, min_recall: float = 0.45) -> dict[str, str]:
    """The metadata that makes ``network`` (a graph without_mirror made, float or INT8)
    adaptive: its threshold fitted on ``faces`` (normalised NHWC PublicTest faces) and
    ``labels``; ``meta``: the model's metadata (its class weights)."""
    from moodstream.detection.onnx_runtime import cpu_session

    session = cpu_session(network.SerializeToString(), 2, arena=True)
    run = network_outputs(session, session.get_inputs()[0].name)
    weights = class_weights(meta)

    def probabilities(below: float) -> np.ndarray:
        return np.concatenate([with_mirror_where_unsure(run, faces[i:i + 256], below, weights)
                               for i in range(0, len(faces), 256)])

    fit = fit_mirror_below(probabilities(0.0), probabilities(2.0), labels, max_drop,
                           min_recall)
    return {"tta": "adaptive", "tta_mirror_below": f"{fit['below']:.4f}",
            "tta_mirrored_share": f"{fit['share']:.3f}", "tta_fitted_on": "PublicTest"}
