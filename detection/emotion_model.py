"""The emotion classifier as onnxruntime runs it; the ONNX metadata is the whole contract."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np

from moodstream.contract import CLASSES
from moodstream.detection.onnx_runtime import cpu_session

REQUIRED_METADATA = ("classes", "input_height", "input_width", "scale", "offset")


class ModelError(RuntimeError):
    """The model file is missing or does not carry the metadata contract."""


def open_session(path: Path | str, threads: int = 1):
    """An onnxruntime session on the CPU; a clear error when the file is missing."""
    path = Path(path)
    if not path.exists():
        raise ModelError(f"model not found: {path} (train one with `moodstream train`)")
    # Batch sizes vary with the faces in view: no arena (cpu_session).
    return cpu_session(path, threads)


def read_metadata(path: Path | str) -> dict[str, str]:
    return dict(open_session(path).get_modelmeta().custom_metadata_map)


def input_size(path: Path | str) -> tuple[int, int]:
    meta = read_metadata(path)
    return int(meta.get("input_height", 64)), int(meta.get("input_width", 64))


UNWEIGHTED = "probabilities__unweighted"  # an adaptive graph's second output


def mirror_below(meta: dict[str, str]) -> float:
    """The top probability under which a face also goes through the network mirrored (the
    metadata of a model made with ``tta`` "adaptive"); 0 for any other model."""
    if meta.get("tta") != "adaptive":
        return 0.0
    return float(meta["tta_mirror_below"])


def class_weights(meta: dict[str, str]) -> np.ndarray:
    """The output weights the graph applies to the network's probabilities (ones if none)."""
    return np.asarray(json.loads(meta.get("class_weights") or "[1, 1, 1, 1, 1, 1, 1]"),
                      np.float32)


def with_mirror_where_unsure(run, batch: np.ndarray, below: float,
                             weights: np.ndarray) -> np.ndarray:
    """The probabilities of normalised NHWC faces; each face whose top probability is under
    ``below`` is averaged with its mirror image, as a model with the mirror in its graph
    averages every face: the network's probabilities of the two, then the class
    ``weights``. ``run(batch)`` -> (probabilities, the network's before the weights). The
    mirror pass buys its accuracy on the faces the network is unsure of, and a sure face
    does not pay for it (docs/model.md)."""
    probs, raw = run(batch)
    unsure = np.flatnonzero(probs.max(axis=1) < below)
    if unsure.size:
        _, mirrored = run(np.ascontiguousarray(batch[unsure, :, ::-1]))
        mean = (raw[unsure] + mirrored) / 2 * weights
        probs[unsure] = mean / mean.sum(axis=1, keepdims=True)
    return probs


def network_outputs(session, input_name: str):
    """``run`` for with_mirror_where_unsure over an onnxruntime session: a graph without the
    UNWEIGHTED output has no weights (its probabilities serve as both)."""
    names = [o.name for o in session.get_outputs()]
    wanted = [names[0], UNWEIGHTED] if UNWEIGHTED in names else [names[0]]

    def run(batch: np.ndarray):
        out = session.run(wanted, {input_name: batch})
        return out[0], out[-1]

    return run


class EmotionModel:
    def __init__(self, path: Path | str, threads: int = 1):
        self.session = open_session(path, threads)
        meta = dict(self.session.get_modelmeta().custom_metadata_map)
        missing = [k for k in REQUIRED_METADATA if k not in meta]
        if missing:
            raise ModelError(f"{path} lacks ONNX metadata {missing}")
        classes = tuple(meta["classes"].split(","))
        if classes != CLASSES:
            raise ModelError(f"{path} classes {classes} differ from the contract {CLASSES}")
        self.metadata = meta
        self.height, self.width = int(meta["input_height"]), int(meta["input_width"])
        self.scale, self.offset = float(meta["scale"]), float(meta["offset"])
        self.input_name = self.session.get_inputs()[0].name
        self.mirror_below, self.class_weights = mirror_below(meta), class_weights(meta)
        self._network = network_outputs(self.session, self.input_name)

    def predict(self, crops: list[np.ndarray] | np.ndarray, chunk: int = 32) -> np.ndarray:
        """uint8 gray crops (any size; resized if needed) -> (N, 7) probabilities. At most
        `chunk` crops go through the network at once: a frame batch of a full classroom is
        hundreds of faces, and the activations of one call grow with it (hundreds of MB)."""
        if len(crops) == 0:
            return np.zeros((0, len(CLASSES)), np.float32)
        return np.concatenate([self._run(crops[start:start + chunk])
                               for start in range(0, len(crops), chunk)])

    def _run(self, crops) -> np.ndarray:
        size = (self.height, self.width)
        batch = np.stack([crop if crop.shape == size else self._resized(crop)
                          for crop in crops]).astype(np.float32)[..., None]
        batch = batch * self.scale + self.offset
        return with_mirror_where_unsure(self._network, batch, self.mirror_below,
                                        self.class_weights)

    def _resized(self, crop: np.ndarray) -> np.ndarray:
        import cv2  # only for crops cut at another size: most workers never load it

        return cv2.resize(crop, (self.width, self.height), interpolation=cv2.INTER_AREA)
