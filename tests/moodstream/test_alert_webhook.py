"""Driver alerts POSTed to a receiver: a real local HTTP server, and the real aggregator."""

from __future__ import annotations

import hashlib
import hmac
import json
import threading
import time
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

import pytest

from moodstream import keys
from moodstream.accounting import pipeline_stats
from moodstream.alert_webhook import SIGNATURE_HEADER, AlertWebhook
from moodstream.dashboard import cameras
from tests.conftest import free_port, label_set, wait_for


class Receiver:
    """Records POSTs; answers with the queued status codes first, then 204."""

    def __init__(self, statuses=()):
        self.statuses, self.posts = list(statuses), []
        receiver = self

        class Handler(BaseHTTPRequestHandler):
            def do_POST(self):
                body = self.rfile.read(int(self.headers["Content-Length"]))
                receiver.posts.append((dict(self.headers), body))
                self.send_response(receiver.statuses.pop(0) if receiver.statuses else 204)
                self.end_headers()

            def log_message(self, *args):
                pass

        self.server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.url = f"http://127.0.0.1:{self.server.server_port}/hooks/moodstream"
        threading.Thread(target=self.server.serve_forever, daemon=True).start()

    def events(self) -> list[dict]:
        return [json.loads(body) for _, body in self.posts]

    def close(self):
        self.server.shutdown()


@pytest.fixture
def receiver():
    r = Receiver()
    yield r
    r.close()


def test_an_alert_is_posted_and_signed(receiver):
    hook = AlertWebhook(receiver.url, "fleet-secret")
    hook.send({"camera": "cab7", "kind": "absent", "state": "raised", "ts": 1.0})
    assert hook.wait_idle() and hook.delivered == 1
    (headers, body), = receiver.posts
    assert json.loads(body) == {"camera": "cab7", "kind": "absent", "state": "raised", "ts": 1.0}
    expected = hmac.new(b"fleet-secret", body, hashlib.sha256).hexdigest()
    assert headers[SIGNATURE_HEADER] == f"sha256={expected}"


def test_a_failing_receiver_gets_retries_and_a_refusing_one_does_not():
    flaky = Receiver(statuses=[503, 500])
    hook = AlertWebhook(flaky.url, first_delay_s=0.05)
    hook.send({"camera": "cab7", "kind": "negative", "state": "raised"})
    assert hook.wait_idle() and hook.delivered == 1 and len(flaky.posts) == 3
    flaky.close()
    refusing = Receiver(statuses=[400])
    hook = AlertWebhook(refusing.url, first_delay_s=0.05)
    hook.send({"camera": "cab7", "kind": "negative", "state": "raised"})
    assert hook.wait_idle() and hook.failed == 1 and len(refusing.posts) == 1
    refusing.close()


def test_an_unreachable_receiver_never_blocks_the_caller(caplog):
    hook = AlertWebhook(f"http://127.0.0.1:{free_port()}/", attempts=2, first_delay_s=0.05)
    began = time.monotonic()
    for i in range(5):
        hook.send({"camera": "cab7", "kind": "absent", "state": "raised", "n": i})
    assert time.monotonic() - began < 0.1, "send only queues"
    assert hook.wait_idle() and hook.failed == 5
    assert any("not delivered" in m for m in caplog.messages)


@pytest.mark.slow
def test_the_aggregator_posts_a_driver_alert_raised_and_cleared(r, redis_server, services,
                                                                receiver):
    cameras.add(r, {"id": "cab9", "name": "Cab 9", "mode": "driver", "fps": "5",
                    "source": "rtsp://cab9.fleet.example/stream",
                    "absent_seconds": "1", "negative_seconds": "60"})
    services.start("aggregator", env={"MOODSTREAM_ALERT_WEBHOOK": receiver.url,
                                      "MOODSTREAM_ALERT_WEBHOOK_SECRET": "s3cret"})
    wait_for(lambda: pipeline_stats(r)["workers"].get("aggregator") == 1, timeout=60,
             what="the aggregator")
    face = [0.05, 0.0, 0.05, 0.7, 0.05, 0.05, 0.1]

    def publish(seconds: float, with_face: bool, first_seq: int):
        for i in range(int(seconds * 5)):
            if with_face:
                label = label_set("cab9", first_seq + i, time.time(),
                                  [((10, 10, 80, 80), face)])
            else:
                label = label_set("cab9", first_seq + i, time.time())
            r.xadd(keys.LABELS, label.encode())
            time.sleep(0.2)

    publish(1, True, 0)
    publish(2.5, False, 100)  # the driver leaves
    wait_for(lambda: any(e["state"] == "raised" for e in receiver.events()), timeout=20,
             what="the out-of-view alert posted")
    publish(2, True, 200)  # and comes back
    wait_for(lambda: any(e["state"] == "cleared" for e in receiver.events()), timeout=20,
             what="the clearing posted")
    raised, cleared = receiver.events()[:2]
    assert raised["camera"] == "cab9" and raised["name"] == "Cab 9"
    assert raised["kind"] == cleared["kind"] == "absent" and "no face" in raised["message"]
    assert cleared["since"] == pytest.approx(raised["ts"], abs=0.01)
    headers, body = receiver.posts[0]
    assert headers[SIGNATURE_HEADER] == "sha256=" + hmac.new(b"s3cret", body,
                                                             hashlib.sha256).hexdigest()
