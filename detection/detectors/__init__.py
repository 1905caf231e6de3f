"""Pluggable face detectors: ``make_detector(name, **options)``.

- ``mtcnn-onnx`` (default): the MTCNN cascade on onnxruntime, no TensorFlow.
- ``mtcnn``: the mtcnn package on TensorFlow, kept for reference.
- ``haar``: OpenCV's Haar cascade, a cheap fallback without landmarks.

A further detector (say YuNet or SCRFD from a model file the user supplies) is a class with a
``detect(images, min_face=None, scale_factor=None)`` method (see base.Detector) plus one line
in DETECTORS, or a ``register_detector`` call from elsewhere. Modules are imported only when
their detector is built, so that choosing mtcnn-onnx never imports TensorFlow.
"""

from __future__ import annotations

import importlib
from collections.abc import Callable

from moodstream.detection.detectors.base import DetectedFace, Detector

DEFAULT = "mtcnn-onnx"  # settings.detector.name (MOODSTREAM_DETECTOR) picks another

# name -> "module:Class" (imported lazily) or a factory
DETECTORS: dict[str, str | Callable[..., Detector]] = {
    "mtcnn-onnx": "moodstream.detection.detectors.mtcnn_onnx:MtcnnOnnx",
    "mtcnn": "moodstream.detection.detectors.mtcnn_tf:MtcnnTF",
    "haar": "moodstream.detection.detectors.haar:HaarDetector",
}


def register_detector(name: str, factory: str | Callable[..., Detector]) -> None:
    DETECTORS[name] = factory


def make_detector(name: str | None = None, **options) -> Detector:
    """Build a detector by name (None: mtcnn-onnx). Options that a
    detector does not know are ignored, so one set of options (min_face, scale_factor,
    min_confidence, threads) serves all of them."""
    name = name or DEFAULT
    factory = DETECTORS.get(name)
    if factory is None:
        raise ValueError(f"unknown detector {name!r}; choose from {', '.join(DETECTORS)}")
    if isinstance(factory, str):
        module, _, attr = factory.partition(":")
        factory = getattr(importlib.import_module(module), attr)
    return factory(**options)


__all__ = ["DEFAULT", "DETECTORS", "DetectedFace", "Detector", "make_detector",
           "register_detector"]
