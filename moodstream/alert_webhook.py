"""Driver alerts pushed to a fleet's own system: an HTTP POST per alert raised or cleared.

Set ``MOODSTREAM_ALERT_WEBHOOK`` to a URL; with ``MOODSTREAM_ALERT_WEBHOOK_SECRET`` each body
is signed (``X-Moodstream-Signature: sha256=<HMAC-SHA256 of the body, hex>``) so the receiver
can tell it came from this deployment. The body is the alert only (camera, kind, state,
message, times): no image leaves the machine.

Delivery runs on its own thread with a bounded queue, so a slow or absent receiver never
delays the snapshots; each alert is retried with backoff, then dropped with a log line.
"""

from __future__ import annotations

import hashlib
import hmac
import json
import logging
import queue
import threading
import time
import urllib.error
import urllib.request

log = logging.getLogger("moodstream.alerts")

SIGNATURE_HEADER = "X-Moodstream-Signature"


def signature(secret: str, body: bytes) -> str:
    return "sha256=" + hmac.new(secret.encode(), body, hashlib.sha256).hexdigest()


class AlertWebhook:
    def __init__(self, url: str, secret: str | None = None, *, timeout_s: float = 5.0,
                 attempts: int = 4, first_delay_s: float = 0.5, max_queued: int = 1000):
        self.url, self.secret, self.timeout_s = url, secret, timeout_s
        self.attempts, self.first_delay_s = attempts, first_delay_s
        self.pending: queue.Queue[dict] = queue.Queue(max_queued)
        self.delivered = self.failed = 0
        self.thread = threading.Thread(target=self._deliver_forever, daemon=True,
                                       name="alert-webhook")
        self.thread.start()

    @classmethod
    def from_settings(cls, alerts) -> AlertWebhook | None:
        """From settings.alerts (MOODSTREAM_ALERT_WEBHOOK, MOODSTREAM_ALERT_WEBHOOK_SECRET)."""
        if not alerts.webhook:
            return None
        return cls(alerts.webhook, alerts.webhook_secret)

    def send(self, event: dict) -> None:
        try:
            self.pending.put_nowait(event)
        except queue.Full:
            self.failed += 1
            log.warning("alert webhook: %d alerts queued already; dropped %s/%s",
                        self.pending.qsize(), event.get("camera"), event.get("kind"))

    def _deliver_forever(self) -> None:
        while True:
            event = self.pending.get()
            if self._deliver(event):
                self.delivered += 1
            else:
                self.failed += 1
            self.pending.task_done()

    def _deliver(self, event: dict) -> bool:
        body = json.dumps(event, sort_keys=True).encode()
        headers = {"Content-Type": "application/json", "User-Agent": "moodstream-alerts/1"}
        if self.secret:
            headers[SIGNATURE_HEADER] = signature(self.secret, body)
        delay = self.first_delay_s
        for attempt in range(1, self.attempts + 1):
            request = urllib.request.Request(self.url, data=body, headers=headers,
                                             method="POST")
            try:
                with urllib.request.urlopen(request, timeout=self.timeout_s) as response:
                    if 200 <= response.status < 300:
                        return True
                    reason = f"HTTP {response.status}"
            except urllib.error.HTTPError as error:
                reason = f"HTTP {error.code}"
                if 400 <= error.code < 500 and error.code != 429:
                    break  # the receiver refuses this alert; retrying will not change that
            except (OSError, ValueError) as error:
                reason = str(error)
            if attempt < self.attempts:
                time.sleep(delay)
                delay *= 2
        log.warning("alert webhook: %s/%s %s not delivered to %s: %s", event.get("camera"),
                    event.get("kind"), event.get("state"), self.url.split("?")[0], reason)
        return False

    def wait_idle(self, timeout_s: float = 10.0) -> bool:
        """True once everything queued has been delivered or given up (for shutdown, tests)."""
        deadline = time.monotonic() + timeout_s
        while time.monotonic() < deadline:
            if self.pending.unfinished_tasks == 0:
                return True
            time.sleep(0.05)
        return False
