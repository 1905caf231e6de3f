"""The edge node's spill file keeps labels in order under a cap, across restarts."""

from __future__ import annotations

import stat

from moodstream.edge.spill import SpillFile


def records(start: int, n: int) -> list[dict]:
    return [{"camera": "cab", "seq": i, "probs": "0.1," * 6 + "0.4"} for i in range(start,
                                                                                  start + n)]


def test_records_come_back_in_order_and_a_restart_resends_only_what_did_not_go(tmp_path):
    spill = SpillFile(tmp_path / "edge" / "cab.labels", 1 << 20)
    assert spill.append(records(0, 10)) == 0 and spill.pending == 10
    got, offset = spill.read(4)
    assert [r["seq"] for r in got] == [0, 1, 2, 3]
    spill.sent(offset, len(got))
    again = SpillFile(tmp_path / "edge" / "cab.labels", 1 << 20)  # the node restarted
    assert again.pending == 6
    got, offset = again.read(100)
    assert [r["seq"] for r in got] == [4, 5, 6, 7, 8, 9]
    again.sent(offset, len(got))
    assert again.pending == 0 and again.path.stat().st_size == 0  # emptied once all went
    assert stat.S_IMODE(again.path.stat().st_mode) == 0o600
    assert stat.S_IMODE(again.path.parent.stat().st_mode) == 0o700


def test_past_the_cap_records_are_refused_and_counted(tmp_path):
    one = len(b'{"camera":"cab","seq":0,"probs":"0.1,0.1,0.1,0.1,0.1,0.1,0.4"}\n')
    spill = SpillFile(tmp_path / "cab.labels", one * 5 + 3)
    assert spill.append(records(0, 8)) == 3
    assert spill.pending == 5
    got, _ = spill.read(100)
    assert [r["seq"] for r in got] == [0, 1, 2, 3, 4]


def test_a_line_cut_short_by_a_crash_is_dropped_and_later_lines_read_whole(tmp_path):
    spill = SpillFile(tmp_path / "cab.labels", 1 << 20)
    spill.append(records(0, 2))
    with open(spill.path, "ab") as f:
        f.write(b'{"camera":"cab","se')  # the crash
    reopened = SpillFile(tmp_path / "cab.labels", 1 << 20)
    got, offset = reopened.read(100)
    assert [r["seq"] for r in got] == [0, 1]
    reopened.sent(offset, len(got))
    reopened.append(records(2, 1))  # a line written after the torn one reads whole
    got, _ = reopened.read(100)
    assert [r["seq"] for r in got] == [2]
