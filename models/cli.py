"""Command-line glue for ``moodstream train | export | evaluate``.

Light module: nothing heavy (TensorFlow, onnxruntime) is imported at top level; the lead's
``moodstream/cli.py`` builds the argparse subparsers and calls ``configure_*`` / ``run_*``.
Every ``run_*`` returns a process exit code (0 = success).
"""

from __future__ import annotations

import argparse
import json
from pathlib import Path

MODELS_DIR = Path(__file__).resolve().parent
DEFAULT_MODEL = MODELS_DIR / "emotion.onnx"
DEFAULT_REPORT = MODELS_DIR / "runs" / "report"


def _parse_value(text: str):
    try:
        return json.loads(text)
    except json.JSONDecodeError:
        return text


def module_main(prog: str, description: str | None, configure, run, argv=None) -> int:
    """`python -m moodstream.models.<prog>`: the same options as the moodstream subcommand."""
    parser = argparse.ArgumentParser(prog=f"python -m moodstream.models.{prog}",
                                     description=description,
                                     formatter_class=argparse.RawDescriptionHelpFormatter)
    configure(parser)
    return run(parser.parse_args(argv))


def configure_train(parser: argparse.ArgumentParser) -> argparse.ArgumentParser:
    parser.add_argument("--config", metavar="FILE", help="JSON or YAML training config")
    parser.add_argument("--name", help="run name; outputs in models/runs/NAME/")
    parser.add_argument("--epochs", type=int)
    parser.add_argument("--batch-size", type=int)
    parser.add_argument("--lr", type=float)
    parser.add_argument("--schedule", choices=["cosine", "cosine_time", "plateau", "constant"])
    parser.add_argument("--label-smoothing", type=float)
    parser.add_argument("--width", type=float, help="filter-count multiplier (1.0 = paper)")
    parser.add_argument("--input-size", type=int, help="square input side (64 = paper)")
    parser.add_argument("--seed", type=int)
    parser.add_argument("--data", metavar="NPZ", help="fer2013.npz (default $MOODSTREAM_FER2013 "
                        "or ../shared/data/fer2013/fer2013.npz)")
    parser.add_argument("--max-seconds", type=float, dest="max_train_seconds",
                        help="stop after the epoch that passes this much training time")
    parser.add_argument("--no-augment", action="store_true")
    parser.add_argument("--set", action="append", default=[], metavar="KEY=VALUE",
                        help="any config key; VALUE parsed as JSON (repeatable)")
    parser.add_argument("--runs-dir", help="parent of run folders (default models/runs)")
    parser.add_argument("--no-resume", action="store_true", help="start the run over")
    parser.add_argument("--export", metavar="ONNX", help="export best checkpoint here afterwards")
    parser.add_argument("--quiet", action="store_true")
    return parser


def config_from_args(args) -> dict:
    cfg: dict = {}
    if getattr(args, "config", None):
        from moodstream.models.train import load_config

        cfg.update(load_config(args.config))
    for key in ("name", "epochs", "batch_size", "lr", "schedule", "label_smoothing", "width",
                "input_size", "seed", "data", "max_train_seconds"):
        val = getattr(args, key, None)
        if val is not None:
            cfg[key] = val
    if getattr(args, "no_augment", False):
        cfg["augment"] = None
    for item in getattr(args, "set", []) or []:
        key, _, val = item.partition("=")
        cfg[key.strip()] = _parse_value(val)
    return cfg


def run_train(args: argparse.Namespace, settings=None) -> int:
    from moodstream.models.train import train

    result = train(config_from_args(args), runs_dir=args.runs_dir, resume=not args.no_resume,
                   verbose=0 if args.quiet else 2)
    if args.export:
        from moodstream.models.export import export

        meta = export(result["run_dir"], args.export, data=result["config"].get("data"))
        print(f"exported {args.export}: PrivateTest {meta['privatetest_accuracy']}")
    return 0


def configure_export(parser: argparse.ArgumentParser) -> argparse.ArgumentParser:
    parser.add_argument("source", metavar="RUN", nargs="+",
                        help="run directory (uses best.keras + config.json) or a .keras file; "
                        "several: one ensemble graph that averages their probabilities")
    parser.add_argument("--average-weights", action="store_true",
                        help="several RUNs of one network from a common start: one network "
                        "holding the mean of their weights instead of an ensemble (batch-norm "
                        "statistics measured again on Training)")
    parser.add_argument("--out", default=str(DEFAULT_MODEL), help="ONNX path (default %(default)s)")
    parser.add_argument("--opset", type=int, default=13)
    parser.add_argument("--data", metavar="NPZ", help="FER-2013 npz for the accuracy metadata")
    parser.add_argument("--no-measure", action="store_true",
                        help="skip measuring val/PrivateTest accuracy (metadata gets 'nan')")
    parser.add_argument("--tta", choices=("flip", "none"), default="flip",
                        help="test-time augmentation inside the graph: average each face with "
                             "its mirror image (default %(default)s)")
    parser.add_argument("--pad-channels", type=int, default=16, metavar="N",
                        help="pad layer widths to multiples of N where it pays: same outputs, "
                        "faster on onnxruntime's blocked kernels (0 = off; default %(default)s)")
    parser.add_argument("--balance-recall", type=float, metavar="FLOOR",
                        help="fit per-class output weights on PublicTest that keep accuracy "
                        "while lifting every class's recall towards FLOOR (e.g. 0.48)")
    return parser


def run_export(args: argparse.Namespace, settings=None) -> int:
    from moodstream.models.export import export

    source = args.source[0] if len(args.source) == 1 else args.source
    meta = export(source, args.out, opset=args.opset, data=args.data,
                  measure=not args.no_measure, tta=args.tta,
                  balance_recall=args.balance_recall, pad_to=args.pad_channels,
                  average_weights=args.average_weights)
    print(f"wrote {args.out}")
    for k in ("params", "valtest_accuracy", "privatetest_accuracy"):
        print(f"  {k}: {meta[k]}")
    return 0


def configure_evaluate(parser: argparse.ArgumentParser) -> argparse.ArgumentParser:
    parser.add_argument("model", metavar="MODEL", nargs="?", default=str(DEFAULT_MODEL),
                        help="ONNX model (default %(default)s)")
    parser.add_argument("--data", metavar="NPZ", help="fer2013.npz (default as for training)")
    parser.add_argument("--split", default="test", choices=["test", "val", "train"],
                        help="test = PrivateTest (default), val = PublicTest")
    parser.add_argument("--report", metavar="DIR", default=str(DEFAULT_REPORT),
                        help="folder for PNGs and report.json (default %(default)s)")
    parser.add_argument("--log", metavar="CSV", help="training log.csv for the curves plot")
    parser.add_argument("--threads", type=int, default=1,
                        help="onnxruntime threads (default 1: faces/s per core, as the "
                        "classifier worker runs)")
    parser.add_argument("--batch", type=int, default=32, help="batch for the timing")
    parser.add_argument("--no-plots", action="store_true")
    parser.add_argument("--through-detector", action="store_true",
                        help="classify crops cut as the live pipeline cuts them (MTCNN box, "
                        "margin, eye alignment) instead of FER-2013's framing; misses count "
                        "as wrong")
    return parser


def run_evaluate(args: argparse.Namespace, settings=None) -> int:
    from moodstream.models.evaluate import evaluate, format_report

    rep = evaluate(args.model, data=args.data, split=args.split,
                   report_dir=None if args.no_plots else args.report, log_csv=args.log,
                   threads=args.threads, batch=args.batch,
                   through_detector=args.through_detector)
    print(format_report(rep))
    return 0


def configure_quantize(parser: argparse.ArgumentParser) -> argparse.ArgumentParser:
    from moodstream.models.quantize import (
        DEFAULT_FLOAT,
        DEFAULT_INT8,
        FORMATS,
        METHODS,
        MIRRORS,
    )

    parser.add_argument("model", metavar="FLOAT_MODEL", nargs="?", default=str(DEFAULT_FLOAT),
                        help="the float ONNX model (default %(default)s)")
    parser.add_argument("--out", default=str(DEFAULT_INT8),
                        help="INT8 ONNX path (default %(default)s; a .json sidecar beside it)")
    parser.add_argument("--data", metavar="NPZ", help="fer2013.npz (default as for training)")
    parser.add_argument("--calibration", type=int, default=512, metavar="N",
                        help="Training faces that calibrate the activation ranges "
                        "(default %(default)s)")
    parser.add_argument("--format", choices=FORMATS, default="qdq", dest="fmt",
                        help="QuantizeLinear/DequantizeLinear pairs or QLinear* operators "
                        "(default %(default)s)")
    parser.add_argument("--per-tensor", action="store_true",
                        help="one weight scale per tensor instead of per output channel")
    parser.add_argument("--method", choices=METHODS, default="minmax",
                        help="calibration method (default %(default)s: each activation's "
                        "whole range over the calibration faces; chosen on PublicTest for "
                        "the adaptive network, docs/model.md)")
    parser.add_argument("--activations", choices=("uint8", "int8"), default="uint8",
                        help="activation type (default %(default)s: x86's fast kernels)")
    parser.add_argument("--seed", type=int, default=0, help="draw of the calibration faces")
    parser.add_argument("--mirror", choices=MIRRORS, default="adaptive",
                        help="the float model's mirror pass: for every face (flip), or only "
                        "for the faces the network is unsure of, under a top probability "
                        "fitted on PublicTest (default %(default)s)")
    parser.add_argument("--speed-batches", type=int, default=200, metavar="N",
                        help="batches of 32 per model for the faces/s comparison (0 = skip)")
    return parser


def run_quantize(args: argparse.Namespace, settings=None) -> int:
    """Write the INT8 model, then print its figures beside the float model's: PrivateTest
    accuracy, per-class recall, file size and faces/s (batch 32, one thread)."""
    import sys

    from moodstream.models.data import dataset_path
    from moodstream.models.evaluate import evaluate
    from moodstream.models.quantize import (
        MAX_ACCURACY_DROP,
        MIN_CLASS_RECALL,
        compare_speed,
        quantize,
    )

    if not Path(args.model).exists():
        print(f"moodstream quantize: float model not found: {args.model}", file=sys.stderr)
        return 2
    if not dataset_path(args.data).exists():
        print(f"moodstream quantize: FER-2013 not found at {dataset_path(args.data)} "
              "(--data NPZ or MOODSTREAM_FER2013)", file=sys.stderr)
        return 2
    try:
        quantize(args.model, args.out, calibration=args.calibration, data=args.data,
                 fmt=args.fmt, per_channel=not args.per_tensor, method=args.method,
                 seed=args.seed, activations=args.activations, mirror=args.mirror)
    except ValueError as error:
        print(f"moodstream quantize: {error}", file=sys.stderr)
        return 2
    reports = {name: evaluate(path, data=args.data, timing=False)
               for name, path in (("float", args.model), ("int8", args.out))}
    print(f"wrote {args.out}")
    print(f"{'':22}{'float':>10}{'int8':>10}")
    print(f"{'PrivateTest accuracy':22}" + "".join(f"{r['accuracy']:10.4f}"
                                                  for r in reports.values()))
    for cls in reports["float"]["per_class_recall"]:
        print(f"{'  recall ' + cls:22}" + "".join(f"{r['per_class_recall'][cls]:10.3f}"
                                                  for r in reports.values()))
    print(f"{'file KiB':22}" + "".join(f"{r['file_bytes'] / 1024:10.1f}"
                                       for r in reports.values()))
    if args.speed_batches > 0:
        speeds = compare_speed([args.model, args.out], batches=args.speed_batches, data=args.data)
        f, q = speeds[str(args.model)], speeds[str(args.out)]
        for key, label in (("cpu_faces_per_s", "faces/s (CPU time)"),
                           ("wall_faces_per_s", "faces/s (wall clock)")):
            print(f"{label:22}{f[key]:10.0f}{q[key]:10.0f}   int8/float {q[key] / f[key]:.2f}")
    drop = reports["float"]["accuracy"] - reports["int8"]["accuracy"]
    low = min(reports["int8"]["per_class_recall"].values())
    ok = drop <= MAX_ACCURACY_DROP and low >= MIN_CLASS_RECALL
    print(f"floors (accuracy within {MAX_ACCURACY_DROP * 100:.1f} points, every recall >= "
          f"{MIN_CLASS_RECALL}): {'met' if ok else 'NOT met'} (drop {drop * 100:+.2f} points, "
          f"lowest recall {low:.3f})")
    return 0
