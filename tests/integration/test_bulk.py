"""Bulk analysis end to end: real RQ workers (`moodstream bulk-worker`), a real redis-server,
MTCNN and the ONNX model, driven through `moodstream analyze` as a user would run it."""

from __future__ import annotations

import io
import json
import os
import re
import signal
import subprocess
import threading
import time

import cv2
import numpy as np
import pytest
import redis

from moodstream import keys
from moodstream.bulk import jobs as bulk_jobs
from moodstream.bulk.results import CSV_COLUMNS, read_csv
from moodstream.config import load_settings
from moodstream.contract import CLASSES, Frame, LabelSet
from tests.conftest import MOODSTREAM, REPO, service_env, settings_for, wait_for

pytestmark = pytest.mark.slow

QUEUE = "bulk-test"
HEARTBEAT_TTL = 6  # a killed worker's job is found abandoned after this many seconds
PHOTOS = {"fer_justin.jpg": 1, "dlib_2008_001322.jpg": 3, "mtcnn_no-faces.jpg": 0}


@pytest.fixture(scope="module")
def model():
    path = load_settings().classifier.model_path
    if not path.exists():
        pytest.skip(f"no emotion model at {path}: train and export one (`moodstream train "
                    "--export models/emotion.onnx`) or set MOODSTREAM_MODEL_PATH")
    return path


@pytest.fixture(scope="module")
def bulk(redis_server, model, tmp_path_factory):
    """Two bulk workers on database 1 (database 0 belongs to the live-path tests)."""
    url = redis_server.url.rsplit("/", 1)[0] + "/1"
    client = redis.Redis.from_url(url)
    client.flushdb()
    logs = tmp_path_factory.mktemp("bulk-workers")
    env = service_env(url, MOODSTREAM_BULK_HEARTBEAT_TTL=str(HEARTBEAT_TTL))
    procs = []
    for i in range(2):
        log = open(logs / f"worker-{i}.log", "wb")  # noqa: SIM115
        procs.append(subprocess.Popen([*MOODSTREAM, "bulk-worker", "--queue", QUEUE], cwd=REPO,
                                      stdout=log, stderr=subprocess.STDOUT, env=env))
    from rq import Queue, Worker

    queue = Queue(QUEUE, connection=client)
    wait_for(lambda: Worker.count(queue=queue) == 2, timeout=120, every=0.5,
             what="two bulk workers with their models loaded")
    yield {"url": url, "client": client, "queue": queue, "procs": procs, "env": env}
    for proc in procs:
        if proc.poll() is None:
            proc.terminate()
    for proc in procs:
        try:
            proc.wait(20)
        except subprocess.TimeoutExpired:
            proc.kill()


def analyze(bulk, *args, wait=True, timeout=150):
    cmd = [*MOODSTREAM, "analyze", "--queue", QUEUE, *map(str, args)]
    proc = subprocess.Popen(cmd, cwd=REPO, env=bulk["env"], stdout=subprocess.PIPE,
                            stderr=subprocess.PIPE, text=True)
    if not wait:
        return proc
    out, err = proc.communicate(timeout=timeout)
    return proc.returncode, out, err


def load(out, name):
    return json.loads((out / f"{name}.json").read_text()), read_csv(out / f"{name}.csv")


def test_video_and_photos_are_analysed(bulk, media, tmp_path):
    photos = tmp_path / "photos"
    photos.mkdir()
    for name in PHOTOS:
        (photos / name).write_bytes((media / name).read_bytes())
    out = tmp_path / "out"
    code, stdout, stderr = analyze(bulk, media / "fer_woman2.mp4", photos, "--out", out,
                                   "--fps", 2, "--chunk-seconds", 5)
    assert code == 0, stdout + stderr
    assert "all files" in stderr and "100%" in stderr, "progress bars, overall and per file"
    assert sorted(p.name for p in out.iterdir()) == [
        "fer_woman2.csv", "fer_woman2.json", "fer_woman2.png",
        "photos.csv", "photos.json", "photos.png"]

    summary, rows = load(out, "fer_woman2")
    sampled = bulk_jobs.sample_indices(0, 464, 29.97, 2)
    assert summary["frames_analysed"] == len(sampled) == 31 and summary["ok"]
    assert summary["frames_with_faces"] >= 29, "the woman is in every frame"
    assert tuple(rows[0]) == CSV_COLUMNS
    assert {int(r["frame"]) for r in rows} <= set(sampled)
    assert all(abs(float(r["time_s"]) - int(r["frame"]) / 29.97) < 0.01 for r in rows)
    assert all(r["label"] in CLASSES and abs(sum(float(r[c]) for c in CLASSES) - 1) < 0.01
               for r in rows)
    assert sum(summary["distribution"].values()) == pytest.approx(1)
    assert len(summary["timeline"]) == 16 and summary["duration_s"] == pytest.approx(15.48, 0.01)
    assert sum(t["faces"] for t in summary["timeline"]) == len(rows) == summary["faces"]
    assert (out / "fer_woman2.png").read_bytes()[:4] == b"\x89PNG"

    summary, rows = load(out, "photos")
    assert summary["kind"] == "images" and summary["frames_analysed"] == 3
    assert {os.path.basename(f): n for f, n in summary["per_file"].items()} == PHOTOS
    assert all(r["time_s"] == "" and r["frame"] == "0" for r in rows)
    assert "photos" in stdout and "fer_woman2" in stdout


def test_without_redis_url_it_runs_its_own_redis_and_workers(model, media, tmp_path):
    env = {k: v for k, v in os.environ.items() if k not in ("REDIS_URL", "MOODSTREAM_REDIS_URL")}
    out = tmp_path / "out"
    proc = subprocess.run([*MOODSTREAM, "analyze", str(media / "fer_justin.jpg"),
                           str(media / "mtcnn_no-faces.jpg"), "--out", str(out),
                           "--workers", "2"], cwd=REPO, env=env, capture_output=True,
                          text=True, timeout=150)
    assert proc.returncode == 0, proc.stdout + proc.stderr
    assert "embedded redis-server" in proc.stderr and "2 local worker(s)" in proc.stderr
    assert json.loads((out / "fer_justin.json").read_text())["faces"] == 1
    assert json.loads((out / "mtcnn_no-faces.json").read_text())["faces"] == 0


def test_bulk_labels_match_the_live_services(bulk, redis_server, services, media, tmp_path):
    """The same frames through the live detector and classifier services and through bulk
    jobs give the same faces, boxes and labels."""
    live = redis_server.client()
    live.flushdb()
    frames_dir = tmp_path / "frames"
    frames_dir.mkdir()
    wanted = bulk_jobs.sample_indices(0, 464, 29.97, 0.5)  # one frame every 2 s
    cap = cv2.VideoCapture(str(media / "fer_woman2.mp4"))
    jpegs = {}
    for index in range(wanted[-1] + 1):
        ok, frame = cap.read()
        assert ok
        if index in wanted:
            jpegs[index] = cv2.imencode(".jpg", frame, [cv2.IMWRITE_JPEG_QUALITY, 90])[1].tobytes()
            (frames_dir / f"f{index:04d}.jpg").write_bytes(jpegs[index])
    cap.release()
    for index, jpeg in jpegs.items():
        live.xadd(keys.FRAMES, Frame("bulkcmp", index, time.time(), jpeg).encode())
    env = {"MOODSTREAM_STALE_AFTER_S": "600"}
    # Full detection on every frame, as bulk does: the live detector's motion gating and
    # tracking (on by default) refine boxes by a pixel or two, by design.
    services.start("detector", "--batch", "1", "--no-gate", "--no-track", env=env)
    # Every face classified, as bulk does (no probabilities carried between frames).
    services.start("classifier", env={**env, "MOODSTREAM_CLASSIFIER_REUSE_MAX_AGE_MS": "0"})
    out = tmp_path / "out"
    code, stdout, stderr = analyze(bulk, frames_dir, "--out", out)
    assert code == 0, stdout + stderr

    def live_labels():
        found = [LabelSet.decode(f) for _, f in live.xrange(keys.LABELS)]
        return found if len({lab.seq for lab in found}) == len(wanted) else None

    try:
        labels = wait_for(live_labels, timeout=150, what="live labels for every frame")
    except AssertionError as error:
        logs = "\n".join(open(p.log_path, errors="replace").read()[-1500:]
                         for p in services.procs)
        raise AssertionError(f"{error}\n{logs}") from None
    _, rows = load(out, "frames")
    compared = 0
    for index in wanted:
        live_faces = sorted((tuple(box), name, probs) for lab in labels if lab.seq == index
                            for box, name, probs in zip(lab.boxes.tolist(), lab.labels,
                                                        lab.probs.tolist(), strict=True))
        bulk_faces = sorted(((int(r["x"]), int(r["y"]), int(r["w"]), int(r["h"])), r["label"],
                             [float(r[c]) for c in CLASSES]) for r in rows
                            if r["file"].endswith(f"f{index:04d}.jpg"))
        assert [(b, lab) for b, lab, _ in bulk_faces] == [(b, lab) for b, lab, _ in live_faces], \
            f"frame {index}"
        for (_, _, p_bulk), (_, _, p_live) in zip(bulk_faces, live_faces, strict=True):
            assert np.allclose(p_bulk, p_live, atol=2e-3)
        compared += len(live_faces)
    assert compared >= len(wanted) - 1


def test_bad_inputs_get_an_error_each_and_the_rest_is_analysed(bulk, media, tmp_path):
    video = media / "fer_woman2.mp4"
    good = tmp_path / "good.jpg"
    good.write_bytes((media / "fer_justin.jpg").read_bytes())
    notes = tmp_path / "notes.mp4"
    notes.write_text("this is not a video")
    text = tmp_path / "notes.txt"
    text.write_text("nor is this")
    broken = tmp_path / "broken.jpg"
    broken.write_bytes((media / "fer_justin.jpg").read_bytes()[:300])
    cut = tmp_path / "cut.mp4"  # index (moov) at the end, cut off: does not open at all
    cut.write_bytes(video.read_bytes()[:900_000])
    faststart = tmp_path / "faststart.mp4"
    subprocess.run(["ffmpeg", "-v", "error", "-y", "-i", str(video), "-c", "copy",
                    "-movflags", "+faststart", str(faststart)], check=True, timeout=60)
    half = tmp_path / "half.mp4"  # index first, cut in the middle: decodes half way
    half.write_bytes(faststart.read_bytes()[:1_000_000])
    empty = tmp_path / "empty"
    empty.mkdir()
    out = tmp_path / "out"
    code, stdout, stderr = analyze(bulk, good, notes, text, broken, cut, half, empty, video,
                                   "--out", out, "--fps", 1, "--max-size-mb", 1.5)
    assert code == 1, stdout + stderr
    expected = {
        notes: "cannot open as a video",
        text: "not an image or video file",
        broken: "not a readable image",
        cut: "cannot open as a video",
        half: "video ends early",
        empty: "folder has no images or videos",
        video: "above the size limit of 1.5 MB",
    }
    failed = stdout.split("file(s) failed:")[1]
    for path, reason in expected.items():
        line = next((x for x in failed.splitlines() if x.strip().startswith(f"{path}:")), "")
        assert reason in line, f"{path}: {reason!r} not in the report:\n{stdout}"
    summary, rows = load(out, "good")
    assert summary["ok"] and len(rows) == 1, "the good photo is analysed all the same"
    summary, rows = load(out, "half")
    assert 3 <= summary["frames_analysed"] < 15 and not summary["ok"]
    assert "video ends early" in summary["errors"][0]["error"]
    assert json.loads((out / "notes.json").read_text())["errors"][0]["file"] == str(notes)
    assert not (out / "notes.csv").exists(), "nothing analysed: only the JSON with the reason"


@pytest.mark.parametrize("stage", [False, True], ids=["shared-folder", "staged-in-redis"])
def test_upload_page_queues_jobs_shows_progress_and_serves_results(bulk, media, tmp_path,
                                                                    monkeypatch, stage):
    from moodstream.dashboard import users
    from moodstream.dashboard.app import create_app
    from moodstream.dashboard.bulk_upload import bp
    from tests.dashboard.conftest import ADMIN, SECRET, TOKEN, csrf_from, login

    monkeypatch.setenv("MOODSTREAM_BULK_DIR", str(tmp_path / "bulk"))
    monkeypatch.setenv("MOODSTREAM_BULK_MAX_UPLOAD_MB", "0.5")
    monkeypatch.setenv("MOODSTREAM_BULK_QUEUE", QUEUE)
    monkeypatch.setenv("MOODSTREAM_BULK_STAGE", "1" if stage else "0")
    bulk["client"].delete(keys.BULK_UPLOADS)  # the page starts empty for each variant
    app, _ = create_app(settings_for(bulk["url"], token=TOKEN, secret_key=SECRET),
                        message_queue=False)
    app.config["TESTING"] = True
    if "bulk" not in app.blueprints:  # until dashboard.app registers it itself
        app.register_blueprint(bp)
    users.set_user(redis.Redis.from_url(bulk["url"], decode_responses=True), *ADMIN, "admin")
    client = app.test_client()
    assert client.get("/admin/bulk/").status_code == 302, "admins only"
    assert login(client, *ADMIN).status_code == 302
    page = client.get("/admin/bulk/")
    assert page.status_code == 200 and "No uploads yet" in page.get_data(as_text=True)
    token = csrf_from(page.get_data(as_text=True))
    photo = (media / "fer_justin.jpg").read_bytes()
    files = [(io.BytesIO(photo), "justin.jpg"), (io.BytesIO(b"plain text"), "notes.txt"),
             (io.BytesIO(b"plain text"), "fake.mp4")]
    sent = client.post("/admin/bulk/", data={"csrf_token": token, "fps": "5", "files": files},
                       content_type="multipart/form-data", follow_redirects=True)
    html = sent.get_data(as_text=True)
    assert "Queued 1 job(s) for 1 file(s)" in html
    assert "notes.txt: type .txt is not accepted" in html
    assert "fake.mp4: cannot open as a video" in html
    upload_id = re.search(r'data-upload="([0-9a-f]+)"', html).group(1)
    record = json.loads(bulk["client"].get(f"ms:bulk:upload:{upload_id}"))
    [job] = bulk_jobs.fetch_jobs([record["plan"]["tasks"][0]["job_id"]], bulk["client"])
    assert job.args[0].startswith("staged:") == stage, "workers elsewhere get it from Redis"

    def finished():
        s = client.get(f"/admin/bulk/{upload_id}.json").get_json()
        return s if s["state"] in ("finished", "failed") else None

    state = wait_for(finished, timeout=90, every=0.5, what="the upload analysed")
    assert state["state"] == "finished" and state["progress"] == 1 and not state["errors"]
    assert bulk["client"].keys("ms:bulk:staged:*") == [], "staged copies removed when done"
    assert sorted(o["name"] for o in state["outputs"]) == ["photos.csv", "photos.json",
                                                           "photos.png"]
    csv_text = client.get(f"/admin/bulk/{upload_id}/photos.csv").get_data(as_text=True)
    assert csv_text.splitlines()[0] == ",".join(CSV_COLUMNS) and len(csv_text.splitlines()) == 2
    assert "photos.png" in client.get("/admin/bulk/").get_data(as_text=True)
    assert client.get(f"/admin/bulk/{upload_id}/secret.py").status_code == 404
    big = [(io.BytesIO(b"\xff" * 600_000), "big.jpg")]
    refused = client.post("/admin/bulk/", data={"csrf_token": token, "files": big},
                          content_type="multipart/form-data", follow_redirects=True)
    assert "Upload refused: larger than the limit of 0.5 MB" in refused.get_data(as_text=True)
    no_token = client.post("/admin/bulk/", data={"files": [(io.BytesIO(photo), "a.jpg")]},
                           content_type="multipart/form-data")
    assert no_token.status_code == 400, "the CSRF check still applies"


@pytest.mark.browser
def test_upload_page_in_a_browser(bulk, media, tmp_path, monkeypatch):
    """An admin uploads a photo and a video in headless Chromium, watches the progress and
    gets the download links, with the dashboard's CSP in force."""
    chromium = "/usr/bin/chromium"
    if not os.path.exists(chromium):
        pytest.skip(f"{chromium} is not installed")
    sync_api = pytest.importorskip("playwright.sync_api")
    from werkzeug.serving import make_server

    from moodstream.dashboard import users
    from moodstream.dashboard.app import create_app
    from moodstream.dashboard.bulk_upload import bp
    from tests.dashboard.conftest import ADMIN, SECRET, TOKEN

    monkeypatch.setenv("MOODSTREAM_BULK_DIR", str(tmp_path / "bulk"))
    monkeypatch.setenv("MOODSTREAM_BULK_QUEUE", QUEUE)
    app, _ = create_app(settings_for(bulk["url"], token=TOKEN, secret_key=SECRET),
                        message_queue=False)
    if "bulk" not in app.blueprints:
        app.register_blueprint(bp)
    users.set_user(redis.Redis.from_url(bulk["url"], decode_responses=True), *ADMIN, "admin")
    server = make_server("127.0.0.1", 0, app, threaded=True)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    base = f"http://127.0.0.1:{server.server_port}"
    clip = tmp_path / "clip.mp4"  # the first 3 s of the shared video, to keep this quick
    subprocess.run(["ffmpeg", "-v", "error", "-y", "-i", str(media / "fer_woman2.mp4"),
                    "-t", "3", "-c", "copy", str(clip)], check=True, timeout=60)
    errors = []
    try:
        with sync_api.sync_playwright() as p:
            browser = p.chromium.launch(executable_path=chromium, args=["--no-sandbox"])
            page = browser.new_page()
            page.on("console", lambda m: errors.append(m.text) if m.type == "error" else None)
            page.goto(base + "/login")
            page.fill("input[name=username]", ADMIN[0])
            page.fill("input[name=password]", ADMIN[1])
            page.click("button[type=submit]")
            page.goto(base + "/admin/bulk/")
            page.set_input_files("[data-testid=bulk-files]",
                                 [str(media / "fer_justin.jpg"), str(clip)])
            page.click("[data-testid=bulk-submit]")
            row = page.locator("[data-testid=bulk-upload]").first
            sync_api.expect(row.locator("[data-testid=bulk-state]")).to_have_text(
                "finished", timeout=90_000)
            links = row.locator("[data-testid=bulk-outputs] a")
            assert sorted(links.all_text_contents()) == [
                "clip.csv", "clip.json", "clip.png", "photos.csv", "photos.json", "photos.png"]
            assert row.locator(".pct").text_content() == "100%"
            if os.environ.get("MOODSTREAM_BULK_SCREENSHOT"):  # for the docs, on request
                page.screenshot(path=os.environ["MOODSTREAM_BULK_SCREENSHOT"], full_page=True)
            browser.close()
    finally:
        server.shutdown()
    assert not errors, errors


def test_a_job_of_a_killed_worker_is_retried(bulk, media, tmp_path):
    """SIGKILL the worker in the middle of a job: RQ finds the job abandoned when its
    heartbeat lapses and retries it (Retry) on the surviving worker. Runs last: it leaves
    the module with one worker."""
    from rq.job import Job
    from rq.registry import StartedJobRegistry
    from rq.worker import Worker

    out = tmp_path / "out"
    proc = analyze(bulk, media / "fer_woman2.mp4", "--out", out, "--fps", 15,
                   "--chunk-seconds", 60, "--no-progress", wait=False)
    registry = StartedJobRegistry(queue=bulk["queue"])

    def busy_job():
        for job_id in registry.get_job_ids(cleanup=False):
            job = Job.fetch(job_id, connection=bulk["client"], serializer=bulk_jobs.SERIALIZER)
            if job.meta.get("done", 0) >= 2 and job.worker_name:
                return job
        return None

    job = wait_for(busy_job, timeout=120, every=0.1, what="a job part way through")
    worker = Worker.find_by_key(Worker.redis_worker_namespace_prefix + job.worker_name,
                                connection=bulk["client"])
    assert worker.pid in [p.pid for p in bulk["procs"]]
    os.kill(worker.pid, signal.SIGKILL)
    stdout, stderr = proc.communicate(timeout=150)
    assert proc.returncode == 0, stdout + stderr
    summary, rows = load(out, "fer_woman2")
    assert summary["attempts"] == 2 and summary["ok"]
    frames = len(bulk_jobs.sample_indices(0, 464, 29.97, 15))
    assert summary["frames_analysed"] == frames and len(rows) >= frames - 5
    job.refresh()
    assert job.get_status() == "finished" and job.retries_left == bulk_jobs.DEFAULT_RETRIES - 1


def test_staged_inputs_reach_workers_that_cannot_see_the_files(bulk, media, tmp_path):
    """`analyze --stage`: the files travel through Redis, so a worker on another machine (here:
    started after the files were deleted) analyses them; the staged copies are removed."""
    inputs = tmp_path / "inputs"
    inputs.mkdir()
    video = inputs / "lesson.mp4"
    video.write_bytes((media / "fer_woman2.mp4").read_bytes())
    photo = inputs / "group.jpg"
    photo.write_bytes((media / "dlib_2008_001322.jpg").read_bytes())
    out, queue = tmp_path / "out", "bulk-staged"
    args = ["--queue", queue, "--stage", video, photo, "--out", out, "--fps", 2,
            "--chunk-seconds", 5, "--no-progress"]
    proc = subprocess.Popen([*MOODSTREAM, "analyze", *map(str, args)],
                            cwd=REPO, env=bulk["env"], stdout=subprocess.PIPE,
                            stderr=subprocess.PIPE, text=True)
    from rq import Queue

    waiting = Queue(queue, connection=bulk["client"])
    wait_for(lambda: waiting.count == 5, timeout=60, what="4 video chunks and 1 photo queued")
    assert len(bulk["client"].keys("ms:bulk:staged:*")) == 2
    video.unlink()
    photo.unlink()
    worker = subprocess.run([*MOODSTREAM, "bulk-worker", "--queue", queue, "--burst"],
                            cwd=REPO, env=bulk["env"], capture_output=True, timeout=180)
    assert worker.returncode == 0, worker.stdout + worker.stderr
    stdout, stderr = proc.communicate(timeout=60)
    assert proc.returncode == 0, stdout + stderr
    summary, _ = load(out, "lesson")
    assert summary["frames_analysed"] == 31 and summary["frames_with_faces"] >= 29
    summary, _ = load(out, "group")
    assert summary["faces"] == 3
    assert bulk["client"].keys("ms:bulk:staged:*") == [], "staged copies removed after"


def test_a_file_above_the_staging_limit_gets_an_error_and_the_rest_runs(bulk, media,
                                                                       tmp_path):
    code, stdout, _ = analyze(bulk, "--stage", "--stage-max-mb", 0.5, media / "fer_woman2.mp4",
                              media / "fer_justin.jpg", "--out", tmp_path / "out")
    assert code == 1
    assert "above the staging limit" in stdout and "storage the workers share" in stdout
    summary, _ = load(tmp_path / "out", "fer_justin")
    assert summary["faces"] == 1
