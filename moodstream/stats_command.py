"""`moodstream stats`: the pipeline accounting as JSON, straight from Redis."""

from __future__ import annotations

import argparse
import json

from moodstream.accounting import pipeline_stats
from moodstream.config import Settings
from moodstream.redis_client import connect


def configure(parser: argparse.ArgumentParser) -> None:
    """Only the shared --redis-url."""


def run(args: argparse.Namespace, settings: Settings) -> int:
    r = connect(settings.redis_url)
    print(json.dumps(pipeline_stats(r), indent=2))
    return 0
