"""The detector gating figures (bench/detector_gating.py) in `moodstream bench`: the script's
text, the report's section in text and Markdown, the comparison with a previous run, the
--no-gating flag and a failure that keeps every other figure. No timings."""

from __future__ import annotations

import argparse
import json

import pytest

from moodstream.bench import cli, detector_gating, report
from tests.bench.test_cli import fake_results


def figures(cpu: float, faces: int, agree: float, ways: dict, base_cpu: float = 40.0,
            base_faces: int = 100) -> dict:
    return {"ms": cpu + 1.0, "cpu": cpu, "faces": faces, "frames": 40, "ways": ways,
            "labels_agree": agree, "x_full_cpu": round(cpu / base_cpu, 3),
            "faces_vs_full": round(faces / base_faces, 4)}


def fake_gating() -> dict:
    group = {"full": figures(40.0, 100, 1.0, {"full": 40}),
             "gate+track": figures(10.0, 98, 0.95, {"full": 4, "track": 30, "gate": 6,
                                                    "searched": 2, "retry": 1})}
    still = {"full": figures(20.0, 50, 1.0, {"full": 40}, 20.0, 50),
             "gate": figures(1.0, 50, 1.0, {"full": 1, "gate": 39}, 20.0, 50)}
    return {"workloads": {"group": group, "still": still},
            "recall": {"full": [14, 15], "lean pyramid": [13, 15]}, "seconds": 8.0,
            "rounds": 2, "fps": 5.0, "min_face": 40, "cpus": 2, "load_avg_at_start": 1.5,
            "load_avg": [1.5, 1.4, 1.3]}


def test_the_script_text_has_every_configuration_and_the_recall():
    text = detector_gating.gating_text(fake_gating())
    assert text.startswith("group: 40 frames, still: 40 frames; min_face 40, 1 thread, "
                           "2 rounds, load average 1.5 on 2 CPUs")
    assert "  gate+track      11.0   10.0 |  0.25 |   98 (0.980) | 0.950 | 4/30/6 (2, 1)" in text
    assert "  gate             2.0    1.0 |  0.05 |   50 (1.000) | 1.000 | 1/0/39 (0, 0)" in text
    assert "  lean pyramid  13/15" in text


def test_the_report_section_in_text_and_markdown():
    results = fake_results() | {"detector_gating": fake_gating()}
    text = report.gating_section_text(results)
    assert text.startswith("detector gating and tracking: 8 s per workload at 5 fps")
    assert "group (40 frames)" in text and "still (40 frames)" in text
    row = next(line for line in text.splitlines() if "gate+track" in line).split()
    assert row == ["gate+track", "10.0", "0.25", "98", "(0.980)", "0.950"]
    assert "full: 14/15" in text and "lean pyramid: 13/15" in text
    md = report.render_markdown(results)
    assert "| gate+track | 10.0 | 0.25 | 98 (0.980) | 0.950 |" in md
    assert "| gate | 1.0 | 0.05 | 50 (1.000) | 1.000 |" in md
    assert "- dlib reference boxes found on the annotated photos (full size), full: 14/15" in md
    section = md.index(f"## {report.GATING_TITLE}")
    assert section < md.index("## Detectors (640x480")
    with_classroom = report.render_markdown(results | {"classroom_error": "up exited"})
    assert with_classroom.index("## Classroom") < with_classroom.index(report.GATING_TITLE)


def test_no_gating_figures_no_section_and_a_failure_says_why():
    assert report.gating_section_text(fake_results()) == ""
    assert report.GATING_TITLE not in report.render_markdown(fake_results())
    failed = fake_results() | {"detector_gating_error": "shared media not found at /x"}
    assert "not measured (shared media not found at /x)" in report.gating_section_text(failed)
    assert "Not measured in this run: shared media not found at /x" in \
        report.render_markdown(failed)


def test_the_figures_compare_with_a_previous_run_after_json():
    now = {"detector_gating": json.loads(json.dumps(fake_gating()))}
    before = json.loads(json.dumps(now))
    before["detector_gating"]["workloads"]["group"]["gate+track"]["x_full_cpu"] *= 2
    compared = cli.compare(now, before)
    assert compared["detector_gating.workloads.group.gate+track.x_full_cpu"]["ratio"] == 0.5
    # Only the ratios to full detection: the raw detail would drown the table.
    assert "detector_gating.workloads.group.gate+track.ways.track" not in compared
    assert "detector_gating.workloads.group.gate+track.cpu" not in compared
    assert not any(k.startswith(("detector_gating.recall", "detector_gating.load_avg."))
                   for k in compared)
    assert report.gating_section_text(now)  # lists from JSON render as the tuples did


def test_no_gating_flag():
    parser = argparse.ArgumentParser()
    cli.configure(parser)
    assert parser.parse_args([]).no_gating is False
    assert parser.parse_args(["--no-gating", "--classroom-only"]).no_gating is True


def test_a_gating_failure_is_recorded_not_raised(monkeypatch, tmp_path):
    def missing(seconds, rounds):
        raise FileNotFoundError(f"shared media not found at {tmp_path}\nmore")

    monkeypatch.setattr(detector_gating, "measure_gating", missing)
    results: dict = {}
    cli.measure_gating(results, quick=True)
    assert results == {"detector_gating_error": f"shared media not found at {tmp_path}"}


def test_measure_gating_needs_the_shared_media(tmp_path):
    with pytest.raises(FileNotFoundError, match="shared media not found"):
        detector_gating.measure_gating(1.0, 1, media=tmp_path / "none")
