"""`moodstream bench`: the command is wired, and its pure pieces (JSON contract, comparison
with a previous results file, scaling on paper, report rendering) behave. No timings."""

from __future__ import annotations

import json
import subprocess
import sys

import pytest

from moodstream.bench import cli, report
from tests.conftest import REPO


def test_help_lists_the_options():
    done = subprocess.run([sys.executable, "-m", "moodstream.cli", "bench", "--help"],
                          cwd=REPO, capture_output=True, text=True, timeout=120)
    assert done.returncode == 0, done.stderr
    for option in ("--quick", "--json", "--cameras", "--previous"):
        assert option in done.stdout


def test_last_json_line_takes_the_last_non_empty_line():
    text = "a table\nspeedup 7\n" + json.dumps({"speedup_vs_paper_loop": 7.5}) + "\n\n"
    assert cli.last_json_line(text) == {"speedup_vs_paper_loop": 7.5}
    with pytest.raises(ValueError):
        cli.last_json_line("")
    with pytest.raises(ValueError):
        cli.last_json_line("[1, 2]")


def test_compare_keeps_numeric_figures_present_in_both():
    now = {"pipeline": {"sustained": {"fps": 20.0}, "note": "x"}, "new": 1, "flag": True}
    before = {"pipeline": {"sustained": {"fps": 10.0}}, "gone": 3}
    assert cli.compare(now, before) == {
        "pipeline.sustained.fps": {"now": 20.0, "before": 10.0, "ratio": 2.0}}
    assert cli.compare(now, None) == {}


def test_percentile_speedup_and_strip_samples():
    assert cli.percentile([5, 1, 3, 2, 4], 0.5) == 3
    assert cli.percentile([], 0.5) is None
    assert cli.speedup(30.0, 4.0) == 7.5
    assert cli.speedup(30.0, 0.0) is None
    stripped = cli.strip_samples({"a": {"samples": [1, 2], "p50": 1}, "vs_previous": {}})
    assert stripped == {"a": {"p50": 1}}


def test_scaling_on_paper_arithmetic():
    costs = {"ingest_encode": 2.0, "detector_decode": 1.0, "detector_mtcnn": 16.0,
             "classifier": 1.0, "faces_per_frame": 1.0}
    scale = report.scaling_on_paper(costs, rates=(5,), cores=16, machines=10)
    assert scale["core_fps"] == 50.0  # 1000 ms / 20 ms
    assert scale["rows"] == [{"camera_fps": 5, "one_core": 10, "one_machine": 160,
                              "cluster": 1600, "cluster_1gbit": 800}]
    assert scale["first_stage"] == "detector_mtcnn"
    assert "worker cores" in scale["cluster_limit"].split("before")[0]
    cheap = report.scaling_on_paper({**costs, "detector_mtcnn": 0.5}, rates=(5,))
    assert cheap["rows"][0]["cluster"] == report.REDIS_CORE_FPS // 5
    assert "Redis" in cheap["cluster_limit"].split("before")[0]


def fake_results() -> dict:
    case = {"frames": 6, "offered_fps": 5.0, "fps": 5.0, "p50_ms": 40.0, "p99_ms": 90.0,
            "samples": [30.0, 40.0, 90.0]}
    return {
        "mode": "full", "when": "2026-01-01T00:00:00Z", "video": "v.mp4", "model": "m.onnx",
        "machine": {"cpus": 2, "load_avg_at_start": 1.0},
        "accuracy": {"params": 58423, "privatetest_accuracy": 0.6, "evaluated": True},
        "classifier": {"batch32_faces_per_s": 1000.0, "batch1_faces_per_s": 500.0},
        "codec": {"encode_ms": 1.5, "decode_ms": 1.0, "jpeg_kb": 30.0},
        "detector": {"detectors": {
            "mtcnn-onnx": {"ms": 25.0, "cpu_ms": 25.0, "batch_ms": 24.0, "batch_cpu_ms": 24.0},
            "mtcnn": {"ms": 140.0, "cpu_ms": 140.0, "batch_ms": 110.0, "batch_cpu_ms": 110.0},
            "haar": {"ms": 10.0, "cpu_ms": 10.0}}},
        "pipeline": {"detectors": 2, "camera_fps": 5.0, "cameras": {"1": case, "4": case},
                     "sustained": {"fps": 40.0}, "rss_mb": {"detector": 150,
                                                          "classifier": 110}},
        "bulk": {"1": {"fps": 38.0}},
        "paper_loop": {"frames": 24, "faces": 24, "fps": 4.0, "keras_model": "untrained",
                       "keras_faces_per_s": 12.0},
        "speedup_vs_paper_loop": 10.0, "wall_s": 1.0,
        "vs_previous": {"pipeline.sustained.fps": {"now": 40.0, "before": 20.0,
                                                   "ratio": 2.0}},
    }


def test_report_renders_and_writes(tmp_path):
    results = fake_results()
    text = report.render_text(results)
    assert "speedup_vs_paper_loop: 10.0" in text and "20.0 (2.0x)" in text
    md = report.render_markdown(results)
    for heading in ("## Side by side", "## Scaling on paper", "## The `fer` package",
                    "## Accuracy against parameters"):
        assert heading in md
    written = report.write_report(results, tmp_path / "docs", tmp_path / "results.json")
    assert all(p.exists() for p in written)
    stored = json.loads((tmp_path / "results.json").read_text())
    assert "vs_previous" not in stored and stored["speedup_vs_paper_loop"] == 10.0


def test_fer_baseline_sits_beside_the_pipeline_when_measured():
    results = fake_results()
    results.update({"fer_package": {"version": "25.10.3", "frames": 24, "faces": 20,
                                    "fps": 8.0, "startup_s": 4.0},
                    "speedup_vs_fer": 5.0, "bulk_speedup_vs_fer": 4.75})
    results["bulk"]["1"]["faces"] = 24
    assert "fer package 25.10.3 (its own environment): 8.0 frames/s" in \
        report.render_text(results)
    md = report.render_markdown(results)
    assert "**8.0 frames/s**" in md and "**5.0x**" in md
    assert "Not measured in this run" in report.render_markdown(fake_results())


def test_fer_baseline_without_the_fer_package_is_skipped_with_a_reason(tmp_path):
    from pathlib import Path

    from moodstream.bench.cli import measure_fer

    result = measure_fer(Path(sys.executable), tmp_path / "no-video.mp4", 2)
    assert "error" in result and "fps" not in result



def options(*argv: str):
    import argparse

    parser = argparse.ArgumentParser()
    cli.configure(parser)
    return parser.parse_args(list(argv))


def test_one_classroom_case_alone_from_the_options():
    assert cli.classroom_choice(options("--classroom-only", "--faces", "25", "--cameras",
                                        "12"), quick=False) == (["25"], 12)
    assert cli.classroom_choice(options(), quick=False) == (["1", "5", "6", "25"], None)
    assert cli.classroom_choice(options(), quick=True) == (["5"], 4)
    # Outside --classroom-only, --cameras is the live pipeline's list, not the classroom's.
    assert cli.classroom_choice(options("--cameras", "1,4", "--classroom-cameras", "6"),
                                quick=False) == (["1", "5", "6", "25"], 6)
    with pytest.raises(ValueError, match="takes one number"):
        cli.classroom_choice(options("--classroom-only", "--cameras", "1,4"), quick=False)
    with pytest.raises(ValueError, match="--faces takes"):
        cli.classroom_choice(options("--faces", "30"), quick=False)


def test_bad_classroom_options_get_a_clear_message_not_a_traceback():
    done = subprocess.run([sys.executable, "-m", "moodstream.cli", "bench", "--classroom-only",
                           "--faces", "25", "--cameras", "twelve"],
                          cwd=REPO, capture_output=True, text=True, timeout=120)
    assert done.returncode != 0 and "Traceback" not in done.stderr
    assert "--cameras takes one number of cameras (got 'twelve')" in done.stderr


def test_the_agreement_hook_takes_whatever_measure_returns(monkeypatch):
    import types

    module = types.ModuleType(cli.AGREEMENT_MODULE)
    module.measure = lambda: {"clip": {"smoothed_agree": 0.98}}
    monkeypatch.setitem(sys.modules, cli.AGREEMENT_MODULE, module)
    results: dict = {}
    cli.measure_agreement(results)
    assert results == {"agreement": {"clip": {"smoothed_agree": 0.98}}}

    def broken():
        raise RuntimeError("no FER-2013 here\nmore")

    module.measure = broken
    results = {}
    cli.measure_agreement(results)
    assert results == {"agreement_error": "no FER-2013 here"}
    module.measure = lambda: [0.98]
    results = {}
    cli.measure_agreement(results)
    assert results == {"agreement_error": "measure() returned list, not a dict"}


def test_without_the_agreement_module_there_is_no_section(monkeypatch):
    monkeypatch.setitem(sys.modules, cli.AGREEMENT_MODULE, None)  # import finds nothing
    results: dict = {}
    cli.measure_agreement(results)
    assert results == {}


def test_no_capacity_trial_rows_of_any_workload_are_compared():
    assert cli.compared("classroom.case.p99_ms")
    assert cli.compared("classroom_faces.25.case.cpu_cores.total")
    assert cli.compared("classroom_faces.25.capacity.cameras")
    assert not cli.compared("classroom.capacity.tried.12.p99_ms")
    assert not cli.compared("classroom_faces.25.capacity.tried.12.p99_ms")
