"""The dashboard's bulk upload page (admins): upload videos or photos, watch the RQ jobs'
progress live, download each finished upload's CSV, JSON and PNG.

A Flask blueprint for `dashboard.app.create_app`; register it with

    from moodstream.dashboard.bulk_upload import bp as bulk_bp
    app.register_blueprint(bulk_bp)

Uploads are stored under ``MOODSTREAM_BULK_DIR`` (default: the system temp folder), which
bulk workers must see at the same path (same machine or shared storage), unless
``MOODSTREAM_BULK_STAGE=1`` ships the files to them through Redis (workers.bulk_staging).
Uploads larger than ``MOODSTREAM_BULK_MAX_UPLOAD_MB`` (default 500) are refused; every file
is type-checked by suffix and by decoding it (an image must decode, a video must open and
give a frame).
"""

from __future__ import annotations

import json
import secrets
import shutil
import time
from pathlib import Path

from flask import (
    Blueprint,
    abort,
    flash,
    jsonify,
    redirect,
    render_template,
    request,
    send_from_directory,
    url_for,
)
from flask_login import current_user
from werkzeug.exceptions import RequestEntityTooLarge
from werkzeug.utils import secure_filename

from moodstream import keys
from moodstream.config import MIB
from moodstream.dashboard import auth
from moodstream.workers import bulk_jobs, bulk_staging
from moodstream.workers.bulk_results import write_outputs

bp = Blueprint("bulk", __name__, url_prefix="/admin/bulk")

KEEP_UPLOADS = 100
OUTPUT_SUFFIXES = {".csv", ".json", ".png"}


def _state():
    return auth.state()


def bulk_dir() -> Path:
    return _state().settings.bulk.dir


def max_upload_bytes() -> int:
    return int(_state().settings.bulk.max_upload_mb * MIB)


def _queue():
    from rq import Queue

    return Queue(_state().settings.bulk.queue, connection=_state().redis_bytes)


@bp.record_once
def _raise_upload_limit_first(setup_state):
    # The dashboard caps requests at 64 kB, and its app-wide CSRF check reads the form in an
    # app-level before_request, which runs before any blueprint's own. So this page's limit
    # is set by an app-level function placed first, whatever the registration order.
    setup_state.app.before_request_funcs.setdefault(None, []).insert(0, _upload_limit)


def _upload_limit():
    if request.blueprint == bp.name:
        request.max_content_length = max_upload_bytes() + 64 * 1024  # + the other fields


@bp.errorhandler(RequestEntityTooLarge)
def _too_large(_error=None):
    flash(f"Upload refused: larger than the limit of {max_upload_bytes() / MIB:g} MB.", "error")
    return redirect(url_for("bulk.page"), 303)


def check_file(path: Path) -> str | None:
    """Why this uploaded file cannot be analysed, or None."""
    import cv2

    suffix = path.suffix.lower()
    if suffix in bulk_jobs.IMAGE_SUFFIXES:
        return None if cv2.imread(str(path)) is not None else "not a readable image"
    if suffix in bulk_jobs.VIDEO_SUFFIXES:
        try:
            bulk_jobs.probe_video(str(path))
        except bulk_jobs.InputError as error:
            return str(error)
        return None
    return f"type {suffix or '(none)'} is not accepted (images or videos only)"


def _load(upload_id: str) -> dict | None:
    raw = _state().redis.get(keys.bulk("upload", upload_id))
    return json.loads(raw) if raw else None


def _save(record: dict) -> None:
    _state().redis.set(keys.bulk("upload", record["id"]), json.dumps(record))


@bp.get("/")
@auth.admin_required
def page():
    r = _state().redis
    uploads = [u for u in (_load(i) for i in r.lrange(keys.BULK_UPLOADS, 0, 49)) if u]
    return render_template("bulk_upload.html", page="bulk", uploads=uploads,
                           statuses={u["id"]: status(u) for u in uploads},
                           max_mb=max_upload_bytes() / 1e6,
                           suffixes=sorted(bulk_jobs.IMAGE_SUFFIXES | bulk_jobs.VIDEO_SUFFIXES))


@bp.post("/")
@auth.admin_required
def upload():
    try:
        files = [f for f in request.files.getlist("files") if f and f.filename]
        fps = float(request.form.get("fps") or bulk_jobs.DEFAULT_VIDEO_FPS)
    except RequestEntityTooLarge:
        return _too_large()
    except ValueError:
        flash("fps must be a number.", "error")
        return redirect(url_for("bulk.page"), 303)
    if not files:
        flash("Choose at least one video or photo.", "error")
        return redirect(url_for("bulk.page"), 303)
    upload_id = secrets.token_hex(6)
    root = bulk_dir() / upload_id
    folder = root / "photos"
    folder.mkdir(parents=True)
    accepted, rejected = [], []
    for storage in files:
        name = secure_filename(storage.filename) or "file"
        path = folder / name
        while path.exists():
            path = folder / f"{path.stem}-1{path.suffix}"
        storage.save(path)
        reason = check_file(path)
        if reason:
            rejected.append({"file": storage.filename, "error": reason})
            path.unlink()
        else:
            accepted.append(path.name)
    for item in rejected:
        flash(f"{item['file']}: {item['error']}", "error")
    if not accepted:
        shutil.rmtree(root, ignore_errors=True)
        return redirect(url_for("bulk.page"), 303)
    plan = bulk_jobs.plan([str(folder)], fps=fps, max_bytes=max_upload_bytes())
    staged = []
    if _state().settings.bulk.stage:
        # Workers on other machines cannot see this folder: ship the files through Redis.
        staged = bulk_staging.stage_plan(_state().redis_bytes, plan, max_upload_bytes())
    jobs = bulk_jobs.enqueue(_queue(), plan.tasks,
                             bulk_jobs.default_options(_state().settings, fps=fps))
    record = {"id": upload_id, "created": time.time(), "user": current_user.name,
              "files": accepted, "rejected": rejected, "fps": fps, "state": "queued",
              "plan": bulk_jobs.plan_to_dict(plan, [j.id for j in jobs]), "outputs": [],
              "errors": [], "staged": staged}
    _save(record)
    r = _state().redis
    r.lpush(keys.BULK_UPLOADS, upload_id)
    for old in r.lrange(keys.BULK_UPLOADS, KEEP_UPLOADS, -1):
        r.delete(keys.bulk("upload", old))
        shutil.rmtree(bulk_dir() / old, ignore_errors=True)
    r.ltrim(keys.BULK_UPLOADS, 0, KEEP_UPLOADS - 1)
    flash(f"Queued {len(jobs)} job(s) for {len(accepted)} file(s).", "info")
    return redirect(url_for("bulk.page"), 303)


def status(record: dict) -> dict:
    """Progress of an upload's jobs; writes its results once every job has ended."""
    from rq.job import Job, JobStatus
    from rq.registry import StartedJobRegistry

    if record["state"] in ("finished", "failed"):
        return _public(record, 1.0)
    connection = _state().redis_bytes
    plan, ids = bulk_jobs.plan_from_dict(record["plan"])
    StartedJobRegistry(queue=_queue()).cleanup()  # retry the jobs of dead workers
    done = total = ended = running = 0
    outcomes = []
    for task, job in zip(plan.tasks, Job.fetch_many(ids, connection), strict=True):
        total += task.total
        if job is None:
            outcomes.append((task, None, "the job expired from Redis", 1))
            ended += 1
            done += task.total
            continue
        state = job.get_status(refresh=False)
        attempts = int(job.meta.get("attempts", 1) or 1)
        if state == JobStatus.FINISHED:
            outcomes.append((task, job.return_value() or {}, None, attempts))
        elif state in (JobStatus.FAILED, JobStatus.STOPPED, JobStatus.CANCELED):
            outcomes.append((task, None, bulk_jobs.failure_reason(job), attempts))
        else:
            running += state == JobStatus.STARTED
            done += min(int(job.meta.get("done", 0)), task.total)
            continue
        ended += 1
        done += task.total
    if ended == len(ids) and _state().redis.set(keys.bulk("lock", record["id"]), "1", nx=True,
                                                 ex=120):
        out = bulk_dir() / record["id"] / "results"
        for task, result, failure, attempts in outcomes:
            bulk_jobs.merge(plan.groups[task.group], task, result, failure, attempts)
        outputs = []
        for group in plan.groups.values():
            if group.frames:
                outputs += [p.name for p in write_outputs(out, group).values()]
        record["outputs"] = outputs
        record["errors"] = [e for g in plan.groups.values() for e in g.errors]
        record["state"] = "failed" if record["errors"] and not outputs else "finished"
        bulk_staging.unstage(connection, record.get("staged", []))
        _save(record)
        return _public(record, 1.0)
    record = dict(record, state="running" if running or done else "queued")
    return _public(record, done / total if total else 0.0)


def _public(record: dict, fraction: float) -> dict:
    return {"id": record["id"], "state": record["state"], "progress": round(fraction, 3),
            "files": record["files"], "errors": record.get("errors", []),
            "rejected": record.get("rejected", []),
            "outputs": [{"name": n, "url": url_for("bulk.download", upload_id=record["id"],
                                                   name=n)} for n in record.get("outputs", [])]}


@bp.get("/<upload_id>.json")
@auth.admin_required
def upload_status(upload_id):
    record = _load(upload_id) if upload_id.isalnum() else None
    if record is None:
        abort(404)
    return jsonify(status(record))


@bp.get("/<upload_id>/<name>")
@auth.admin_required
def download(upload_id, name):
    if not upload_id.isalnum() or Path(name).suffix not in OUTPUT_SUFFIXES:
        abort(404)
    return send_from_directory(bulk_dir() / upload_id / "results", name, as_attachment=True)
