"""`moodstream history`: the lesson history from the command line.

    moodstream history export CAMERA [--from T] [--to T] [--step S]   CSV on stdout
    moodstream history summary CAMERA [--from T] [--to T]             JSON: the range at a glance
    moodstream history lessons CAMERA [--from T] [--to T]             JSON: lessons with summaries
    moodstream history purge                                          apply the retention now
    moodstream history erase CAMERA                                   delete a camera's history

Times are unix seconds or ISO 8601 dates (2026-11-23, 2026-11-23T08:30, UTC unless the
value says otherwise); the default range is the last 24 hours.
"""

from __future__ import annotations

import argparse
import json
import sys
import time
from datetime import UTC, datetime

from moodstream.config import Settings
from moodstream.history import open_store
from moodstream.history.store import BUCKET_S, to_csv


def when(value: str) -> float:
    try:
        return float(value)
    except ValueError:
        pass
    try:
        moment = datetime.fromisoformat(value)
    except ValueError:
        raise argparse.ArgumentTypeError(f"not a time: {value!r}") from None
    if moment.tzinfo is None:
        moment = moment.replace(tzinfo=UTC)
    return moment.timestamp()


def configure(parser: argparse.ArgumentParser) -> None:
    actions = parser.add_subparsers(dest="action", required=True, metavar="ACTION")
    for name, text in (("export", "rows as CSV on stdout"),
                       ("summary", "the range at a glance (JSON)"),
                       ("lessons", "lessons in the range with their summaries (JSON)")):
        p = actions.add_parser(name, help=text)
        p.add_argument("camera")
        p.add_argument("--from", dest="start", type=when, default=None)
        p.add_argument("--to", dest="end", type=when, default=None)
        if name == "export":
            p.add_argument("--step", type=int, default=BUCKET_S, help="seconds (default 10)")
    actions.add_parser("purge", help="delete what is older than the retention period, now")
    erase = actions.add_parser("erase", help="delete a camera's whole history")
    erase.add_argument("camera")


def run(args: argparse.Namespace, settings: Settings) -> int:
    store = open_store(settings.history)
    try:
        if args.action == "purge":
            print(json.dumps(store.purge()))
            return 0
        if args.action == "erase":
            from moodstream.history.writer import erase_camera
            from moodstream.redis_client import connect

            print(json.dumps({"camera": args.camera, "buckets_erased": erase_camera(
                connect(settings.redis_url), store, args.camera)}))
            return 0
        end = args.end if args.end is not None else time.time()
        start = args.start if args.start is not None else end - 86400
        if start >= end:
            print("moodstream history: --from must be before --to", file=sys.stderr)
            return 2
        if args.action == "export":
            sys.stdout.write(to_csv(store.history(args.camera, start, end, args.step)))
        elif args.action == "summary":
            print(json.dumps(store.summary(args.camera, start, end), indent=2))
        else:
            print(json.dumps(store.lessons(args.camera, start, end), indent=2))
        return 0
    finally:
        store.close()
