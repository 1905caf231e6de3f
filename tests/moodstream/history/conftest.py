"""A real PostgreSQL server for the history tests (Debian's postgresql, which setup.sh
installs), and a store fixture that runs each test on SQLite and on PostgreSQL."""

from __future__ import annotations

import glob
import itertools
import os
import pwd
import shutil
import subprocess
import tempfile
from pathlib import Path

import pytest

from moodstream.history import HistoryStore, sqlite_url
from tests.conftest import free_port


def postgres_bin() -> Path | None:
    found = sorted(glob.glob("/usr/lib/postgresql/*/bin/initdb"),
                   key=lambda p: int(p.split("/")[4]) if p.split("/")[4].isdigit() else 0)
    return Path(found[-1]).parent if found else None


class PostgresServer:
    """initdb + pg_ctl in a temp dir on a free loopback port. PostgreSQL refuses to run as
    root, so as root the server runs as the `postgres` system user in a dir it owns."""

    def __init__(self, bindir: Path):
        self.bin = bindir
        self.dir = Path(tempfile.mkdtemp(prefix="moodstream-pg-"))
        self.port = free_port()
        self.user = None
        if os.geteuid() == 0:
            account = pwd.getpwnam("postgres")
            os.chown(self.dir, account.pw_uid, account.pw_gid)
            self.user = "postgres"
        self.data = self.dir / "data"
        self.url = f"postgresql://moodstream@127.0.0.1:{self.port}/postgres"
        self._names = itertools.count()

    def _run(self, *args: str) -> None:
        cmd = [str(self.bin / args[0]), *args[1:]]
        if self.user:
            cmd = ["runuser", "-u", self.user, "--", *cmd]
        subprocess.run(cmd, check=True, capture_output=True, timeout=120)

    def init(self) -> None:
        self._run("initdb", "-D", str(self.data), "-U", "moodstream", "--auth=trust",
                  "-E", "UTF8", "--no-sync")

    def start(self) -> None:
        self._run("pg_ctl", "-D", str(self.data), "-l", str(self.dir / "log"), "-w", "-t", "60",
                  "-o", f"-p {self.port} -k {self.dir} -c listen_addresses=127.0.0.1 "
                        "-c fsync=off", "start")

    def stop(self, mode: str = "fast") -> None:
        self._run("pg_ctl", "-D", str(self.data), "-m", mode, "-w", "-t", "60", "stop")

    def new_database(self) -> str:
        """A fresh, empty database per test; returns its URL."""
        import psycopg

        name = f"t{os.getpid()}_{next(self._names)}"
        with psycopg.connect(f"host=127.0.0.1 port={self.port} user=moodstream dbname=postgres",
                             autocommit=True) as conn:
            conn.execute(f"CREATE DATABASE {name}")
        return f"postgresql://moodstream@127.0.0.1:{self.port}/{name}"

    def remove(self) -> None:
        shutil.rmtree(self.dir, ignore_errors=True)


@pytest.fixture(scope="session")
def postgres():
    bindir = postgres_bin()
    if bindir is None:
        pytest.skip("PostgreSQL server binaries not found under /usr/lib/postgresql "
                    "(./scripts/setup.sh installs Debian's postgresql)")
    server = PostgresServer(bindir)
    server.init()
    server.start()
    yield server
    try:
        server.stop("immediate")
    finally:
        server.remove()


@pytest.fixture(params=["sqlite", "postgresql"])
def store(request, tmp_path):
    if request.param == "sqlite":
        url = sqlite_url(tmp_path / "data")
    else:
        url = request.getfixturevalue("postgres").new_database()
    s = HistoryStore(url)
    yield s
    s.close()
