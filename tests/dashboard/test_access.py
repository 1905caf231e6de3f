"""Per-camera access: a viewer limited to some cameras (or camera groups) reaches nothing of
the others on any route; admins see everything; the Admin API and `moodstream user` set it."""

from __future__ import annotations

import time

import pytest

from moodstream import keys
from moodstream.contract import Snapshot
from moodstream.dashboard import cameras, users
from tests.dashboard.conftest import login, page_csrf

TEACHER = ("tina", "tina-password")  # room1 only
DISPATCHER = ("dan", "dan-password")  # the group fleet-north: cab1 and cab2
JPEG = b"\xff\xd8\xff\xe0" + b"0" * 100 + b"\xff\xd9"
NOW = int(time.time())
RANGE = f"from={NOW - 3600}&to={NOW}"

# Every route that names a camera, with what it takes to answer 200 for one that exists.
ROUTES = ["/api/cameras/{cam}", "/api/cameras/{cam}/mood", "/api/cameras/{cam}/live",
          "/api/cameras/{cam}/alerts", "/api/cameras/{cam}/preview.jpg",
          "/api/cameras/{cam}/history?" + RANGE, "/api/cameras/{cam}/history.csv?" + RANGE,
          "/api/cameras/{cam}/summary?" + RANGE, "/api/cameras/{cam}/lessons?" + RANGE,
          "/api/cameras/{cam}/events?" + RANGE, "/cameras/{cam}", "/cameras/{cam}/history"]


@pytest.fixture
def fleet(r, app, accounts):
    records = app.extensions["moodstream"].records
    for cam, groups in (("room1", ""), ("room2", ""), ("cab1", "fleet-north"),
                        ("cab2", "fleet-north,fleet-south")):
        cameras.add(r, {"id": cam, "source": "rtsp://127.0.0.1:9/x", "preview": True,
                        "groups": groups}, records=records, actor="test")
        r.set(keys.mood(cam), Snapshot(camera=cam, ts=time.time(), faces=1).to_json())
        r.set(keys.preview(cam), JPEG)
    users.set_user(r, *TEACHER, "viewer", cameras="room1", records=records, actor="test")
    users.set_user(r, *DISPATCHER, "viewer", groups="fleet-north", records=records,
                   actor="test")


def client_for(app, account):
    client = app.test_client()
    assert login(client, *account).status_code == 302
    client.csrf = page_csrf(client)
    return client


@pytest.mark.parametrize("route", ROUTES)
def test_a_limited_viewer_gets_404_for_every_other_camera_on_every_route(app, fleet, route,
                                                                         admin_client,
                                                                         viewer_client):
    teacher, dispatcher = client_for(app, TEACHER), client_for(app, DISPATCHER)
    for cam in ("room1", "room2", "cab1", "cab2"):
        assert admin_client.get(route.format(cam=cam)).status_code == 200, cam
        assert viewer_client.get(route.format(cam=cam)).status_code == 200, cam  # no limit
    assert teacher.get(route.format(cam="room1")).status_code == 200
    for cam in ("room2", "cab1", "cab2"):
        assert teacher.get(route.format(cam=cam)).status_code == 404, cam
    for cam in ("cab1", "cab2"):  # both in fleet-north
        assert dispatcher.get(route.format(cam=cam)).status_code == 200, cam
    for cam in ("room1", "room2"):
        assert dispatcher.get(route.format(cam=cam)).status_code == 404, cam


def test_the_camera_list_shows_only_the_cameras_a_viewer_may_see(app, fleet, admin_client):
    ids = [c["id"] for c in client_for(app, TEACHER).get("/api/cameras").json]
    assert ids == ["room1"]
    ids = sorted(c["id"] for c in client_for(app, DISPATCHER).get("/api/cameras").json)
    assert ids == ["cab1", "cab2"]
    assert len(admin_client.get("/api/cameras").json) == 4


def test_the_pipeline_figures_name_only_the_cameras_a_viewer_may_see(app, r, fleet,
                                                                      admin_client):
    """/api/stats (the System page) lists edge cameras by id: a limited viewer sees only its
    own, on a reply that names no other camera."""
    for cam in ("room1", "cab1"):
        r.hset(keys.camera_status(cam), mapping={"kind": "edge", "state": "ok", "sent": 5})
    assert sorted(admin_client.get("/api/stats").json["edge"]) == ["cab1", "room1"]
    reply = client_for(app, TEACHER).get("/api/stats")
    assert reply.status_code == 200 and list(reply.json["edge"]) == ["room1"]
    for other in ("room2", "cab1", "cab2"):
        assert other not in reply.get_data(as_text=True)
        assert other not in client_for(app, TEACHER).get("/api/workers").get_data(as_text=True)
    assert list(client_for(app, DISPATCHER).get("/api/stats").json["edge"]) == ["cab1"]


def test_viewers_read_history_only_of_registered_cameras_and_only_admins_erase(
        app, r, fleet, admin_client, viewer_client):
    """An id that was removed, or never registered, is not a viewer's to read; an admin
    erases the history of any valid id."""
    cameras.remove(r, "room2", records=app.extensions["moodstream"].records)
    for cam in ("room2", "never-seen"):
        for route in ("/api/cameras/{cam}/history?" + RANGE, "/api/cameras/{cam}/events"):
            assert viewer_client.get(route.format(cam=cam)).status_code == 404
            assert admin_client.get(route.format(cam=cam)).status_code == 200
        assert viewer_client.delete(f"/api/cameras/{cam}?history=erase",
                                    headers={"X-CSRFToken": viewer_client.csrf}
                                    ).status_code == 404
        answer = admin_client.delete(f"/api/cameras/{cam}?history=erase",
                                     headers={"X-CSRFToken": admin_client.csrf})
        assert answer.status_code == 200 and answer.json["history_erased"] == 0
    assert viewer_client.delete("/api/cameras/room1?history=erase",
                                headers={"X-CSRFToken": viewer_client.csrf}).status_code == 403
    trail = app.extensions["moodstream"].records.audit()
    assert [(c["action"], c["target"], c["actor"]) for c in trail[:2]] == [
        ("camera.remove", "never-seen", "alice"), ("camera.remove", "room2", "alice")]


def test_the_admin_api_sets_access_and_camera_groups(app, r, fleet, admin_client):
    headers = {"X-CSRFToken": admin_client.csrf}
    created = admin_client.post("/api/users", json={
        "name": "nina", "password": "nina-password", "role": "viewer",
        "cameras": ["room2"], "groups": "fleet-south"}, headers=headers)
    assert created.status_code == 201
    assert created.json == {"name": "nina", "role": "viewer", "cameras": ["room2"],
                            "groups": ["fleet-south"]}
    nina = client_for(app, ("nina", "nina-password"))
    assert sorted(c["id"] for c in nina.get("/api/cameras").json) == ["cab2", "room2"]
    # The camera form sets groups; nina's group now covers cab1 too.
    assert admin_client.patch("/api/cameras/cab1", json={"groups": "fleet-south"},
                              headers=headers).json["groups"] == "fleet-south"
    assert nina.get("/api/cameras/cab1").status_code == 200
    # Narrowing her access ends her sessions: she logs in again with the new limit.
    changed = admin_client.patch("/api/users/nina", json={"cameras": "", "groups": ""},
                                 headers=headers)
    assert changed.status_code == 200 and changed.json["cameras"] == []
    assert nina.get("/api/cameras").status_code == 401
    assert admin_client.post("/api/users", json={"name": "x", "password": "x-password-1",
                                                 "cameras": ["../etc"]},
                             headers=headers).status_code == 400
    assert admin_client.patch("/api/cameras/cab1", json={"groups": "a b"},
                              headers=headers).status_code == 400
    actions = [(c["action"], c["target"]) for c in
               admin_client.get("/api/audit").json[:3]]
    assert actions == [("user.update", "nina"), ("camera.update", "cab1"),
                       ("user.add", "nina")]


def test_socketio_watch_refuses_the_rooms_of_cameras_a_viewer_may_not_see(app_and_socketio,
                                                                          fleet):
    app, socketio = app_and_socketio
    client = app.test_client()
    login(client, *TEACHER)
    sock = socketio.test_client(app, flask_test_client=client)
    assert sock.is_connected()
    answer = sock.emit("watch", {"cameras": ["room1", "room2", "cab1"]}, callback=True)
    assert answer == {"ok": True, "rooms": ["camera:room1"], "refused": ["cab1", "room2"]}
    socketio.emit("mood", {"camera": "room2"}, to=keys.camera_room("room2"))
    socketio.emit("mood", {"camera": "room1"}, to=keys.camera_room("room1"))
    received = [m["args"][0]["camera"] for m in sock.get_received() if m["name"] == "mood"]
    assert received == ["room1"]
    sock.disconnect()


def test_the_user_command_sets_access(r, user_command, capsys):
    run = user_command

    assert run("add", "tina", "--password", "tina-password", "--cameras", "room1,room2",
               "--groups", "year-9") == 0
    assert users.get_user(r, "tina")["cameras"] == "room1,room2"
    assert run("add", "tina", "--cameras", "room1") == 0  # the rest is kept
    tina = users.get_user(r, "tina")
    assert (tina["role"], tina["cameras"], tina["groups"]) == ("viewer", "room1", "year-9")
    assert run("add", "tina", "--cameras", "bad id") == 2
    assert "not a valid name" in capsys.readouterr().err
    assert run("list") == 0
    assert "tina\tviewer\tcameras room1, groups year-9" in capsys.readouterr().out
    run.settings = run.settings.model_copy(update={"history": run.settings.history.model_copy(
        update={"url": "postgresql://nobody@127.0.0.1:9/x"})})
    assert run("list") == 2
    assert "the database cannot be used" in capsys.readouterr().err
