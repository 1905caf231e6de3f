"""Bulk jobs (bulk/jobs.py) on the real test redis-server: a worker runs only the
allowlisted functions and callbacks, whatever a job record in Redis names."""

from __future__ import annotations

import os

import pytest
from rq import Callback

from moodstream.bulk import jobs as bulk_jobs

QUEUE = "callbacks-test"


@pytest.fixture
def calls(monkeypatch):
    """os.system replaced by a recorder: a forged callback naming it would call this."""
    seen = []
    monkeypatch.setattr(os, "system", lambda *args: seen.append(args) or 0)
    return seen


def run_burst(r) -> None:
    worker = bulk_jobs.BulkWorker([bulk_jobs.make_queue(QUEUE, r)], connection=r)
    worker.preload_at_start = False  # no models: these jobs never get that far
    worker.work(burst=True)


@pytest.mark.parametrize("kind", ["on_failure", "on_success", "on_stopped"])
def test_a_job_naming_os_system_as_its_callback_is_refused(r, calls, tmp_path, kind):
    """Enqueued straight into Redis, as anyone who can write to it could."""
    queue = bulk_jobs.make_queue(QUEUE, r)
    job = queue.enqueue("moodstream.bulk.jobs.discard_inputs", str(tmp_path / "x"),
                        **{kind: Callback("os.system")})
    run_burst(r)
    job.refresh()
    assert calls == [], "the forged callback never runs"
    assert job.get_status() == "failed"
    assert "callback 'os.system' is not allowed" in bulk_jobs.failure_reason(job)


def test_a_refused_job_function_never_reaches_its_failure_callback(r, calls):
    queue = bulk_jobs.make_queue(QUEUE, r)
    job = queue.enqueue("os.getcwd", on_failure=Callback("os.system"))
    run_burst(r)
    job.refresh()
    assert calls == [] and job.get_status() == "failed"
    assert "not a bulk analysis job" in bulk_jobs.failure_reason(job)


def test_a_job_without_callbacks_still_runs(r, tmp_path, monkeypatch):
    monkeypatch.setitem(bulk_jobs._PROCESS, "bulk_dir", str(tmp_path))
    folder = tmp_path / "upload1" / "photos"
    folder.mkdir(parents=True)
    (folder / "a.jpg").write_bytes(b"x")
    job = bulk_jobs.make_queue(QUEUE, r).enqueue(
        "moodstream.bulk.jobs.discard_inputs", str(folder))
    run_burst(r)
    job.refresh()
    assert job.get_status() == "finished" and not folder.exists()
