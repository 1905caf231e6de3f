"""Accounts, sessions, bearer tokens, CSRF and Socket.IO authentication (real redis-server)."""

from __future__ import annotations

import pytest

from moodstream.dashboard import users
from tests.conftest import settings_for
from tests.dashboard.conftest import ADMIN, SECRET, TOKEN, VIEWER, csrf_from, login


def test_anonymous_api_gets_401_json(app):
    client = app.test_client()
    for path in ("/api/cameras", "/api/cameras/cam1/mood", "/api/stats", "/api/workers",
                 "/api/cameras/cam1/history", "/api/cameras/cam1/history.csv"):
        response = client.get(path)
        assert response.status_code == 401, path
        assert response.is_json and "error" in response.json
        assert response.headers["WWW-Authenticate"].startswith("Bearer")
    assert client.post("/api/cameras", json={"id": "x", "source": "rtsp://h/x"}).status_code == 401


def test_bearer_token(app, bearer):
    client = app.test_client()
    assert client.get("/api/cameras", headers=bearer).status_code == 200
    wrong = {"Authorization": "Bearer nope"}
    assert client.get("/api/cameras", headers=wrong).status_code == 401
    assert client.get("/api/cameras", headers={"Authorization": TOKEN}).status_code == 401
    # A bearer request needs no CSRF token and sets no session cookie.
    response = client.post("/api/cameras", json={"id": "cam1", "source": "rtsp://h/s"},
                           headers=bearer)
    assert response.status_code == 201
    assert "Set-Cookie" not in response.headers


def test_no_token_configured_means_no_bearer_access(r, redis_server):
    from moodstream.dashboard.app import create_app

    app, _ = create_app(settings_for(redis_server.url, token=None, secret_key=SECRET),
                        message_queue=False)
    client = app.test_client()
    assert client.get("/api/cameras", headers={"Authorization": "Bearer "}).status_code == 401
    assert client.get("/api/cameras", headers={"Authorization": "Bearer None"}).status_code == 401
    assert client.get("/login?token=").status_code == 401


def test_pages_redirect_to_login(app):
    client = app.test_client()
    for path in ("/", "/system", "/admin", "/cameras/cam1"):
        response = client.get(path)
        assert response.status_code == 302
        assert response.headers["Location"].startswith("/login?next=")
    assert client.get("/healthz").json == {"ok": True}


def test_login_form_and_cookie_flags(app, accounts):
    client = app.test_client()
    page = client.get("/login").get_data(as_text=True)
    assert 'name="username"' in page and 'name="password"' in page
    response = login(client, *ADMIN)
    assert response.status_code == 302 and response.headers["Location"] == "/"
    cookie = response.headers["Set-Cookie"]
    assert "HttpOnly" in cookie and "SameSite=Lax" in cookie and "Secure" not in cookie
    assert client.get("/api/me").json == {"name": "alice", "role": "admin", "via": "user"}
    assert client.get("/").status_code == 200


def test_secure_cookies_when_configured(r, redis_server, accounts):
    from moodstream.dashboard.app import create_app

    app, _ = create_app(settings_for(redis_server.url, token=TOKEN, secret_key=SECRET,
                                     secure_cookies=True), message_queue=False)
    client = app.test_client()
    response = client.get(f"/login?token={TOKEN}", base_url="https://localhost")
    assert "Secure" in response.headers["Set-Cookie"]
    assert "Strict-Transport-Security" in response.headers


def test_login_rejects_missing_csrf_and_bad_password(app, accounts):
    client = app.test_client()
    response = client.post("/login", data={"username": ADMIN[0], "password": ADMIN[1]})
    assert response.status_code == 400  # no CSRF token
    assert client.get("/api/cameras").status_code == 401
    assert login(client, ADMIN[0], "wrong-password").status_code == 401
    assert login(client, "nobody", "whatever-pass").status_code == 401
    assert client.get("/api/cameras").status_code == 401


def test_repeated_failures_lock_the_name_out(app, accounts):
    client = app.test_client()
    for _ in range(10):
        assert login(client, VIEWER[0], "not-the-password").status_code == 401
    assert login(client, *VIEWER).status_code == 429


def test_token_link_logs_in_as_admin(app):
    client = app.test_client()
    assert client.get("/login?token=wrong").status_code == 401
    response = client.get(f"/login?token={TOKEN}")
    assert response.status_code == 302 and response.headers["Location"] == "/"
    assert client.get("/api/me").json["role"] == "admin"
    assert client.get("/admin").status_code == 200


def test_no_open_redirect(app, accounts):
    client = app.test_client()
    html = client.get("/login?next=//evil.example/x").get_data(as_text=True)
    response = client.post("/login", data={"username": ADMIN[0], "password": ADMIN[1],
                                           "csrf_token": csrf_from(html),
                                           "next": "//evil.example/x"})
    assert response.headers["Location"] == "/"
    response = client.get(f"/login?token={TOKEN}&next=https://evil.example/")
    assert response.headers["Location"] == "/"
    response = client.get(f"/login?token={TOKEN}&next=/system")
    assert response.headers["Location"] == "/system"


def test_logout_needs_post_with_csrf(admin_client):
    assert admin_client.get("/logout").status_code == 405
    assert admin_client.post("/logout").status_code == 400  # no CSRF token
    assert admin_client.get("/api/cameras").status_code == 200
    response = admin_client.post("/logout", data={"csrf_token": admin_client.csrf})
    assert response.status_code == 302 and response.headers["Location"] == "/login"
    assert admin_client.get("/api/cameras").status_code == 401
    assert admin_client.get("/").status_code == 302


def test_password_change_or_removal_ends_sessions(r, app, accounts):
    client = app.test_client()
    login(client, *VIEWER)
    assert client.get("/api/cameras").status_code == 200
    users.set_user(r, VIEWER[0], "a-new-password", "viewer")
    assert client.get("/api/cameras").status_code == 401
    login(client, VIEWER[0], "a-new-password")
    assert client.get("/api/cameras").status_code == 200
    users.remove_user(r, VIEWER[0])
    assert client.get("/api/cameras").status_code == 401


def test_viewer_cannot_manage_cameras(viewer_client, bearer):
    client = viewer_client
    headers = {"X-CSRFToken": client.csrf}
    assert client.get("/admin").status_code == 403
    assert 'data-testid="nav-admin"' not in client.get("/").get_data(as_text=True)
    response = client.post("/api/cameras", json={"id": "cam1", "source": "rtsp://h/x"},
                           headers=headers)
    assert response.status_code == 403 and response.is_json
    client.application.test_client().post(
        "/api/cameras", json={"id": "cam1", "source": "rtsp://u:secret@h/x"}, headers=bearer)
    assert client.patch("/api/cameras/cam1", json={"mode": "driver"},
                        headers=headers).status_code == 403
    assert client.delete("/api/cameras/cam1", headers=headers).status_code == 403
    # Viewers see cameras, but not the credentials inside their sources.
    [camera] = client.get("/api/cameras").json
    assert camera["source"] == "rtsp://u:***@h/x"


def test_session_writes_need_csrf_header(admin_client):
    body = {"id": "cam1", "source": "rtsp://h/x"}
    response = admin_client.post("/api/cameras", json=body)
    assert response.status_code == 400 and "CSRF" in response.json["error"]
    response = admin_client.post("/api/cameras", json=body,
                                 headers={"X-CSRFToken": admin_client.csrf})
    assert response.status_code == 201


def test_socketio_requires_login(app_and_socketio, accounts):
    app, socketio = app_and_socketio
    anonymous = socketio.test_client(app, flask_test_client=app.test_client())
    assert not anonymous.is_connected()
    client = app.test_client()
    login(client, *VIEWER)
    logged_in = socketio.test_client(app, flask_test_client=client)
    assert logged_in.is_connected()
    logged_in.disconnect()
    with_token = socketio.test_client(app, auth={"token": TOKEN})
    assert with_token.is_connected()
    with_token.disconnect()
    assert not socketio.test_client(app, auth={"token": "wrong"}).is_connected()


@pytest.mark.parametrize("origin,allowed", [("http://localhost", True),
                                            ("http://evil.example", False)])
def test_socketio_same_origin_only(app, origin, allowed):
    client = app.test_client()
    response = client.get("/socket.io/?EIO=4&transport=polling", headers={"Origin": origin})
    assert (response.status_code == 200) is allowed


def test_ensure_admin_from_settings(r, monkeypatch):
    from moodstream.config import load_settings

    def ensure():
        d = load_settings().dashboard
        return users.ensure_admin(r, d.admin_user, d.admin_password)

    monkeypatch.delenv("MOODSTREAM_ADMIN_USER", raising=False)
    monkeypatch.delenv("MOODSTREAM_ADMIN_PASSWORD", raising=False)
    assert ensure() is None
    monkeypatch.setenv("MOODSTREAM_ADMIN_USER", "root")
    monkeypatch.setenv("MOODSTREAM_ADMIN_PASSWORD", "root-password-1")
    assert ensure() == "root"
    first = users.get_user(r, "root")
    assert first["role"] == "admin" and first["password"] != "root-password-1"
    ensure()  # same password: the hash (and sessions) stay
    assert users.get_user(r, "root")["password"] == first["password"]
    monkeypatch.setenv("MOODSTREAM_ADMIN_PASSWORD", "root-password-2")
    ensure()
    assert users.authenticate(r, "root", "root-password-2")
    assert users.authenticate(r, "root", "root-password-1") is None
    monkeypatch.setenv("MOODSTREAM_ADMIN_PASSWORD", "short")
    assert ensure() is None  # refused and logged, not a crash


def test_user_command(r, user_command, monkeypatch, capsys):
    run = user_command

    assert run("add", "bob", "--role", "admin", "--password", "bob-password") == 0
    assert run("add", "carol", "--password", "carol-password") == 0
    assert run("add", "bad name", "--password", "whatever-pw") == 2
    assert run("add", "dave", "--password", "short") == 2
    monkeypatch.setattr("getpass.getpass", lambda prompt="": "prompted-password")
    assert run("add", "erin") == 0
    assert users.authenticate(r, "erin", "prompted-password")
    assert run("add", "carol", "--role", "admin") == 0  # role change keeps the password
    assert users.authenticate(r, "carol", "carol-password")["role"] == "admin"
    capsys.readouterr()
    assert run("list") == 0
    assert capsys.readouterr().out.split("\n")[:3] == [
        "bob\tadmin\tevery camera", "carol\tadmin\tevery camera", "erin\tviewer\tevery camera"]
    assert run("remove", "bob") == 0
    assert run("remove", "bob") == 1
    assert users.get_user(r, "bob") is None


def proxied_client(app, client_address: str):
    client = app.test_client()
    client.environ_base.update({"HTTP_X_FORWARDED_FOR": client_address,
                                "HTTP_X_FORWARDED_PROTO": "https"})
    return client


@pytest.mark.parametrize("trusted_proxies", [0, 1])
def test_behind_a_reverse_proxy_lockouts_count_per_client(r, redis_server, accounts,
                                                          trusted_proxies):
    """Every request comes from the proxy's address; only with --trusted-proxies does one
    client's password guessing leave the other clients able to log in."""
    from moodstream.dashboard.app import create_app

    app, _ = create_app(settings_for(redis_server.url, token=TOKEN, secret_key=SECRET,
                                     trusted_proxies=trusted_proxies), message_queue=False)
    guesser, teacher = proxied_client(app, "10.0.0.66"), proxied_client(app, "10.0.0.7")
    for i in range(50):  # many names, so that no one user name is locked
        assert login(guesser, f"guess{i}", "not-the-password").status_code == 401
    assert login(guesser, *VIEWER).status_code == 429
    teacher_gets = login(teacher, *VIEWER).status_code
    assert teacher_gets == (302 if trusted_proxies else 429)


def test_behind_a_trusted_proxy_https_gets_the_strict_referrer_check(r, redis_server, accounts):
    from moodstream.dashboard.app import create_app

    app, _ = create_app(settings_for(redis_server.url, token=TOKEN, secret_key=SECRET,
                                     secure_cookies=True, trusted_proxies=1),
                        message_queue=False)
    client = proxied_client(app, "10.0.0.7")
    token = csrf_from(client.get("/login").get_data(as_text=True))
    form = {"username": ADMIN[0], "password": ADMIN[1], "csrf_token": token}
    response = client.post("/login", data=form, headers={"Referer": "https://evil.example/"})
    assert response.status_code == 400, "a cross-site referrer on HTTPS is refused"
    response = client.post("/login", data=form, headers={"Referer": "https://localhost/login"})
    assert response.status_code == 302 and "Secure" in response.headers["Set-Cookie"]
