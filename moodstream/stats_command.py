"""`moodstream stats`: the pipeline accounting as JSON, straight from Redis."""

from __future__ import annotations

import argparse
import json

from moodstream.accounting import pipeline_stats
from moodstream.config import get_settings
from moodstream.redis_client import connect


def configure(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--redis-url", default=None, help="default: REDIS_URL")


def run(args: argparse.Namespace) -> int:
    r = connect(args.redis_url or get_settings().redis_url)
    print(json.dumps(pipeline_stats(r), indent=2))
    return 0
