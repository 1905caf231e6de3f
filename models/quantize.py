"""INT8 static quantization of the emotion model with onnxruntime's quantization tools.

The convolutional body (Conv, Relu, MaxPool and the residual Add, from the first convolution
to the global pooling) runs in INT8. What must stay float stays float: the per-image
standardisation in front (a mean and a variance over the face: its output range is what the
first convolution's input scale is calibrated on), the mirror Slice, and the head (global
pooling, softmax, the mirror mean and the class weights), which works on seven numbers a face
and decides the label. Activation ranges are calibrated on FER-2013 Training faces, never on
the test splits that judge the result.

Needs onnx and onnxruntime only (no TensorFlow).
"""

from __future__ import annotations

import datetime as _dt
import json
import logging
import os
import tempfile
import time
from pathlib import Path

import numpy as np

MODELS_DIR = Path(__file__).resolve().parent
DEFAULT_FLOAT = MODELS_DIR / "emotion.onnx"
DEFAULT_INT8 = MODELS_DIR / "emotion-int8.onnx"

# The ops of the body; anything else (standardisation, mirror, head) keeps float.
BODY_OPS = ("Conv", "Relu", "MaxPool", "Add")
FORMATS = ("qdq", "qoperator")
# What the INT8 model must keep to replace the float one (docs/model.md): PrivateTest within
# 0.3 points of the float model's, and every expression's recall at 0.45 or above.
MAX_ACCURACY_DROP = 0.003
MIN_CLASS_RECALL = 0.45
METHODS = ("minmax", "entropy", "percentile")
MIRRORS = ("flip", "adaptive")


def body_nodes(model) -> list[str]:
    """Names of the nodes to quantize: each chain of BODY_OPS that starts at a Conv. Graph
    nodes are in topological order, so one pass follows the chains forwards; the Add of the
    standardisation's epsilon is not reached from a Conv and stays float."""
    body_tensors: set[str] = set()
    names = []
    for node in model.graph.node:
        if node.op_type not in BODY_OPS:
            continue
        if node.op_type == "Conv" or any(name in body_tensors for name in node.input):
            names.append(node.name)
            body_tensors.update(node.output)
    return names


def calibration_faces(count: int, size: tuple[int, int], data=None, seed: int = 0,
                      scale: float = 1 / 127.5, offset: float = -1.0) -> np.ndarray:
    """``count`` Training faces drawn at random (fixed seed), normalised as the model's
    metadata says: float32 (count, H, W, 1)."""
    from moodstream.models.data import load_split

    x, _ = load_split("train", size if size[0] != size[1] else size[0], data)
    if count < 1 or count > len(x):
        raise ValueError(f"calibration faces must be 1 to {len(x)}, not {count}")
    pick = np.random.default_rng(seed).choice(len(x), count, replace=False)
    return x[np.sort(pick)].astype(np.float32) * np.float32(scale) + np.float32(offset)


class FaceBatches:
    """onnxruntime's CalibrationDataReader over normalised faces, a batch at a time."""

    def __init__(self, input_name: str, faces: np.ndarray, batch: int = 64):
        self.input_name, self.faces, self.batch = input_name, faces, batch
        self.start = 0

    def get_next(self):
        if self.start >= len(self.faces):
            return None
        chunk = self.faces[self.start:self.start + self.batch]
        self.start += self.batch
        return {self.input_name: chunk}

    def rewind(self):
        self.start = 0


def _metadata(path) -> dict[str, str]:
    import onnx

    return {p.key: p.value for p in onnx.load(str(path), load_external_data=False)
            .metadata_props}


def _save(proto, meta: dict[str, str], path: Path) -> None:
    import onnx

    del proto.metadata_props[:]
    for key, value in meta.items():
        entry = proto.metadata_props.add()
        entry.key, entry.value = key, str(value)
    onnx.save(proto, path)


def quantize(float_path=DEFAULT_FLOAT, out=DEFAULT_INT8, calibration: int = 512,
             data=None, fmt: str = "qdq", per_channel: bool = True,
             method: str = "minmax",
             seed: int = 0, activations: str = "uint8", measure: bool = True,
             sidecar: bool = True, mirror: str = "flip") -> dict:
    """Write the INT8 model of ``float_path`` to ``out``; return the metadata written.

    The float model's metadata is carried over (the classifier reads the same contract), with
    ``precision`` "int8", the quantization settings and, with ``measure``, the INT8 model's
    own PublicTest and PrivateTest accuracy in ``valtest_accuracy`` / ``privatetest_accuracy``
    (the float model's in ``float_privatetest_accuracy``).

    ``mirror``: "flip" keeps the float model's mirror pass for every face; "adaptive" runs it
    only for the faces the network is unsure of (models/adaptive_mirror.py, its threshold
    fitted on PublicTest after quantization)."""
    import onnx
    from onnxruntime.quantization import (
        CalibrationMethod,
        QuantFormat,
        QuantType,
        quantize_static,
    )
    from onnxruntime.quantization.shape_inference import quant_pre_process

    if fmt not in FORMATS:
        raise ValueError(f"unknown format {fmt!r}: one of {', '.join(FORMATS)}")
    if mirror not in MIRRORS:
        raise ValueError(f"unknown mirror pass {mirror!r}: one of {', '.join(MIRRORS)}")
    if method not in METHODS:
        raise ValueError(f"unknown calibration method {method!r}: one of {', '.join(METHODS)}")
    float_path, out = Path(float_path), Path(out)
    if not float_path.exists():
        raise FileNotFoundError(f"float model not found: {float_path}")
    meta = _metadata(float_path)
    if meta.get("precision", "float") != "float":
        raise ValueError(f"{float_path} is already quantized ({meta['precision']})")
    if mirror == "adaptive" and meta.get("tta") != "flip":
        raise ValueError(f"{float_path} has no mirror pass to make adaptive "
                         f"(tta {meta.get('tta', 'none')!r}; export with --tta flip)")
    h, w = int(meta.get("input_height", 64)), int(meta.get("input_width", 64))
    scale, offset = float(meta.get("scale", 1 / 127.5)), float(meta.get("offset", -1.0))
    faces = calibration_faces(calibration, (h, w), data, seed, scale, offset)
    out.parent.mkdir(parents=True, exist_ok=True)
    with tempfile.TemporaryDirectory(prefix="quantize-") as tmp:
        # Shape inference and constant folding first, as onnxruntime's quantizer advises. The
        # graph's shapes are static but for the batch, so ONNX's own inference is enough
        # (the symbolic one needs sympy, which nothing else here does).
        prepared = Path(tmp) / "prepared.onnx"
        source = float_path
        if mirror == "adaptive":  # one network, calibrated once, serves both passes
            from moodstream.models.adaptive_mirror import without_mirror

            source = Path(tmp) / "network.onnx"
            onnx.save(without_mirror(onnx.load(str(float_path))), source)
        quant_pre_process(str(source), str(prepared), skip_symbolic_shape=True)
        model = onnx.load(str(prepared))
        input_name = model.graph.input[0].name
        written = Path(tmp) / "int8.onnx"
        # The quantizer logs a line per tensor on the root logger: keep its warnings only.
        root = logging.getLogger()
        level = root.level
        root.setLevel(max(level, logging.WARNING))
        try:
            quantize_static(
                str(prepared), str(written), FaceBatches(input_name, faces),
                quant_format=QuantFormat.QDQ if fmt == "qdq" else QuantFormat.QOperator,
                op_types_to_quantize=list(BODY_OPS), nodes_to_quantize=body_nodes(model),
                per_channel=per_channel,
                activation_type=QuantType.QUInt8 if activations == "uint8" else QuantType.QInt8,
                weight_type=QuantType.QInt8,
                calibrate_method={"minmax": CalibrationMethod.MinMax,
                                  "entropy": CalibrationMethod.Entropy,
                                  "percentile": CalibrationMethod.Percentile}[method],
                calibration_providers=["CPUExecutionProvider"],
                extra_options={"CalibTensorRangeSymmetric": False},
            )
        finally:
            root.setLevel(level)
        proto = onnx.load(str(written))
        meta.update({
            "precision": "int8",
            "quantization": json.dumps({
                "tool": "onnxruntime.quantization.quantize_static", "format": fmt,
                "per_channel": per_channel, "calibration": method,
                "calibration_faces": calibration, "calibration_split": "Training",
                "seed": seed, "activations": activations, "weights": "int8",
                "float_model": float_path.name}, sort_keys=True),
            "float_privatetest_accuracy": meta.get("privatetest_accuracy", "nan"),
            "float_valtest_accuracy": meta.get("valtest_accuracy", "nan"),
            "valtest_accuracy": "nan", "privatetest_accuracy": "nan",
            "quantized_at": _dt.datetime.now(_dt.UTC).strftime("%Y-%m-%dT%H:%M:%SZ"),
        })
        if mirror == "adaptive":
            from moodstream.models.adaptive_mirror import adaptive_metadata
            from moodstream.models.data import load_split

            xv, yv = load_split("val", h if h == w else (h, w), data)
            xv = xv.astype(np.float32) * np.float32(scale) + np.float32(offset)
            meta.update(adaptive_metadata(proto, meta, xv, yv, min_recall=MIN_CLASS_RECALL))
        _save(proto, meta, written)
        if measure:  # on the written file, as the classifier will run it
            from moodstream.models.evaluate import evaluate

            for split, key in (("val", "valtest_accuracy"), ("test", "privatetest_accuracy")):
                rep = evaluate(written, data=data, split=split, timing=False)
                meta[key] = f"{rep['accuracy']:.4f}"
        tmp_out = out.with_suffix(out.suffix + ".tmp")
        _save(proto, meta, tmp_out)
        os.replace(tmp_out, out)  # readers never see a half-written model
    if sidecar:
        side: dict = dict(meta)
        for key in ("recipe", "quantization"):
            side[key] = json.loads(meta[key]) if meta.get(key) else {}
        side["file_bytes"] = out.stat().st_size
        out.with_suffix(".json").write_text(json.dumps(side, indent=2) + "\n")
    return meta


def compare_speed(paths, batches: int = 200, batch: int = 32, seed: int = 0,
                  data=None) -> dict[str, dict]:
    """Faces/s of each model at ``batch`` faces a call on one onnxruntime thread, as the
    classifier worker runs them (EmotionModel.predict on PrivateTest's faces in turn: an
    adaptive model's cost depends on how sure it is of them). The models take turns batch
    by batch, so the load of a shared machine falls on each alike; each batch is timed by
    the clock of the calling thread's CPU as well as by the wall clock, and the median of
    each is reported."""
    from moodstream.detection.emotion_model import EmotionModel
    from moodstream.models.data import load_split

    models = {str(p): EmotionModel(p, threads=1) for p in paths}
    first = next(iter(models.values()))
    size = first.height if first.height == first.width else (first.height, first.width)
    faces = load_split("test", size, data)[0]
    faces = faces[np.random.default_rng(seed).permutation(len(faces))]
    if len(faces) < batch:
        faces = np.resize(faces, (batch, *faces.shape[1:]))
    cpu: dict[str, list[float]] = {name: [] for name in models}
    wall: dict[str, list[float]] = {name: [] for name in models}
    for model in models.values():
        model.predict(faces[:batch])  # first-call setup is not the model's speed
    for k in range(batches):
        start = k * batch % (len(faces) - batch + 1)
        crops = faces[start:start + batch]
        for name, model in models.items():
            c, w = time.thread_time(), time.perf_counter()
            model.predict(crops)
            cpu[name].append(time.thread_time() - c)
            wall[name].append(time.perf_counter() - w)
    return {name: {"cpu_faces_per_s": round(batch / float(np.median(cpu[name])), 1),
                   "wall_faces_per_s": round(batch / float(np.median(wall[name])), 1)}
            for name in models}
