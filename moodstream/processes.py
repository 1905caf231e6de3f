"""Child processes that are restarted when they crash, and stopped together."""

from __future__ import annotations

import logging
import signal
import subprocess
import sys
import threading
import time

from moodstream.backoff import Doubling

log = logging.getLogger("moodstream.processes")

# A camera (or its ingest process) that keeps failing is retried less and less often, up to
# this far apart.
MAX_RESTART_DELAY_S = 600.0


class Child:
    """One `moodstream <service> ...` process, restarted with backoff when it dies."""

    def __init__(self, name: str, args: list[str], env: dict | None = None,
                 restart: bool = True, max_backoff: float = 30.0, log_path: str | None = None,
                 stdin: bool = False):
        self.name, self.args, self.env, self.restart = name, args, env, restart
        self.stdin = stdin  # a pipe the parent writes to (proc.stdin), else none
        self.restart_delays = Doubling(1.0, max_backoff)
        self.log_path = log_path  # stdout and stderr go there (default: this terminal)
        self.proc: subprocess.Popen | None = None
        self.restarts = 0
        self.next_start = 0.0
        self.started_at = 0.0

    def start(self) -> None:
        cmd = [sys.executable, "-m", "moodstream.cli", *self.args]
        out = open(self.log_path, "ab") if self.log_path else None  # noqa: SIM115
        try:  # env None: this process's environment
            self.proc = subprocess.Popen(cmd, env=self.env, stdout=out,
                                         stderr=subprocess.STDOUT if out else None,
                                         stdin=subprocess.PIPE if self.stdin else None)
        finally:
            if out:
                out.close()
        self.started_at = time.monotonic()
        log.info("started %s (pid %d): moodstream %s", self.name, self.proc.pid,
                 " ".join(self.args))

    def check(self) -> int | None:
        """Restart a dead child (after a delay that grows while it keeps crashing).
        Returns the exit status when it has just found the child dead, else None."""
        if self.proc is None:
            if self.restart and time.monotonic() >= self.next_start:
                self.start()
            return None
        code = self.proc.poll()
        if code is None:
            if time.monotonic() - self.started_at > 30:
                self.restart_delays.reset()  # it ran a while: the next crash restarts quickly
            return None
        self.close_stdin()
        self.proc = None
        if not self.restart or code == 0:
            log.info("%s exited with %d", self.name, code)
            self.restart = False
            return code
        self.restarts += 1
        delay = self.restart_delays.next()
        self.next_start = time.monotonic() + delay
        log.warning("%s died with %d; restart #%d in %.0fs", self.name, code, self.restarts,
                    delay)
        return code

    @property
    def running(self) -> bool:
        return self.proc is not None and self.proc.poll() is None

    def close_stdin(self) -> None:
        if self.proc is not None and self.proc.stdin is not None:
            try:
                self.proc.stdin.close()
            except OSError:
                pass  # it died with data still in the pipe

    def stop(self) -> None:
        self.restart = False
        if self.running:
            self.proc.terminate()

    def wait(self, timeout: float = 15) -> None:
        if self.proc is None:
            return
        try:
            self.proc.wait(timeout)
        except subprocess.TimeoutExpired:
            log.warning("%s did not stop in %.0fs; killing it", self.name, timeout)
            self.proc.kill()
            self.proc.wait()
        self.close_stdin()


def stop_all(children: list[Child]) -> None:
    for child in children:
        child.stop()
    for child in children:
        child.wait()


def stop_on_signals() -> threading.Event:
    """An event that SIGTERM and SIGINT set: a service's loops end on it, cleanly."""
    stop = threading.Event()

    def on_signal(signum, _frame):
        stop.set()

    signal.signal(signal.SIGTERM, on_signal)
    signal.signal(signal.SIGINT, on_signal)
    return stop
