"""Evaluate a shipped ONNX emotion model on FER-2013 with onnxruntime only (no TensorFlow).

Reports accuracy, per-class recall, the row-normalised 7x7 confusion matrix (rows = true
class, as in the paper's Table 1), parameter count, file size and ms per face; writes
``confusion.png``, ``curves.png`` (when a training log.csv is given) and ``report.json``.
"""

from __future__ import annotations

import csv
import json
import os
import time
from pathlib import Path

import numpy as np

from moodstream.detection.emotion_model import (
    class_weights,
    mirror_below,
    network_outputs,
    with_mirror_where_unsure,
)
from moodstream.detection.onnx_runtime import cpu_session

CLASSES = ("angry", "disgust", "fear", "happy", "sad", "surprise", "neutral")


def confusion_matrix(y_true, y_pred, num_classes: int = 7) -> np.ndarray:
    """Counts: rows = true class, columns = predicted class (num_classes square)."""
    cm = np.zeros((num_classes, num_classes), dtype=np.int64)
    np.add.at(cm, (np.asarray(y_true, int), np.asarray(y_pred, int)), 1)
    return cm


def row_normalise(cm: np.ndarray) -> np.ndarray:
    """Each row divided by its total (rows with no samples stay 0)."""
    cm = np.asarray(cm, dtype=np.float64)
    totals = cm.sum(axis=1, keepdims=True)
    return np.divide(cm, totals, out=np.zeros_like(cm), where=totals > 0)


def accuracy(y_true, y_pred) -> float:
    return float(np.mean(np.asarray(y_true) == np.asarray(y_pred)))


def load_session(path, threads: int = 2):
    return cpu_session(path, threads, arena=True)


def model_info(path) -> dict:
    """Metadata and parameter count of an ONNX file (params from metadata, else initializers)."""
    sess = load_session(path)
    meta = dict(sess.get_modelmeta().custom_metadata_map)
    params = meta.get("params")
    if params is None:
        import onnx
        from onnx import numpy_helper

        m = onnx.load(str(path))
        params = sum(numpy_helper.to_array(t).size for t in m.graph.initializer)
    return {"metadata": meta, "params": int(params), "file_bytes": os.path.getsize(path)}


def probabilities(sess):
    """batch -> probabilities for already-normalised float32 (N, H, W, 1) faces: an adaptive
    model's mirror pass runs as the classifier runs it."""
    meta = dict(sess.get_modelmeta().custom_metadata_map)
    below, weights = mirror_below(meta), class_weights(meta)
    network = network_outputs(sess, sess.get_inputs()[0].name)
    return lambda part: with_mirror_where_unsure(network, part, below, weights)


def predict(sess, x: np.ndarray, batch: int | None = None) -> np.ndarray:
    """Probabilities for already-normalised float32 (N, H, W, 1); one pass by default."""
    run = probabilities(sess)
    if not batch:
        return run(x)
    return np.concatenate([run(x[i:i + batch]) for i in range(0, len(x), batch)])


def time_per_face(sess, x: np.ndarray, batch: int = 32, repeats: int = 20) -> float:
    """Median milliseconds per face for batches of ``batch`` faces."""
    xb = x[:batch]
    if len(xb) < batch:
        xb = np.resize(xb, (batch, *x.shape[1:]))
    run = probabilities(sess)
    for _ in range(3):
        run(xb)
    times = []
    for _ in range(repeats):
        t = time.perf_counter()
        run(xb)
        times.append(time.perf_counter() - t)
    return float(np.median(times) * 1000.0 / batch)


def read_log(path) -> dict[str, list[float]]:
    with open(path, newline="") as f:
        rows = list(csv.DictReader(f))
    cols: dict[str, list[float]] = {}
    for r in rows:
        for k, v in r.items():
            try:
                cols.setdefault(k, []).append(float(v))
            except (TypeError, ValueError):
                pass
    return cols


def plot_confusion(cmn: np.ndarray, path, title: str = "") -> None:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    fig, ax = plt.subplots(figsize=(6.4, 5.6))
    im = ax.imshow(cmn, cmap="Blues", vmin=0, vmax=1)
    ax.set_xticks(range(len(CLASSES)), CLASSES, rotation=45, ha="right")
    ax.set_yticks(range(len(CLASSES)), CLASSES)
    ax.set_xlabel("predicted")
    ax.set_ylabel("true")
    for i in range(cmn.shape[0]):
        for j in range(cmn.shape[1]):
            ax.text(j, i, f"{cmn[i, j]:.2f}", ha="center", va="center", fontsize=8,
                    color="white" if cmn[i, j] > 0.5 else "black")
    fig.colorbar(im, ax=ax, fraction=0.046)
    ax.set_title(title or "row-normalised confusion matrix")
    fig.tight_layout()
    fig.savefig(path, dpi=120)
    plt.close(fig)


def plot_curves(log: dict[str, list[float]], path) -> None:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    ep = [e + 1 for e in log.get("epoch", range(len(log.get("loss", []))))]
    fig, (a1, a2) = plt.subplots(1, 2, figsize=(10, 4))
    for key, label in (("accuracy", "train"), ("val_accuracy", "val (PublicTest)")):
        if key in log:
            a1.plot(ep, log[key], label=label)
    for key, label in (("loss", "train"), ("val_loss", "val (PublicTest)")):
        if key in log:
            a2.plot(ep, log[key], label=label)
    a1.set_title("accuracy")
    a2.set_title("loss")
    for a in (a1, a2):
        a.set_xlabel("epoch")
        a.grid(alpha=0.3)
        a.legend()
    fig.tight_layout()
    fig.savefig(path, dpi=120)
    plt.close(fig)


def evaluate(model_path, data=None, split: str = "test", report_dir=None, log_csv=None,
             threads: int = 2, batch: int = 32, timing: bool = True,
             through_detector: bool = False) -> dict:
    """Evaluate ``model_path`` on a FER-2013 split (default PrivateTest); return a report dict.
    ``through_detector``: on crops cut as the live pipeline cuts them (models/pipeline_crops);
    a face the detector misses counts as wrong."""
    from moodstream.models.data import load_split

    info = model_info(model_path)
    meta = info["metadata"]
    h = int(meta.get("input_height", 64))
    w = int(meta.get("input_width", h))
    scale = float(meta.get("scale", 1 / 127.5))
    offset = float(meta.get("offset", -1.0))
    found = None
    if through_detector:
        from moodstream.models.pipeline_crops import pipeline_crops

        x, y = load_split(split, 48, data)
        x, found = pipeline_crops(x, (h, w), threads=threads, progress=True)
        framed, _ = load_split(split, h if h == w else (h, w), data)  # FER-2013's framing
    else:
        x, y = load_split(split, h if h == w else (h, w), data)

    def normalised(images):
        return images.astype(np.float32) * np.float32(scale) + np.float32(offset)

    xf = normalised(x)

    sess = load_session(model_path, threads)
    t = time.perf_counter()
    probs = predict(sess, xf)  # one forward pass over the whole split
    pass_s = time.perf_counter() - t
    pred = probs.argmax(axis=1)
    if found is not None:
        pred = np.where(found, pred, -1)  # a missed face is a wrong label
    # A missed face (-1) takes an eighth column, so each row still sums to its class's faces.
    cm = confusion_matrix(y, np.where(pred < 0, len(CLASSES), pred), len(CLASSES) + 1)
    cmn = row_normalise(cm)[:len(CLASSES), :len(CLASSES)]
    cm = cm[:len(CLASSES), :len(CLASSES)]
    rep = {
        "model": str(model_path),
        "split": {"test": "PrivateTest", "val": "PublicTest", "train": "Training"}[split]
        + (" through the detector" if found is not None else ""),
        "n": int(len(y)),
        "accuracy": accuracy(y, pred),
        "per_class_recall": {c: float(cmn[i, i]) for i, c in enumerate(CLASSES)},
        "confusion_counts": cm.tolist(),
        "confusion_row_normalised": np.round(cmn, 4).tolist(),
        "params": info["params"],
        "file_bytes": info["file_bytes"],
        "ms_per_face": time_per_face(sess, xf, batch) if timing else float("nan"),
        "ms_per_face_batch": batch,
        "threads": threads,
        "full_pass_seconds": pass_s,
        "prob_sum_max_error": float(np.abs(probs.sum(axis=1) - 1).max()),
        "metadata": meta,
    }
    if found is not None:
        rep["detected"] = float(found.mean())
        rep["accuracy_where_detected"] = accuracy(y[found], pred[found]) if found.any() else 0.0
        # The same faces in FER-2013's own framing: the difference is what framing costs.
        rep["accuracy_where_detected_fer_framing"] = accuracy(y[found], predict(
            sess, normalised(framed[found])).argmax(axis=1)) if found.any() else 0.0
    if report_dir:
        out = Path(report_dir)
        out.mkdir(parents=True, exist_ok=True)
        plot_confusion(cmn, out / "confusion.png",
                       f"{rep['split']}  accuracy {rep['accuracy']:.4f}")
        rep["confusion_png"] = str(out / "confusion.png")
        if log_csv:
            plot_curves(read_log(log_csv), out / "curves.png")
            rep["curves_png"] = str(out / "curves.png")
        (out / "report.json").write_text(json.dumps(rep, indent=2) + "\n")
    return rep


def format_matrix(cmn) -> str:
    head = "true\\pred  " + " ".join(f"{c[:7]:>8}" for c in CLASSES)
    rows = [f"{c:<10} " + " ".join(f"{v:8.2f}" for v in r) for c, r in zip(CLASSES, cmn,
                                                                          strict=True)]
    return "\n".join([head, *rows])


def format_report(rep: dict) -> str:
    lines = [
        f"model        {rep['model']}",
        f"split        {rep['split']} ({rep['n']} faces)",
        f"accuracy     {rep['accuracy']:.4f}",
        *([f"detector     found {rep['detected']:.4f} of the faces; accuracy on those "
           f"{rep['accuracy_where_detected']:.4f} (in FER-2013's own framing "
           f"{rep['accuracy_where_detected_fer_framing']:.4f})"] if "detected" in rep else []),
        f"params       {rep['params']:,}",
        f"file size    {rep['file_bytes']:,} bytes ({rep['file_bytes'] / 1024:.1f} KiB)",
        f"speed        {rep['ms_per_face']:.3f} ms/face = {1000 / rep['ms_per_face']:,.0f} "
        f"faces/s (batch {rep['ms_per_face_batch']}, {rep['threads']} thread(s))",
        "per-class recall  " + "  ".join(f"{k} {v:.2f}"
                                         for k, v in rep["per_class_recall"].items()),
        "row-normalised confusion matrix (rows = true class):",
        format_matrix(np.asarray(rep["confusion_row_normalised"])),
    ]
    for k in ("confusion_png", "curves_png"):
        if k in rep:
            lines.append(f"wrote        {rep[k]}")
    return "\n".join(lines)


def main(argv=None):
    import argparse

    from moodstream.models.cli import configure_evaluate, run_evaluate

    p = argparse.ArgumentParser(prog="python -m moodstream.models.evaluate", description=__doc__)
    configure_evaluate(p)
    return run_evaluate(p.parse_args(argv))


if __name__ == "__main__":
    raise SystemExit(main())
