"""Emotion model: mini-Xception training, ONNX export and evaluation."""
