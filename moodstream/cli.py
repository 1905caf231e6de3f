"""`moodstream <service>`: one console command, one subcommand per service.

Service modules are imported only when their subcommand runs, so that a classifier worker
never pays for (or even imports) TensorFlow.
"""

from __future__ import annotations

import argparse
import importlib
import logging
import os
import sys

# Installed by `pip install 'moodstream[train]'` only: training, export, the reference mtcnn
# detector and the paper-loop baseline need them; the workers do not.
TRAINING_MODULES = {"tensorflow", "keras", "tf2onnx", "mtcnn"}

# (subcommand, module, configure function, run function, help)
COMMANDS = [
    ("up", "moodstream.supervisor", "configure", "run",
     "run the whole live pipeline and the dashboard (embedded Redis by default)"),
    ("ingest", "ingest.service", "configure", "run", "publish one camera's frames"),
    ("cameras", "ingest.supervisor", "configure", "run",
     "run one ingest per camera registered in Redis (from the dashboard)"),
    ("detector", "workers.detector", "configure", "run", "MTCNN face detector worker"),
    ("detect", "workers.detect_cli", "configure", "run", "print the faces found in images"),
    ("classifier", "workers.classifier", "configure", "run", "expression classifier worker"),
    ("aggregator", "workers.aggregator", "configure", "run", "per-camera mood aggregates"),
    ("dashboard", "dashboard.service", "configure", "run", "the web dashboard"),
    ("user", "dashboard.users", "configure_user", "run_user", "manage dashboard users"),
    ("stats", "moodstream.stats_command", "configure", "run", "print pipeline accounting"),
    ("analyze", "workers.bulk_cli", "configure", "run", "analyse videos and photos in bulk"),
    ("bulk-worker", "workers.bulk_cli", "configure_worker", "run_worker",
     "process bulk analysis jobs (RQ)"),
    ("train", "models.cli", "configure_train", "run_train", "train the emotion model"),
    ("evaluate", "models.cli", "configure_evaluate", "run_evaluate",
     "evaluate an ONNX model on FER-2013 PrivateTest"),
    ("export", "models.cli", "configure_export", "run_export", "export a Keras model to ONNX"),
    ("bench", "bench.cli", "configure", "run", "measure everything side by side"),
]


def build_parser() -> tuple[argparse.ArgumentParser, dict]:
    parser = argparse.ArgumentParser(prog="moodstream", description=__doc__.splitlines()[0])
    parser.add_argument("--log-level", default=os.environ.get("MOODSTREAM_LOG_LEVEL", "INFO"))
    sub = parser.add_subparsers(dest="command", required=True, metavar="COMMAND")
    runners = {}
    for name, module, configure, run, help_text in COMMANDS:
        sp = sub.add_parser(name, help=help_text, description=help_text)
        try:
            mod = importlib.import_module(module)
        except ModuleNotFoundError as error:
            if not error.name or not module.startswith(error.name.split(".")[0]):
                raise
            sp.set_defaults(_missing=f"{name}: not available ({error})")
            continue
        getattr(mod, configure)(sp)
        runners[name] = (mod, run)
    return parser, runners


def main(argv: list[str] | None = None) -> int:
    os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")
    parser, runners = build_parser()
    args = parser.parse_args(argv)
    logging.basicConfig(level=args.log_level.upper(),
                        format=f"%(asctime)s {args.command}[%(process)d] %(levelname)s "
                               "%(name)s: %(message)s")
    if getattr(args, "_missing", None):
        parser.error(args._missing)
    mod, run = runners[args.command]
    try:
        return getattr(mod, run)(args) or 0
    except ModuleNotFoundError as error:
        if (error.name or "").split(".")[0] not in TRAINING_MODULES:
            raise
        print(f"moodstream {args.command}: needs {error.name}, which comes with the training "
              "extras: pip install 'moodstream[train]' (./scripts/setup.sh installs them)",
              file=sys.stderr)
        return 2


if __name__ == "__main__":
    sys.exit(main())
