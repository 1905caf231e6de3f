"""moodstream: the shared core (configuration, stream contract, Redis access, metrics)."""

__version__ = "0.1.0"
