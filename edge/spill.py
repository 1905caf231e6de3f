"""The edge node's spill file: labels that waited longer than memory holds, kept in order on
disk until the link is back.

One JSON object a line (a labels entry's fields), appended at the end and sent from a read
offset that is kept beside it (`<file>.sent`), so a restarted edge node resends neither what
went out already nor loses what did not. The file holds at most `cap_bytes`; what does not
fit is refused, and the caller counts it as dropped. A last line cut short by a crash is
dropped when the file is opened again. The file holds expressions and boxes, never images;
it lives in the private data directory.
"""

from __future__ import annotations

import json
import logging
import os
from pathlib import Path

from moodstream.private_files import private_dir, private_file

log = logging.getLogger("moodstream.edge")


class SpillFile:
    def __init__(self, path: Path, cap_bytes: int):
        self.path, self.cap = Path(path), int(cap_bytes)
        self.offset_path = self.path.with_name(self.path.name + ".sent")
        private_dir(self.path.parent)
        private_file(self.path)
        private_file(self.offset_path)
        self.size = self._drop_torn_tail()
        try:
            self.offset = min(int(self.offset_path.read_text() or 0), self.size)
        except ValueError:
            self.offset = 0
        self.lines = self._count_lines()

    def _drop_torn_tail(self) -> int:
        """Cuts a last line that a crash left unfinished (the next line would join it);
        returns the file's size."""
        size = self.path.stat().st_size
        if not size:
            return 0
        with open(self.path, "rb+") as f:
            f.seek(max(0, size - 65536))
            tail = f.read()
            if tail.endswith(b"\n"):
                return size
            cut = tail.rfind(b"\n")
            keep = size - len(tail) + cut + 1 if cut >= 0 else (0 if size <= 65536 else size)
            f.truncate(keep)
            log.warning("spill file %s: dropped an unfinished last line", self.path)
            return keep

    def _count_lines(self) -> int:
        with open(self.path, "rb") as f:
            f.seek(self.offset)
            return sum(chunk.count(b"\n") for chunk in iter(lambda: f.read(1 << 20), b""))

    @property
    def pending(self) -> int:
        """Lines written and not yet sent."""
        return self.lines

    def append(self, records: list[dict]) -> int:
        """Writes records in order while they fit under the cap; returns how many did not."""
        data, kept = [], 0
        room = self.cap - self.size
        for record in records:
            line = json.dumps(record, separators=(",", ":")).encode() + b"\n"
            if len(line) > room:
                break
            data.append(line)
            room -= len(line)
            kept += 1
        if data:
            with open(self.path, "ab") as f:
                f.write(b"".join(data))
            self.size += sum(len(line) for line in data)
            self.lines += kept
        return len(records) - kept

    def read(self, most: int) -> tuple[list[dict], int]:
        """Up to `most` records from the read offset, and the offset after them."""
        out: list[dict] = []
        offset = self.offset
        with open(self.path, "rb") as f:
            f.seek(offset)
            while len(out) < most:
                line = f.readline()
                if not line.endswith(b"\n"):
                    break  # the end (or a line being written)
                offset += len(line)
                try:
                    out.append(json.loads(line))
                except ValueError:
                    log.warning("spill file %s: skipping an unreadable line", self.path)
                    self.lines -= 1
        return out, offset

    def sent(self, offset: int, count: int) -> None:
        """The records up to `offset` went out: remember it, and empty a file sent whole."""
        self.lines = max(0, self.lines - count)
        if offset >= self.size:
            with open(self.path, "wb"):
                pass
            self.size = self.offset = self.lines = 0
        else:
            self.offset = offset
        tmp = self.offset_path.with_name(self.offset_path.name + ".tmp")
        tmp.write_text(str(self.offset))
        os.chmod(tmp, 0o600)
        os.replace(tmp, self.offset_path)
