"""The history API (/api/cameras/<id>/history, .csv, summary, lessons, events) on a real
SQLite history database and a real redis-server; erasing a camera's history; /api/stats."""

from __future__ import annotations

import csv
import io
import time

import pytest

from moodstream.camera_settings import CameraSettings
from moodstream.contract import CLASSES
from moodstream.expressions import dominant, valence
from moodstream.history import HistoryStore, HistoryWriter
from moodstream.history.rows import BucketRow

HOUR = 3600
T0 = int(time.time()) // HOUR * HOUR - 10 * HOUR  # ten hours ago, on the hour


def bucket(ts: int, cam: str = "room1", faces: float = 20.0, **counts) -> dict:
    full = {c: counts.get(c, 0) for c in CLASSES}
    return {"camera": cam, "ts": ts, "frames": 50, "faces": faces, "counts": full,
            "valence": valence(full), "dominant": dominant(full)}


@pytest.fixture
def client(app, bearer):
    client = app.test_client()
    client.environ_base["HTTP_AUTHORIZATION"] = bearer["Authorization"]
    return client


@pytest.fixture
def store(app):
    return app.extensions["moodstream"].history


@pytest.fixture
def lesson(store):
    """A 45-minute lesson (happy, then sad) with an alert and a shift, then an empty room."""
    rows = [bucket(T0 + i * 10, happy=5, neutral=5) if i < 180 else
            bucket(T0 + i * 10, sad=6, neutral=4) for i in range(270)]
    rows += [bucket(T0 + 2700 + i * 10, faces=0.0) for i in range(60)]
    store.write(rows, [{"camera": "room1", "ts": T0 + 100.5, "kind": "absent",
                        "state": "raised", "message": "no face for 3s"},
                       {"camera": "room1", "ts": T0 + 110.5, "kind": "absent",
                        "state": "cleared", "message": "cleared"},
                       {"camera": "room1", "ts": T0 + 1805, "kind": "shift",
                        "state": "raised", "message": "valence +0.50 → -0.60"}])
    return rows


def test_history_rows_downsampled_to_the_step(client, lesson):
    data = client.get(f"/api/cameras/room1/history?from={T0}&to={T0 + HOUR}&step=600").json
    assert data["step"] == 600 and data["from"] == T0 and data["to"] == T0 + HOUR
    points = data["points"]
    assert [p["ts"] for p in points] == [T0 + i * 600 for i in range(6)]
    assert set(points[0]) == {"ts", "faces", "valence", "counts", "dominant"}
    assert points[0]["counts"]["happy"] == 300 and points[0]["valence"] == 0.5
    assert points[0]["faces"] == 20.0 and points[0]["dominant"] == "happy"
    assert points[3]["dominant"] == "sad" and points[5]["faces"] == 0.0
    # Hours that start at half past (UTC+5:30).
    shifted = client.get(f"/api/cameras/room1/history?from={T0}&to={T0 + HOUR}&step=3600"
                         f"&offset={5 * HOUR + 1800}").json["points"]
    assert [p["ts"] for p in shifted] == [T0 - 1800, T0 + 1800]
    assert sum(p["counts"]["happy"] for p in shifted) == 900
    assert client.get("/api/cameras/room1/history?offset=90000").status_code == 400
    # No step: one is chosen for at most ~1,500 points (10 s over an hour).
    assert client.get(f"/api/cameras/room1/history?from={T0}&to={T0 + HOUR}").json["step"] == 10


def test_history_as_csv_by_accept_header_or_extension(client, lesson):
    q = f"from={T0}&to={T0 + 1200}&step=600"
    by_header = client.get(f"/api/cameras/room1/history?{q}", headers={"Accept": "text/csv"})
    by_name = client.get(f"/api/cameras/room1/history.csv?{q}")
    for response in (by_header, by_name):
        assert response.status_code == 200 and response.mimetype == "text/csv"
        assert "attachment" in response.headers["Content-Disposition"]
        rows = list(csv.DictReader(io.StringIO(response.get_data(as_text=True))))
        assert [int(r["ts"]) for r in rows] == [T0, T0 + 600]
        assert rows[0]["happy"] == "300" and rows[0]["dominant"] == "happy"
    # The CSV export defaults to the 10 s rows.
    full = client.get(f"/api/cameras/room1/history.csv?from={T0}&to={T0 + 60}")
    assert len(full.get_data(as_text=True).strip().split("\n")) == 1 + 6


def test_bad_ranges_are_refused(client):
    assert client.get("/api/cameras/room1/history?from=10&to=5").status_code == 400
    assert client.get("/api/cameras/room1/history?from=abc").status_code == 400
    assert client.get("/api/cameras/room1/history?from=nan&to=5").status_code == 400
    # A tiny step over a long range is raised to keep one answer bounded.
    data = client.get(f"/api/cameras/room1/history?from=0&to={T0}&step=10").json
    assert data["step"] >= T0 / 20000


def test_summary_lessons_and_events_cover_any_range(client, lesson):
    q = f"from={T0 - HOUR}&to={T0 + 2 * HOUR}"
    s = client.get(f"/api/cameras/room1/summary?{q}").json
    assert s["from"] == T0 and s["to"] == T0 + 3300
    assert s["seconds"] == 3300 and s["seconds_with_faces"] == 2700
    assert s["dominant"] == "neutral" and s["shares"]["happy"] == pytest.approx(1 / 3, abs=1e-3)
    assert s["alerts_raised"] == 1 and len(s["shifts"]) == 1
    lessons = client.get(f"/api/cameras/room1/lessons?{q}").json["lessons"]
    assert [(x["from"], x["to"]) for x in lessons] == [(T0, T0 + 2700)]
    assert lessons[0]["dominant"] == "neutral" and lessons[0]["faces_avg"] == 20.0
    events = client.get(f"/api/cameras/room1/events?{q}").json["events"]
    assert [(e["kind"], e["state"]) for e in events] == [
        ("absent", "raised"), ("absent", "cleared"), ("shift", "raised")]
    empty = client.get("/api/cameras/nobody/summary").json
    assert empty["seconds"] == 0 and empty["dominant"] is None


def test_the_history_needs_a_login(app):
    anonymous = app.test_client()
    for url in ("/api/cameras/room1/history", "/api/cameras/room1/history.csv",
                "/api/cameras/room1/summary", "/api/cameras/room1/lessons",
                "/api/cameras/room1/events"):
        assert anonymous.get(url).status_code == 401, url


def test_deleting_a_camera_can_erase_its_history(r, client, store, lesson):
    for cam in ("room1", "room2"):
        r.sadd("ms:cameras", cam)
        CameraSettings(name=cam, source="demo").save(r, cam)
    store.write([bucket(T0, cam="room2", happy=1)])
    assert client.delete("/api/cameras/room2").json == {"removed": "room2",
                                                         "history_erased": None}
    assert store.count("room2") == 1  # kept unless asked
    response = client.delete("/api/cameras/room1?history=erase")
    assert response.status_code == 200 and response.json["history_erased"] == 330
    assert store.count("room1") == 0
    assert client.get(f"/api/cameras/room1/events?from={T0}&to={T0 + HOUR}").json["events"] == []
    # Erasing again (the camera is gone now) still answers: erase works for any id.
    again = client.delete("/api/cameras/room1?history=erase")
    assert again.status_code == 200 and again.json == {"removed": None, "history_erased": 0}


def test_a_database_that_is_down_answers_503_not_500(app, client):
    # Nothing listens on port 9 of this machine: the connection is refused at once.
    app.extensions["moodstream"].history = HistoryStore("postgresql://nobody@127.0.0.1:9/x")
    response = client.get("/api/cameras/room1/history")
    assert response.status_code == 503 and "unavailable" in response.json["error"]


def test_stats_count_history_rows_written_dropped_and_pending(r, client, store):
    writer = HistoryWriter(r, store, buffer_max=3)
    writer.add_buckets([BucketRow.parse(bucket(T0 + i * 10)) for i in range(5)])
    stats = client.get("/api/stats").json["history"]
    assert stats == {"in": 5, "written": 0, "dropped": {"full": 2}, "pending": 3}
    writer.drain()
    stats = client.get("/api/stats").json["history"]
    assert stats == {"in": 5, "written": 3, "dropped": {"full": 2}, "pending": 0}


def test_the_history_page_of_a_camera(r, viewer_client):
    r.sadd("ms:cameras", "room1")
    CameraSettings(name="Room 1", source="demo").save(r, "room1")
    page = viewer_client.get("/cameras/room1/history")
    assert page.status_code == 200
    html = page.get_data(as_text=True)
    for testid in ("range-lesson", "range-day", "range-week", "range-term", "range-custom",
                   "range-a", "range-b", "lessons"):
        assert f'data-testid="{testid}"' in html
    assert "js/history.js" in html
    assert viewer_client.get("/cameras/nobody/history").status_code == 404
