"""Benchmarks: `moodstream bench` (bench.cli) and the per-part scripts it builds on.

They read the project's shared test data (../shared beside a checkout, or MOODSTREAM_SHARED):
the media below, and FER-2013 for the model's figures. The product never does."""

import os
from pathlib import Path

REPO = Path(__file__).resolve().parent.parent
SHARED = Path(os.environ.get("MOODSTREAM_SHARED", REPO.parent / "shared"))
MEDIA = SHARED / "data" / "media"
CLIP = MEDIA / "fer_woman2.mp4"  # the real one-face video
