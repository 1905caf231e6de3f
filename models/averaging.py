"""Weight averaging over the end of a run (stochastic weight averaging, SWA).

A small network trained to a plateau keeps wandering around the minimum from epoch to epoch;
the mean of those epochs' weights sits nearer its centre and generalises better than any one
of them. Batch-norm statistics do not average: the moving means and variances belong to
each epoch's weights, so after averaging they are measured again, on the training images
without augmentation (what the network sees at inference).

Runs of one network fine-tuned from a common start can be averaged the same way
(``weight_average``, ``moodstream export RUN RUN ... --average-weights``): one network's
cost, where an ensemble would pay for every member.

Train key ``swa``: null, or {"start": fraction of the schedule (epochs, or the time budget
of cosine_time) after which each epoch's weights join the mean, "bn_batches": batches of 128
training images for the batch-norm statistics}. The mean is ``averaged.keras`` in the run
folder; ``moodstream export models/runs/<name>/averaged.keras`` ships it.
"""

from __future__ import annotations

DEFAULT_BN_BATCHES = 200
BN_BATCH_SIZE = 128  # full batches only: the last short one would be a different kernel


def settings(swa: dict | None) -> dict | None:
    """Validated SWA settings, or None when off."""
    if not swa:
        return None
    unknown = set(swa) - {"start", "bn_batches"}
    if unknown:
        raise KeyError(f"unknown swa setting(s) {sorted(unknown)}: start, bn_batches")
    start = float(swa.get("start", 0.5))
    if not 0.0 <= start < 1.0:
        raise ValueError(f"swa start must be in [0, 1), the share of the schedule: {start}")
    return {"start": start, "bn_batches": int(swa.get("bn_batches", DEFAULT_BN_BATCHES))}


def progress(cfg: dict, epoch: int, train_seconds: float) -> float:
    """How far through its schedule a run is after 0-based ``epoch``, in [0, 1]."""
    if cfg["schedule"] == "cosine_time" and cfg["max_train_seconds"]:
        return min(1.0, train_seconds / cfg["max_train_seconds"])
    return min(1.0, (epoch + 1) / max(1, cfg["epochs"]))


def running_mean(mean: list | None, weights: list, count: int) -> list:
    """The mean of ``count`` earlier weight lists (``mean``) updated with one more."""
    if mean is None or count == 0:
        return [w.copy() for w in weights]
    return [m + (w - m) / (count + 1) for m, w in zip(mean, weights, strict=True)]


def refresh_batch_norm(model, x_uint8, batches: int = DEFAULT_BN_BATCHES, seed: int = 0) -> int:
    """Measure every batch-norm layer's statistics again on ``x_uint8`` (N, H, W[, 1]), as an exact
    average over ``batches`` batches rather than a moving one; return the batches used."""
    import keras
    import numpy as np

    from moodstream.models.data import normalise

    layers = [layer for layer in model.layers
              if isinstance(layer, keras.layers.BatchNormalization)]
    if not layers:
        return 0
    batches = max(1, min(batches, len(x_uint8) // BN_BATCH_SIZE))
    order = np.random.default_rng(seed).permutation(len(x_uint8))
    saved = [layer.momentum for layer in layers]
    try:
        for k in range(batches):
            # momentum 1 - 1/(k+1) makes the moving average the plain mean of batches 0..k
            for layer in layers:
                layer.momentum = 1.0 - 1.0 / (k + 1)
            pick = order[k * BN_BATCH_SIZE:(k + 1) * BN_BATCH_SIZE]
            batch = normalise(x_uint8[pick])
            model(batch if batch.ndim == 4 else batch[..., None], training=True)
    finally:
        for layer, momentum in zip(layers, saved, strict=True):
            layer.momentum = momentum
    return batches


def weight_average(models):
    """A copy of ``models[0]`` holding the mean of all the models' weights (same network).

    Batch-norm statistics come out averaged too; measure them again (``refresh_batch_norm``)."""
    import keras

    shapes = [[w.shape for w in m.get_weights()] for m in models]
    if any(s != shapes[0] for s in shapes[1:]):
        raise ValueError("weights can only be averaged across one network: the models' "
                         "layer shapes differ (an ensemble combines different networks)")
    mean = None
    for count, model in enumerate(models):
        mean = running_mean(mean, model.get_weights(), count)
    averaged = keras.models.clone_model(models[0])
    averaged.set_weights(mean)
    return averaged
