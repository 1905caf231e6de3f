"""A central `moodstream up --no-source` fed by a real `moodstream edge` (with its ACL user)
through a TCP link that is cut for 20 s: the edge camera shows on the dashboard, sends only
labels, and the history of the outage has its buckets once the link is back."""

from __future__ import annotations

import subprocess
import time

import psutil
import requests

from moodstream import keys
from moodstream.bench.link import LinkProxy
from moodstream.redis_client import text
from tests.conftest import MOODSTREAM, REPO, free_port, service_env, wait_for
from tests.edge.test_acl import edge_user

TOKEN = "edge-test-token-0123456789"
CAMERA = "edge-cab7"
CUT_S = 20
LABEL_FIELDS = {"v", "camera", "seq", "ts", "count", "boxes", "tracks", "probs", "fresh"}


def start(args, log, env):
    with open(log, "wb") as out:
        return subprocess.Popen([*MOODSTREAM, *args], cwd=REPO, env=env, stdout=out,
                                stderr=subprocess.STDOUT)


def stop(proc) -> None:
    if proc.poll() is None:
        proc.terminate()
        try:
            proc.wait(30)
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.wait(10)


def test_an_edge_camera_feeds_the_centre_through_a_link_cut_for_20_s(redis_server, r,
                                                                      tmp_path):
    port = free_port()
    http = requests.Session()
    http.headers["Authorization"] = f"Bearer {TOKEN}"

    def get(path):
        try:
            answer = http.get(f"http://127.0.0.1:{port}{path}", timeout=3)
        except requests.RequestException:
            return None
        return answer.json() if answer.status_code == 200 else None

    central = start(["up", "--no-source", "--port", str(port), "--bulk-workers", "0"],
                    tmp_path / "up.log",
                    service_env(redis_server.url, MOODSTREAM_TOKEN=TOKEN,
                                MOODSTREAM_DATA_DIR=str(tmp_path / "central")))
    link = LinkProxy(redis_server.port)
    # The node has only the ACL user docs/security.md gives it.
    user = edge_user(r, CAMERA, "edge-cab7-password")
    edge_url = f"redis://{user}:edge-cab7-password@127.0.0.1:{link.port}/0"
    edge = start(["edge", "--camera", CAMERA, "--source", "demo", "--mode", "driver",
                  "--name", "Cab 7", "--fps", "5"], tmp_path / "edge.log",
                 service_env(edge_url, MOODSTREAM_DATA_DIR=str(tmp_path / "edge")))
    try:
        def mood():
            assert central.poll() is None, (tmp_path / "up.log").read_text()[-3000:]
            assert edge.poll() is None, (tmp_path / "edge.log").read_text()[-3000:]
            found = get(f"/api/cameras/{CAMERA}/mood")
            return found if found and found.get("faces", 0) >= 1 else None

        wait_for(mood, timeout=180, what="the edge camera's mood on the central dashboard")
        camera = get(f"/api/cameras/{CAMERA}")
        assert camera["name"] == "Cab 7" and camera["mode"] == "driver"
        assert camera["status"].get("edge") is True and camera["preview"] is False

        # Upstream traffic and footprint in steady state.
        time.sleep(3)
        sent0, up0, t0 = int(r.hget(keys.camera_status(CAMERA), "sent") or 0), \
            link.up_bytes, time.monotonic()
        time.sleep(10)
        sent1, up1, t1 = int(r.hget(keys.camera_status(CAMERA), "sent") or 0), \
            link.up_bytes, time.monotonic()
        assert sent1 - sent0 >= 20
        assert (up1 - up0) / (t1 - t0) <= 5 * 1024, f"{(up1 - up0) / (t1 - t0):.0f} B/s"
        assert psutil.Process(edge.pid).memory_info().rss <= 250 * 1024 * 1024

        # The link is cut for CUT_S seconds.
        link.cut()
        cut_at = time.time()
        time.sleep(CUT_S)
        waiting = int(r.hget(keys.camera_status(CAMERA), "sent") or 0)
        link.restore()
        restored_at = time.time()

        # The backlog arrives, late, and fills the outage's history buckets.
        def outage_history():
            found = get(f"/api/cameras/{CAMERA}/history?from={int(cut_at) - 20}"
                        f"&to={int(restored_at) + 20}&step=10")
            if not found:
                return None
            inside = [p for p in found["points"]
                      if p["ts"] >= cut_at and p["ts"] + 10 <= restored_at]
            full = [p for p in inside if sum(p["counts"].values()) >= 30]
            return inside if len(inside) >= CUT_S // 10 - 1 and len(full) == len(inside) \
                else None

        wait_for(outage_history, timeout=90, every=1.0, what="the outage's history buckets")
        stats = get("/api/stats")
        edge_stats = stats["edge"][CAMERA]
        assert edge_stats["late"] >= 4 * (CUT_S - 6), edge_stats  # ~5 fps of the outage
        assert edge_stats["dropped"] == 0
        assert int(r.hget(keys.camera_status(CAMERA), "sent")) > waiting
        wait_for(lambda: (get(f"/api/cameras/{CAMERA}/mood") or {}).get("ts", 0)
                 > restored_at and get(f"/api/cameras/{CAMERA}/mood")["faces"] >= 1,
                 timeout=30, what="live mood again")

        # Nothing of the edge camera carries image bytes, anywhere in Redis.
        entries = [fields for _, fields in r.xrange(keys.LABELS)
                   if fields.get(b"camera") == CAMERA.encode()]
        assert entries and all({text(k) for k in fields} == LABEL_FIELDS for fields in entries)
        assert all(len(b"".join(fields.values())) < 2000 for fields in entries)
        for stream in (keys.FRAMES, keys.FACES):
            assert not [1 for _, f in r.xrange(stream) if f.get(b"camera") == CAMERA.encode()]
        assert not r.exists(keys.preview(CAMERA))
    finally:
        stop(edge)
        stop(central)
        link.close()
        r.acl_deluser(user)
