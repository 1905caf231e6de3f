"""The seven expressions read as a mood: which count as positive and negative, valence and
the dominant expression. The history store, the analysis and the dashboard agree on them."""

from __future__ import annotations

from moodstream.contract import CLASSES

POSITIVE = ("happy", "surprise")
NEGATIVE = ("angry", "disgust", "fear", "sad")


def valence(counts: dict[str, float]) -> float:
    """Share of positive minus share of negative expressions, in [-1, 1]."""
    total = sum(counts.values())
    if not total:
        return 0.0
    positive = sum(counts.get(c, 0) for c in POSITIVE)
    return (positive - sum(counts.get(c, 0) for c in NEGATIVE)) / total


def dominant(counts: dict[str, float]) -> str | None:
    best = max(CLASSES, key=lambda c: counts.get(c, 0))
    return best if counts.get(best, 0) > 0 else None
