"""Untrusted input to bulk analysis and uploads, with a real bulk worker (RQ) on a real
redis-server and the dashboard's upload page."""

from __future__ import annotations

import io
import json
import os
import stat
import struct
import subprocess
import sys
import time
import zlib

import pytest
import redis

from moodstream import keys
from moodstream.bulk import jobs as bulk_jobs
from moodstream.config import load_settings
from moodstream.dashboard import users
from moodstream.embedded_redis import EmbeddedRedis
from tests.conftest import MOODSTREAM, REPO, service_env, settings_for, wait_for
from tests.dashboard.conftest import ADMIN, SECRET, TOKEN, csrf_from, login
from tests.image_bombs import radiance_bomb

pytestmark = pytest.mark.slow
QUEUE = "harden"


def huge_png(path, width=16000, height=16000) -> None:
    """A valid gray PNG of width x height zeros (about 250 kB), written row by row so that
    making it never holds the pixels in memory."""
    def chunk(kind, data):
        return (struct.pack(">I", len(data)) + kind + data
                + struct.pack(">I", zlib.crc32(kind + data) & 0xFFFFFFFF))

    packer, row, parts = zlib.compressobj(9), b"\0" * (width + 1), []
    for _ in range(height):
        parts.append(packer.compress(row))
    parts.append(packer.flush())
    path.write_bytes(b"\x89PNG\r\n\x1a\n"
                     + chunk(b"IHDR", struct.pack(">IIBBBBB", width, height, 8, 0, 0, 0, 0))
                     + chunk(b"IDAT", b"".join(parts)) + chunk(b"IEND", b""))


@pytest.fixture(scope="module")
def db(redis_server, tmp_path_factory):
    """Database 2 of the test redis-server, for this module's queue and uploads, and the
    uploads folder that the dashboard and the worker share."""
    url = redis_server.url.rsplit("/", 1)[0] + "/2"
    client = redis.Redis.from_url(url)
    client.flushdb()
    return {"url": url, "client": client, "dir": tmp_path_factory.mktemp("bulk") / "uploads"}


@pytest.fixture(scope="module")
def worker(db, tmp_path_factory):
    """One real `moodstream bulk-worker` on the module's queue."""
    from rq import Worker

    log = open(tmp_path_factory.mktemp("logs") / "harden-worker.log", "wb")  # noqa: SIM115
    env = service_env(db["url"], MOODSTREAM_BULK_DIR=str(db["dir"]))
    proc = subprocess.Popen([*MOODSTREAM, "bulk-worker", "--queue", QUEUE], cwd=REPO,
                            stdout=log, stderr=subprocess.STDOUT, env=env)
    from rq import Queue

    queue = Queue(QUEUE, connection=db["client"], serializer=bulk_jobs.SERIALIZER)
    wait_for(lambda: proc.poll() is None and Worker.count(queue=queue) == 1, timeout=120,
             every=0.5, what="a bulk worker with its models loaded")
    yield {"proc": proc, "queue": queue, "log": log.name}
    proc.terminate()
    proc.wait(30)


@pytest.fixture
def dashboard(db, monkeypatch):
    import shutil

    from moodstream.dashboard.app import create_app

    shutil.rmtree(db["dir"], ignore_errors=True)
    monkeypatch.setenv("MOODSTREAM_BULK_QUEUE", QUEUE)
    monkeypatch.setenv("MOODSTREAM_BULK_DIR", str(db["dir"]))
    db["client"].delete(keys.BULK_UPLOADS)
    app, _ = create_app(settings_for(db["url"], token=TOKEN, secret_key=SECRET),
                        message_queue=False)
    app.config["TESTING"] = True
    users.set_user(redis.Redis.from_url(db["url"], decode_responses=True), *ADMIN, "admin")
    client = app.test_client()
    login(client, *ADMIN)
    client.csrf = csrf_from(client.get("/admin/bulk/").get_data(as_text=True))
    client.dir = db["dir"]
    return client


def upload(client, files, **form):
    return client.post("/admin/bulk/", data={"csrf_token": client.csrf, "files": files, **form},
                       content_type="multipart/form-data", follow_redirects=True)


# --------------------------------------------------------------- 2. no pickle, no open Redis


def test_the_embedded_redis_needs_its_password_and_has_a_memory_cap():
    embedded = EmbeddedRedis()
    url = embedded.start()
    try:
        with pytest.raises(redis.AuthenticationError):
            redis.Redis(port=embedded.port).ping()
        client = redis.Redis.from_url(url)
        assert client.ping()
        config = client.config_get("maxmemory*")
        assert int(config["maxmemory"]) == 2**30 and config["maxmemory-policy"] == "noeviction"
        assert "***" in embedded.display_url and embedded.password not in embedded.display_url
    finally:
        embedded.stop()


def test_job_records_are_json_and_forged_jobs_never_run(db, worker, tmp_path):
    queue = worker["queue"]
    job = bulk_jobs.enqueue(queue, [bulk_jobs.Task("x.jpg", "image", "x")],
                            bulk_jobs.default_options(load_settings()), retries=0)[0]
    data = zlib.decompress(db["client"].hget(f"rq:job:{job.id}", "data"))
    json.loads(data)  # JSON, not a pickle
    from rq import Queue

    pickled, named = tmp_path / "pickled", tmp_path / "named"
    # Someone who can write to Redis queues a pickled call, and a JSON one naming os.system.
    forged = Queue(QUEUE, connection=db["client"]).enqueue(os.system, f"touch {pickled}")
    other = queue.enqueue("os.system", f"touch {named}")
    wait_for(lambda: db["client"].zcard(f"rq:wip:{QUEUE}") == 0 and queue.count == 0,
             timeout=30, what="the worker to take the jobs")
    time.sleep(2)
    assert not pickled.exists() and not named.exists()
    assert worker["proc"].poll() is None, "the worker survives forged jobs"
    other.refresh()
    assert other.get_status() == "failed"
    assert "not a bulk analysis job" in bulk_jobs.failure_reason(other)
    del forged


def test_the_bulk_page_survives_malformed_records(db, dashboard):
    r = db["client"]
    r.set("ms:bulk:upload:aaaa", b"\x80not json")
    good_ids = bulk_jobs.plan_to_dict(bulk_jobs.BulkPlan(), [])
    r.set("ms:bulk:upload:bbbb", json.dumps({"id": "bbbb", "files": ["x.jpg"],
                                             "state": "queued", "plan": good_ids}))
    r.set("ms:bulk:upload:cccc", json.dumps({"id": "cccc", "files": ["y.jpg"],
                                             "state": "queued", "plan": {"tasks": "nonsense"}}))
    r.hset("rq:job:broken", mapping={"data": b"garbage", "meta": b"\x80garbage",
                                     "status": "queued"})
    r.set("ms:bulk:upload:dddd", json.dumps({
        "id": "dddd", "files": ["z.jpg"], "state": "queued",
        "plan": {"groups": [], "tasks": [{"file": "z.jpg", "kind": "image", "group": "z",
                                          "job_id": "broken"}]}}))
    r.lpush("ms:bulk:uploads", "aaaa", "bbbb", "cccc", "dddd")
    page = dashboard.get("/admin/bulk/")
    assert page.status_code == 200
    html = page.get_data(as_text=True)
    assert "unreadable" in html and "status unavailable" in html
    for upload_id in ("aaaa", "cccc"):
        status = dashboard.get(f"/admin/bulk/{upload_id}.json")
        assert status.status_code == 200 and status.json["state"] == "failed"
    assert dashboard.get("/admin/bulk/dddd.json").status_code == 200


# --------------------------------------------------------------- 5. no worker listening


def test_the_page_says_when_no_worker_listens(db, dashboard):
    state = dashboard.application.extensions["moodstream"]  # as MOODSTREAM_BULK_QUEUE sets it
    bulk = state.settings.bulk.model_copy(update={"queue": "nobody-listens-here"})
    state.settings = state.settings.model_copy(update={"bulk": bulk})
    html = dashboard.get("/admin/bulk/").get_data(as_text=True)
    notice = html.split('data-testid="bulk-no-worker"')[0].rsplit("<p", 1)[1] + \
        html.split('data-testid="bulk-no-worker"')[1].split(">", 1)[0]
    assert "hidden" not in notice and "No bulk worker" in html


def test_the_page_is_quiet_when_a_worker_listens(db, worker, dashboard):
    html = dashboard.get("/admin/bulk/").get_data(as_text=True)
    tag = html.split('data-testid="bulk-no-worker"')[1].split(">", 1)[0]
    assert "hidden" in tag


# --------------------------------------------------------------- 4. pixel limit


def test_a_huge_png_upload_is_refused_by_its_header(db, dashboard, tmp_path):
    png = tmp_path / "huge.png"
    huge_png(png)
    html = upload(dashboard, [(io.BytesIO(png.read_bytes()), "huge.png")]).get_data(
        as_text=True)
    assert "huge.png: image is 16000x16000" in html and "pixel limit of 50 Mpx" in html


# Runs the command and writes its peak memory. The child's ru_maxrss keeps the high-water
# mark of the process it was forked from; forked from this small wrapper rather than from
# pytest (over 1 GB once TensorFlow is loaded), it measures the command itself.
PEAK_WRAPPER = ("import resource, subprocess, sys; code = subprocess.call(sys.argv[2:]); "
                "open(sys.argv[1], 'w').write(str(resource.getrusage("
                "resource.RUSAGE_CHILDREN).ru_maxrss)); sys.exit(code)")


def run_measured(args, env, tmp_path, timeout=120) -> tuple[int, str, float, float]:
    """Run args and return (exit code, output, seconds, peak MB) of that command alone."""
    peak = tmp_path / "peak_kb"
    started = time.monotonic()
    proc = subprocess.run([sys.executable, "-c", PEAK_WRAPPER, str(peak), *args], cwd=REPO,
                          env=env, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True,
                          timeout=timeout)
    seconds = time.monotonic() - started
    return proc.returncode, proc.stdout, seconds, int(peak.read_text()) / 1024


def test_analyze_refuses_a_huge_png_fast_and_small(tmp_path):
    """The probe: a 250 kB PNG of 16000x16000 took 9.8 GB for a minute."""
    png = tmp_path / "huge.png"
    huge_png(png)
    env = {k: v for k, v in os.environ.items() if k not in ("REDIS_URL", "MOODSTREAM_REDIS_URL")}
    code, output, seconds, peak_mb = run_measured(
        [*MOODSTREAM, "analyze", str(png), "--out", str(tmp_path / "out")], env, tmp_path)
    assert code == 1, output
    assert "pixel limit of 50 Mpx" in output and "16000x16000" in output
    assert seconds < 60 and peak_mb < 1024, (seconds, peak_mb)
    print(f"analyze on a 16000x16000 PNG: {seconds:.1f} s, peak {peak_mb:.0f} MB")


def test_analyze_refuses_an_image_that_fools_pillow_fast_and_small(tmp_path):
    """The probe: a Radiance HDR of 16000x16000 named classroom.png, "PCD_" at byte 2048,
    read by Pillow as a 768x512 PhotoCD, took 47 s and 10 GB and was reported "ok"."""
    bomb = tmp_path / "classroom.png"
    bomb.write_bytes(radiance_bomb())
    env = {k: v for k, v in os.environ.items() if k not in ("REDIS_URL", "MOODSTREAM_REDIS_URL")}
    code, output, seconds, peak_mb = run_measured(
        [*MOODSTREAM, "analyze", str(bomb), "--out", str(tmp_path / "out")], env, tmp_path)
    assert code == 1, output
    assert "classroom.png" in output and "not an accepted image format" in output, output
    assert seconds < 60 and peak_mb < 1024, (seconds, peak_mb)
    print(f"analyze on the Radiance bomb: {seconds:.1f} s, peak {peak_mb:.0f} MB")


def test_an_upload_that_fools_pillow_is_refused(db, dashboard):
    html = upload(dashboard, [(io.BytesIO(radiance_bomb()), "classroom.png")]).get_data(
        as_text=True)
    assert "classroom.png: not an accepted image format" in html
    assert not list(dashboard.dir.rglob("classroom.png")), "nothing kept"


def test_video_frames_above_the_limit_are_refused(media, tmp_path):
    env = dict(os.environ, MOODSTREAM_MAX_IMAGE_PIXELS="100000")
    env.pop("REDIS_URL", None)
    proc = subprocess.run([*MOODSTREAM, "analyze", str(media / "fer_woman2.mp4"),
                           "--out", str(tmp_path / "out")], cwd=REPO, env=env,
                          capture_output=True, text=True, timeout=120)
    assert proc.returncode == 1
    assert "video frames: image is" in proc.stdout and "pixel limit of 0.1 Mpx" in proc.stdout


# --------------------------------------------------------------- 7 and 9. uploaded files


def test_long_and_non_ascii_names_are_stored_private_and_deleted_after(db, worker, dashboard,
                                                                      media):
    photo = (media / "fer_justin.jpg").read_bytes()
    files = [(io.BytesIO(photo), "x" * 300 + ".jpg"), (io.BytesIO(photo), "教室.jpg")]
    response = upload(dashboard, files)
    html = response.get_data(as_text=True)
    assert response.status_code == 200 and "Queued 2 job(s) for 2 file(s)" in html, html
    [root] = list(dashboard.dir.iterdir())
    assert stat.S_IMODE(dashboard.dir.stat().st_mode) == 0o700
    assert stat.S_IMODE(root.stat().st_mode) == 0o700
    stored = list((root / "photos").iterdir())
    assert sorted(p.suffix for p in stored) == [".jpg", ".jpg"]
    assert all(stat.S_IMODE(p.stat().st_mode) == 0o600 for p in stored)
    # The originals go when the jobs end, even with nobody watching the page.
    wait_for(lambda: not (root / "photos").exists(), timeout=90, what="originals deleted")
    status = wait_for(lambda: (s := dashboard.get(f"/admin/bulk/{root.name}.json").json)
                      ["state"] in ("finished", "failed") and s, timeout=60, what="results")
    assert status["state"] == "finished", status
    assert sorted(o["name"] for o in status["outputs"]) == ["photos.csv", "photos.json",
                                                           "photos.png"]


def test_a_rejected_upload_leaves_no_folder_behind(db, dashboard):
    response = upload(dashboard, [(io.BytesIO(b"text"), "n" * 300 + ".txt")])
    assert response.status_code == 200 and "is not accepted" in response.get_data(as_text=True)
    assert not dashboard.dir.exists() or not any(dashboard.dir.iterdir())


def test_originals_kept_on_request(db, worker, dashboard, media):
    photo = (media / "fer_justin.jpg").read_bytes()
    upload(dashboard, [(io.BytesIO(photo), "keep.jpg")], keep="1")
    [root] = list(dashboard.dir.iterdir())
    wait_for(lambda: dashboard.get(f"/admin/bulk/{root.name}.json").json["state"]
             in ("finished", "failed"), timeout=90, what="the job")
    time.sleep(1)
    assert (root / "photos" / "keep.jpg").exists()
