"""Workers need nothing but REDIS_URL: a password, and TLS (rediss://), on a real redis-server."""

from __future__ import annotations

import shutil
import subprocess
import time

import pytest
import redis

from moodstream.accounting import pipeline_stats
from tests.conftest import free_port, wait_for

pytestmark = pytest.mark.slow
PASSWORD = "s3cret-pass"


@pytest.fixture
def tls_redis(tmp_path):
    """redis-server with TLS only and a password, with a self-signed certificate."""
    if not shutil.which("openssl") or not shutil.which("redis-server"):
        pytest.skip("needs openssl and Debian's redis-server (built with TLS)")
    cert, key = tmp_path / "cert.pem", tmp_path / "key.pem"
    subprocess.run(["openssl", "req", "-x509", "-newkey", "rsa:2048", "-nodes", "-days", "1",
                    "-subj", "/CN=127.0.0.1", "-addext", "subjectAltName=IP:127.0.0.1",
                    "-keyout", str(key), "-out", str(cert)], check=True, capture_output=True)
    port = free_port()
    proc = subprocess.Popen(
        ["redis-server", "--port", "0", "--tls-port", str(port), "--bind", "127.0.0.1",
         "--tls-cert-file", str(cert), "--tls-key-file", str(key), "--tls-ca-cert-file",
         str(cert), "--tls-auth-clients", "no", "--requirepass", PASSWORD, "--save", "",
         "--dir", str(tmp_path)], stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    url = f"rediss://:{PASSWORD}@127.0.0.1:{port}/0?ssl_ca_certs={cert}"
    client = redis.Redis.from_url(url)
    deadline = time.monotonic() + 10
    while True:
        try:
            client.ping()
            break
        except redis.ConnectionError:
            if time.monotonic() > deadline:
                proc.kill()
                pytest.skip("this redis-server does not speak TLS")
            time.sleep(0.1)
    yield url, client
    proc.terminate()
    proc.wait(10)


def test_pipeline_over_tls_with_a_password(tls_redis, services, media):
    url, client = tls_redis
    with pytest.raises(redis.AuthenticationError):
        redis.Redis.from_url(url.replace(PASSWORD, "wrong")).ping()
    env = {"REDIS_URL": url}
    services.start("detector", env=env)
    services.start("classifier", env=env)
    wait_for(lambda: len(pipeline_stats(client)["workers"]) == 2, timeout=120,
             what="workers on the TLS Redis")
    services.start("ingest", "--camera", "tls", "--source", str(media / "fer_justin.jpg"),
                   "--fps", "2", "--max-frames", "3", env=env)
    wait_for(lambda: pipeline_stats(client)["labels"] == 3, timeout=120,
             what="3 labelled faces through TLS")
