"""The dashboard's bulk upload page (admins): upload videos or photos, watch the RQ jobs'
progress live, download each finished upload's CSV, JSON and PNG.

A Flask blueprint for `moodstream.dashboard.app.create_app`; register it with

    from moodstream.dashboard.bulk_upload import bp as bulk_bp
    app.register_blueprint(bulk_bp)

Uploads are stored under ``MOODSTREAM_BULK_DIR`` (default: the system temp folder), which
bulk workers must see at the same path (same machine or shared storage), unless
``MOODSTREAM_BULK_STAGE=1`` ships the files to them through Redis (bulk/staging.py).
Uploads larger than ``MOODSTREAM_BULK_MAX_UPLOAD_MB`` (default 500) are refused; every file
is type-checked by suffix and by decoding it (an image must decode, a video must open and
give a frame).
"""

from __future__ import annotations

import json
import logging
import os
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
from moodstream.bulk import jobs as bulk_jobs
from moodstream.bulk import staging as bulk_staging
from moodstream.bulk.progress import poll
from moodstream.bulk.results import write_outputs
from moodstream.bulk.submit import submit
from moodstream.config import MIB
from moodstream.dashboard import auth
from moodstream.dashboard.numbers import NumberOutOfRange, form_number
from moodstream.images import check_image, decode

log = logging.getLogger("moodstream.dashboard")
bp = Blueprint("bulk", __name__, url_prefix="/admin/bulk")

KEEP_UPLOADS = 100
MAX_VIDEO_FPS = 240.0  # the fastest video rate sampling knows (bulk_jobs.probe_video)
OUTPUT_SUFFIXES = {".csv", ".json", ".png"}


MAX_NAME = 100  # characters of a stored file name: far below every file system's limit


def stored_path(folder: Path, original: str) -> Path:
    """A safe, short, unused file name that keeps the suffix (which decides how a file is
    read), also for names secure_filename empties ("教室.jpg" would become "jpg")."""
    base = original.replace("\\", "/").rsplit("/", 1)[-1]
    stem, dot, suffix = base.rpartition(".")
    if not dot or not suffix.isascii() or not suffix.isalnum() or len(suffix) > 8:
        stem, suffix = base, ""
    stem = secure_filename(stem)[:MAX_NAME] or "file"
    suffix = f".{suffix.lower()}" if suffix else ""
    path, n = folder / f"{stem}{suffix}", 0
    while path.exists():
        n += 1
        path = folder / f"{stem}-{n}{suffix}"
    return path


def _private_dir(path: Path) -> None:
    """Uploads hold people's faces: folders 0700 (the files in them are 0600)."""
    path.mkdir(mode=0o700, parents=True, exist_ok=True)
    os.chmod(path, 0o700)


def _save_private(storage, path: Path) -> None:
    fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
    with os.fdopen(fd, "wb") as out:
        storage.save(out)


def _state():
    return auth.state()


def bulk_dir() -> Path:
    return _state().settings.bulk.dir


def max_upload_bytes() -> int:
    return int(_state().settings.bulk.max_upload_mb * MIB)


def _queue():
    return bulk_jobs.make_queue(_state().settings.bulk.queue, _state().redis_bytes)


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

    suffix = path.suffix.lower()
    if suffix in bulk_jobs.IMAGE_SUFFIXES:
        try:
            # The pixel limit, from the header, before decoding.
            check_image(path, _state().settings.limits.max_image_pixels)
        except ValueError as error:
            return str(error)
        return None if decode(path) is not None else "not a readable image"
    if suffix in bulk_jobs.VIDEO_SUFFIXES:
        try:
            bulk_jobs.probe_video(str(path))
        except bulk_jobs.InputError as error:
            return str(error)
        return None
    return f"type {suffix or '(none)'} is not accepted (images or videos only)"


def _load(upload_id: str) -> dict | None:
    raw = _state().redis_bytes.get(keys.bulk("upload", upload_id))  # bytes: may not even be text
    if not raw:
        return None
    try:
        record = json.loads(raw)
        if not isinstance(record, dict) or record.get("id") != upload_id:
            raise ValueError("not an upload record")
    except ValueError:
        log.warning("bulk upload %s: unreadable record", upload_id)
        return {"id": upload_id, "files": [], "state": "unreadable"}
    record.setdefault("files", [])
    return record


def safe_status(record: dict) -> dict:
    """status(), or a failed status that says why: one bad record (or job) must not take
    down the whole page."""
    try:
        if record.get("state") == "unreadable":
            raise ValueError("the upload's record in Redis is unreadable")
        return status(record)
    except Exception as error:  # noqa: BLE001 - shown on the page, logged in full
        log.exception("bulk upload %s: cannot read its status", record.get("id"))
        return {"id": record.get("id"), "state": "failed", "progress": 1.0,
                "files": record.get("files", []), "outputs": [], "rejected": [],
                "errors": [{"file": "", "error": f"status unavailable: {error}"}]}


def workers_listening() -> int:
    from rq import Worker

    return Worker.count(queue=_queue())


def _save(record: dict) -> None:
    _state().redis.set(keys.bulk("upload", record["id"]), json.dumps(record))


@bp.get("/")
@auth.admin_required
def page():
    r = _state().redis
    uploads = [u for u in (_load(i) for i in r.lrange(keys.BULK_UPLOADS, 0, 49)) if u]
    return render_template("bulk_upload.html", page="bulk", uploads=uploads,
                           statuses={u["id"]: safe_status(u) for u in uploads},
                           workers=workers_listening(), queue=_queue().name,
                           max_mb=max_upload_bytes() / 1e6,
                           suffixes=sorted(bulk_jobs.IMAGE_SUFFIXES | bulk_jobs.VIDEO_SUFFIXES))


@bp.post("/")
@auth.admin_required
def upload():
    try:
        files = [f for f in request.files.getlist("files") if f and f.filename]
        fps = form_number("fps", low=0, high=MAX_VIDEO_FPS, default=bulk_jobs.DEFAULT_VIDEO_FPS)
    except RequestEntityTooLarge:
        return _too_large()
    except NumberOutOfRange as error:
        flash(f"{error.description}.", "error")
        return page(), 400
    if not files:
        flash("Choose at least one video or photo.", "error")
        return redirect(url_for("bulk.page"), 303)
    keep = request.form.get("keep") == "1"
    upload_id = secrets.token_hex(6)
    _private_dir(bulk_dir())
    root = bulk_dir() / upload_id
    folder = root / "photos"
    accepted, rejected = [], []
    try:
        _private_dir(root)
        _private_dir(folder)
        for storage in files:
            path = stored_path(folder, storage.filename)
            _save_private(storage, path)
            reason = check_file(path)
            if reason:
                rejected.append({"file": storage.filename, "error": reason})
                path.unlink()
            else:
                accepted.append(storage.filename)
    except OSError as error:  # a full disk, say: say so, and leave nothing behind
        shutil.rmtree(root, ignore_errors=True)
        log.exception("upload %s could not be stored", upload_id)
        flash(f"Upload failed: the files could not be stored ({error.strerror}).", "error")
        return redirect(url_for("bulk.page"), 303)
    for item in rejected:
        flash(f"{item['file']}: {item['error']}", "error")
    if not accepted:
        shutil.rmtree(root, ignore_errors=True)
        return redirect(url_for("bulk.page"), 303)
    plan = bulk_jobs.plan([str(folder)], fps=fps, max_bytes=max_upload_bytes(),
                          max_pixels=_state().settings.limits.max_image_pixels)
    queue = _queue()
    # Workers on other machines cannot see this folder: with bulk.stage the files go
    # through Redis.
    jobs, staged = submit(_state().redis_bytes, queue, plan,
                          bulk_jobs.default_options(_state().settings, fps=fps),
                          stage_max_bytes=max_upload_bytes() if _state().settings.bulk.stage
                          else None)
    if not keep:
        if staged:  # the workers read the copies in Redis: the originals can go now
            shutil.rmtree(folder, ignore_errors=True)
        elif jobs:
            bulk_jobs.enqueue_discard(queue, jobs, str(folder))
    record = {"id": upload_id, "created": time.time(), "user": current_user.name,
              "files": accepted, "rejected": rejected, "fps": fps, "state": "queued",
              "plan": bulk_jobs.plan_to_dict(plan, [j.id for j in jobs]), "outputs": [],
              "errors": [], "staged": staged, "keep": keep}
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
    if record["state"] in ("finished", "failed"):
        return _public(record, 1.0)
    connection = _state().redis_bytes
    plan, ids = bulk_jobs.plan_from_dict(record["plan"])
    progress = poll(connection, _queue(), ids, plan.tasks)
    if progress.all_ended(ids) and _state().redis.set(keys.bulk("lock", record["id"]), "1",
                                                       nx=True, ex=120):
        out = bulk_dir() / record["id"] / "results"
        progress.merge_into(plan)
        outputs = []
        for group in plan.groups.values():
            if group.frames:
                outputs += [p.name for p in write_outputs(out, group).values()]
        record["outputs"] = outputs
        record["errors"] = [e for g in plan.groups.values() for e in g.errors]
        record["state"] = "failed" if record["errors"] and not outputs else "finished"
        bulk_staging.unstage(connection, record.get("staged", []))
        if not record.get("keep"):  # privacy by default: the originals go with the jobs
            shutil.rmtree(bulk_dir() / record["id"] / "photos", ignore_errors=True)
        _save(record)
        return _public(record, 1.0)
    done = progress.frames_done
    record = dict(record, state="running" if progress.running or done else "queued")
    return _public(record, done / progress.total if progress.total else 0.0)


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
    return jsonify({**safe_status(record), "workers": workers_listening()})


@bp.get("/<upload_id>/<name>")
@auth.admin_required
def download(upload_id, name):
    if not upload_id.isalnum() or Path(name).suffix not in OUTPUT_SUFFIXES:
        abort(404)
    return send_from_directory(bulk_dir() / upload_id / "results", name, as_attachment=True)
