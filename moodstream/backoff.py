"""Waiting longer after each failure in a row: every retry loop of the services (Redis, a
camera, a crashed child process, the history database) takes its delays from here."""

from __future__ import annotations


class Doubling:
    """Delays from `first`, doubling up to `cap`; `reset` after a success starts over."""

    def __init__(self, first: float, cap: float):
        self.first, self.cap = first, cap
        self.delay = first

    def next(self) -> float:
        """The delay to wait now; the one after it is twice as long (at most `cap`)."""
        delay = self.delay
        self.delay = min(self.cap, self.delay * 2)
        return delay

    def peek(self) -> float:
        return self.delay

    def reset(self) -> None:
        self.delay = self.first
