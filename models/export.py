"""Export a trained Keras mini-Xception to ONNX with the metadata contract the pipeline reads.

ONNX metadata_props written:

- ``classes``                "angry,disgust,fear,happy,sad,surprise,neutral"
- ``input_height``, ``input_width``   e.g. "64"
- ``scale``, ``offset``      model input = gray_pixel * scale + offset
- ``recipe``                 JSON of the training config
- ``params``, ``trainable_params``
- ``privatetest_accuracy``, ``valtest_accuracy``  measured on the exported ONNX file itself
  with onnxruntime (PrivateTest = final test split, PublicTest = validation split)
- ``input_layout`` "NHWC", ``output`` "probabilities", ``framework``, ``exported_at``, and
  training facts (``best_epoch``, ``epochs_run``, ``train_seconds``) when known.

Input: float32 (N, H, W, 1), dynamic N. Output: float32 (N, 7) softmax probabilities.
"""

from __future__ import annotations

import datetime as _dt
import json
import os
from pathlib import Path

from moodstream.detection.onnx_runtime import cpu_session
from moodstream.models.architecture import CLASSES, load_keras

DEFAULT_OUT = Path(__file__).resolve().parent / "emotion.onnx"
REQUIRED_KEYS = ("classes", "input_height", "input_width", "scale", "offset", "recipe",
                 "params", "privatetest_accuracy", "valtest_accuracy")


def keras_to_onnx(model, opset: int = 13):
    """Convert a Keras model to an ONNX ModelProto with a dynamic batch dimension."""
    os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")
    import tensorflow as tf
    import tf2onnx

    h, w, c = model.inputs[0].shape[1:]
    spec = (tf.TensorSpec((None, h, w, c), tf.float32, name="input"),)
    if not getattr(model, "output_names", None):
        model.output_names = ["probabilities"]
    proto, _ = tf2onnx.convert.from_keras(model, input_signature=spec, opset=opset)
    return proto


def _with_input_blur(model, recipe: dict):
    """The inference model: fixed input blur + the trained network (weights copied by name)."""
    from moodstream.models.architecture import build_from_config

    full = build_from_config(recipe, with_blur=True)
    for layer in full.layers:
        if layer.weights:
            layer.set_weights(model.get_layer(layer.name).get_weights())
    return full


def ensemble(models):
    """One Keras model whose output is the mean of the members' probabilities (an ensemble
    inside the graph: one call, one file). The members must share the input size."""
    import keras

    shape = tuple(models[0].inputs[0].shape[1:])
    if any(tuple(m.inputs[0].shape[1:]) != shape for m in models):
        raise ValueError("ensemble members must have the same input size")
    inp = keras.Input(shape, name="input")
    outs = []
    for i, member in enumerate(models):
        # Nested models keep their own layer names; a distinct model name avoids a clash.
        wrapped = keras.Model(member.inputs[0], member.outputs[0], name=f"member{i}")
        outs.append(wrapped(inp))
    out = keras.layers.Average(name="ensemble_mean")(outs)
    return keras.Model(inp, out, name="ensemble")


def padded_channels(count: int, multiple: int) -> int:
    """``count`` rounded up to ``multiple`` when that adds at most half again, else as is:
    12 -> 16 and 24 -> 32 pay for themselves, 8 -> 16 (twice the work) does not."""
    if multiple <= 1:
        return count
    up = -(-count // multiple) * multiple
    return up if up <= 1.5 * count else count


def pad_channels(model, recipe: dict | None, multiple: int = 16):
    """The same function with layer widths padded to a multiple of ``multiple`` channels.

    onnxruntime runs convolutions in its blocked NCHWc layout (16 channels a block with
    AVX-512) only where the channel count fits the blocks; a width-1.5 network has 12 and 24
    channels in its two largest layers, which fall back to plain kernels and reorders. The
    padded channels carry zero weights, and their batch norm maps them to zero, so every
    output is unchanged; the trained parameters stay what they were (the graph holds a few
    thousand extra zeros). Returns ``model`` itself when nothing needs padding."""
    import keras
    import numpy as np

    from moodstream.models.architecture import (
        PAPER_BASE_FILTERS,
        PAPER_BLOCK_FILTERS,
        build_from_config,
    )

    if not recipe or "input_size" not in recipe:
        return model
    width = recipe.get("width", 1.0)

    def scaled(n: int) -> int:  # as build_mini_xception scales them
        return max(1, int(round(n * width)))

    base = scaled(recipe.get("base_filters", PAPER_BASE_FILTERS))
    blocks = [scaled(b) for b in recipe.get("block_filters", PAPER_BLOCK_FILTERS)]
    new_base = padded_channels(base, multiple)
    new_blocks = [padded_channels(b, multiple) for b in blocks]
    if new_base == base and new_blocks == blocks:
        return model
    wide = build_from_config({**recipe, "width": 1.0, "base_filters": new_base,
                              "block_filters": new_blocks}, with_blur=True)
    for layer in wide.layers:
        if not layer.weights:
            continue
        source = model.get_layer(layer.name).get_weights()
        target = [np.zeros_like(w) for w in layer.get_weights()]
        if isinstance(layer, keras.layers.BatchNormalization):
            target[3][:] = 1.0  # moving variance of a padded channel: x = 0 maps to 0
        for src, dst in zip(source, target, strict=True):
            dst[tuple(slice(0, n) for n in src.shape)] = src
        layer.set_weights(target)
    return wide


def with_flip_tta(proto):
    """Test-time augmentation inside the graph: the network runs on each face and on its
    mirror image, and the output is the mean of the two probability rows. The mirror pass is
    a second copy of the network's nodes sharing its weights, not one pass over a batch of
    twice the faces: on one onnxruntime thread two passes of 32 faces ran 10-20% faster
    than one of 64. Callers see the same input and output as before."""
    from onnx import TensorProto, helper

    graph = proto.graph
    if any(node.name == "tta_flip" for node in graph.node):
        return proto  # already wrapped
    inp, out = graph.input[0], graph.output[0]
    inner_out = f"{out.name}__tta"
    weights = {t.name for t in graph.initializer}
    network = list(graph.node)
    for node in network:
        node.output[:] = [inner_out if name == out.name else name for name in node.output]

    def mirrored(name: str) -> str:
        if name == inp.name:
            return "tta_mirrored"
        return name if name in weights or not name else f"tta_mirror/{name}"

    copies = []
    for node in network:
        twin = type(node)()
        twin.CopyFrom(node)
        twin.name = f"tta_mirror/{node.name}"
        twin.input[:] = [mirrored(name) for name in node.input]
        twin.output[:] = [mirrored(name) for name in node.output]
        copies.append(twin)
    graph.initializer.extend([
        helper.make_tensor("tta_starts", TensorProto.INT64, [1], [-1]),
        helper.make_tensor("tta_ends", TensorProto.INT64, [1], [-(2**62)]),
        helper.make_tensor("tta_axes", TensorProto.INT64, [1], [2]),  # NHWC: width
        helper.make_tensor("tta_steps", TensorProto.INT64, [1], [-1]),
    ])
    flip = helper.make_node("Slice", [inp.name, "tta_starts", "tta_ends", "tta_axes",
                                      "tta_steps"], ["tta_mirrored"], name="tta_flip")
    mean = helper.make_node("Mean", [inner_out, mirrored(inner_out)], [out.name],
                            name="tta_mean")
    nodes = network + [flip] + copies + [mean]
    del graph.node[:]
    graph.node.extend(nodes)
    return proto


def onnx_probabilities(proto_or_path, x_uint8, threads: int = 2, batch: int = 256):
    """Probabilities of an ONNX model (ModelProto or path) for uint8 (N, H, W, 1) images."""
    import numpy as np

    from moodstream.models.data import normalise

    src = proto_or_path.SerializeToString() if hasattr(proto_or_path, "SerializeToString") \
        else str(proto_or_path)
    sess = cpu_session(src, threads, arena=True)
    name = sess.get_inputs()[0].name
    return np.concatenate([sess.run(None, {name: normalise(x_uint8[i:i + batch])})[0]
                           for i in range(0, len(x_uint8), batch)])


def onnx_accuracy(proto_or_path, x_uint8, y, threads: int = 2, batch: int = 256) -> float:
    """Accuracy of an ONNX model (ModelProto or path) on uint8 (N, H, W, 1) images."""
    import numpy as np

    probs = onnx_probabilities(proto_or_path, x_uint8, threads, batch)
    return float(np.mean(probs.argmax(1) == y))


def _load_source(model_or_path, recipe: dict | None, extra: dict):
    """(Keras model, recipe) from a model, a .keras file or a run directory (best.keras; its
    config.json is the recipe, and its training facts go into ``extra``)."""
    if not isinstance(model_or_path, (str, os.PathLike)):
        return model_or_path, recipe
    p = Path(model_or_path)
    if p.is_dir():
        if recipe is None and (p / "config.json").exists():
            recipe = json.loads((p / "config.json").read_text())
        info = {}
        if (p / "state.json").exists():  # run in progress: 0-based epochs in state.json
            st = json.loads((p / "state.json").read_text())
            info = {"best_epoch": st["best_epoch"] + 1, "epochs_run": st["epoch"] + 1,
                    "train_seconds": round(st["train_seconds"], 1)}
        if (p / "result.json").exists():
            info.update(json.loads((p / "result.json").read_text()))
        for k in ("best_epoch", "epochs_run", "train_seconds", "seconds_per_epoch"):
            if k in info:
                extra.setdefault(k, info[k])
        p = p / "best.keras"
    elif recipe is None and (p.parent / "config.json").exists():
        recipe = json.loads((p.parent / "config.json").read_text())
    return load_keras(p), recipe


def export(model_or_path, out=DEFAULT_OUT, recipe: dict | None = None,
           extra: dict | None = None, opset: int = 13, data=None, measure: bool = True,
           sidecar: bool = True, tta: str = "flip", balance_recall: float | None = None,
           pad_to: int = 16, average_weights: bool = False) -> dict:
    """Export to ``out``; return the metadata dict written.

    ``tta``: "flip" averages each face with its mirror image inside the graph (+0.7 points
    PrivateTest, +0.9 PublicTest for the shipped model, at twice the network cost); "none".

    ``balance_recall``: fit per-class output weights on PublicTest that keep accuracy while
    lifting every class's recall towards this floor (models/class_balance.py), in the graph.

    ``pad_to``: pad layer widths to this many channels where it pays (``pad_channels``: the
    same outputs, faster on onnxruntime's blocked kernels); 0 = off. ``params`` in the
    metadata stays the trained count; ``graph_params`` counts the padded graph.

    ``model_or_path``: a Keras model, a ``.keras`` file, or a run directory (uses best.keras
    and reads config.json / result.json / state.json from it); or a list of these, exported
    as one ensemble (the mean of their probabilities), or with ``average_weights`` as one
    network holding the mean of their weights (runs of the same network from a common start;
    batch-norm statistics measured again on Training: models/averaging.py).
    """
    import keras
    import onnx

    from moodstream.models.architecture import count_params
    from moodstream.models.data import OFFSET, SCALE, load_split

    extra = dict(extra or {})
    if isinstance(model_or_path, list | tuple):
        loaded = [_load_source(m, None, {}) for m in model_or_path]
        members = [r or {} for _, r in loaded]
        if average_weights:
            from moodstream.models import averaging

            model = averaging.weight_average([m for m, _ in loaded])
            side = int(model.inputs[0].shape[1])
            averaging.refresh_batch_norm(model, load_split("train", side, data)[0])
            recipe = recipe or {"name": "weight average", "members": members}
            total, trainable = count_params(model)
            if pad_to:
                model = pad_channels(model, loaded[0][1], pad_to)
        else:
            model = ensemble([m for m, _ in loaded])
            recipe = recipe or {"name": "ensemble", "members": members}
            total, trainable = count_params(model)
            if pad_to:
                model = ensemble([pad_channels(m, r, pad_to) for m, r in loaded])
    else:
        model, recipe = _load_source(model_or_path, recipe, extra)
        blur = float((recipe or {}).get("input_blur_sigma") or 0.0)
        if blur > 0 and not any(layer.name == "input_blur" for layer in model.layers):
            model = _with_input_blur(model, recipe)
            extra.setdefault("input_blur_sigma", str(blur))
        total, trainable = count_params(model)
        if pad_to:
            model = pad_channels(model, recipe, pad_to)
    graph_params = count_params(model)[0]
    h, w = (int(d) for d in model.inputs[0].shape[1:3])
    proto = keras_to_onnx(model, opset=opset)
    if tta == "flip":
        proto = with_flip_tta(proto)
    elif tta != "none":
        raise ValueError(f"unknown test-time augmentation {tta!r}: flip or none")
    size = h if h == w else (h, w)
    # PublicTest fits the class weights and is measured: read once for both.
    xv, yv = load_split("val", size, data) if measure or balance_recall is not None \
        else (None, None)
    weights = None
    if balance_recall is not None:
        from moodstream.models.class_balance import (
            fit_class_weights,
            fold_into_classifier_bias,
            with_class_weights,
        )

        weights = fit_class_weights(onnx_probabilities(proto, xv), yv, balance_recall)
        rebiased = None
        if tta == "none":  # a copy, so the caller's model stays as it was
            rebiased = keras.models.clone_model(model)
            rebiased.set_weights(model.get_weights())
        if rebiased is not None and fold_into_classifier_bias(rebiased, weights):
            proto = keras_to_onnx(rebiased, opset=opset)  # the network alone, re-biased
        else:
            proto = with_class_weights(proto, weights)

    meta = {
        "classes": ",".join(CLASSES),
        "input_height": str(h),
        "input_width": str(w),
        "scale": repr(SCALE),
        "offset": repr(OFFSET),
        "input_layout": "NHWC",
        "output": "probabilities",
        "recipe": json.dumps(recipe or {}, sort_keys=True),
        "params": str(total),
        "trainable_params": str(trainable),
        "graph_params": str(graph_params),
        "framework": f"keras {keras.__version__} -> tf2onnx opset {opset}",
        "tta": tta,
        **({"class_weights": json.dumps([round(float(v), 4) for v in weights]),
            "balance_recall": str(balance_recall)} if weights is not None else {}),
        "exported_at": _dt.datetime.now(_dt.UTC).strftime("%Y-%m-%dT%H:%M:%SZ"),
    }
    for k, v in extra.items():
        meta[k] = v if isinstance(v, str) else json.dumps(v)
    if measure:
        xt, yt = load_split("test", size, data)
        meta["valtest_accuracy"] = f"{onnx_accuracy(proto, xv, yv):.4f}"
        meta["privatetest_accuracy"] = f"{onnx_accuracy(proto, xt, yt):.4f}"
    else:
        meta.setdefault("valtest_accuracy", "nan")
        meta.setdefault("privatetest_accuracy", "nan")

    del proto.metadata_props[:]
    for k, v in meta.items():
        entry = proto.metadata_props.add()
        entry.key, entry.value = k, str(v)
    proto.doc_string = "moodstream mini-Xception facial expression classifier"
    onnx.checker.check_model(proto)
    out = Path(out)
    out.parent.mkdir(parents=True, exist_ok=True)
    tmp = out.with_suffix(out.suffix + ".tmp")
    onnx.save(proto, tmp)
    os.replace(tmp, out)  # atomic: readers never see a half-written model
    if sidecar:
        side = dict(meta)
        side["recipe"] = recipe or {}
        side["file_bytes"] = out.stat().st_size
        out.with_suffix(".json").write_text(json.dumps(side, indent=2) + "\n")
    return meta


def read_metadata(path) -> dict:
    """Metadata props of an ONNX file (onnxruntime only; no TF / onnx package needed)."""
    import onnxruntime as ort

    sess = ort.InferenceSession(str(path), providers=["CPUExecutionProvider"])
    return dict(sess.get_modelmeta().custom_metadata_map)


def main(argv=None):
    from moodstream.models.cli import configure_export, module_main, run_export

    return module_main("export", __doc__, configure_export, run_export, argv)


if __name__ == "__main__":
    raise SystemExit(main())
