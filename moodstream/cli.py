"""`moodstream <command>`: one console command, one subcommand per service.

Only the invoked command's module is imported (a classifier worker never loads TensorFlow,
Flask or the bulk code): `moodstream --help` lists commands from the table below, and the
command's own options are added after it is chosen. Each command's `run(args, settings)` gets
the settings read once here.
"""

from __future__ import annotations

import argparse
import importlib
import logging
import sys
from typing import NamedTuple

from moodstream.config import Settings, load_settings, quiet_tensorflow

# Installed by `pip install 'moodstream[train]'` only: training, export, the reference mtcnn
# detector and the paper-loop baseline need them; the workers do not.
TRAINING_MODULES = {"tensorflow", "keras", "tf2onnx", "mtcnn"}


class Command(NamedTuple):
    module: str
    help: str
    shared: tuple[str, ...] = ()  # options from SHARED_OPTIONS that the command takes
    configure: str = "configure"
    run: str = "run"


COMMANDS = {
    "up": Command("moodstream.up",
                  "run the whole live pipeline and the dashboard (embedded Redis by default)"),
    "ingest": Command("moodstream.ingest.service",
                      "publish one camera's frames (or, --supervised, several cameras')",
                      ("redis", "metrics")),
    "cameras": Command("moodstream.ingest.supervisor",
                       "run ingest processes for the cameras registered in Redis "
                       "(from the dashboard)",
                       ("redis",)),
    "edge": Command("moodstream.edge.service",
                    "analyse one camera beside it and send only its labels to a central Redis",
                    ("redis", "metrics")),
    "detector": Command("moodstream.workers.detector", "MTCNN face detector worker",
                        ("redis", "metrics")),
    "detect": Command("moodstream.detection.cli", "print the faces found in images"),
    "classifier": Command("moodstream.workers.classifier", "expression classifier worker",
                          ("redis", "metrics")),
    "aggregator": Command("moodstream.workers.aggregator", "per-camera mood aggregates",
                          ("redis", "metrics")),
    "dashboard": Command("moodstream.dashboard.service", "the web dashboard", ("redis",)),
    "user": Command("moodstream.dashboard.users", "manage dashboard users", ("redis",),
                    "configure_user", "run_user"),
    "stats": Command("moodstream.accounting", "print pipeline accounting", ("redis",)),
    "history": Command("moodstream.history.cli",
                       "export, summarise, purge or erase the lesson history", ("redis",)),
    "db": Command("moodstream.history.backup",
                  "back up or restore the database, or read its audit log"),
    "analyze": Command("moodstream.bulk.cli", "analyse videos and photos in bulk",
                       ("redis",)),
    "bulk-worker": Command("moodstream.bulk.cli", "process bulk analysis jobs (RQ)",
                           ("redis",), "configure_worker", "run_worker"),
    "train": Command("moodstream.models.cli", "train the emotion model", (),
                     "configure_train", "run_train"),
    "evaluate": Command("moodstream.models.cli", "evaluate an ONNX model on FER-2013 PrivateTest",
                        (), "configure_evaluate", "run_evaluate"),
    "export": Command("moodstream.models.cli", "export a Keras model to ONNX", (),
                      "configure_export", "run_export"),
    "quantize": Command("moodstream.models.cli",
                        "write the INT8 emotion model from the float one and compare them",
                        (), "configure_quantize", "run_quantize"),
    "bench": Command("moodstream.bench.cli", "measure everything side by side"),
}

SHARED_OPTIONS = {
    "redis": (("--redis-url",), {"default": None, "metavar": "URL",
                                 "help": "Redis to use (default: REDIS_URL, else "
                                         "redis://127.0.0.1:6379/0)"}),
    "metrics": (("--metrics-port",), {"type": int, "default": None, "metavar": "PORT",
                                      "help": "serve Prometheus metrics on this port "
                                              "(default: MOODSTREAM_METRICS_PORT, 0 = off)"}),
}


def top_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="moodstream", description=__doc__.splitlines()[0])
    parser.add_argument("--log-level", default=None, help="default: MOODSTREAM_LOG_LEVEL or INFO")
    sub = parser.add_subparsers(dest="command", required=True, metavar="COMMAND")
    for name, command in COMMANDS.items():
        # Placeholders for the listing: the real options come with the command's module.
        sub.add_parser(name, help=command.help, add_help=False)
    return parser


def command_parser(name: str, command: Command, module) -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog=f"moodstream {name}", description=command.help)
    for option in command.shared:
        flags, kwargs = SHARED_OPTIONS[option]
        parser.add_argument(*flags, **kwargs)
    getattr(module, command.configure)(parser)
    return parser


def apply_shared(settings: Settings, args: argparse.Namespace) -> Settings:
    settings = settings.with_redis(getattr(args, "redis_url", None))
    if getattr(args, "metrics_port", None) is not None:
        settings = settings.model_copy(update={"metrics_port": args.metrics_port})  # top level
    return settings


def configure_logging(command: str, level: str) -> None:
    """Every command's log lines name it and its process, with camera secrets masked."""
    from moodstream.redaction import RedactingFormatter

    root = logging.getLogger()
    if root.handlers:  # configured already (an embedding program, a test runner)
        return
    handler = logging.StreamHandler()
    handler.setFormatter(RedactingFormatter(f"%(asctime)s {command}[%(process)d] %(levelname)s "
                                            "%(name)s: %(message)s"))
    root.addHandler(handler)
    root.setLevel(level.upper())


def main(argv: list[str] | None = None) -> int:
    argv = sys.argv[1:] if argv is None else argv
    quiet_tensorflow()
    top, rest = top_parser().parse_known_args(argv)
    name, command = top.command, COMMANDS[top.command]
    settings = load_settings()
    configure_logging(name, top.log_level or settings.log_level)
    try:
        module = importlib.import_module(command.module)
    except ModuleNotFoundError as error:
        return missing_extra(name, error)
    args = command_parser(name, command, module).parse_args(rest)
    args.command = name
    try:
        return getattr(module, command.run)(args, apply_shared(settings, args)) or 0
    except ModuleNotFoundError as error:
        return missing_extra(name, error)


def missing_extra(name: str, error: ModuleNotFoundError) -> int:
    if (error.name or "").split(".")[0] not in TRAINING_MODULES:
        raise error
    print(f"moodstream {name}: needs {error.name}, which comes with the training extras: "
          "pip install 'moodstream[train]' (./scripts/setup.sh installs them)", file=sys.stderr)
    return 2


if __name__ == "__main__":
    sys.exit(main())
