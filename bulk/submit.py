"""Queueing a bulk plan: ship its files through Redis when the workers cannot see them, then
one RQ job per task. `moodstream analyze` and the dashboard's uploads both submit here."""

from __future__ import annotations

from moodstream.bulk import jobs as bulk_jobs
from moodstream.bulk import staging
from moodstream.bulk.jobs import BulkPlan


def submit(connection, queue, plan: BulkPlan, options: dict, *,
           stage_max_bytes: float | None = None,
           retries: int = bulk_jobs.DEFAULT_RETRIES) -> tuple[list, list[str]]:
    """Returns (the jobs, one per task that is left, and the staged names for unstage).
    stage_max_bytes: stage each input up to this size (None: the workers read the paths)."""
    staged = []
    if stage_max_bytes is not None:
        staged = staging.stage_plan(connection, plan, stage_max_bytes)
    return bulk_jobs.enqueue(queue, plan.tasks, options, retries=retries), staged
