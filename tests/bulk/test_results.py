"""Bulk analysis without models: planning, frame sampling, chunked decoding, outputs."""

from __future__ import annotations

import json

import cv2
import numpy as np
import pytest

from moodstream.bulk import jobs as bulk_jobs
from moodstream.bulk.results import (
    CSV_COLUMNS,
    Group,
    read_csv,
    summary,
    timeline,
    unique_name,
    write_outputs,
)
from moodstream.config import load_settings
from moodstream.contract import CLASSES
from tests.image_bombs import radiance_bomb

VIDEO_FPS, VIDEO_FRAMES = 29.97, 464  # fer_woman2.mp4, per the media README


def probs(name: str, p: float = 0.8) -> list[float]:
    out = [(1 - p) / 6] * 7
    out[CLASSES.index(name)] = p
    return out


def video_group() -> Group:
    g = Group("clip", "video", "clip.mp4", files=["clip.mp4"], frames=6, frames_with_faces=4,
              fps=30.0, sample_fps=2.0, duration_s=2.5)
    g.add_rows("clip.mp4", [[0, 0.0, 10, 20, 30, 40, *probs("happy")],
                            [15, 0.5, 12, 20, 30, 40, *probs("happy")],
                            [15, 0.5, 100, 20, 30, 40, *probs("sad")],
                            [45, 1.5, 11, 20, 30, 40, *probs("angry")]])
    return g


def test_sampling_is_global_so_chunks_match_one_pass():
    full = bulk_jobs.sample_indices(0, VIDEO_FRAMES, VIDEO_FPS, 5)
    assert len(full) == 78 and full[:4] == [0, 6, 12, 18]
    for seconds in (1, 3.3, 5, 30):
        chunks = bulk_jobs.plan_chunks(VIDEO_FRAMES, VIDEO_FPS, seconds)
        assert chunks[0][0] == 0 and chunks[-1][1] == VIDEO_FRAMES
        assert all(a[1] == b[0] for a, b in zip(chunks, chunks[1:], strict=False))
        joined = [i for a, b in chunks for i in bulk_jobs.sample_indices(a, b, VIDEO_FPS, 5)]
        assert joined == full
    assert bulk_jobs.sample_indices(10, 20, 30, 0) == list(range(10, 20)), "0 = every frame"
    assert bulk_jobs.sample_indices(0, 5, 10, 50) == list(range(5)), "above native: all"
    assert bulk_jobs.plan_chunks(0, 25, 30) == [(0, 0)], "unknown length: one job"


def test_chunked_decoding_gives_the_same_pixels_as_one_pass(media):
    video = str(media / "fer_woman2.mp4")
    wanted = bulk_jobs.sample_indices(0, 200, VIDEO_FPS, 5)
    one_pass = dict(bulk_jobs.read_frames(video, 0, 200, wanted))
    chunked = {}
    for start, end in bulk_jobs.plan_chunks(200, VIDEO_FPS, 2.5):
        chunked.update(bulk_jobs.read_frames(video, start, end,
                                             bulk_jobs.sample_indices(start, end, VIDEO_FPS, 5)))
    assert sorted(one_pass) == sorted(chunked) == wanted
    assert all(np.array_equal(one_pass[i], chunked[i]) for i in wanted)


def test_plan_groups_inputs_and_refuses_bad_ones_up_front(tmp_path, media):
    photos = tmp_path / "photos"
    (photos / "sub").mkdir(parents=True)
    for name in ("fer_justin.jpg", "mtcnn_no-faces.jpg"):
        (photos / name).write_bytes((media / name).read_bytes())
    (photos / "sub" / "x.png").write_bytes(b"not really a png")
    (photos / "README.txt").write_text("ignored")
    (photos / ".hidden.jpg").write_text("ignored")
    (tmp_path / "empty").mkdir()
    notes = tmp_path / "notes.mp4"
    notes.write_text("this is not a video")
    other = tmp_path / "notes.txt"
    other.write_text("nor is this")
    big = tmp_path / "big.jpg"
    big.write_bytes(b"\xff" * 60_000)
    video = str(media / "fer_woman2.mp4")
    plan = bulk_jobs.plan([str(photos), str(tmp_path / "empty"), str(notes), str(other),
                           str(big), str(tmp_path / "missing.mp4")],
                          fps=5, chunk_seconds=5, max_bytes=50 * 1024)
    groups = plan.groups
    assert list(groups) == ["photos", "photos_sub", "empty", "notes", "notes-2", "big",
                            "missing"]
    assert groups["photos"].kind == "images" and len(groups["photos"].files) == 2
    assert plan.ignored == [str(photos / "README.txt")]
    errors = {name: g.errors[0]["error"] for name, g in groups.items() if g.errors}
    assert "no images or videos" in errors["empty"]
    assert "cannot open as a video" in errors["notes"]
    assert "not an image or video file" in errors["notes-2"]
    assert errors["big"] == "file is 59 kB, above the size limit of 50 kB"
    assert "no such file" in errors["missing"]
    assert "photos" not in errors
    # Not a PNG whatever its name says: refused from its first bytes, before any job.
    assert errors["photos_sub"].startswith("not an accepted image format")
    assert [t.kind for t in plan.tasks] == ["image"] * 2
    plan = bulk_jobs.plan([video], fps=5, chunk_seconds=5)
    video_tasks = [t for t in plan.tasks if t.kind == "video"]
    assert [(t.start, t.end) for t in video_tasks] == [(0, 150), (150, 300), (300, 450),
                                                       (450, 464)]
    assert sum(t.total for t in video_tasks) == 78
    assert plan.groups["fer_woman2"].duration_s == pytest.approx(15.48, abs=0.01)
    small = bulk_jobs.plan([video], max_bytes=2**20)
    assert not small.tasks and "1.8 MB, above the size limit of 1.0 MB" in \
        small.groups["fer_woman2"].errors[0]["error"]


def test_csv_has_one_row_per_face_with_label_and_probabilities(tmp_path):
    paths = write_outputs(tmp_path, video_group())
    rows = read_csv(paths["csv"])
    assert tuple(rows[0]) == CSV_COLUMNS == ("file", "frame", "time_s", "x", "y", "w", "h",
                                             "label", *CLASSES)
    assert [(r["frame"], r["x"], r["label"]) for r in rows] == [
        ("0", "10", "happy"), ("15", "12", "happy"), ("15", "100", "sad"), ("45", "11", "angry")]
    assert rows[1]["time_s"] == "0.500" and float(rows[0]["happy"]) == pytest.approx(0.8)
    assert paths["png"].read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
    data = json.loads(paths["json"].read_text())
    assert data["faces"] == 4 and data["ok"] and data["dominant"] == "happy"


def test_summary_distribution_and_per_second_timeline():
    data = summary(video_group())
    assert data["counts"]["happy"] == 2 and data["distribution"]["happy"] == 0.5
    assert sum(data["distribution"].values()) == pytest.approx(1)
    assert sum(data["mean_probabilities"].values()) == pytest.approx(1)
    line = data["timeline"]
    assert [t["second"] for t in line] == [0, 1, 2], "2.5 s of video: three seconds"
    assert line[0]["faces"] == 3 and line[0]["shares"]["happy"] == pytest.approx(2 / 3)
    assert line[1]["dominant"] == "angry" and line[2]["faces"] == 0
    assert line[2]["dominant"] is None
    assert timeline([], None) == []


def test_image_set_summary_counts_faces_per_file_and_keeps_errors(tmp_path):
    g = Group("photos", "images", "photos", files=["a.jpg", "b.jpg", "c.jpg"], frames=2,
              frames_with_faces=1)
    g.add_rows("a.jpg", [[0, None, 1, 2, 3, 4, *probs("fear")]])
    g.add_error("c.jpg", "not a readable image")
    paths = write_outputs(tmp_path, g)
    data = json.loads(paths["json"].read_text())
    assert data["per_file"] == {"a.jpg": 1, "b.jpg": 0, "c.jpg": 0}
    assert data["errors"] == [{"file": "c.jpg", "error": "not a readable image"}]
    assert not data["ok"] and "timeline" not in data
    assert read_csv(paths["csv"])[0]["time_s"] == ""
    assert paths["png"].stat().st_size > 1000


def test_unique_names_are_safe_and_distinct():
    taken: set[str] = set()
    assert unique_name("my clip (1)", taken) == "my_clip__1"
    assert unique_name("my clip (1)", taken) == "my_clip__1-2"
    assert unique_name("../..", taken) == "input"


def test_unreadable_image_job_reports_without_loading_models(tmp_path):
    broken = tmp_path / "broken.jpg"
    broken.write_bytes(b"\xff\xd8\xff\xe0 truncated")
    result = bulk_jobs.analyze_image(str(broken), bulk_jobs.default_options(load_settings()))
    assert result["frames"] == 0
    assert "not a readable image (corrupt or truncated JPEG" in result["errors"][0]
    assert "cannot open" in str(pytest.raises(bulk_jobs.InputError, lambda: list(
        bulk_jobs.read_frames(str(tmp_path / "none.mp4"), 0, 10, [0]))).value)


def test_an_image_that_fools_pillow_is_refused_by_the_job_itself(tmp_path):
    """The job checks again what planning checked: a file staged or swapped after planning
    is refused from its own bytes, before OpenCV decodes gigabytes of it."""
    bomb = tmp_path / "classroom.png"
    bomb.write_bytes(radiance_bomb())
    result = bulk_jobs.analyze_image(str(bomb), bulk_jobs.default_options(load_settings()))
    assert result["frames"] == 0
    assert "not an accepted image format" in result["errors"][0]


def test_a_generated_video_decodes_in_chunks(tmp_path):
    path = str(tmp_path / "gen.avi")
    writer = cv2.VideoWriter(path, cv2.VideoWriter_fourcc(*"MJPG"), 10, (64, 48))
    for i in range(25):
        writer.write(np.full((48, 64, 3), i * 10, np.uint8))
    writer.release()
    count, fps = bulk_jobs.probe_video(path)
    assert (count, fps) == (25, 10)
    got = [i for a, b in bulk_jobs.plan_chunks(count, fps, 1)
           for i, _ in bulk_jobs.read_frames(path, a, b, bulk_jobs.sample_indices(a, b, fps, 5))]
    assert got == list(range(0, 25, 2))
