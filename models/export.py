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

from models.architecture import CLASSES

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
    from models.architecture import build_from_config

    full = build_from_config(recipe, with_blur=True)
    for layer in full.layers:
        if layer.weights:
            layer.set_weights(model.get_layer(layer.name).get_weights())
    return full


def onnx_accuracy(proto_or_path, x_uint8, y, threads: int = 2, batch: int = 256) -> float:
    """Accuracy of an ONNX model (bytes/ModelProto/path) on uint8 (N, H, W, 1) images."""
    import numpy as np
    import onnxruntime as ort

    from models.data import normalise

    src = proto_or_path.SerializeToString() if hasattr(proto_or_path, "SerializeToString") \
        else str(proto_or_path)
    so = ort.SessionOptions()
    so.intra_op_num_threads = threads
    sess = ort.InferenceSession(src, so, providers=["CPUExecutionProvider"])
    name = sess.get_inputs()[0].name
    preds = [sess.run(None, {name: normalise(x_uint8[i:i + batch])})[0].argmax(1)
             for i in range(0, len(x_uint8), batch)]
    return float(np.mean(np.concatenate(preds) == y))


def export(model_or_path, out=DEFAULT_OUT, recipe: dict | None = None,
           extra: dict | None = None, opset: int = 13, data=None, measure: bool = True,
           sidecar: bool = True) -> dict:
    """Export to ``out``; return the metadata dict written.

    ``model_or_path``: a Keras model, a ``.keras`` file, or a run directory (uses best.keras
    and reads config.json / result.json / state.json from it).
    """
    import keras
    import onnx

    from models.architecture import count_params
    from models.data import OFFSET, SCALE, load_split

    extra = dict(extra or {})
    if isinstance(model_or_path, (str, os.PathLike)):
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
        model = keras.models.load_model(p, compile=False)
    else:
        model = model_or_path
    blur = float((recipe or {}).get("input_blur_sigma") or 0.0)
    if blur > 0 and not any(layer.name == "input_blur" for layer in model.layers):
        model = _with_input_blur(model, recipe)
        extra.setdefault("input_blur_sigma", str(blur))
    h, w = (int(d) for d in model.inputs[0].shape[1:3])
    total, trainable = count_params(model)
    proto = keras_to_onnx(model, opset=opset)

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
        "framework": f"keras {keras.__version__} -> tf2onnx opset {opset}",
        "exported_at": _dt.datetime.now(_dt.UTC).strftime("%Y-%m-%dT%H:%M:%SZ"),
    }
    for k, v in extra.items():
        meta[k] = v if isinstance(v, str) else json.dumps(v)
    if measure:
        xv, yv = load_split("val", h if h == w else (h, w), data)
        xt, yt = load_split("test", h if h == w else (h, w), data)
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
    import argparse

    from models.cli import configure_export, run_export

    p = argparse.ArgumentParser(prog="python -m models.export", description=__doc__,
                                formatter_class=argparse.RawDescriptionHelpFormatter)
    configure_export(p)
    return run_export(p.parse_args(argv))


if __name__ == "__main__":
    raise SystemExit(main())
