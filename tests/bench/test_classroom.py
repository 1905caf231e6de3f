"""The classroom benchmark's pieces: process kinds from command lines, the CPU-share and RSS
arithmetic, the window figures and verdict, the capacity search, the moving workload, the
report; and one tiny real run through `moodstream up`. No timings are asserted."""

from __future__ import annotations

import subprocess
import sys
import time

import cv2
import numpy as np
import pytest

from moodstream.bench import classroom, report
from tests.conftest import MEDIA, need


@pytest.mark.parametrize("cmdline, kind", [
    ([sys.executable, "-m", "moodstream.cli", "detector"], "detector"),
    (["/x/.venv/bin/moodstream", "--log-level", "INFO", "ingest", "--camera=a"], "ingest"),
    (["python", "-m", "moodstream.cli", "cameras"], "ingest"),  # several cameras, one process
    (["python", "-m", "moodstream.cli", "up", "--no-source", "--detectors", "2"], "up"),
    (["python", "-m", "moodstream.cli", "bulk-worker"], "bulk-worker"),
    (["python", "-m", "moodstream.cli", "stats"], "stats"),
    (["redis-server 127.0.0.1:6379", "", ""], "redis-server"),  # its process title
    (["/usr/bin/redis-server", "-", "--port", "1"], "redis-server"),
    (["/x/bin/gunicorn", "dashboard.server:app"], "dashboard"),
    (["python", "/x/bin/gunicorn", "app"], "dashboard"),
    (["bash", "-c", "sleep 1"], "other"),
    ([], "other"),
])
def test_process_kind_from_the_command_line(cmdline, kind):
    assert classroom.process_kind(cmdline) == kind


def test_cpu_cores_counts_each_process_from_the_window_start():
    first = {(1, 0.0): 10.0, (2, 0.0): 5.0, (3, 0.0): 1.0}
    # pid 4 started inside the window (no start value): all of its 2 s count.
    last = {(1, 0.0): 16.0, (2, 0.0): 8.0, (3, 0.0): 1.5, (4, 9.0): 2.0}
    kinds = {(1, 0.0): "detector", (2, 0.0): "detector", (3, 0.0): "redis-server",
             (4, 9.0): "ingest"}
    cores = classroom.cpu_cores(first, last, kinds, seconds=10.0)
    assert cores == {"detector": 0.9, "ingest": 0.2, "redis-server": 0.05, "total": 1.15}


def test_rss_summary_means_and_peaks_per_kind_and_in_total():
    mb = 2**20
    samples = [{"detector": 100 * mb, "ingest": 50 * mb}, {"detector": 140 * mb}]
    summary = classroom.rss_summary(samples)
    assert summary["detector"] == {"mean": 120.0, "max": 140.0}
    assert summary["ingest"] == {"mean": 25.0, "max": 50.0}
    assert summary["total"] == {"mean": 145.0, "max": 150.0}
    assert classroom.rss_summary([]) == {}


def counts(n_in, processed, pending=0, faces=0, labels=0, **dropped):
    return {"in": n_in, "processed": processed, "dropped": dropped, "pending": pending,
            "faces": faces, "labels": labels}


def test_window_figures_are_differences_over_the_window():
    before = counts(100, 90, pending=3, faces=300, labels=300, cap=2)
    after = counts(500, 490, pending=5, faces=2300, labels=2300, cap=2, stale=4)
    latencies = [float(v) for v in range(1, 101)]
    case = classroom.window_figures(8, 5.0, 10.0, before, after, latencies)
    assert case["published_fps"] == 40.0 and case["processed_fps"] == 40.0
    assert case["offered_fps"] == 40.0
    assert case["dropped"] == {"stale": 4}  # cap did not change inside the window
    assert case["faces_per_frame"] == 5.0 and case["labels_per_s"] == 200.0
    assert (case["p50_ms"], case["p99_ms"], case["latency_samples"]) == (51.0, 100.0, 100)


def good_case(**changes) -> dict:
    case = {"cameras": 8, "offered_fps": 40.0, "published_fps": 39.8, "processed_fps": 39.9,
            "dropped": {}, "pending_start": 3, "pending_end": 6, "p99_ms": 200.0}
    return case | changes


def test_verdict_names_every_reason_a_case_does_not_fit():
    assert classroom.verdict(good_case()) == []
    assert classroom.verdict(good_case(p99_ms=251.0)) == ["p99 251 ms > 250 ms"]
    assert classroom.verdict(good_case(p99_ms=None)) == ["no latency samples"]
    assert "published 30.0 of 40 frames/s offered" in \
        classroom.verdict(good_case(published_fps=30.0, processed_fps=30.0))
    assert classroom.verdict(good_case(processed_fps=30.0)) == [
        "processed 30.0 of 39.8 frames/s published"]
    assert classroom.verdict(good_case(dropped={"stale": 3, "cap": 1})) == [
        "dropped 1 cap, 3 stale"]
    # A drop reason the verdict does not know (a future gate) is reported, not held against it.
    assert classroom.verdict(good_case(dropped={"gated": 50})) == []
    assert classroom.verdict(good_case(pending_end=40)) == ["backlog grew by 37 frames"]


def search(capacity: int, **options) -> tuple[int, list[int]]:
    """Run the capacity search against a machine that fits `capacity` cameras."""
    tried: dict[int, bool] = {}
    order = []
    while (n := classroom.next_cameras(tried, **options)) is not None:
        assert n not in tried
        order.append(n)
        tried[n] = n <= capacity
    return classroom.capacity_answer(tried), order


def test_capacity_search_steps_up_then_halves_the_gap():
    assert search(14) == (14, [8, 12, 16, 14, 15])
    assert search(13) == (13, [8, 12, 16, 14, 13])
    assert search(5) == (5, [8, 4, 6, 5])  # the first count already too many: go down
    assert search(0) == (0, [8, 4, 2, 1])
    assert search(100, limit=20) == (20, [8, 12, 16, 20])
    assert search(13, resolution=4) == (12, [8, 12, 16])


def test_capacity_search_starts_from_what_was_measured():
    assert classroom.next_cameras({8: True}) == 12
    assert classroom.next_cameras({4: True}, start=8) == 8
    assert classroom.next_cameras({8: False}) == 4
    # A noisy pass above a failure does not count.
    assert classroom.capacity_answer({8: True, 12: False, 16: True}) == 8


def test_the_mix_is_mostly_multi_face_cameras():
    mix = classroom.mix_summary(8)
    assert mix["multi_face_cameras"] == 6 and sum(mix["scenes"].values()) == 8
    assert mix["faces_by_eye_per_frame"] == round(37 / 8, 2)
    assert classroom.mix_summary(16)["multi_face_cameras"] == 12


def test_motion_is_a_few_pixels_a_frame_and_closes_the_loop():
    frames = 180
    steps = [classroom.motion(i, frames, 0.7) for i in range(frames + 1)]
    assert steps[0] == pytest.approx(steps[-1])
    for (x0, y0, z0), (x1, y1, z1) in zip(steps, steps[1:], strict=False):
        assert abs(x1 - x0) < 1 and abs(y1 - y0) < 1 and abs(z1 - z0) < 0.01


def test_the_workload_moves_and_differs_per_camera(tmp_path):
    need(MEDIA)
    paths = classroom.make_workload(tmp_path, 2, seconds=1.0)
    frames = []
    for path, scene in zip(paths, classroom.MIX, strict=False):
        cap = cv2.VideoCapture(str(path))
        ok_a, a = cap.read()
        ok_b, b = cap.read()
        cap.release()
        assert ok_a and ok_b and a.shape[1::-1] == scene.size
        assert np.abs(a.astype(int) - b.astype(int)).mean() > 1  # it moves
        frames.append(a)
    assert frames[0].shape != frames[1].shape or not np.array_equal(*frames)
    assert classroom.make_workload(tmp_path, 2, seconds=1.0) == paths  # made once


def test_the_sampler_measures_a_busy_child_from_proc():
    busy = subprocess.Popen([sys.executable, "-c",
                             "import time\nt = time.time()\nwhile time.time() - t < 0.6: pass\n"
                             "time.sleep(5)"])
    try:
        sampler = classroom.ProcessSampler([busy.pid])
        sampler.sample(start=True)
        time.sleep(1.0)
        sampler.sample()
        cores = sampler.cores(1.0)
        assert sampler.counts == {"other": 1}
        assert 0.0 <= cores["other"] <= 1.0 and cores["total"] == cores["other"]
        assert sampler.rss[-1]["other"] > 0
        pss = sampler.pss_mb()
        assert 0 < pss["other"] == pss["total"]
    finally:
        busy.kill()
        busy.wait()


def fake_classroom() -> dict:
    case = good_case() | {
        "camera_fps": 5.0, "window_s": 60.0, "faces_per_frame": 4.2, "labels_per_s": 168.0,
        "p50_ms": 90.0, "latency_samples": 10_000, "detectors": 2,
        "cpu_cores": {"detector": 1.1, "ingest": 0.3, "total": 1.4},
        "processes": {"detector": 2, "ingest": 8},
        "rss_mb": {"detector": {"mean": 300.0, "max": 310.0},
                   "ingest": {"mean": 800.0, "max": 810.0},
                   "total": {"mean": 1100.0, "max": 1120.0}},
        "redis": {"frame_entry_kb": 40.0, "frames_kb_s_per_camera": 200.0,
                  "net_in_kb_s_per_camera": 300.0, "net_out_kb_s_per_camera": 500.0},
        "bench_cores": 0.01, "load_avg": {"start": 1.0, "end": 1.2}, "fits": True,
        "reasons": []}
    return {"mix": classroom.mix_summary(8), "source_fps": 15.0, "goal_p99_ms": 250.0,
            "up_args": ["--detectors", "2"], "case": case,
            "capacity": {"cameras": 12, "window_s": 30.0, "rule": "5 fps each",
                         "tried": {"8": classroom.capacity_row(case),
                                   "16": {"fits": False, "reasons": ["could not start"]}}}}


def test_the_classroom_report_renders_in_text_and_markdown(tmp_path):
    result = fake_classroom()
    text = report.classroom_text(result)
    assert "p50 / p99: 90 / 200 ms" in text and "cameras per machine" in text
    assert "no: could not start" in text
    md = "\n".join(report.classroom_markdown(result))
    assert "## Classroom" in md and "| **total** | 10 | 1.40 | 1,100 | 1,120 | - |" in md
    result["case"]["pss_mb"] = {"detector": 200.0, "total": 700.0}
    assert "| **total** | 10 | 1.40 | 1,100 | 1,120 | 700 |" in \
        "\n".join(report.classroom_markdown(result))
    from tests.bench.test_cli import fake_results

    results = fake_results() | {"classroom": result}
    side = report.render_text(results)
    assert "classroom 8 cameras x 5 fps: frames/s" in side
    assert "cameras at p99 <= 250 ms (5 fps)" in side
    assert "## Classroom" in report.render_markdown(results)
    assert "## Classroom" not in report.render_markdown(fake_results())
    failed = report.render_markdown(fake_results() | {"classroom_error": "up exited with 1"})
    assert "Not measured in this run: up exited with 1" in failed


@pytest.mark.slow
def test_a_tiny_real_classroom_run(tmp_path):
    """Two cameras through a real `moodstream up` for a few seconds: every figure is there
    and the processes were told apart."""
    need(MEDIA)
    case = classroom.run_case(tmp_path, cameras=2, detectors=1, warmup=2.0, seconds=4.0)
    assert case["published_fps"] > 0 and case["latency_samples"] > 0
    assert {"redis-server", "up", "ingest", "detector", "classifier"} <= set(case["processes"])
    assert case["processes"]["ingest"] >= 1 and case["cpu_cores"]["total"] > 0
    assert case["rss_mb"]["total"]["max"] > case["rss_mb"]["detector"]["max"] > 0
    assert case["redis"]["frames_kb_s_per_camera"] > 0
    assert 0 < case["pss_mb"]["total"] <= case["rss_mb"]["total"]["max"]


# ---------------------------------------------------------------- workloads by faces a camera

def test_faces_name_the_workloads_in_their_own_order():
    assert classroom.parse_faces("25,1") == ["1", "25"]
    assert classroom.parse_faces(" 5 , 6 ") == ["5", "6"]
    for bad in ("7", "", "1,x", ","):
        with pytest.raises(ValueError, match="--faces takes"):
            classroom.parse_faces(bad)


def test_each_workload_has_the_faces_its_key_says():
    for key, work in classroom.WORKLOADS.items():
        mix = classroom.mix_summary(8, work.scenes)
        assert round(mix["faces_by_eye_per_frame"]) == int(key), key
    dense = classroom.mix_summary(12, classroom.WORKLOADS["25"].scenes)
    assert dense == {"scenes": {"classroom-25": 12}, "multi_face_cameras": 12,
                     "faces_by_eye_per_frame": 25.0}
    # The mix is the one the capacity table was always measured on.
    assert classroom.WORKLOADS["5"].scenes == classroom.MIX
    assert classroom.WORKLOADS["25"].cameras == 12


def test_tiles_start_apart_and_each_camera_elsewhere():
    offsets = classroom.tile_offsets(6, 232, camera=0)
    assert offsets == [0, 38, 77, 116, 154, 193]
    other = classroom.tile_offsets(6, 232, camera=1)
    assert not set(offsets) & set(other)
    assert all(0 <= o < 232 for o in classroom.tile_offsets(6, 232, camera=99))


def test_tiles_are_laid_out_row_by_row():
    tiles = [np.full((2, 3), i, np.uint8) for i in range(6)]
    frame = classroom.tiled_frame(tiles, (3, 2))
    assert frame.shape == (4, 9)
    assert frame[0, ::3].tolist() == [0, 1, 2] and frame[2, ::3].tolist() == [3, 4, 5]
    assert classroom.split_size((636, 360), (3, 2)) == (212, 180)
    with pytest.raises(ValueError, match="does not split"):
        classroom.split_size((640, 360), (3, 2))


def frames_of(scene, camera, count):
    import itertools

    return list(itertools.islice(classroom.scene_frames(scene, camera, 2.0), count))


def test_real_video_keeps_its_own_motion_from_a_point_of_its_own():
    need(MEDIA)
    clip = classroom.clip_frames(MEDIA / classroom.VIDEO1.media, classroom.SOURCE_FPS)
    assert 220 <= len(clip) <= 240  # 15.5 s at 15 fps: every other frame of 29.97
    for camera in (0, 1):
        first = classroom.tile_offsets(1, len(clip), camera)[0]
        frames = frames_of(classroom.VIDEO1, camera, 3)
        # The clip's own frames, in order: no pan, no zoom, no noise.
        for n, frame in enumerate(frames):
            assert np.array_equal(frame, clip[(first + n) % len(clip)])
    assert not np.array_equal(frames_of(classroom.VIDEO1, 0, 1)[0],
                              frames_of(classroom.VIDEO1, 1, 1)[0])


def test_tiled_real_video_shows_six_points_of_the_clip():
    need(MEDIA)
    scene = classroom.VIDEO6
    tile = classroom.split_size(scene.size, scene.grid)
    clip = classroom.clip_frames(MEDIA / scene.media, classroom.SOURCE_FPS)
    offsets = classroom.tile_offsets(6, len(clip), camera=2)
    a, b = frames_of(scene, 2, 2)
    assert a.shape[1::-1] == scene.size
    tw, th = tile
    first = a[:th, :tw]
    assert np.array_equal(first, classroom.cover(clip[offsets[0]], tile, 1.0))
    second = a[:th, tw:2 * tw]  # mirrored, from a sixth of the clip further on
    assert np.array_equal(second, classroom.cover(clip[offsets[1]], tile, 1.0)[:, ::-1])
    assert np.abs(a.astype(int) - b.astype(int)).mean() > 0.5  # the clip moves


def test_the_dense_scene_moves_and_mtcnn_finds_its_25_faces():
    need(MEDIA)
    from moodstream.detection.detectors import make_detector

    scene = classroom.DENSE
    frames = frames_of(scene, 0, 30)  # one pan and zoom cycle of 2 s
    assert frames[0].shape[1::-1] == scene.size == (640, 412)
    assert np.abs(frames[0].astype(int) - frames[1].astype(int)).mean() > 1
    detector = make_detector("mtcnn-onnx", min_face=40, threads=1)  # the default
    found = [len(faces) for faces in detector.detect([frames[0], frames[8], frames[22]])]
    assert all(24 <= n <= 26 for n in found), found


def test_per_camera_cost_and_cpu_per_face():
    case = {"cameras": 12, "cpu_cores": {"total": 1.44}, "faces_per_s": 1500.0,
            "rss_mb": {"total": {"mean": 1100.0, "max": 1200.0}}}
    # 1.44 cores for 1,500 faces/s: 0.96 ms of CPU per face per frame.
    assert classroom.cost_per_camera(case) == {"cores": 0.12, "rss_mb": 100.0,
                                          "cpu_ms_per_face": 0.96}
    assert classroom.cost_per_camera(case | {"faces_per_s": 0.0, "rss_mb": {}}) == {
        "cores": 0.12, "rss_mb": None, "cpu_ms_per_face": None}


def test_window_figures_count_faces_and_reused_labels_per_second():
    before = counts(100, 90, faces=300, labels=300) | {"reused": 50}
    after = counts(500, 490, faces=10_300, labels=10_300) | {"reused": 8_050}
    case = classroom.window_figures(8, 5.0, 10.0, before, after, [1.0])
    assert case["faces_per_s"] == 1000.0 and case["reused_per_s"] == 800.0
    # Counts from a pipeline without the counter: nothing reused.
    assert classroom.window_figures(8, 5.0, 10.0, counts(0, 0), counts(50, 50),
                                    [1.0])["reused_per_s"] == 0.0


def test_frames_counts_read_the_accounting_leniently():
    stats = {"frames": {"in": 5, "processed": 4, "dropped": {"cap": 1}, "pending": 0}}
    assert classroom.frames_counts(stats, reused=3) == {
        "in": 5, "processed": 4, "dropped": {"cap": 1}, "pending": 0, "faces": 0,
        "labels": 0, "reused": 3}


def test_reused_labels_come_from_the_stats_hash(r):
    from moodstream import keys

    assert classroom.reused_labels(r) == 0
    r.hset(keys.STATS, "labels:reused", 42)
    assert classroom.reused_labels(r) == 42


def test_the_results_keep_the_mix_where_earlier_runs_had_it():
    mix, dense = {"case": {"cameras": 8}}, {"case": {"cameras": 12}}
    assert classroom.classroom_results({"5": mix, "25": dense}) == {
        "classroom": mix, "classroom_faces": {"25": dense}}
    assert classroom.classroom_results({"5": {"error": "up exited"}}) == {
        "classroom_error": "up exited"}
    assert classroom.classroom_results({"1": mix}) == {"classroom_faces": {"1": mix}}


@pytest.mark.slow
def test_a_tiny_real_dense_run_finds_the_classroom(tmp_path):
    """One camera of the ~25-face scene through a real `moodstream up`, as shipped: the
    detectors find about 25 faces a frame."""
    need(MEDIA)
    case = classroom.run_case(tmp_path, cameras=1, detectors=1, warmup=2.0, seconds=4.0,
                              scenes=classroom.WORKLOADS["25"].scenes)
    assert case["faces_per_frame"] is not None and case["faces_per_frame"] >= 23
    assert case["faces_per_s"] > 0 and case["per_camera"]["cpu_ms_per_face"] > 0
