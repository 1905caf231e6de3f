"""`moodstream analyze` (enqueue bulk jobs, show progress, write results) and
`moodstream bulk-worker` (an RQ worker that keeps the models loaded).

Light at import time: TensorFlow and onnxruntime load only inside a worker.
"""

from __future__ import annotations

import argparse
import contextlib
import json
import logging
import os
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import redis
from rq.worker import Worker
from tqdm import tqdm

from moodstream.bulk import jobs as bulk_jobs
from moodstream.bulk import staging as bulk_staging
from moodstream.bulk.progress import JobsProgress, Outcome, poll
from moodstream.bulk.results import Group, summary, write_outputs
from moodstream.bulk.submit import submit
from moodstream.config import MIB, Settings
from moodstream.embedded_redis import EmbeddedRedis
from moodstream.redis_client import wait_until_reachable

log = logging.getLogger("moodstream.analyze")
MAX_BARS = 20  # per-file progress bars shown at once; more files share the overall bar


def _default_workers() -> int:
    return max(1, min(2, os.cpu_count() or 1))


def configure(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("paths", nargs="+", metavar="PATH",
                        help="video files, images, and folders (searched recursively)")
    parser.add_argument("--out", default="moodstream-results", metavar="DIR",
                        help="where <name>.csv, <name>.json and <name>.png go (%(default)s)")
    parser.add_argument("--fps", type=float, default=bulk_jobs.DEFAULT_VIDEO_FPS,
                        help="video frames analysed per second; 0 = every frame (%(default)s)")
    parser.add_argument("--chunk-seconds", type=float, default=bulk_jobs.DEFAULT_CHUNK_SECONDS,
                        help="videos are split into jobs of this many seconds (%(default)s)")
    parser.add_argument("--workers", type=int, default=_default_workers(),
                        help="worker processes to start when Redis is embedded (%(default)s)")
    parser.add_argument("--queue", default=None,
                        help="RQ queue (MOODSTREAM_BULK_QUEUE, default moodstream-bulk)")
    parser.add_argument("--max-size-mb", type=float, default=bulk_jobs.DEFAULT_MAX_MB,
                        help="files larger than this are refused (%(default)s)")
    parser.add_argument("--min-face", type=int, default=None,
                        help="smallest face in pixels (default: as the live detector)")
    parser.add_argument("--model", default=None, help="ONNX emotion model (default: shipped)")
    parser.add_argument("--detector", default=None,
                        help="face detector (default: as the live detector, $MOODSTREAM_DETECTOR)")
    parser.add_argument("--retries", type=int, default=bulk_jobs.DEFAULT_RETRIES,
                        help="times a job is retried after a failure or a dead worker")
    parser.add_argument("--stage", action="store_true",
                        help="copy the input files into Redis for workers on machines that "
                             "cannot see them (removed when done; see docs/bulk.md)")
    parser.add_argument("--stage-max-mb", type=float, default=bulk_staging.DEFAULT_MAX_MB,
                        help="largest file --stage ships (%(default)s)")
    parser.add_argument("--timeout", type=float, default=None,
                        help="give up waiting after this many seconds")
    parser.add_argument("--no-progress", action="store_true", help="no progress bars")


def start_local_workers(settings: Settings, n: int, queue: str, args, log_dir: Path) -> list:
    procs = []
    extra = []
    if args.model:
        extra += ["--model", args.model]
    if args.min_face:
        extra += ["--min-face", str(args.min_face)]
    if args.detector:
        extra += ["--detector", args.detector]
    env = settings.child_env()
    env.setdefault("MOODSTREAM_BULK_HEARTBEAT_TTL", "20")  # local: notice a dead one sooner
    for i in range(n):
        log_file = open(log_dir / f"worker-{i}.log", "wb")  # noqa: SIM115
        proc = subprocess.Popen(
            [sys.executable, "-m", "moodstream.cli", "bulk-worker", "--queue", queue, *extra],
            stdout=log_file, stderr=subprocess.STDOUT, env=env)
        proc.log_path = log_file.name
        procs.append(proc)
    return procs


def stop_local_workers(procs: list) -> None:
    for proc in procs:
        if proc.poll() is None:
            proc.terminate()
    for proc in procs:
        try:
            proc.wait(15)
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.wait(5)


class Waiter:
    """Polls the jobs (bulk/progress.py), feeds tqdm bars, returns when all have ended."""

    def __init__(self, connection, queue, jobs: list, tasks: list, show: bool,
                 procs: list | None = None, timeout: float | None = None):
        self.connection, self.queue, self.jobs, self.tasks = connection, queue, jobs, tasks
        self.procs, self.timeout, self.show = procs or [], timeout, show
        self.progress = JobsProgress()
        self.gave_up: dict[str, str] = {}  # job id -> why, for jobs never seen to end

    def _bars(self):
        totals: dict[str, int] = {}
        for task in self.tasks:
            totals[task.group] = totals.get(task.group, 0) + task.total
        disable = not self.show
        overall = tqdm(total=sum(totals.values()), desc="all files", unit="frame",
                       position=0, disable=disable, dynamic_ncols=True)
        bars = {}
        for i, (group, total) in enumerate(list(totals.items())[:MAX_BARS]):
            bars[group] = tqdm(total=total, desc=group[:30], unit="frame", position=i + 1,
                               leave=True, disable=disable, dynamic_ncols=True)
        return overall, bars

    def wait(self) -> None:
        overall, bars = self._bars()
        ids = [job.id for job in self.jobs]
        started = time.monotonic()
        last_cleanup, warned = 0.0, False
        try:
            while True:
                now = time.monotonic()
                cleanup = now - last_cleanup > 2  # requeue jobs of dead workers (RQ Retry)
                if cleanup:
                    last_cleanup = now
                self.progress = poll(self.connection, self.queue, ids, self.tasks, cleanup,
                                     before=self.progress)
                for group, bar in bars.items():
                    bar.n = self.progress.done.get(group, 0)
                    bar.refresh()
                overall.n = self.progress.frames_done
                overall.refresh()
                if self.progress.all_ended(ids):
                    break
                if self.procs and all(p.poll() is not None for p in self.procs):
                    self._give_up("all local workers exited (logs: "
                                  f"{', '.join(p.log_path for p in self.procs)})")
                    break
                if self.timeout and now - started > self.timeout:
                    self._give_up(f"not finished after {self.timeout:.0f} s")
                    break
                if not self.procs and not warned and now - started > 10 \
                        and Worker.count(queue=self.queue) == 0:
                    overall.write(f"waiting for workers on queue {self.queue!r}: start some "
                                  "with `moodstream bulk-worker`")
                    warned = True
                time.sleep(0.3)
        finally:
            for bar in bars.values():
                bar.close()
            overall.close()

    def _give_up(self, reason: str) -> None:
        for job, task in zip(self.jobs, self.tasks, strict=True):
            if job.id not in self.progress.ended:
                self.progress.ended[job.id] = Outcome(task, None, reason)


def collect(plan: bulk_jobs.BulkPlan, waiter: Waiter) -> list[Group]:
    waiter.progress.merge_into(plan)
    return list(plan.groups.values())


def report(groups: list[Group], out: Path, written: dict) -> None:
    print(f"\n{'output':30} {'kind':7} {'frames':>7} {'faces':>6}  dominant   status")
    for g in groups:
        rows = sum(len(r) for r in g.rows.values())
        counts: dict[str, int] = {}
        for _, row in g.all_rows():
            label = row.label
            counts[label] = counts.get(label, 0) + 1
        dominant = max(counts, key=counts.get) if counts else "-"
        status = "ok" if not g.errors else f"{len(g.errors)} error(s)"
        print(f"{g.name[:30]:30} {g.kind:7} {g.frames:7d} {rows:6d}  {dominant:10} {status}")
    errors = [e for g in groups for e in g.errors]
    if errors:
        print(f"\n{len(errors)} file(s) failed:")
        for e in errors:
            print(f"  {e['file']}: {e['error']}")
    print(f"\nresults in {out}/ ({sum(len(p) for p in written.values())} files)")


def run(args: argparse.Namespace, settings: Settings) -> int:
    args.queue = args.queue or settings.bulk.queue
    out = Path(args.out)
    plan = bulk_jobs.plan(args.paths, fps=args.fps, chunk_seconds=args.chunk_seconds,
                          max_bytes=args.max_size_mb * MIB,
                          max_pixels=settings.limits.max_image_pixels)
    if plan.ignored:
        print(f"ignored {len(plan.ignored)} file(s) that are neither images nor videos",
              file=sys.stderr)
    options = bulk_jobs.default_options(settings, fps=args.fps, min_face=args.min_face,
                                        model=args.model, detector=args.detector)
    # With no Redis configured (REDIS_URL or --redis-url), an embedded one and local workers.
    url = settings.redis.url
    embedded, procs = None, []
    log_dir = Path(tempfile.mkdtemp(prefix="moodstream-bulk-"))
    jobs: list = []
    waiter, staged, connection = None, [], None
    try:
        if plan.tasks:
            if url is None:
                embedded = EmbeddedRedis(maxmemory=settings.redis.maxmemory,
                                         maxmemory_policy=settings.redis.maxmemory_policy)
                url = embedded.start()
                n = max(1, min(args.workers, len(plan.tasks)))
                procs = start_local_workers(settings.with_redis(url), n, args.queue, args,
                                            log_dir)
                print(f"embedded Redis, {n} local worker(s) loading the models...",
                      file=sys.stderr)
            else:
                print(f"queueing {len(plan.tasks)} job(s) on {args.queue!r} at "
                      f"{url.split('@')[-1]}", file=sys.stderr)
            connection = redis.Redis.from_url(url)
            queue = bulk_jobs.make_queue(args.queue, connection)
            try:
                jobs, staged = submit(connection, queue, plan, options,
                                      stage_max_bytes=args.stage_max_mb * MIB if args.stage
                                      else None, retries=args.retries)
            except redis.ConnectionError as error:
                print(f"cannot reach Redis at {url.split('@')[-1]}: {error}", file=sys.stderr)
                return 2
            waiter = Waiter(connection, queue, jobs, plan.tasks, show=not args.no_progress,
                            procs=procs, timeout=args.timeout)
            waiter.wait()
    except KeyboardInterrupt:
        print("\ninterrupted: no results written" + ("" if embedded else
              f"; queued jobs stay on {args.queue!r}"), file=sys.stderr)
        return 130
    finally:
        if staged:
            with contextlib.suppress(redis.RedisError):
                bulk_staging.unstage(connection, staged)
        stop_local_workers(procs)
        if embedded is not None:
            embedded.stop()
    groups = collect(plan, waiter) if waiter else list(plan.groups.values())
    written = {}
    for group in groups:
        if group.frames or not group.errors:
            written[group.name] = write_outputs(out, group)
        else:  # nothing analysed: only the JSON with the reason
            out.mkdir(parents=True, exist_ok=True)
            path = out / f"{group.name}.json"
            path.write_text(json.dumps(summary(group), indent=1))
            written[group.name] = {"json": path}
    report(groups, out, written)
    return 1 if any(g.errors for g in groups) else 0


# --------------------------------------------------------------------------- worker


def configure_worker(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--queue", default=None,
                        help="RQ queue (MOODSTREAM_BULK_QUEUE, default moodstream-bulk)")
    parser.add_argument("--url", dest="redis_url", help=argparse.SUPPRESS)  # old spelling
    parser.add_argument("--burst", action="store_true", help="exit when the queue is empty")
    parser.add_argument("--name", default=None, help="worker name (default: random)")
    parser.add_argument("--model", default=None, help="ONNX model to preload")
    parser.add_argument("--min-face", type=int, default=None, help="detector size to preload")
    parser.add_argument("--detector", default=None, help="face detector to preload")
    parser.add_argument("--max-jobs", type=int, default=None, help="exit after this many jobs")


def run_worker(args: argparse.Namespace, settings: Settings) -> int:
    args.queue = args.queue or settings.bulk.queue
    connection = redis.Redis.from_url(settings.redis_url)
    wait_until_reachable(connection, "bulk-worker")
    bulk_jobs.configure_process(settings)
    worker = bulk_jobs.BulkWorker([bulk_jobs.make_queue(args.queue, connection)],
                                  connection=connection, name=args.name)
    worker.heartbeat_ttl = settings.bulk.heartbeat_ttl
    worker.preload_at_start = settings.bulk.preload
    worker.preload_options = bulk_jobs.default_options(settings, model=args.model,
                                                       min_face=args.min_face,
                                                       detector=args.detector)
    worker.work(burst=args.burst, max_jobs=args.max_jobs,
                logging_level=logging.getLevelName(logging.getLogger().level))
    return 0
