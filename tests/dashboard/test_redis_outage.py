"""While Redis is away (a restart of the embedded one), the dashboard answers 503, never 500,
and it answers again as soon as Redis is back."""

from __future__ import annotations

from tests.conftest import RedisServer, settings_for
from tests.dashboard.conftest import TOKEN


def test_the_dashboard_answers_503_while_redis_is_away_and_200_after(tmp_path):
    from moodstream.dashboard.app import create_app

    (tmp_path / "redis").mkdir()
    server = RedisServer(tmp_path / "redis")
    server.start()
    try:
        settings = settings_for(server.url, token=TOKEN, secret_key="outage-secret")
        settings = settings.model_copy(update={"history": settings.history.model_copy(
            update={"data_dir": tmp_path / "data"})})
        app, _ = create_app(settings, message_queue=False)
        client = app.test_client()
        bearer = {"Authorization": f"Bearer {TOKEN}"}
        assert client.get("/api/cameras", headers=bearer).status_code == 200
        server.proc.kill()
        server.proc.wait(10)
        for path in ("/api/cameras", "/api/cameras/room1", "/api/stats", "/api/users"):
            answer = client.get(path, headers=bearer)
            assert answer.status_code == 503 and "Redis" in answer.json["error"], path
        page = client.get("/login")
        assert page.status_code in (200, 503)
        assert client.get("/healthz").status_code == 503
        server.start()  # the same port and password, as `up` restarts it
        assert client.get("/api/cameras", headers=bearer).status_code == 200
        assert client.get("/healthz").status_code == 200
    finally:
        server.stop()
