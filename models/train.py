"""Train the mini-Xception on FER-2013.

``train(config)`` takes a dict (merged over ``DEFAULT_CONFIG``); ``load_config`` reads a JSON or
YAML file. Everything for a run lives in ``models/runs/<name>/``:

- ``config.json``   the full config the run was started with
- ``log.csv``       learning curve (epoch, lr, loss, accuracy, val_loss, val_accuracy, seconds)
- ``last.keras``    model + optimizer state after the latest epoch (resume point)
- ``best.keras``    the epoch with the best PublicTest (val) accuracy
- ``state.json``    last finished epoch, best val accuracy / epoch, wall time so far
- ``result.json``   final val / PrivateTest accuracy of ``best.keras``
- ``averaged.keras`` with the ``swa`` key: the mean of the last epochs' weights
  (models/averaging.py), its figures under ``averaged`` in result.json

Running ``train`` again with the same name resumes from ``last.keras`` (unless resume=False).
"""

from __future__ import annotations

import copy
import json
import math
import os
import time
from pathlib import Path

RUNS_DIR = Path(__file__).resolve().parent / "runs"

DEFAULT_CONFIG: dict = {
    "name": "paper",
    "seed": 1234,
    # architecture (defaults = the paper's mini-Xception, 58,423 params)
    "input_size": 64,
    "width": 1.0,
    "base_filters": 8,
    "block_filters": [16, 32, 64, 128],
    "l2": 0.01,
    "l2_separable": False,
    "dropout": 0.0,
    "input_norm": "none",  # none | per_image (parameter-free standardisation layer)
    "init_from": None,
    # Fixed Gaussian blur (sigma in model-input pixels) applied to val/test during training
    # and prepended to the exported model: the shared Training split is blurred (sigma ~3.2 px
    # at 48x48 = ~4.27 px at 64x64) while PublicTest/PrivateTest are sharp. 0 = off.
    "input_blur_sigma": 0.0,  # .keras file to warm-start from (weights copied by layer name)
    # optimisation
    "epochs": 60,
    "batch_size": 64,
    "lr": 1e-3,
    # cosine | cosine_time | plateau | constant. cosine_time anneals over the wall-clock budget
    # max_train_seconds instead of over epochs (finishes on time on a shared, noisy CPU).
    "schedule": "cosine",
    "warmup_epochs": 0,
    "min_lr": 1e-5,
    "plateau_patience": 8,
    "plateau_factor": 0.1,
    "label_smoothing": 0.0,
    # knowledge distillation from finished runs (models.distill): null, or
    # {"teachers": [run folders], "alpha": weight of the hard labels, "temperature": T}
    "distill": None,
    # weight averaging over the end of the run (models.averaging): null, or
    # {"start": share of the schedule after which epochs join the mean, "bn_batches": N}
    "swa": None,
    "early_stopping_patience": 0,  # 0 = off
    "max_train_seconds": 0,  # 0 = no wall-clock limit; else stop after the epoch that passes it
    # augmentation (null / {} = none)
    # blur / sharpen: per-image amount range towards / away from a 3x3 blur; jpeg: share of
    # images re-encoded at a quality drawn from jpeg_quality (what camera crops look like).
    "augment": {"rotation": 10.0, "zoom": 0.1, "shift": 0.1, "flip": 0.5,
                "brightness": 0.0, "contrast": 0.0, "blur": 0.0, "sharpen": 0.0,
                "jpeg": 0.0, "jpeg_quality": [30, 95]},
    # data
    "data": None,  # path to fer2013.npz; None = $MOODSTREAM_FER2013 or ../shared/...
    # also train on every Training face re-cut as the live pipeline cuts it (MTCNN box,
    # margin, eye alignment: models.pipeline_crops), as extra examples with the same labels
    "pipeline_crops": False,
    "limit_train": 0,  # >0: use only the first N (shuffled) training images (tests / smoke)
    "limit_eval": 0,
    "threads": 2,
}


def load_config(path: str | os.PathLike) -> dict:
    """Read a JSON or YAML config file."""
    text = Path(path).read_text()
    if str(path).endswith((".yaml", ".yml")):
        import yaml  # optional dependency

        return yaml.safe_load(text) or {}
    return json.loads(text)


def merge_config(overrides: dict | None) -> dict:
    cfg = copy.deepcopy(DEFAULT_CONFIG)
    for k, v in (overrides or {}).items():
        if k not in cfg:
            raise KeyError(f"unknown config key {k!r}")
        if k == "augment" and isinstance(v, dict) and isinstance(cfg[k], dict):
            cfg[k] = {**cfg[k], **v}
        else:
            cfg[k] = v
    return cfg


def lr_at(epoch: int, cfg: dict, elapsed: float = 0.0) -> float:
    """Learning rate for a 0-based epoch (cosine / cosine_time / constant schedules).

    ``elapsed``: training seconds before this epoch (used by cosine_time)."""
    base, warm, total = cfg["lr"], cfg["warmup_epochs"], max(1, cfg["epochs"])
    if warm and epoch < warm:
        return base * (epoch + 1) / warm
    if cfg["schedule"] == "cosine":
        t = (epoch - warm) / max(1, total - warm)
    elif cfg["schedule"] == "cosine_time" and cfg["max_train_seconds"]:
        t = min(1.0, elapsed / cfg["max_train_seconds"])
    else:
        return base
    return cfg["min_lr"] + 0.5 * (base - cfg["min_lr"]) * (1 + math.cos(math.pi * t))


def _eval_batch(n: int, target: int = 128) -> int:
    """A batch size that divides n (no short batch for oneDNN), as close to target as possible."""
    for b in range(min(target, n), 0, -1):
        if n % b == 0 and b >= 16:
            return b
    return min(target, n)


def _subset(x, y, limit, seed):
    import numpy as np

    if not limit or limit >= len(x):
        return x, y
    idx = np.random.default_rng(seed).permutation(len(x))[:limit]
    return x[idx], y[idx]


def _warm_start(model, path, verbose=1):
    """Copy weights from a saved model into ``model`` layer by layer (matching names/shapes)."""
    from moodstream.models.architecture import load_keras

    src = load_keras(path)
    copied = 0
    for layer in model.layers:
        try:
            other = src.get_layer(layer.name)
        except ValueError:
            continue
        ws = other.get_weights()
        if ws and [w.shape for w in ws] == [w.shape for w in layer.get_weights()]:
            layer.set_weights(ws)
            copied += 1
    if verbose:
        print(f"warm start from {path}: {copied} layers copied", flush=True)


def _with_pipeline_crops(cfg, x_tr, y_tr, soft_tr, verbose=1):
    """The training set plus each face the detector finds, cut as the pipeline cuts it.

    A camera's faces are framed by the detector's box, margin and eye alignment, not by
    FER-2013's hand framing; the shipped model was 2.5 points less accurate on the same
    PrivateTest faces re-cut that way. The crops keep their face's label and teacher labels
    (the teacher sees FER-2013's framing: it teaches the student to read both alike)."""
    import numpy as np

    from moodstream.models import data as fer
    from moodstream.models.pipeline_crops import pipeline_crops

    faces, _ = _subset(*fer.load_split("train", 48, cfg["data"]), cfg["limit_train"],
                       cfg["seed"])  # the same faces as x_tr, at FER-2013's own size
    size = cfg["input_size"]
    crops, found = pipeline_crops(faces, (size, size), threads=cfg["threads"] or 2,
                                  progress=bool(verbose))
    if verbose:
        print(f"pipeline crops: the detector found {found.mean():.1%} of "
              f"{len(found)} training faces", flush=True)
    x_tr = np.concatenate([x_tr, crops[found]])
    y_tr = np.concatenate([y_tr, y_tr[found]])
    if soft_tr is not None:
        soft_tr = np.concatenate([soft_tr, soft_tr[found]])
    return x_tr, y_tr, soft_tr


def run_dir_for(cfg: dict, runs_dir: str | os.PathLike | None = None) -> Path:
    return Path(runs_dir or RUNS_DIR) / cfg["name"]


def train(config: dict | None = None, runs_dir=None, resume: bool = True, verbose: int = 2):
    """Train (or resume) a run; return the result dict (also written to result.json)."""
    cfg = merge_config(config)
    os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")
    import keras
    import numpy as np
    import tensorflow as tf

    from moodstream.models import averaging
    from moodstream.models import data as fer
    from moodstream.models import distill as distillation
    from moodstream.models.architecture import build_from_config, count_params, load_keras

    if cfg["threads"]:
        try:
            tf.config.threading.set_intra_op_parallelism_threads(cfg["threads"])
            tf.config.threading.set_inter_op_parallelism_threads(cfg["threads"])
        except RuntimeError:
            pass  # already initialised in this process
    keras.utils.set_random_seed(cfg["seed"])

    out = run_dir_for(cfg, runs_dir)
    out.mkdir(parents=True, exist_ok=True)
    state_path, last_path, best_path = out / "state.json", out / "last.keras", out / "best.keras"
    log_path, averaged_path = out / "log.csv", out / "averaged.keras"

    state = {"epoch": -1, "best_val_accuracy": -1.0, "best_epoch": -1, "train_seconds": 0.0}
    resuming = resume and state_path.exists() and last_path.exists()
    if resuming:
        state = json.loads(state_path.read_text())
        saved_cfg = json.loads((out / "config.json").read_text())
        # A resumed run may extend epochs / time limit, nothing else; only what the caller
        # gave, so a bare resume keeps the run's budget instead of the defaults'.
        for k in ("epochs", "max_train_seconds", "early_stopping_patience", "threads",
                  "input_blur_sigma"):
            if k in (config or {}):
                saved_cfg[k] = cfg[k]
        cfg = merge_config(saved_cfg)
    else:
        for p in (state_path, last_path, best_path, log_path, averaged_path,
                  out / "result.json"):
            p.unlink(missing_ok=True)
    (out / "config.json").write_text(json.dumps(cfg, indent=2))

    size = cfg["input_size"]
    x_tr, y_tr = _subset(*fer.load_split("train", size, cfg["data"]), cfg["limit_train"],
                         cfg["seed"])
    blur = cfg["input_blur_sigma"]
    x_va, y_va = _subset(*fer.load_split("val", size, cfg["data"], blur), cfg["limit_eval"],
                         cfg["seed"])
    bs = min(cfg["batch_size"], len(x_tr))
    distill = distillation.settings(cfg["distill"])
    soft_tr = soft_va = None
    if distill:
        # Teacher labels for the same (sub)sets: _subset draws the same indices for the same
        # length and seed.
        soft = distillation.teacher_log_probs(distill["teachers"], "train", cfg["data"])
        soft_tr = _subset(soft, soft, cfg["limit_train"], cfg["seed"])[0]
        soft = distillation.teacher_log_probs(distill["teachers"], "val", cfg["data"])
        soft_va = _subset(soft, soft, cfg["limit_eval"], cfg["seed"])[0]
    if cfg["pipeline_crops"]:
        x_tr, y_tr, soft_tr = _with_pipeline_crops(cfg, x_tr, y_tr, soft_tr, verbose)
    ds_tr = fer.make_dataset(x_tr, y_tr, bs, training=True, aug=cfg["augment"] or None,
                             seed=cfg["seed"], soft=soft_tr)
    ds_va = fer.make_dataset(x_va, y_va, _eval_batch(len(x_va)), training=False, soft=soft_va)

    if distill:
        loss_class, accuracy_class = distillation.objects()
        loss = loss_class(distill["alpha"], distill["temperature"])
        metrics = [accuracy_class()]
    else:
        loss = keras.losses.CategoricalCrossentropy(label_smoothing=cfg["label_smoothing"])
        metrics = ["accuracy"]
    if resuming:
        distillation.objects()  # registered, so last.keras compiles with them
        model = load_keras(last_path, compile=True)
    else:
        model = build_from_config(cfg)
        if cfg["init_from"]:
            _warm_start(model, cfg["init_from"], verbose)
        model.compile(optimizer=keras.optimizers.Adam(cfg["lr"]), loss=loss, metrics=metrics)
    total, trainable = count_params(model)
    swa = averaging.settings(cfg["swa"])
    averaged = {"model": None, "mean": None}
    if swa and resuming and state.get("averaged_epochs") and averaged_path.exists():
        averaged["model"] = load_keras(averaged_path)
        averaged["mean"] = averaged["model"].get_weights()
    if verbose:
        print(f"run {out}  params {total:,} ({trainable:,} trainable)  "
              f"train {len(x_tr)} val {len(x_va)} batch {bs}  "
              f"{'resume after epoch ' + str(state['epoch']) if resuming else 'fresh'}",
              flush=True)

    class RunState(keras.callbacks.Callback):
        def __init__(self):
            super().__init__()
            self.t0 = 0.0
            self.stale = 0

        def on_epoch_begin(self, epoch, logs=None):
            self.t0 = time.time()

        def on_epoch_end(self, epoch, logs=None):
            logs = logs or {}
            dt = time.time() - self.t0
            logs["seconds"] = dt
            state["train_seconds"] += dt
            state["epoch"] = epoch
            va = float(logs.get("val_accuracy", 0.0))
            if va > state["best_val_accuracy"]:
                state["best_val_accuracy"], state["best_epoch"] = va, epoch
                self.model.save(best_path)
                self.stale = 0
            else:
                self.stale += 1
            if swa and averaging.progress(cfg, epoch, state["train_seconds"]) >= swa["start"]:
                count = state.get("averaged_epochs", 0)
                averaged["mean"] = averaging.running_mean(averaged["mean"],
                                                          self.model.get_weights(), count)
                if averaged["model"] is None:
                    averaged["model"] = keras.models.clone_model(self.model)
                averaged["model"].set_weights(averaged["mean"])
                averaged["model"].save(averaged_path)
                state["averaged_epochs"] = count + 1
            self.model.save(last_path)
            state_path.write_text(json.dumps(state, indent=2))
            pat = cfg["early_stopping_patience"]
            if pat and self.stale >= pat:
                self.model.stop_training = True
            lim = cfg["max_train_seconds"]
            # stop when the next epoch (estimated as long as this one) would pass the budget
            if lim and state["train_seconds"] + 0.9 * dt >= lim:
                print(f"time limit {lim}s reached after epoch {epoch}", flush=True)
                self.model.stop_training = True

    callbacks = [RunState()]
    if cfg["schedule"] == "plateau":
        callbacks.insert(0, keras.callbacks.ReduceLROnPlateau(
            monitor="val_accuracy", mode="max", factor=cfg["plateau_factor"],
            patience=cfg["plateau_patience"], min_lr=cfg["min_lr"], verbose=1))
    else:
        callbacks.insert(0, keras.callbacks.LearningRateScheduler(
            lambda e: lr_at(e, cfg, state["train_seconds"])))
    callbacks.append(keras.callbacks.CSVLogger(str(log_path), append=resuming))

    start = state["epoch"] + 1
    if start < cfg["epochs"]:
        model.fit(ds_tr, validation_data=ds_va, epochs=cfg["epochs"], initial_epoch=start,
                  callbacks=callbacks, verbose=verbose)

    # final numbers from the best-on-val checkpoint
    best = load_keras(best_path)
    result = {"run_dir": str(out), "params": total, "trainable_params": trainable,
              "epochs_run": state["epoch"] + 1, "best_epoch": state["best_epoch"] + 1,
              "train_seconds": round(state["train_seconds"], 1),
              "seconds_per_epoch": round(state["train_seconds"] / max(1, state["epoch"] + 1), 1)}
    splits = (("val", x_va, y_va),
              ("test", *_subset(*fer.load_split("test", size, cfg["data"], blur),
                                cfg["limit_eval"], cfg["seed"])))

    def accuracies(model) -> dict:
        return {f"{split}_accuracy": float(np.mean(model.predict(
            fer.normalise(xs), batch_size=_eval_batch(len(xs)), verbose=0).argmax(1) == ys))
            for split, xs, ys in splits}

    result.update(accuracies(best))
    if averaged["model"] is not None:
        # The mean's batch-norm statistics are measured again, once, on the un-augmented
        # training images; a later resume averages on from these weights.
        model = averaged["model"]
        averaging.refresh_batch_norm(model, x_tr, swa["bn_batches"], cfg["seed"])
        model.save(averaged_path)
        result["averaged"] = {"epochs": state["averaged_epochs"], **accuracies(model)}
    result["config"] = cfg
    # The file names the run folder as the repository does, so it travels with a checkout.
    repo = RUNS_DIR.parent.parent
    rel = out.resolve().relative_to(repo) if out.resolve().is_relative_to(repo) else out
    (out / "result.json").write_text(json.dumps({**result, "run_dir": str(rel)}, indent=2))
    if verbose:
        print(f"best epoch {result['best_epoch']}: val {result['val_accuracy']:.4f} "
              f"PrivateTest {result['test_accuracy']:.4f}", flush=True)
        if "averaged" in result:
            a = result["averaged"]
            print(f"mean of the last {a['epochs']} epochs: val {a['val_accuracy']:.4f} "
                  f"PrivateTest {a['test_accuracy']:.4f}", flush=True)
    return result


def main(argv=None):  # python -m moodstream.models.train --config cfg.json --set epochs=5
    from moodstream.models.cli import configure_train, module_main, run_train

    return module_main("train", __doc__, configure_train, run_train, argv)


if __name__ == "__main__":
    raise SystemExit(main())
