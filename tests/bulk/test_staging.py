"""Bulk inputs shipped through Redis (real redis-server; small files)."""

from pathlib import Path

import pytest

from moodstream.bulk.staging import (
    StagedFiles,
    StagingError,
    is_staged,
    key,
    stage,
    unstage,
)


def test_a_file_is_staged_once_per_content_and_fetched_back(r, tmp_path):
    a, b = tmp_path / "a.jpg", tmp_path / "b.jpg"
    a.write_bytes(b"same bytes")
    b.write_bytes(b"same bytes")
    name_a, name_b = stage(r, a, ttl_s=60), stage(r, b, ttl_s=60)
    assert is_staged(name_a) and name_a.endswith("/a.jpg") and name_b.endswith("/b.jpg")
    assert len(r.keys("ms:bulk:staged:*")) == 1 and 0 < r.ttl(r.keys("ms:bulk:staged:*")[0]) <= 60
    files = StagedFiles(keep=2)
    local = Path(files.local_path(r, name_a))
    assert local.read_bytes() == b"same bytes" and local.suffix == ".jpg"
    assert local.stat().st_mode & 0o777 == 0o600, "only the worker's user reads the copy"
    assert files.local_path(r, "/plain/path.mp4") == "/plain/path.mp4"
    files.close()
    assert not local.exists()
    unstage(r, [name_a, name_b])
    assert r.keys("ms:bulk:staged:*") == []


def test_the_worker_keeps_only_the_last_few_copies(r, tmp_path):
    files = StagedFiles(keep=2)
    locals_ = []
    for i in range(3):
        path = tmp_path / f"v{i}.mp4"
        path.write_bytes(f"video {i}".encode())
        locals_.append(Path(files.local_path(r, stage(r, path))))
    assert [p.exists() for p in locals_] == [False, True, True]
    files.close()


def test_a_gone_or_oversized_file_says_why(r, tmp_path):
    path = tmp_path / "big.mp4"
    path.write_bytes(b"x" * 2000)
    with pytest.raises(StagingError, match="above the staging limit"):
        stage(r, path, max_bytes=1000)
    name = stage(r, path)
    r.delete(key(name.split(":", 1)[1].split("/", 1)[0]))
    with pytest.raises(StagingError, match="gone from Redis"):
        StagedFiles().local_path(r, name)
