"""Bulk inputs shipped through Redis, for workers on machines that cannot see the files.

`moodstream analyze --stage` copies each input file into Redis once (keyed by its SHA-256,
with a TTL) and names it in the jobs as ``staged:<sha256>/<file name>`` instead of a local
path. A worker fetches the bytes into a private temporary file while it works on them (the
chunks of one video usually land on the same worker, so it keeps the last few) and deletes
the file afterwards. `analyze` removes the staged copies when it has the results.
"""

from __future__ import annotations

import atexit
import hashlib
import os
import shutil
import tempfile
from collections import OrderedDict
from pathlib import Path

from moodstream import keys
from moodstream.config import MIB

PREFIX = "staged:"
DEFAULT_TTL_S = 6 * 3600
DEFAULT_MAX_MB = 256.0  # a Redis string holds at most 512 MB; stay well below


class StagingError(ValueError):
    """A file that cannot be shipped or fetched; the message says why, for the user."""


def key(digest: str) -> str:
    return keys.bulk("staged", digest)


def is_staged(path: str) -> bool:
    return path.startswith(PREFIX)


def stage(r, path: Path, ttl_s: int = DEFAULT_TTL_S,
          max_bytes: float = DEFAULT_MAX_MB * MIB) -> str:
    """Copy one file into Redis (once per content) and return the name jobs use for it."""
    size = path.stat().st_size
    if size > max_bytes:
        raise StagingError(f"file is {size / MIB:.1f} MB, above the staging limit of "
                           f"{max_bytes / MIB:.0f} MB: put it on storage the workers share")
    data = path.read_bytes()
    digest = hashlib.sha256(data).hexdigest()
    if not r.set(key(digest), data, ex=ttl_s, nx=True):
        r.expire(key(digest), ttl_s)  # the same content was staged before: keep it longer
    return f"{PREFIX}{digest}/{path.name}"


def stage_plan(r, plan, max_bytes: float = DEFAULT_MAX_MB * MIB) -> list[str]:
    """Ship each input file of a bulk plan into Redis once and point its tasks at the staged
    copy. A file that cannot be shipped gets its error in its group and no jobs. Returns the
    staged names (for unstage)."""
    names: dict[str, str] = {}
    kept = []
    for task in plan.tasks:
        if task.path not in names:
            try:
                names[task.path] = stage(r, Path(task.path), max_bytes=max_bytes)
            except StagingError as error:
                names[task.path] = ""
                plan.groups[task.group].add_error(task.file, str(error))
        if names[task.path]:
            task.path = names[task.path]
            kept.append(task)
    plan.tasks[:] = kept
    return [name for name in names.values() if name]


def unstage(r, names: list[str]) -> None:
    keys = {key(name[len(PREFIX):].split("/", 1)[0]) for name in names if is_staged(name)}
    if keys:
        r.delete(*keys)


class StagedFiles:
    """A worker's local copies of staged inputs: the last `keep`, in a private folder."""

    def __init__(self, keep: int = 2):
        self.keep = keep
        self.folder: Path | None = None
        self.files: OrderedDict[str, Path] = OrderedDict()

    def local_path(self, r, name: str) -> str:
        if not is_staged(name):
            return name
        if name in self.files:
            self.files.move_to_end(name)
            return str(self.files[name])
        digest, _, filename = name[len(PREFIX):].partition("/")
        data = r.get(key(digest))
        if data is None:
            raise StagingError("the staged copy of this file is gone from Redis (expired, or "
                               "its analyze run ended); run analyze --stage again")
        if self.folder is None:
            self.folder = Path(tempfile.mkdtemp(prefix="moodstream-staged-"))  # mode 0700
            atexit.register(self.close)
        local = self.folder / f"{digest[:16]}{Path(filename).suffix}"
        fd = os.open(local, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
        with os.fdopen(fd, "wb") as out:
            out.write(data)
        self.files[name] = local
        while len(self.files) > self.keep:
            _, old = self.files.popitem(last=False)
            old.unlink(missing_ok=True)
        return str(local)

    def close(self) -> None:
        if self.folder is not None:
            shutil.rmtree(self.folder, ignore_errors=True)
            self.folder, self.files = None, OrderedDict()
