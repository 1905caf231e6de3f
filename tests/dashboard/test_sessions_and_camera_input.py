"""Sessions, redirects and camera input in the dashboard: safe `next` targets, sessions that
end, camera ids, sources and networks, and secrets kept from viewers. On the real test
redis-server."""

from __future__ import annotations

import time
from urllib.parse import unquote

import pytest

from moodstream.contract import Frame, MalformedEntry
from moodstream.dashboard import users
from tests.conftest import wait_for
from tests.dashboard.conftest import ADMIN, TOKEN, VIEWER, csrf_from, login, page_csrf

# ------------------------------------------------------------------ 6. open redirect


# next= as the probe sent it (percent-encoded in the URL), decoded by the server.
@pytest.mark.parametrize("raw", [
    "/%09/evil.example", "/%0d/x", "/%0a/x", "/%00x", "//evil.example", "/%5Cevil.example",
    "/%5C/evil.example", "https://evil.example/", "/%20/evil.example", "///evil.example",
    "javascript:alert(1)", "/%0b/evil.example", "/%7F/x"])
def test_next_never_leaves_the_site_and_never_500s(app, accounts, raw):
    target = unquote(raw)
    client = app.test_client()
    html = client.get(f"/login?next={raw}").get_data(as_text=True)
    response = client.post("/login", data={"username": ADMIN[0], "password": ADMIN[1],
                                           "csrf_token": csrf_from(html), "next": target})
    assert response.status_code == 302
    assert response.headers["Location"] == "/"
    response = app.test_client().get(f"/login?token={TOKEN}&next={raw}")
    assert response.status_code == 302 and response.headers["Location"] == "/"


def test_next_keeps_same_site_paths(app):
    response = app.test_client().get("/login", query_string={
        "token": TOKEN, "next": "/cameras/room-1?x=1"})
    assert response.headers["Location"] == "/cameras/room-1?x=1"


# ------------------------------------------------------------------ 3. revocable sessions


def test_a_cookie_copied_before_logout_is_refused_afterwards(app, accounts):
    client = app.test_client()
    login(client, *VIEWER)
    assert client.get("/api/cameras").status_code == 200
    cookie = client.get_cookie("moodstream_session").value
    csrf = page_csrf(client)
    assert client.post("/logout", data={"csrf_token": csrf}).status_code == 302
    thief = app.test_client()
    thief.set_cookie("moodstream_session", cookie)
    assert thief.get("/api/cameras").status_code == 401
    assert thief.get("/").status_code == 302


def test_a_token_link_session_ends_at_logout_too(app):
    client = app.test_client()
    client.get(f"/login?token={TOKEN}")
    cookie = client.get_cookie("moodstream_session").value
    client.post("/logout", data={"csrf_token": page_csrf(client)})
    thief = app.test_client()
    thief.set_cookie("moodstream_session", cookie)
    assert thief.get("/api/cameras").status_code == 401


def test_a_role_change_ends_the_users_sessions(r, app, accounts, admin_client):
    client = app.test_client()
    login(client, *VIEWER)
    assert client.get("/api/cameras").status_code == 200
    response = admin_client.patch(f"/api/users/{VIEWER[0]}", json={"role": "admin"},
                                  headers={"X-CSRFToken": admin_client.csrf})
    assert response.status_code == 200
    assert client.get("/api/cameras").status_code == 401


def test_removing_a_user_closes_their_socketio_connections(app_and_socketio, accounts, r):
    app, socketio = app_and_socketio
    client = app.test_client()
    login(client, *VIEWER)
    live = socketio.test_client(app, flask_test_client=client)
    assert live.is_connected()
    other = app.test_client()
    login(other, *ADMIN)
    other_live = socketio.test_client(app, flask_test_client=other)
    users.remove_user(r, VIEWER[0])
    wait_for(lambda: not live.is_connected(), timeout=10, what="the socket to be closed")
    time.sleep(1.5)
    assert other_live.is_connected()  # only the removed user's connections end
    other_live.disconnect()


# ------------------------------------------------------------------ 8. camera ids and sources


@pytest.mark.parametrize("cam", ["..", "-h", ".", ".hidden", "--version", "-"])
def test_camera_ids_are_ordinary_names(app, bearer, cam):
    response = app.test_client().post("/api/cameras", json={"id": cam, "source": "rtsp://h/x"},
                                      headers=bearer)
    assert response.status_code == 400 and "id must be" in response.json["error"]
    entry = Frame(cam, 1, time.time(), b"jpeg").encode()
    with pytest.raises(MalformedEntry, match="bad camera id"):
        Frame.decode(entry)


@pytest.mark.parametrize("source", ["--version", "-h", "-"])
def test_a_source_is_never_an_option(app, bearer, source):
    response = app.test_client().post("/api/cameras", json={"id": "cam1", "source": source},
                                      headers=bearer)
    assert response.status_code == 400 and "source" in response.json["error"]


# ------------------------------------------------------------------ 10. camera URLs as a probe


def test_viewers_see_a_generic_camera_status(r, app, bearer, viewer_client):
    from moodstream import keys

    app.test_client().post("/api/cameras", json={"id": "cam1", "source": "http://10.9.8.7:22/"},
                           headers=bearer)
    reason = "cannot reach http://10.9.8.7:22/: [Errno 111] Connection refused; next try in 4s"
    r.hset(keys.camera_status("cam1"), mapping={"state": "retrying", "reason": reason})
    for path in ("/api/cameras/cam1", "/api/cameras"):
        body = viewer_client.get(path).get_data(as_text=True)
        assert "Connection refused" not in body and "cannot be reached" in body
    assert "Connection refused" not in viewer_client.get("/cameras/cam1").get_data(as_text=True)
    admin = app.test_client().get("/api/cameras/cam1", headers=bearer).json
    assert admin["status"]["reason"] == reason


@pytest.fixture
def camera_policy(app):
    """The dashboard's settings with a camera network policy (as MOODSTREAM_CAMERA_NETWORKS_
    ALLOW / _DENY would give them)."""
    from moodstream.config import CameraNetworkSettings

    state = app.extensions["moodstream"]

    def apply(**policy):
        state.settings = state.settings.model_copy(
            update={"camera_networks": CameraNetworkSettings(**policy)})

    return apply


@pytest.mark.parametrize("policy,source,ok", [
    ({"deny": "127.0.0.0/8,10.0.0.0/8"}, "rtsp://127.0.0.1:6379/", False),
    ({"deny": "127.0.0.0/8,10.0.0.0/8"}, "http://localhost:22/", False),
    ({"deny": "127.0.0.0/8"}, "rtsp://192.0.2.10/stream", True),
    ({"allow": "192.0.2.0/24"}, "rtsp://192.0.2.10/stream", True),
    ({"allow": "192.0.2.0/24"}, "rtsp://198.51.100.1/stream", False),
    ({"allow": "192.0.2.0/24"}, "/media/lesson.mp4", True),
])
def test_camera_networks_allow_and_deny(app, bearer, camera_policy, policy, source, ok):
    camera_policy(**policy)
    response = app.test_client().post("/api/cameras", json={"id": "cam1", "source": source},
                                      headers=bearer)
    assert (response.status_code == 201) is ok, response.json
    if not ok:
        assert "not in the allowed camera networks" in response.json["error"]


# ---------------------------------------------------------------- addresses and secrets


@pytest.mark.parametrize("host", ["0.0.0.0", "[::ffff:127.0.0.1]", "[::127.0.0.1]",
                                  "2130706433", "0177.0.0.1"])
def test_camera_addresses_are_checked_as_the_connection_reaches_them(app, bearer,
                                                                      camera_policy, host):
    """0.0.0.0 is this host; ::ffff:127.0.0.1 is 127.0.0.1; so are the numeric forms."""
    camera_policy(deny="127.0.0.1/32")
    response = app.test_client().post(
        "/api/cameras", json={"id": "cam1", "source": f"http://{host}:8080/x.jpg"},
        headers=bearer)
    assert response.status_code == 400, response.json
    assert "camera" in response.json["error"]


def test_viewers_never_see_camera_secrets(app, bearer, viewer_client):
    source = ("http://admin:hunter2@192.0.2.10/snapshot.cgi?user=admin&pwd=pw1&token=tk2"
              "&api_key=ak3&X-Amz-Signature=sg4&channel=1")
    assert app.test_client().post("/api/cameras", json={"id": "cam1", "source": source},
                                  headers=bearer).status_code == 201
    for path in ("/api/cameras/cam1", "/api/cameras", "/cameras/cam1"):
        body = viewer_client.get(path).get_data(as_text=True)
        for secret in ("hunter2", "pw1", "tk2", "ak3", "sg4"):
            assert secret not in body, (path, secret)
    listed = viewer_client.get("/api/cameras/cam1").json["source"]
    assert listed == ("http://admin:***@192.0.2.10/snapshot.cgi?user=admin&pwd=***&token=***"
                      "&api_key=***&X-Amz-Signature=***&channel=1")
    assert app.test_client().get("/api/cameras/cam1", headers=bearer).json["source"] == source
