"""Knowledge distillation: train a network on its own labels and on a teacher's soft labels.

The teacher is one or more of our finished runs (``best.keras``), averaged as the shipped
ensemble is, and with their mirror images, so the soft label does not change under the
training flip. Soft labels are computed once per split before training (offline), on each
teacher's own input size, and ride along with the hard label in ``y_true``:
``[one-hot (smoothed), teacher log-probabilities]``. The loss is

    alpha * CE(hard, student) + (1 - alpha) * T^2 * KL(softmax(t / T) || softmax(s / T))

with ``t`` the teacher's and ``s`` the student's log-probabilities (logits up to a constant,
so the temperature applies to them directly).

Config (``train`` key ``distill``)::

    {"teachers": ["models/runs/ms48", "models/runs/w15cam"], "alpha": 0.3, "temperature": 2.0}
"""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np

from moodstream.models.architecture import NUM_CLASSES

DEFAULTS = {"teachers": [], "alpha": 0.3, "temperature": 2.0}


def settings(cfg: dict | None) -> dict | None:
    """The distillation settings merged over DEFAULTS, or None when distillation is off."""
    if not cfg:
        return None
    unknown = set(cfg) - set(DEFAULTS)
    if unknown:
        raise KeyError(f"unknown distill keys {sorted(unknown)}")
    merged = {**DEFAULTS, **cfg}
    if not merged["teachers"]:
        raise ValueError("distill needs at least one teacher run")
    if not 0.0 <= merged["alpha"] <= 1.0 or merged["temperature"] <= 0:
        raise ValueError("distill alpha must be in [0, 1] and temperature > 0")
    return merged


def resolve_run(run) -> Path:
    """A run folder as given, or relative to the repository (``models/runs/ms48``)."""
    path = Path(run)
    if path.is_absolute() or path.exists():
        return path
    return Path(__file__).resolve().parent.parent / path


def _teacher_size(run: Path) -> int:
    return int(json.loads((run / "config.json").read_text()).get("input_size", 64))


def teacher_log_probs(teachers, split: str, data=None, batch: int = 256) -> np.ndarray:
    """Mean log-probabilities (N, 7) of the teacher runs over ``split``, each run on its own
    input size and averaged with its prediction on the mirror image."""
    from moodstream.models import data as fer
    from moodstream.models.architecture import load_keras

    total = None
    count = 0
    for run in map(resolve_run, teachers):
        x, _ = fer.load_split(split, _teacher_size(run), data)
        x = fer.normalise(x)
        model = load_keras(run / "best.keras")
        for view in (x, x[:, :, ::-1]):
            p = model.predict(np.ascontiguousarray(view), batch_size=batch, verbose=0)
            logp = np.log(np.clip(p.astype(np.float64), 1e-7, 1.0))
            total = logp if total is None else total + logp
            count += 1
    return (total / count).astype(np.float32)


def hard_accuracy(y_true, y_pred):
    """Accuracy against the hard label (the first NUM_CLASSES columns of y_true)."""
    import keras

    ops = keras.ops
    return ops.cast(ops.equal(ops.argmax(y_true[:, :NUM_CLASSES], axis=-1),
                              ops.argmax(y_pred, axis=-1)), "float32")


def objects():
    """The Keras loss and metric classes, registered so a saved run resumes with them."""
    import keras

    @keras.saving.register_keras_serializable(package="moodstream")
    class DistillationLoss(keras.losses.Loss):
        def __init__(self, alpha=0.3, temperature=2.0, name="distillation", **kwargs):
            super().__init__(name=name, **kwargs)
            self.alpha = float(alpha)
            self.temperature = float(temperature)

        def call(self, y_true, y_pred):
            ops = keras.ops
            hard, teacher = y_true[:, :NUM_CLASSES], y_true[:, NUM_CLASSES:]
            log_s = ops.log(ops.clip(y_pred, 1e-7, 1.0))
            ce = -ops.sum(hard * log_s, axis=-1)
            t = self.temperature
            log_pt = ops.log_softmax(teacher / t, axis=-1)
            log_ps = ops.log_softmax(log_s / t, axis=-1)
            kl = ops.sum(ops.exp(log_pt) * (log_pt - log_ps), axis=-1)
            return self.alpha * ce + (1.0 - self.alpha) * (t * t) * kl

        def get_config(self):
            return {"alpha": self.alpha, "temperature": self.temperature, "name": self.name}

    @keras.saving.register_keras_serializable(package="moodstream")
    class HardLabelAccuracy(keras.metrics.MeanMetricWrapper):
        def __init__(self, name="accuracy", dtype=None):
            super().__init__(hard_accuracy, name=name, dtype=dtype)

        def get_config(self):
            return {"name": self.name, "dtype": self.dtype}

    return DistillationLoss, HardLabelAccuracy
