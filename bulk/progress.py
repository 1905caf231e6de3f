"""Where a bulk run's jobs are: one poll that `moodstream analyze` (its progress bars) and the
dashboard's Bulk page (an upload's status) both use."""

from __future__ import annotations

from dataclasses import dataclass, field

from rq.job import JobStatus
from rq.registry import StartedJobRegistry

from moodstream.bulk import jobs as bulk_jobs
from moodstream.bulk.jobs import BulkPlan, Task

GONE = "the job is no longer in Redis (it expired or was deleted)"


@dataclass
class Outcome:
    """An ended job: its result, or why it failed, and the attempts it took."""

    task: Task
    result: dict | None
    failure: str | None
    attempts: int = 1


@dataclass
class JobsProgress:
    ended: dict[str, Outcome] = field(default_factory=dict)  # by job id
    done: dict[str, int] = field(default_factory=dict)  # frames done per group
    running: int = 0  # jobs a worker is on
    total: int = 0  # frames of all tasks

    @property
    def frames_done(self) -> int:
        return sum(self.done.values())

    def all_ended(self, ids: list[str]) -> bool:
        return len(self.ended) >= len(ids)

    def merge_into(self, plan: BulkPlan) -> None:
        """Adds every ended job's outcome to its output group."""
        for outcome in self.ended.values():
            bulk_jobs.merge(plan.groups[outcome.task.group], outcome.task, outcome.result,
                            outcome.failure, outcome.attempts)


def poll(connection, queue, ids: list[str], tasks: list[Task], cleanup: bool = True,
         before: JobsProgress | None = None) -> JobsProgress:
    """One look at the jobs `ids` (one per task, in order). cleanup: first requeue the jobs
    of dead workers (RQ's registry cleanup, which applies their Retry). before: the last
    look, whose ended jobs are not read again (their results can be large)."""
    if cleanup:
        StartedJobRegistry(queue=queue).cleanup()
    progress = JobsProgress()
    known = before.ended if before is not None else {}
    waiting = [job_id for job_id in ids if job_id not in known]
    fetched = dict(zip(waiting, bulk_jobs.fetch_jobs(waiting, connection), strict=True))
    for job_id, task in zip(ids, tasks, strict=True):
        progress.total += task.total
        done = task.total
        if job_id in known:
            progress.ended[job_id] = known[job_id]
            progress.done[task.group] = progress.done.get(task.group, 0) + done
            continue
        job = fetched[job_id]
        if job is None:
            progress.ended[job_id] = Outcome(task, None, GONE)
        else:
            state = job.get_status(refresh=False)
            attempts = int(job.meta.get("attempts", 1) or 1)
            if state == JobStatus.FINISHED:
                progress.ended[job_id] = Outcome(task, job.return_value() or {}, None,
                                                 attempts)
            elif state in (JobStatus.FAILED, JobStatus.STOPPED, JobStatus.CANCELED):
                progress.ended[job_id] = Outcome(task, None, bulk_jobs.failure_reason(job),
                                                 attempts)
            else:
                progress.running += state == JobStatus.STARTED
                done = min(int(job.meta.get("done", 0)), task.total)
        progress.done[task.group] = progress.done.get(task.group, 0) + done
    return progress
