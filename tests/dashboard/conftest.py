"""Dashboard fixtures: the Flask app on the real test redis-server, users, logged-in clients."""

from __future__ import annotations

import re

import pytest

from moodstream.dashboard import users
from tests.conftest import settings_for

TOKEN = "test-token-0123456789"
SECRET = "test-secret-key-for-sessions"
ADMIN = ("alice", "alice-password")
VIEWER = ("victor", "victor-password")
CSRF_RE = re.compile(r'name="csrf_token"[^>]*value="([^"]+)"')


@pytest.fixture
def app_and_socketio(r, redis_server, tmp_path):
    from moodstream.dashboard.app import create_app

    settings = settings_for(redis_server.url, token=TOKEN, secret_key=SECRET)
    # A history database of its own (SQLite) for each test.
    settings = settings.model_copy(update={"history": settings.history.model_copy(
        update={"data_dir": tmp_path / "data"})})
    app, socketio = create_app(settings, message_queue=False)
    app.config["TESTING"] = True
    return app, socketio


@pytest.fixture
def app(app_and_socketio):
    return app_and_socketio[0]


@pytest.fixture
def accounts(r):
    users.set_user(r, *ADMIN, "admin")
    users.set_user(r, *VIEWER, "viewer")
    return {"admin": ADMIN, "viewer": VIEWER}


def csrf_from(html: str) -> str:
    match = CSRF_RE.search(html)
    assert match, "no CSRF token in the page"
    return match.group(1)


def login(client, name: str, password: str):
    page = client.get("/login")
    token = csrf_from(page.get_data(as_text=True))
    return client.post("/login", data={"username": name, "password": password,
                                       "csrf_token": token})


def page_csrf(client) -> str:
    """The CSRF token of a logged-in session, as the page's meta tag carries it."""
    html = client.get("/").get_data(as_text=True)
    match = re.search(r'name="csrf-token" content="([^"]+)"', html)
    assert match
    return match.group(1)


@pytest.fixture
def admin_client(app, accounts):
    client = app.test_client()
    assert login(client, *ADMIN).status_code == 302
    client.csrf = page_csrf(client)
    return client


@pytest.fixture
def viewer_client(app, accounts):
    client = app.test_client()
    assert login(client, *VIEWER).status_code == 302
    client.csrf = page_csrf(client)
    return client


@pytest.fixture
def bearer():
    return {"Authorization": f"Bearer {TOKEN}"}


@pytest.fixture
def user_command(redis_server, tmp_path):
    """`moodstream user ARGS...` in this process, on the test Redis and a database of its
    own: run("add", "tina", ...) returns the exit status; run.settings may be replaced."""
    import argparse

    parser = argparse.ArgumentParser()
    users.configure_user(parser)
    settings = settings_for(redis_server.url)
    settings = settings.model_copy(update={"history": settings.history.model_copy(
        update={"data_dir": tmp_path})})

    def run(*argv):
        return users.run_user(parser.parse_args(argv), run.settings)

    run.settings = settings
    return run
