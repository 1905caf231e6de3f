"""The REST API against a real redis-server: cameras, mood, live points, alerts, stats."""

from __future__ import annotations

import json
import time

import pytest

from moodstream import keys
from moodstream.camera_settings import CameraSettings
from moodstream.contract import CLASSES

COUNTS = {c: 0 for c in CLASSES}


def snapshot(cam: str, **extra) -> dict:
    return {"camera": cam, "ts": time.time(), "mode": "classroom", "faces": 2,
            "counts": {**COUNTS, "happy": 3, "neutral": 1}, "dominant": "happy", "valence": 0.75,
            "windows": {}, "current": None, "alerts": [], "shift": None, **extra}


def next_message(pubsub, timeout: float = 3.0):
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        message = pubsub.get_message(timeout=0.2)
        if message:
            return message["data"]
    return None


@pytest.fixture
def client(app, bearer):
    client = app.test_client()
    client.environ_base["HTTP_AUTHORIZATION"] = bearer["Authorization"]
    return client


def test_camera_lifecycle_publishes_changes(r, client):
    pubsub = r.pubsub(ignore_subscribe_messages=True)
    pubsub.subscribe(keys.CAMERAS_CHANGED)
    response = client.post("/api/cameras", json={
        "id": "room-1", "name": "Room 1", "source": "rtsp://cam.local/stream", "mode": "classroom",
        "fps": "4"})
    assert response.status_code == 201
    assert response.json["fps"] == 4.0 and response.json["negative_threshold"] == 0.5
    stored = {k.decode(): v.decode() for k, v in r.hgetall(keys.camera("room-1")).items()}
    assert stored["source"] == "rtsp://cam.local/stream" and stored["mode"] == "classroom"
    assert r.sismember(keys.CAMERAS, "room-1")
    assert next_message(pubsub) == b"room-1"

    assert client.post("/api/cameras", json={"id": "room-1", "source": "x.mp4"}).status_code == 409

    response = client.patch("/api/cameras/room-1", json={
        "mode": "driver", "negative_threshold": 0.6, "negative_seconds": 4,
        "absent_seconds": "2.5", "preview": True})
    assert response.status_code == 200, response.json
    assert response.json["mode"] == "driver" and response.json["absent_seconds"] == 2.5
    assert response.json["preview"] is True
    assert r.hget(keys.camera("room-1"), "preview") == b"1"
    assert next_message(pubsub) == b"room-1"

    r.set(keys.mood("room-1"), json.dumps(snapshot("room-1")))
    r.hset(keys.camera_status("room-1"), mapping={"state": "connected", "reason": "rtsp",
                                                  "fps": "3.9", "updated": time.time()})
    [listed] = client.get("/api/cameras").json
    assert listed["id"] == "room-1" and listed["name"] == "Room 1"
    assert listed["status"]["state"] == "connected" and listed["status"]["fps"] == 3.9
    assert listed["faces"] == 2 and listed["stale"] is False

    assert client.delete("/api/cameras/room-1").status_code == 200
    assert not r.exists(keys.camera("room-1")) and not r.sismember(keys.CAMERAS, "room-1")
    assert not r.exists(keys.mood("room-1"))
    assert client.get("/api/cameras").json == []
    assert client.delete("/api/cameras/room-1").status_code == 404
    assert next_message(pubsub) == b"room-1"
    # An ingest that stops after the removal announces the camera again; it stays hidden.
    r.sadd(keys.CAMERAS, "room-1")
    r.hset(keys.camera_status("room-1"), mapping={"state": "stopped", "reason": "stopped"})
    assert client.get("/api/cameras").json == []
    pubsub.close()


@pytest.mark.parametrize("body,fragment", [
    ({"id": "bad id", "source": "rtsp://h/x"}, "id must be"),
    ({"id": "", "source": "rtsp://h/x"}, "id must be"),
    ({"id": "cam1"}, "source is required"),
    ({"id": "cam1", "source": "rtsp://h/x y"}, "without spaces"),
    ({"id": "cam1", "source": "gopher://h/x"}, "unsupported source scheme"),
    ({"id": "cam1", "source": "rtsp://h/x", "mode": "party"}, "mode must be"),
    ({"id": "cam1", "source": "rtsp://h/x", "fps": "0"}, "fps must be between"),
    ({"id": "cam1", "source": "rtsp://h/x", "fps": "nan"}, "fps must be between"),
    ({"id": "cam1", "source": "rtsp://h/x", "fps": "fast"}, "fps must be a number"),
    ({"id": "cam1", "source": "rtsp://h/x", "owner": "me"}, "unknown setting"),
])
def test_camera_validation(r, client, body, fragment):
    response = client.post("/api/cameras", json=body)
    assert response.status_code == 400
    assert fragment in response.json["error"]
    assert not r.exists(keys.camera("cam1"))


def test_patch_validation_and_missing(client):
    assert client.patch("/api/cameras/nope", json={"mode": "driver"}).status_code == 404
    client.post("/api/cameras", json={"id": "cam1", "source": "rtsp://h/x"})
    assert client.patch("/api/cameras/cam1", json={"negative_threshold": 2}).status_code == 400
    assert client.patch("/api/cameras/cam1", json={"absent_seconds": -1}).status_code == 400
    assert client.patch("/api/cameras/cam1", json={}).status_code == 400
    assert client.patch("/api/cameras/cam1", data="not json",
                        content_type="application/json").status_code == 400


def test_form_encoded_add(client):
    response = client.post("/api/cameras", data={"id": "cam2", "source": "http://h/mjpeg",
                                                 "mode": "driver", "fps": "2"})
    assert response.status_code == 201 and response.json["mode"] == "driver"


def test_unregistered_camera_from_a_standalone_ingest(r, client):
    r.sadd(keys.CAMERAS, "door")
    r.hset(keys.camera_status("door"), mapping={"state": "connected", "fps": "5"})
    [listed] = client.get("/api/cameras").json
    assert listed["id"] == "door" and listed["registered"] is False
    assert listed["mode"] == "classroom" and listed["faces"] is None
    response = client.patch("/api/cameras/door", json={"mode": "driver"})
    assert response.status_code == 200 and response.json["mode"] == "driver"
    # Still no source: the supervisor does not start a second ingest for it.
    assert response.json["registered"] is False and not r.hexists(keys.camera("door"), "source")


def test_mood(r, client):
    assert client.get("/api/cameras/cam1/mood").status_code == 404
    r.set(keys.mood("cam1"), json.dumps(snapshot("cam1")))
    mood = client.get("/api/cameras/cam1/mood").json
    assert mood["camera"] == "cam1" and mood["faces"] == 2
    assert isinstance(mood["ts"], float) and mood["counts"]["happy"] == 3
    assert set(mood["counts"]) == set(CLASSES)
    assert client.get("/api/cameras/..%2Fetc/mood").status_code == 404


def add_history(r, cam: str, ts: float, faces: int, valence: float, counts: dict) -> None:
    r.xadd(keys.live_points(cam), {"ts": f"{ts:.3f}", "faces": faces, "valence": valence,
                               "dominant": max(counts, key=counts.get),
                               "counts": json.dumps(counts)}, id=f"{int(ts * 1000)}-0")


def test_live_points_of_the_last_hour_come_from_redis(r, client):
    now = time.time()
    add_history(r, "cam1", now - 4000, 9, 1.0, {**COUNTS, "happy": 9})  # older than an hour
    for i in range(5):
        add_history(r, "cam1", now - 5 + i, 1 + i % 2, -0.5, {**COUNTS, "sad": 3, "happy": 1})
    r.xadd(keys.live_points("cam1"), {"ts": "garbage"})
    data = client.get("/api/cameras/cam1/live").json
    assert data["camera"] == "cam1" and len(data["points"]) == 5
    first = data["points"][0]
    assert first["faces"] == 1 and first["valence"] == -0.5 and first["dominant"] == "sad"
    assert first["counts"]["sad"] == 3 and set(first["counts"]) == set(CLASSES)
    assert len(client.get("/api/cameras/cam1/live?seconds=2.5").json["points"]) in (2, 3)
    assert client.get("/api/cameras/empty/live").json["points"] == []


def test_alert_log(r, client):
    r.xadd("ms:alerts:car", {"ts": time.time() - 3, "kind": "absent",
                             "message": "no face for 3 s", "state": "raised"})
    r.xadd("ms:alerts:car", {"ts": time.time(), "kind": "absent", "message": "cleared",
                             "state": "cleared"})
    alerts = client.get("/api/cameras/car/alerts").json["alerts"]
    assert [a["state"] for a in alerts] == ["cleared", "raised"]  # newest first
    assert alerts[1]["kind"] == "absent" and alerts[1]["message"] == "no face for 3 s"


def test_preview_only_when_enabled(r, client):
    client.post("/api/cameras", json={"id": "cam1", "source": "rtsp://h/x"})
    r.set("ms:preview:cam1", b"\xff\xd8fakejpeg", ex=5)
    assert client.get("/api/cameras/cam1/preview.jpg").status_code == 404  # preview is off
    client.patch("/api/cameras/cam1", json={"preview": True})
    response = client.get("/api/cameras/cam1/preview.jpg")
    assert response.status_code == 200 and response.mimetype == "image/jpeg"
    assert response.data == b"\xff\xd8fakejpeg"
    assert response.headers["Cache-Control"] == "no-store"
    client.patch("/api/cameras/cam1", json={"preview": False})
    assert not r.exists("ms:preview:cam1")  # turning it off drops the last frame at once


def test_stats_and_workers(r, client):
    from moodstream.registry import Heartbeat

    r.hset(keys.STATS, mapping={"frames:in": 10, "frames:delivered": 10, "frames:done": 9})
    stats = client.get("/api/stats").json
    assert stats["frames"]["in"] == 10 and stats["frames"]["processed"] == 9
    beat = Heartbeat(r, "detector")
    beat.count(5)
    beat.beat(force=True)
    [worker] = client.get("/api/workers").json
    assert worker["kind"] == "detector" and worker["id"] == beat.worker_id
    assert worker["processed"] == "5" and worker["age_s"] < 5


def test_vendor_assets_and_headers(app, client):
    from moodstream.dashboard.app import vendor_missing

    assert client.get("/vendor/evil.js").status_code == 404
    assert client.get("/vendor/..%2F..%2Fapp.py").status_code == 404
    if vendor_missing():
        pytest.skip("npm packages not installed (npm ci --prefix dashboard)")
    for name in ("socket.io.min.js", "chart.umd.min.js"):
        response = app.test_client().get(f"/vendor/{name}")  # no login needed for assets
        assert response.status_code == 200 and response.mimetype == "text/javascript"
    response = client.get("/api/cameras")
    assert response.headers["X-Content-Type-Options"] == "nosniff"
    assert "default-src 'self'" in response.headers["Content-Security-Policy"]
    assert response.headers["Cache-Control"] == "no-store"


def test_pages_render(r, admin_client):
    r.sadd(keys.CAMERAS, "cam1")
    r.hset(keys.camera("cam1"), mapping={"source": "rtsp://h/x", "mode": "driver"})
    for path in ("/", "/cameras/cam1", "/admin", "/system"):
        response = admin_client.get(path)
        assert response.status_code == 200, path
    html = admin_client.get("/cameras/cam1").get_data(as_text=True)
    assert 'data-camera="cam1"' in html and 'data-mode="driver"' in html
    assert admin_client.get("/cameras/nope").status_code == 404
    assert admin_client.get("/cameras/bad%20id").status_code == 404


def test_socketio_relays_aggregator_events(r, redis_server):
    """What the aggregator emits on the Redis message queue reaches logged-in clients."""
    import threading

    import socketio as socketio_client
    from flask_socketio import SocketIO
    from werkzeug.serving import make_server

    from moodstream.dashboard.app import create_app
    from tests.conftest import free_port, settings_for
    from tests.dashboard.conftest import SECRET, TOKEN

    pytest.importorskip("requests")
    # with the Redis message queue
    app, socketio = create_app(settings_for(redis_server.url, token=TOKEN, secret_key=SECRET))
    port = free_port()
    server = make_server("127.0.0.1", port, app, threaded=True)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    received = []
    try:
        with socketio_client.SimpleClient() as anonymous:
            with pytest.raises(socketio_client.exceptions.ConnectionError):
                anonymous.connect(f"http://127.0.0.1:{port}", transports=["polling"],
                                  wait_timeout=5)
        client = socketio_client.SimpleClient()
        client.connect(f"http://127.0.0.1:{port}", transports=["polling"],
                       auth={"token": TOKEN}, wait_timeout=5)
        assert client.call("watch", {"cameras": ["cam1", "../bad"]}, timeout=5) == {
            "ok": True, "rooms": ["camera:cam1"]}
        emitter = SocketIO(message_queue=redis_server.url)  # as the aggregator does it
        deadline = time.monotonic() + 15
        while time.monotonic() < deadline and len(received) < 3:
            emitter.emit("mood", snapshot("cam2"), to=keys.camera_room("cam2"))
            emitter.emit("mood", snapshot("cam1"), to=keys.camera_room("cam1"))
            try:
                received.append(client.receive(timeout=1))
            except socketio_client.exceptions.TimeoutError:
                pass
        client.disconnect()
    finally:
        server.shutdown()
        thread.join(5)
        # The message-queue listener thread cannot be stopped; keep it from logging into a
        # closed stream once the test redis-server is gone.
        socketio.server.logger.disabled = True
    assert len(received) == 3, "pushes of the watched camera arrive"
    assert {(event, data["camera"]) for event, data in received} == {("mood", "cam1")}


def test_user_management_api(r, admin_client, viewer_client):
    from moodstream.dashboard import users

    headers = {"X-CSRFToken": admin_client.csrf}
    assert viewer_client.get("/api/users").status_code == 403
    assert viewer_client.post("/api/users", json={"name": "x", "password": "long-enough"},
                              headers={"X-CSRFToken": viewer_client.csrf}).status_code == 403
    names = [u["name"] for u in admin_client.get("/api/users").json]
    assert names == ["alice", "victor"]
    response = admin_client.post("/api/users", json={"name": "zoe", "password": "zoe-password",
                                                     "role": "viewer"}, headers=headers)
    assert response.status_code == 201 and response.json == {"name": "zoe", "role": "viewer",
                                                             "cameras": [], "groups": []}
    assert users.authenticate(r, "zoe", "zoe-password")
    assert admin_client.post("/api/users", json={"name": "zoe", "password": "other-password"},
                             headers=headers).status_code == 409
    assert admin_client.post("/api/users", json={"name": "bad name", "password": "long-enough"},
                             headers=headers).status_code == 400
    assert admin_client.post("/api/users", json={"name": "amy", "password": "short"},
                             headers=headers).status_code == 400
    assert admin_client.patch("/api/users/zoe", json={"role": "admin"},
                              headers=headers).json["role"] == "admin"
    assert users.authenticate(r, "zoe", "zoe-password")["role"] == "admin"  # password kept
    assert admin_client.patch("/api/users/nobody", json={"role": "admin"},
                              headers=headers).status_code == 404
    # Nobody removes themselves, and there is always an admin left.
    assert admin_client.delete("/api/users/alice", headers=headers).status_code == 400
    assert admin_client.delete("/api/users/zoe", headers=headers).status_code == 200
    assert admin_client.patch("/api/users/alice", json={"role": "viewer"},
                              headers=headers).status_code == 400
    assert admin_client.delete("/api/users/victor", headers=headers).status_code == 200
    assert [u["name"] for u in admin_client.get("/api/users").json] == ["alice"]


def test_api_bodies_are_capped(client):
    response = client.post("/api/cameras", json={"id": "cam1", "source": "x" * 70000})
    assert response.status_code == 413


def test_prometheus_metrics_need_the_token_and_time_requests(app, bearer):
    client = app.test_client()
    assert client.get("/api/metrics").status_code == 401
    client.get("/api/cameras", headers=bearer)
    body = client.get("/api/metrics", headers=bearer).data
    assert b'moodstream_http_request_seconds_count{endpoint="api.list_cameras"}' in body


def test_per_camera_detector_settings_through_the_api(r, client):
    """docs/detector.md: a camera's min_face and scale_factor override the worker's."""
    response = client.post("/api/cameras", json={
        "id": "gate", "source": "rtsp://cam.local/gate", "min_face": 80, "scale_factor": "0.6"})
    assert response.status_code == 201, response.get_json()
    assert response.get_json()["min_face"] == 80 and response.get_json()["scale_factor"] == 0.6
    assert client.patch("/api/cameras/gate", json={"scale_factor": 0.99}).status_code == 400
    changed = client.patch("/api/cameras/gate", json={"min_face": ""}).get_json()
    assert changed["min_face"] is None and changed["scale_factor"] == 0.6
    camera = CameraSettings.load(r, "gate")
    assert camera.min_face is None and camera.scale_factor == 0.6
