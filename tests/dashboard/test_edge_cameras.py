"""Edge cameras on the dashboard: marked as such, no preview or source can be set for them,
and /api/stats counts each one's sent, waiting, dropped and late labels."""

from __future__ import annotations

from moodstream import keys
from moodstream.workers.aggregator import register_edge_camera

CAM = "edge-dash-1"


def edge_camera(r) -> None:
    r.delete(keys.camera(CAM))
    status = {"kind": "edge", "state": "connected", "reason": "demo", "name": "Van 1",
              "mode": "driver", "sent": "120", "queued": "3", "spilled": "40", "dropped": "2"}
    r.hset(keys.camera_status(CAM), mapping=status)
    register_edge_camera(r, CAM, status)
    r.hset(keys.STATS, keys.late_labels(CAM), 37)


def test_an_edge_camera_is_marked_and_gets_no_preview_or_source(r, admin_client):
    edge_camera(r)
    camera = admin_client.get(f"/api/cameras/{CAM}").get_json()
    assert camera["status"]["edge"] is True and camera["name"] == "Van 1"
    assert camera["status"]["dropped"] == 2.0
    csrf = {"X-CSRFToken": admin_client.csrf}
    for change in ({"preview": True}, {"source": "rtsp://10.0.0.9/s"}):
        answer = admin_client.patch(f"/api/cameras/{CAM}", json=change, headers=csrf)
        assert answer.status_code == 400, change
        assert "edge camera" in answer.get_json()["error"]
    assert r.hget(keys.camera(CAM), "preview") == b"0"
    answer = admin_client.patch(f"/api/cameras/{CAM}", json={"negative_threshold": 0.4},
                                headers=csrf)
    assert answer.status_code == 200, answer.get_json()


def test_stats_count_each_edge_cameras_labels(r, admin_client):
    edge_camera(r)
    stats = admin_client.get("/api/stats").get_json()
    assert stats["edge"][CAM] == {"state": "connected", "sent": 120, "queued": 3,
                                  "spilled": 40, "dropped": 2, "late": 37,
                                  "updated": None}
