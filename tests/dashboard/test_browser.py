"""The dashboard in real headless Chromium (Playwright), served by `moodstream dashboard`.

The live-numbers and driver-alert tests run the real pipeline: `moodstream ingest`, `detector`,
`classifier` and `aggregator` processes on the shared media, with the shipped ONNX model.
They save docs/screenshots/classroom.png, driver.png and phone.png for the README.
"""

from __future__ import annotations

import os
import re
import subprocess
import time
from pathlib import Path

import pytest

from moodstream import keys
from moodstream.camera_settings import CameraSettings
from moodstream.dashboard import cameras, users
from tests.conftest import (
    MEDIA,
    MOODSTREAM,
    REPO,
    Services,
    free_port,
    need_real_media,
    service_env,
    wait_for,
    wait_for_dashboard,
)

pytestmark = [pytest.mark.browser, pytest.mark.slow]

CHROMIUM = Path("/usr/bin/chromium")
LAUNCH_ARGS = ["--no-sandbox", "--disable-gpu", "--disable-background-networking",
               "--disable-component-update", "--no-first-run", "--disable-sync"]
SCREENSHOTS = REPO / "docs" / "screenshots"
MODEL = Path(os.environ.get("MOODSTREAM_MODEL_PATH", REPO / "models" / "emotion.onnx"))
TOKEN = "browser-test-token-0123456789"
SECRET = "browser-test-secret"
ADMIN = ("alice", "alice-password")
VIEWER = ("victor", "victor-password")
FACES_RE = re.compile(r"^(\d+) faces?$")


@pytest.fixture(scope="module")
def browser():
    if not CHROMIUM.exists():
        pytest.skip(f"{CHROMIUM} is not installed (apt-get install chromium)")
    sync_api = pytest.importorskip("playwright.sync_api")
    with sync_api.sync_playwright() as p:
        b = p.chromium.launch(executable_path=str(CHROMIUM), args=LAUNCH_ARGS)
        yield b
        b.close()


@pytest.fixture(scope="module")
def dashboard(redis_server, tmp_path_factory):
    """`moodstream dashboard` on a free port; yields its base URL."""
    port = free_port()
    log_path = tmp_path_factory.mktemp("dashboard") / "dashboard.log"
    with open(log_path, "wb") as log:
        proc = subprocess.Popen(
            [*MOODSTREAM, "dashboard", "--port", str(port)], cwd=REPO, stdout=log,
            stderr=subprocess.STDOUT,
            env=service_env(redis_server.url, MOODSTREAM_TOKEN=TOKEN,
                            MOODSTREAM_SECRET_KEY=SECRET))
    base = f"http://127.0.0.1:{port}"

    def check_alive():
        if proc.poll() is not None:
            raise AssertionError(f"dashboard exited:\n{log_path.read_text()[-3000:]}")

    wait_for_dashboard(base, check_alive, what="the dashboard to answer /healthz")
    yield base
    proc.terminate()
    try:
        proc.wait(15)
    except subprocess.TimeoutExpired:
        proc.kill()


@pytest.fixture
def page(browser, dashboard):
    context = browser.new_context(viewport={"width": 1280, "height": 900}, base_url=dashboard)
    context.set_default_timeout(15000)
    page = context.new_page()
    page.errors = []
    page.on("pageerror", lambda error: page.errors.append(str(error)))
    yield page
    context.close()
    assert not page.errors, f"JavaScript errors: {page.errors}"


def log_in(page, name: str, password: str) -> None:
    page.goto("/login")
    page.fill('input[name="username"]', name)
    page.fill('input[name="password"]', password)
    page.click('[data-testid="login-submit"]')
    page.wait_for_selector('[data-testid="whoami"]')


def expect():
    from playwright.sync_api import expect as playwright_expect

    return playwright_expect


def test_login_and_logout(r, page):
    users.set_user(r, *ADMIN, "admin")
    page.goto("/")
    assert "/login" in page.url
    page.fill('input[name="username"]', ADMIN[0])
    page.fill('input[name="password"]', "not-the-password")
    page.click('[data-testid="login-submit"]')
    expect()(page.get_by_test_id("flash")).to_contain_text("Wrong user name or password")
    log_in(page, *ADMIN)
    expect()(page.get_by_test_id("whoami")).to_contain_text("alice")
    # The Socket.IO connection is authenticated by the session cookie.
    expect()(page.get_by_test_id("live-state")).to_have_text("live")
    page.get_by_test_id("logout").click()
    page.wait_for_url("**/login")
    expect()(page.get_by_test_id("flash")).to_contain_text("logged out")
    page.goto("/system")
    assert "/login" in page.url
    assert page.request.get("/api/cameras").status == 401


def test_viewer_cannot_add_cameras(r, page):
    users.set_user(r, *VIEWER, "viewer")
    log_in(page, *VIEWER)
    expect()(page.get_by_test_id("nav-admin")).to_have_count(0)
    page.goto("/admin")
    expect()(page.get_by_test_id("error")).to_contain_text("admins only")
    page.goto("/")
    status = page.evaluate("""async () => {
        const csrf = document.querySelector('meta[name="csrf-token"]').content;
        const response = await fetch('/api/cameras', {method: 'POST',
            headers: {'Content-Type': 'application/json', 'X-CSRFToken': csrf},
            body: JSON.stringify({id: 'sneaky', source: 'rtsp://127.0.0.1/x'})});
        return response.status;
    }""")
    assert status == 403
    assert not r.exists(keys.camera("sneaky"))


def test_admin_adds_edits_and_removes_a_camera(r, page):
    users.set_user(r, *ADMIN, "admin")
    log_in(page, *ADMIN)
    page.get_by_test_id("nav-admin").click()
    form = page.get_by_test_id("add-camera-form")
    form.locator('input[name="id"]').fill("lobby")
    form.locator('input[name="name"]').fill("Lobby")
    form.locator('input[name="source"]').fill("rtsp://127.0.0.1:8554/lobby")
    form.locator('select[name="mode"]').select_option("classroom")
    form.locator('input[name="fps"]').fill("2")
    page.get_by_test_id("add-camera").click()
    expect()(page.get_by_test_id("admin-message")).to_have_text("Added camera lobby.")
    expect()(page.get_by_test_id("admin-camera-lobby")).to_be_visible()
    stored = CameraSettings.load(r, "lobby")
    assert stored.source == "rtsp://127.0.0.1:8554/lobby" and stored.fps == 2

    page.get_by_test_id("mode-lobby").select_option("driver")
    page.get_by_test_id("absent-seconds-lobby").fill("4")
    page.get_by_test_id("save-lobby").click()
    expect()(page.get_by_test_id("admin-message")).to_have_text("Saved lobby.")
    stored = CameraSettings.load(r, "lobby")
    assert stored.mode == "driver" and stored.absent_seconds == 4

    page.get_by_test_id("nav-cameras").click()
    expect()(page.get_by_test_id("camera-row-lobby")).to_contain_text("driver")
    expect()(page.get_by_test_id("panel-id-lobby")).to_have_text("lobby")

    page.get_by_test_id("nav-admin").click()
    page.once("dialog", lambda dialog: dialog.accept())
    page.get_by_test_id("remove-lobby").click()
    expect()(page.get_by_test_id("admin-message")).to_have_text("Removed lobby.")
    expect()(page.get_by_test_id("admin-camera-lobby")).to_have_count(0)
    assert not r.exists(keys.camera("lobby")) and not r.sismember(keys.CAMERAS, "lobby")
    page.get_by_test_id("nav-cameras").click()
    expect()(page.get_by_test_id("no-cameras")).to_be_visible()
    expect()(page.get_by_test_id("camera-row-lobby")).to_have_count(0)


def test_admin_manages_users(r, page):
    users.set_user(r, *ADMIN, "admin")
    log_in(page, *ADMIN)
    page.goto("/admin")
    form = page.get_by_test_id("add-user-form")
    form.locator('input[name="name"]').fill("walt")
    form.locator('input[name="password"]').fill("walt-password")
    page.get_by_test_id("add-user").click()
    expect()(page.get_by_test_id("user-walt")).to_contain_text("walt")
    assert users.authenticate(r, "walt", "walt-password")["role"] == "viewer"
    page.get_by_test_id("user-role-walt").select_option("admin")
    expect()(page.get_by_test_id("admin-message")).to_have_text("walt is now admin.")
    assert users.get_user(r, "walt")["role"] == "admin"
    page.once("dialog", lambda dialog: dialog.accept())
    page.get_by_test_id("remove-user-walt").click()
    expect()(page.get_by_test_id("user-walt")).to_have_count(0)
    assert users.get_user(r, "walt") is None


# --------------------------------------------------------------------------- real pipeline


def test_a_camera_page_receives_only_its_own_cameras_pushes(r, redis_server, page):
    """Chromium's Socket.IO client on the page of one camera: the snapshots of another camera
    never reach it (they go to that camera's room), the overview gets both."""
    from flask_socketio import SocketIO

    users.set_user(r, *ADMIN, "admin")
    for cam in ("hall-a", "hall-b"):
        cameras.add(r, {"id": cam, "source": "rtsp://127.0.0.1:1/none"})
    emitter = SocketIO(message_queue=redis_server.url)  # as the aggregator does it
    frames: list[str] = []
    page.on("websocket", lambda ws: ws.on("framereceived", lambda f: frames.append(str(f))))
    log_in(page, *ADMIN)

    def pushes(cam: str) -> int:
        return sum(f'"camera":"{cam}"' in f.replace(" ", "") for f in frames)

    def emit_both():
        for cam in ("hall-a", "hall-b"):
            emitter.emit("mood", {"camera": cam, "ts": time.time(), "mode": "classroom",
                                  "faces": 1, "counts": {}, "dominant": None, "valence": 0,
                                  "windows": {}, "current": None, "alerts": [], "shift": None},
                         to=keys.camera_room(cam))
        page.wait_for_timeout(300)  # Playwright delivers the page's events while it runs
        return False

    try:
        page.goto("/cameras/hall-a")
        wait_for(lambda: emit_both() or pushes("hall-a") >= 3, timeout=30,
                 what="hall-a's pushes on its page")
        assert pushes("hall-b") == 0
        frames.clear()
        page.goto("/")
        wait_for(lambda: emit_both() or (pushes("hall-a") >= 2 and pushes("hall-b") >= 2),
                 timeout=30, what="both cameras' pushes on the overview")
    finally:
        for cam in ("hall-a", "hall-b"):
            cameras.remove(r, cam)


@pytest.fixture(scope="module")
def pipeline(redis_server, dashboard, tmp_path_factory):
    """Detector, classifier and aggregator workers, shared by the tests below."""
    for path in (MEDIA / "fer_woman2.mp4", MEDIA / "mtcnn_no-faces.jpg", MEDIA / "fer_justin.jpg"):
        if not path.exists():
            pytest.skip(f"shared test data not found at {path} (needs ../shared beside the repo)")
    if not MODEL.exists():
        pytest.skip(f"{MODEL} is missing: train and export it first (moodstream train/export)")
    services = Services(redis_server.url, tmp_path_factory.mktemp("pipeline"))
    for name in ("detector", "classifier", "aggregator"):
        services.start(name)
    yield services
    services.stop_all()


def clean_client(redis_server):
    """No FLUSHALL here: the shared workers' consumer groups must survive between tests."""
    client = redis_server.client()
    users.set_user(client, *ADMIN, "admin")
    return client


def alive(services: Services) -> None:
    for proc in services.procs:
        if proc.poll() is not None and proc.returncode != 0:
            raise AssertionError(f"{proc.args} exited {proc.returncode}:\n"
                                 f"{Path(proc.log_path).read_text()[-3000:]}")


def faces_count(locator) -> int | None:
    match = FACES_RE.match(locator.inner_text().strip())
    return int(match.group(1)) if match else None


def test_live_numbers_change(redis_server, pipeline, page):
    r = clean_client(redis_server)
    video = MEDIA / "fer_woman2.mp4"
    cameras.add(r, {"id": "class1", "name": "Class 1", "source": str(video),
                    "mode": "classroom", "fps": "2"})
    ingest = pipeline.start("ingest", "--camera", "class1", "--source", str(video), "--loop",
                            "--fps", "2")
    log_in(page, *ADMIN)
    faces = page.get_by_test_id("faces-class1")
    expect()(faces).to_be_visible()
    assert FACES_RE.match(faces.inner_text().strip()) or faces.inner_text() == "– faces"

    def face_seen():
        alive(pipeline)
        return (faces_count(faces) or 0) >= 1

    wait_for(face_seen, timeout=180, every=1, what="a face in the live panel")

    def bar_counts():
        return tuple(page.get_by_test_id(f"bar-class1-{e}").get_attribute("data-count")
                     for e in ("angry", "disgust", "fear", "happy", "sad", "surprise", "neutral"))

    first = bar_counts()
    assert sum(float(n) for n in first) > 0
    wait_for(lambda: bar_counts() != first, timeout=60, every=0.5,
             what="the live distribution to change")
    expect()(page.get_by_test_id("camera-row-class1")).to_contain_text("connected")
    fps = page.get_by_test_id("fps-class1").inner_text()
    assert re.match(r"^\d+\.\d$", fps), fps

    page.goto("/cameras/class1")
    expect()(page.get_by_test_id("classroom-view")).to_be_visible()
    expect()(page.get_by_test_id("driver-view")).to_be_hidden()
    wait_for(lambda: float(page.locator("#bars-1m").get_attribute("data-total") or 0) > 0,
             timeout=30, what="the 1-minute distribution")
    assert faces_count(page.get_by_test_id("faces")) >= 1
    summary = page.get_by_test_id("summary")
    expect()(summary).to_contain_text("Last hour: mostly", timeout=20000)
    assert summary.get_attribute("data-dominant") in ("angry", "disgust", "fear", "happy", "sad",
                                                      "surprise", "neutral")
    page.wait_for_timeout(3000)  # a few more points on the timeline
    SCREENSHOTS.mkdir(parents=True, exist_ok=True)
    page.screenshot(path=str(SCREENSHOTS / "classroom.png"), full_page=True)

    # Phone-sized screen: one column, nothing wider than the screen, even with a long user
    # name in the users table and a long status reason (CI's fonts once made /admin 16px wide).
    users.set_user(r, "a.rather.long.user.name@example-school.org", "long-name-password", "viewer")
    cameras.add(r, {"id": "class2", "name": "Class 2", "mode": "classroom", "fps": "1",
                    "source": "rtsp://viewer:secret@10.20.30.40:8554/" + "long-path-" * 12})
    r.hset(keys.camera_status("class2"), mapping={
        "state": "failed", "reason": "could-not-open-" + "/very/long/path" * 8})
    page.set_viewport_size({"width": 390, "height": 844})
    page.goto("/")
    expect()(page.get_by_test_id("panel-class1")).to_be_visible()
    page.wait_for_timeout(1500)
    page.screenshot(path=str(SCREENSHOTS / "phone.png"), full_page=True)
    for path in ("/", "/cameras/class1", "/admin", "/system"):
        page.goto(path)
        page.wait_for_timeout(500)
        overflow = page.evaluate("document.documentElement.scrollWidth - window.innerWidth")
        assert overflow <= 0, f"{path} is {overflow}px wider than a phone screen"

    # Privacy: no image until an admin turns the preview on; then boxes drawn on live frames.
    page.set_viewport_size({"width": 1280, "height": 900})
    page.goto("/cameras/class1")
    expect()(page.get_by_test_id("preview")).to_be_hidden()
    cameras.update(r, "class1", {"preview": True})
    expect()(page.get_by_test_id("preview")).to_be_visible()
    wait_for(lambda: page.evaluate(
        "document.querySelector('#preview-img').naturalWidth") > 0, timeout=30,
        what="a preview frame")
    cameras.update(r, "class1", {"preview": False})
    expect()(page.get_by_test_id("preview")).to_be_hidden()

    # The workers behind the numbers: throughput and lag per live worker.
    page.goto("/system")
    for kind in ("detector", "classifier", "aggregator"):
        expect()(page.get_by_test_id(f"worker-{kind}").first).to_contain_text("/s")
    expect()(page.get_by_test_id("stats")).to_contain_text("Frames in")
    ingest.terminate()
    ingest.wait(20)
    cameras.remove(r, "class1")


def test_driver_alert_fires_when_the_face_disappears_and_clears(redis_server, pipeline, page):
    r = clean_client(redis_server)
    face, no_face = MEDIA / "fer_justin.jpg", MEDIA / "mtcnn_no-faces.jpg"
    cameras.add(r, {"id": "car1", "name": "Car 1", "source": str(face), "mode": "driver",
                    "fps": "2", "absent_seconds": "2", "negative_seconds": "30"})
    ingest = pipeline.start("ingest", "--camera", "car1", "--source", str(face), "--fps", "2")
    log_in(page, *ADMIN)
    page.goto("/cameras/car1")
    expect()(page.get_by_test_id("driver-view")).to_be_visible()
    current = page.get_by_test_id("driver-current")

    def driver_seen():
        alive(pipeline)
        return (faces_count(page.get_by_test_id("faces")) or 0) >= 1 and current.inner_text() \
            not in ("–", "no face")

    wait_for(driver_seen, timeout=180, every=1, what="the driver's face and expression")
    banner = page.get_by_test_id("alert-banner")
    expect()(banner).to_be_hidden()

    # The driver leaves: the camera now sees an empty scene.
    ingest.terminate()
    ingest.wait(20)
    ingest = pipeline.start("ingest", "--camera", "car1", "--source", str(no_face), "--fps", "2")
    expect()(banner).to_be_visible(timeout=60000)
    expect()(page.get_by_test_id("alert-absent")).to_contain_text("Driver out of view")
    expect()(current).to_have_text("no face")
    entry = page.locator('[data-testid="alert-log-entry"][data-kind="absent"][data-state="raised"]')
    expect()(entry.first).to_be_visible(timeout=15000)
    page.wait_for_timeout(1000)
    SCREENSHOTS.mkdir(parents=True, exist_ok=True)
    page.screenshot(path=str(SCREENSHOTS / "driver.png"), full_page=True)

    # The driver is back: the alert clears and the log says so.
    ingest.terminate()
    ingest.wait(20)
    ingest = pipeline.start("ingest", "--camera", "car1", "--source", str(face), "--fps", "2")
    wait_for(driver_seen, timeout=120, every=1, what="the driver's face again")
    expect()(banner).to_be_hidden(timeout=30000)
    cleared = page.locator('[data-testid="alert-log-entry"][data-kind="absent"]'
                           '[data-state="cleared"]')
    expect()(cleared.first).to_be_visible(timeout=20000)
    ingest.terminate()
    ingest.wait(20)
    cameras.remove(r, "car1")


def test_sustained_negative_alert_fires_for_one_driver_and_not_for_another(
        redis_server, pipeline, page):
    """The shipped model gives mtcnn_ivan.jpg a negative share (angry + fear + sad) of 0.29 and
    fer_justin.jpg (smiling) 0.10; a threshold of 0.2 over 2 s must tell them apart."""
    need_real_media("a frowning and a smiling real face")
    r = clean_client(redis_server)
    frowning, smiling = MEDIA / "mtcnn_ivan.jpg", MEDIA / "fer_justin.jpg"
    settings = {"mode": "driver", "fps": "2", "negative_threshold": "0.2",
                "negative_seconds": "2", "absent_seconds": "60"}
    cameras.add(r, {"id": "car3", "name": "Car 3", "source": str(frowning), **settings})
    ingest = pipeline.start("ingest", "--camera", "car3", "--source", str(frowning), "--fps", "2")
    log_in(page, *ADMIN)
    page.goto("/cameras/car3")
    expect()(page.get_by_test_id("driver-view")).to_be_visible()
    banner = page.get_by_test_id("alert-banner")
    wait_for(lambda: alive(pipeline) or page.get_by_test_id("alert-negative").is_visible(),
             timeout=180, every=1, what="the sustained-negative alert")
    expect()(page.get_by_test_id("alert-negative")).to_contain_text("negative share 0.")
    expect()(page.get_by_test_id("alert-absent")).to_have_count(0)
    raised = page.locator('[data-testid="alert-log-entry"][data-kind="negative"]'
                          '[data-state="raised"]')
    expect()(raised.first).to_be_visible(timeout=15000)

    # A smiling driver on the same camera: the alert clears and the log says so.
    ingest.terminate()
    ingest.wait(20)
    ingest = pipeline.start("ingest", "--camera", "car3", "--source", str(smiling), "--fps", "2")
    expect()(banner).to_be_hidden(timeout=60000)
    cleared = page.locator('[data-testid="alert-log-entry"][data-kind="negative"]'
                           '[data-state="cleared"]')
    expect()(cleared.first).to_be_visible(timeout=20000)
    expect()(page.get_by_test_id("driver-current")).to_have_class("pos")
    ingest.terminate()
    ingest.wait(20)
    cameras.remove(r, "car3")


def test_after_up_add_a_driver_camera_and_watch_its_alert_fire_and_clear(
        redis_server, services, browser, media):
    """The walk-through: `moodstream up`, log in, add a second camera, switch it to driver
    mode, and watch its out-of-view alert fire and clear, all from the browser."""
    if not MODEL.exists():
        pytest.skip(f"{MODEL} is missing: train and export it first (moodstream train/export)")
    face, no_face = media / "fer_justin.jpg", media / "mtcnn_no-faces.jpg"
    r = clean_client(redis_server)
    cameras.remove(r, "car2")
    port = free_port()
    services.start("up", "--source", str(media / "fer_woman2.mp4"), "--camera", "first",
                   "--fps", "0.5", "--port", str(port),
                   env={"MOODSTREAM_TOKEN": TOKEN, "MOODSTREAM_SECRET_KEY": SECRET,
                        "MOODSTREAM_ADMIN_USER": "olivia",
                        "MOODSTREAM_ADMIN_PASSWORD": "olivia-password"})
    base = f"http://127.0.0.1:{port}"

    wait_for_dashboard(base, lambda: alive(services), timeout=90,
                       what="`moodstream up` to serve the dashboard")
    context = browser.new_context(viewport={"width": 1280, "height": 900}, base_url=base)
    context.set_default_timeout(15000)
    page = context.new_page()
    errors = []
    page.on("pageerror", lambda error: errors.append(str(error)))
    try:
        log_in(page, "olivia", "olivia-password")
        expect()(page.get_by_test_id("panel-first")).to_be_visible()

        page.get_by_test_id("nav-admin").click()
        form = page.get_by_test_id("add-camera-form")
        form.locator('input[name="id"]').fill("car2")
        form.locator('input[name="source"]').fill(str(face))
        form.locator('input[name="fps"]').fill("1")
        page.get_by_test_id("add-camera").click()
        expect()(page.get_by_test_id("admin-camera-car2")).to_be_visible()
        page.get_by_test_id("mode-car2").select_option("driver")
        page.get_by_test_id("absent-seconds-car2").fill("2")
        page.get_by_test_id("negative-seconds-car2").fill("60")
        page.get_by_test_id("save-car2").click()
        expect()(page.get_by_test_id("admin-message")).to_have_text("Saved car2.")

        page.goto("/cameras/car2")
        expect()(page.get_by_test_id("driver-view")).to_be_visible()
        faces, banner = page.get_by_test_id("faces"), page.get_by_test_id("alert-banner")
        wait_for(lambda: alive(services) or (faces_count(faces) or 0) >= 1, timeout=180,
                 every=1, what="the supervisor's ingest and the driver's face")
        expect()(banner).to_be_hidden()

        def set_source(path):
            page.goto("/admin")
            page.get_by_test_id("source-car2").fill(str(path))
            page.get_by_test_id("save-car2").click()
            expect()(page.get_by_test_id("admin-message")).to_have_text("Saved car2.")
            page.goto("/cameras/car2")

        set_source(no_face)  # the driver leaves the picture
        expect()(banner).to_be_visible(timeout=60000)
        expect()(page.get_by_test_id("alert-absent")).to_be_visible()
        set_source(face)  # and comes back
        wait_for(lambda: alive(services) or (faces_count(faces) or 0) >= 1, timeout=120,
                 every=1, what="the driver's face again")
        expect()(banner).to_be_hidden(timeout=30000)
        expect()(page.locator('[data-testid="alert-log-entry"][data-state="cleared"]')
                 .first).to_be_visible(timeout=20000)
        expect()(page.locator('[data-testid="alert-log-entry"][data-state="raised"]')
                 .first).to_be_visible()
    finally:
        context.close()
        cameras.remove(r, "car2")
        cameras.remove(r, "first")
    assert not errors, f"JavaScript errors: {errors}"


def test_the_live_connection_ends_when_the_user_is_removed(r, page):
    """Socket.IO works through the production server (gunicorn), and a removed
    user's open connection is closed at once, not left streaming."""
    users.set_user(r, "rita", "rita-password", "viewer")
    log_in(page, "rita", "rita-password")
    live = page.get_by_test_id("live-state")
    expect()(live).to_have_text("live", timeout=20000)
    users.remove_user(r, "rita")
    expect()(live).to_have_text("offline", timeout=10000)
    page.reload()
    assert "/login" in page.url


def seed_history(cam: str, days: int = 15) -> tuple[list[dict], list[dict]]:
    """A fortnight of school days (six lessons a day, an empty room otherwise) up to now, in
    the history database the dashboard reads; returns the lessons and events written."""
    import numpy as np

    from moodstream.bench.history_queries import DAY, day_rows
    from moodstream.history import HistoryStore, sqlite_url
    from moodstream.history.schema import buckets

    store = HistoryStore(sqlite_url(os.environ["MOODSTREAM_DATA_DIR"]))
    store.delete_camera(cam)
    now = time.time()
    today = int(now) // DAY * DAY
    rng = np.random.default_rng(12)
    store.migrate()
    with store.engine.begin() as conn:
        for d in range(days - 1, -1, -1):
            rows = [row for row in day_rows(rng, cam, today - d * DAY) if row["ts"] < now - 60]
            if rows:
                conn.execute(buckets.insert(), rows)
    store.rebuild()
    events = []
    for d in range(days):
        start = today - d * DAY + 10 * 3600
        events += [{"camera": cam, "ts": start + 120, "kind": "shift", "state": "raised",
                    "message": "valence +0.30 → -0.20"},
                   {"camera": cam, "ts": start + 900, "kind": "absent", "state": "raised",
                    "message": "no face for 3s"},
                   {"camera": cam, "ts": start + 960, "kind": "absent", "state": "cleared",
                    "message": "cleared"}]
    events = [e for e in events if e["ts"] < now]
    store.write(alert_rows=events)
    lessons = store.lessons(cam, 0, now + DAY)
    store.close()
    return lessons, events


def test_history_page_ranges_side_by_side_and_lessons(r, page):
    r.sadd(keys.CAMERAS, "room7")
    CameraSettings(name="Room 7", source="demo").save(r, "room7")
    lessons, events = seed_history("room7")
    assert lessons, "the seeded fortnight has lessons"
    users.set_user(r, *VIEWER, "viewer")
    log_in(page, *VIEWER)
    page.goto("/cameras/room7")
    page.get_by_test_id("history-link").click()
    page.wait_for_url("**/cameras/room7/history")
    a, b = page.get_by_test_id("range-a"), page.get_by_test_id("range-b")

    # This lesson (the latest) against the one before it.
    expect()(page.get_by_test_id("range-lesson")).to_have_attribute("aria-pressed", "true")
    expect()(page.get_by_test_id("range-a-title")).to_contain_text("This lesson")
    expect()(page.get_by_test_id("range-b-title")).to_contain_text("The lesson before")
    expect()(a).to_have_attribute("data-loaded", f"{lessons[-1]['from']}-{lessons[-1]['to']}")
    expect()(b).to_have_attribute("data-loaded", f"{lessons[-2]['from']}-{lessons[-2]['to']}")
    expect()(page.get_by_test_id("range-a-summary")).to_contain_text("faces on average")
    assert int(page.get_by_test_id("range-a-valence").get_attribute("data-points")) > 100

    # A week against the week before: 10-minute steps, lessons listed with their summary.
    page.get_by_test_id("range-week").click()
    expect()(page.get_by_test_id("range-a-title")).to_contain_text("This week")
    expect()(page.get_by_test_id("range-b-title")).to_contain_text("Last week")
    expect()(a).to_have_attribute("data-step", "600")
    expect()(b).to_have_attribute("data-step", "600")
    monday = page.evaluate("() => { const d = new Date(); d.setHours(0, 0, 0, 0);"
                           " return d.getTime() / 1000 - ((d.getDay() + 6) % 7) * 86400; }")
    this_week = [x for x in lessons if x["to"] > monday]
    # Early on a Monday, before its first lesson, this week has nothing seeded yet.
    for side in ("a", "b") if this_week else ("b",):
        for chart in ("valence", "shares", "faces", "events"):
            canvas = page.get_by_test_id(f"range-{side}-{chart}")
            expect()(canvas).to_have_attribute("data-points", re.compile(r"^[1-9]\d*$"))
    expect()(page.get_by_test_id("lesson")).to_have_count(len(this_week))
    expect()(page.get_by_test_id("lessons").locator("tbody")).to_have_attribute(
        "data-count", str(len(this_week)))
    # The week's alert log, newest first.
    this_weeks = sorted((e for e in events if e["ts"] >= monday), key=lambda e: -e["ts"])
    logged = page.get_by_test_id("event")
    expect()(logged).to_have_count(len(this_weeks))
    assert [(x.get_attribute("data-kind"), x.get_attribute("data-state"))
            for x in logged.all()] == [(e["kind"], e["state"]) for e in this_weeks]
    href = page.get_by_test_id("history-csv").get_attribute("href")
    assert href.startswith("/api/cameras/room7/history.csv?from=")
    page.screenshot(path=str(SCREENSHOTS / "history.png"), full_page=True)

    # A term at day steps, a day, a custom range, and one range alone.
    page.get_by_test_id("range-term").click()
    expect()(a).to_have_attribute("data-step", "86400")
    expect()(page.get_by_test_id("range-a-summary")).to_contain_text("mostly")
    page.get_by_test_id("range-day").click()
    expect()(page.get_by_test_id("range-b-title")).to_contain_text("Yesterday")
    page.get_by_test_id("range-custom").click()
    page.get_by_test_id("custom-apply").click()
    expect()(page.get_by_test_id("range-a-title")).to_contain_text("Custom range")
    page.get_by_test_id("compare").uncheck()
    expect()(b).to_be_hidden()
    expect()(a).to_be_visible()

    # On a phone: one column, nothing wider than the screen.
    page.set_viewport_size({"width": 390, "height": 844})
    page.get_by_test_id("compare").check()
    page.get_by_test_id("range-week").click()
    expect()(b).to_have_attribute("data-step", "600")
    assert page.evaluate("document.documentElement.scrollWidth - window.innerWidth") <= 0
    assert a.bounding_box()["x"] == b.bounding_box()["x"]  # stacked, not side by side


def test_a_viewer_limited_to_one_camera_receives_none_of_another_cameras_pushes(
        r, page, redis_server):
    """Chromium, logged in as a teacher who may see room1 only: her page's Socket.IO
    connection asks for room1 and room2, is refused room2, and of the pushes the aggregators
    send to both rooms (through Redis, as they do) receives room1's alone."""
    import socketio

    from moodstream.contract import Snapshot

    for cam in ("room1", "room2"):
        r.sadd(keys.CAMERAS, cam)
        CameraSettings(name=cam.title(), source="demo").save(r, cam)
    users.set_user(r, "tina", "tina-password", "viewer", cameras="room1")
    log_in(page, "tina", "tina-password")
    page.goto("/")
    listed = page.evaluate("() => fetch('/api/cameras').then((r) => r.json())")
    assert [c["id"] for c in listed] == ["room1"]
    page.goto("/cameras/room2")
    expect()(page.locator("body")).to_contain_text("Nothing here")
    page.goto("/")
    answer = page.evaluate("""() => new Promise((resolve) => {
        window.seen = [];
        const socket = window.io({ withCredentials: true });
        socket.on("mood", (mood) => window.seen.push(mood.camera));
        socket.on("connect", () => socket.emit("watch", { cameras: ["room1", "room2"] },
                                               resolve));
    })""")
    assert answer == {"ok": True, "rooms": ["camera:room1"], "refused": ["room2"]}
    queue = socketio.RedisManager(redis_server.url, channel="flask-socketio", write_only=True)
    for _ in range(5):
        for cam in ("room2", "room1"):
            queue.emit("mood", Snapshot(camera=cam, ts=time.time(), faces=1).to_dict(),
                       to=keys.camera_room(cam))
        time.sleep(0.1)
    wait_for(lambda: page.evaluate("() => window.seen.length") >= 5, timeout=15,
             what="room1's pushes in Chromium")
    time.sleep(1)  # room2's pushes were sent first: any that got through is here by now
    seen = page.evaluate("() => window.seen")
    assert set(seen) == {"room1"} and len(seen) >= 5, seen  # none of room2's


def test_the_admin_page_sets_camera_groups_and_a_viewers_access(r, page):
    users.set_user(r, *ADMIN, "admin")
    cameras.add(r, {"id": "room12", "source": "rtsp://127.0.0.1:1/none"})
    log_in(page, *ADMIN)
    page.goto("/admin")
    page.get_by_test_id("groups-room12").fill("year-9, room-12")
    page.get_by_test_id("save-room12").click()
    expect()(page.get_by_test_id("admin-message")).to_contain_text("Saved room12")
    assert CameraSettings.load(r, "room12").groups == "room-12,year-9"

    page.get_by_test_id("user-name-input").fill("tina")
    page.get_by_test_id("user-password-input").fill("tina-password")
    page.get_by_test_id("user-cameras-input").fill("room12")
    page.get_by_test_id("add-user").click()
    expect()(page.get_by_test_id("user-cameras-tina")).to_have_value("room12")
    assert users.get_user(r, "tina")["cameras"] == "room12"
    groups = page.get_by_test_id("user-groups-tina")
    groups.fill("fleet-north")
    groups.press("Enter")
    expect()(page.get_by_test_id("admin-message")).to_contain_text("Saved the groups of tina")
    assert users.get_user(r, "tina")["groups"] == "fleet-north"
    page.get_by_test_id("user-groups-tina").fill("not a group")
    page.get_by_test_id("user-groups-tina").press("Enter")
    expect()(page.get_by_test_id("admin-message")).to_contain_text("not a valid name")
    cameras.remove(r, "room12")
