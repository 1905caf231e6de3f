"""The classroom workloads in `moodstream bench`'s report: the table per faces a camera,
every workload's section, and the parity and agreement section (whatever the agreement
measurement returns). Pure formatting, no timings."""

from __future__ import annotations

import copy

from moodstream.bench import classroom, report
from tests.bench.test_classroom import fake_classroom
from tests.bench.test_cli import fake_results


def workload_result(key: str, cameras: int, cores: float, faces_s: float, fits=True,
                    capacity=None) -> dict:
    """fake_classroom's figures as workload `key` measured them."""
    result = copy.deepcopy(fake_classroom())
    work = classroom.WORKLOADS[key]
    result["workload"] = {"faces": key, "name": work.name, "use": work.use}
    result["mix"] = classroom.mix_summary(cameras, work.scenes)
    case = result["case"]
    case.update(cameras=cameras, faces_per_s=faces_s, reused_per_s=faces_s / 2,
                faces_per_frame=round(faces_s / (cameras * 5.0), 2), fits=fits,
                reasons=[] if fits else ["p99 400 ms > 250 ms"])
    case["cpu_cores"] = {"detector": cores / 2, "classifier": cores / 2, "total": cores}
    case["per_camera"] = classroom.cost_per_camera(case)
    if capacity is None:
        result.pop("capacity")
    else:
        result["capacity"]["cameras"] = capacity
    return result


def all_faces_results() -> dict:
    return fake_results() | {
        "classroom": workload_result("5", 8, 0.6, 184.0, capacity=24),
        "classroom_faces": {
            "25": workload_result("25", 12, 1.44, 1500.0, fits=False, capacity=4),
            "1": workload_result("1", 8, 0.3, 40.0),
            "6": {"error": "moodstream up exited with 1"}}}


def test_the_table_has_a_row_per_faces_a_camera_in_order():
    rows = report.faces_table(all_faces_results())
    assert [row[0] for row in rows] == ["1", "5", "6", "25"]
    by_key = {row[0]: dict(zip(report.FACES_HEADER, row, strict=True)) for row in rows}
    dense = by_key["25"]
    assert dense["workload"] == "full classroom" and dense["cameras"] == "12"
    assert dense["cores/camera"] == "0.120" and dense["CPU ms/face/frame"] == "0.96"
    assert dense["cameras that fit"] == "4" and dense["verdict"] == "no: p99 400 ms > 250 ms"
    assert dense["found/frame"] == "25.0" and dense["reused labels/s"] == "750.0"
    assert by_key["5"]["cameras that fit"] == "24" and by_key["5"]["cores"] == "0.60"
    assert by_key["1"]["cameras that fit"] == "-"  # no capacity search in that run
    assert by_key["6"]["verdict"] == "not run: moodstream up exited with 1"


def test_an_earlier_results_file_is_the_mix_alone():
    old = fake_results() | {"classroom": fake_classroom()}
    rows = report.faces_table(old)
    assert [row[:2] for row in rows] == [("5", "small groups")]
    # Per camera from what such a file kept: 1.4 cores, 4.2 faces x 39.9 frames/s.
    assert rows[0][-4:] == ("0.175", "140", "8.35", "-")
    assert report.faces_table(fake_results()) == []
    assert report.classroom_sections_text(fake_results()) == ""


def test_every_workload_prints_its_section_and_the_table():
    text = report.classroom_sections_text(all_faces_results())
    for title in ("classroom, ~1 face (driver): 8 cameras",
                  "classroom, ~5 faces (small groups): 8 cameras",
                  "classroom, ~25 faces (full classroom): 12 cameras"):
        assert title in text
    assert "per camera, all processes: 0.120 cores, 93 MB RSS; 0.96 ms CPU per face" in text
    assert "(750.0 of them reused from the track)" in text
    assert text.index("~1 face ") < text.index("~5 faces") < text.index("~25 faces") < \
        text.index("capacity per faces a camera")
    md = report.render_markdown(all_faces_results())
    assert "## Capacity per faces a camera" in md
    assert "### Classroom, ~25 faces a camera: full classroom" in md
    assert "| 25 | full classroom | 25.0 | 12 | 1.44 |" in md
    assert md.index("## Classroom") < md.index("## Capacity per faces a camera")


def test_the_agreement_section_prints_whatever_was_returned():
    results = fake_results() | {"agreement": {
        "clip": {"smoothed_agree": 0.9812, "tracks": 3}, "dense_faces_vs_full": 0.99,
        "note": "reuse every 400 ms"}}
    text = report.agreement_text(results)
    assert text.splitlines() == ["parity and agreement:", "  clip.smoothed_agree: 0.9812",
                                 "  clip.tracks: 3", "  dense_faces_vs_full: 0.99",
                                 "  note: reuse every 400 ms"]
    assert "- clip.smoothed_agree: 0.9812" in report.render_markdown(results)
    assert "## Parity and agreement" in report.render_markdown(results)
    # Nothing measured: no section at all.
    assert report.agreement_text(fake_results()) == ""
    assert "Parity and agreement" not in report.render_markdown(fake_results())
    failed = fake_results() | {"agreement_error": "no FER-2013"}
    assert report.agreement_text(failed) == "parity and agreement:\n  not measured: no FER-2013"
