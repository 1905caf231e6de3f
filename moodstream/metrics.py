"""Prometheus metrics shared by every service (each process serves its own /metrics)."""

from __future__ import annotations

import logging

from prometheus_client import Counter, Histogram, start_http_server

log = logging.getLogger(__name__)

ENTRIES = Counter(
    "moodstream_entries_total",
    "Stream entries handled, by stage and outcome (done, stale, dead, published)",
    ["stage", "outcome"],
)
STAGE_SECONDS = Histogram(
    "moodstream_stage_seconds",
    "Time to process one batch of entries, by stage",
    ["stage"],
    buckets=(0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5),
)
CAPTURE_TO_STAGE_SECONDS = Histogram(
    "moodstream_capture_latency_seconds",
    "Time from frame capture until a stage finished with it",
    ["stage"],
    buckets=(0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10, 30),
)
REDIS_OUTAGES = Counter("moodstream_redis_outages_total", "Times a service lost Redis")


def serve(port: int) -> None:
    """Expose /metrics on the port (0 disables it)."""
    if port:
        start_http_server(port)
        log.info("Prometheus metrics on :%d/metrics", port)
