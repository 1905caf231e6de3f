"""`moodstream history`: export, summary, lessons, purge and erase, as a user runs them, on a
real SQLite history file and a real redis-server."""

from __future__ import annotations

import csv
import io
import json
import subprocess
import time

from moodstream.history import HistoryStore, sqlite_url
from tests.conftest import MOODSTREAM, REPO, service_env
from tests.moodstream.history.test_store import bucket

DAY = 86400
T0 = int(time.time()) // 600 * 600 - 2 * 3600  # two hours ago


def history(redis_url: str, data, *args: str, **env: str) -> subprocess.CompletedProcess:
    return subprocess.run([*MOODSTREAM, "history", *args], cwd=REPO, capture_output=True,
                          text=True, timeout=120,
                          env=service_env(redis_url, MOODSTREAM_DATA_DIR=str(data), **env))


def test_export_summary_lessons_purge_and_erase(r, redis_server, tmp_path):
    data = tmp_path / "data"
    store = HistoryStore(sqlite_url(data))
    store.write([bucket(T0 + i * 10, "room1", happy=2, sad=1) for i in range(360)]
                + [bucket(T0 - 5 * DAY + i * 10, "room1", neutral=1) for i in range(6)]
                + [bucket(T0, "room2", angry=1)])
    url = redis_server.url

    done = history(url, data, "export", "room1", "--from", str(T0), "--to", str(T0 + 60))
    assert done.returncode == 0, done.stderr
    rows = list(csv.DictReader(io.StringIO(done.stdout)))
    assert [int(row["ts"]) for row in rows] == [T0 + i * 10 for i in range(6)]
    assert rows[0]["happy"] == "2" and rows[0]["dominant"] == "happy"
    iso = time.strftime("%Y-%m-%dT%H:%M:%S", time.gmtime(T0))
    hourly = history(url, data, "export", "room1", "--from", iso, "--step", "3600")
    assert [int(row["ts"]) for row in csv.DictReader(io.StringIO(hourly.stdout))] == \
        [T0 // 3600 * 3600 + h * 3600 for h in range(len(hourly.stdout.splitlines()) - 1)]

    summary = json.loads(history(url, data, "summary", "room1").stdout)  # the last 24 h
    assert summary["seconds"] == 3600 and summary["dominant"] == "happy"
    lessons = json.loads(history(url, data, "lessons", "room1").stdout)
    assert [(x["from"], x["to"]) for x in lessons] == [(T0, T0 + 3600)]
    assert history(url, data, "summary", "room1", "--from", "5", "--to", "1").returncode == 2

    purged = history(url, data, "purge", MOODSTREAM_HISTORY_RETENTION_DAYS="2")
    assert json.loads(purged.stdout)["buckets"] == 6  # the five-day-old ones
    erased = history(url, data, "erase", "room1")
    assert json.loads(erased.stdout) == {"camera": "room1", "buckets_erased": 360}
    assert store.count("room1") == 0 and store.count("room2") == 1
    store.close()
