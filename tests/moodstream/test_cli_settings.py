"""The CLI loads only the invoked command's module; settings come from one object."""

from __future__ import annotations

import os
import subprocess
import sys

import pytest

from moodstream.config import load_settings, unknown_variables
from tests.conftest import REPO

SERVICE_MODULES = ("moodstream.workers.classifier", "moodstream.workers.detector",
                   "moodstream.workers.aggregator", "moodstream.dashboard.app",
                   "moodstream.bulk.jobs", "moodstream.ingest.service",
                   "moodstream.models.cli", "moodstream.bench.cli")


def loaded_by(argv: list[str]) -> set[str]:
    code = ("import sys\nfrom moodstream.cli import main\n"
            f"try:\n    main({argv!r})\nexcept SystemExit:\n    pass\n"
            "print(' '.join(sorted(sys.modules)))")
    out = subprocess.run([sys.executable, "-c", code], cwd=REPO, capture_output=True,
                         text=True, check=True).stdout.split()
    return set(out)


@pytest.mark.parametrize("command, module, absent", [
    ("classifier", "moodstream.workers.classifier",
     ("flask", "tensorflow", "moodstream.workers.detector", "moodstream.workers.aggregator",
      "moodstream.dashboard.app", "moodstream.bulk.jobs", "moodstream.models.cli")),
    # The app itself is built in gunicorn's worker process (moodstream.dashboard.server).
    ("dashboard", "moodstream.dashboard.service",
     ("tensorflow", "onnxruntime", "flask", "moodstream.workers.classifier",
      "moodstream.workers.detector", "moodstream.workers.aggregator", "moodstream.bench.cli")),
    ("detect", "moodstream.detection.cli",
     ("flask", "tensorflow", "moodstream.workers.classifier", "moodstream.dashboard.app",
      "moodstream.bulk.jobs")),
])
def test_a_command_loads_what_it_runs_and_nothing_else(command, module, absent):
    loaded = loaded_by([command, "--help"])
    assert module in loaded
    assert not set(absent) & loaded, set(absent) & loaded


def test_the_listing_loads_no_service():
    assert not set(SERVICE_MODULES) & loaded_by(["--help"])


def test_shared_options_override_the_settings():
    from moodstream.cli import COMMANDS, apply_shared, command_parser
    from moodstream.workers import classifier

    parser = command_parser("classifier", COMMANDS["classifier"], classifier)
    args = parser.parse_args(["--redis-url", "redis://elsewhere:6380/2", "--metrics-port", "9"])
    settings = apply_shared(load_settings(), args)
    assert settings.redis_url == "redis://elsewhere:6380/2" and settings.metrics_port == 9


def test_nested_groups_read_flat_variables(monkeypatch):
    monkeypatch.setenv("MOODSTREAM_BULK_MAX_UPLOAD_MB", "0.5")
    monkeypatch.setenv("MOODSTREAM_DETECTOR", "haar")
    monkeypatch.setenv("MOODSTREAM_DETECTOR_MIN_FACE", "64")
    monkeypatch.setenv("REDIS_URL", "redis://r:1/0")
    s = load_settings()
    assert (s.bulk.max_upload_mb, s.detector.name, s.detector.min_face) == (0.5, "haar", 64)
    assert s.redis_url == "redis://r:1/0"


def test_unknown_variables_are_reported_and_refused_when_strict(monkeypatch, caplog):
    monkeypatch.setenv("MOODSTREAM_DETECTOR_MINFACE", "64")  # a typo
    assert unknown_variables() == ["MOODSTREAM_DETECTOR_MINFACE"]
    with caplog.at_level("WARNING"):
        load_settings()
    assert "did you mean MOODSTREAM_DETECTOR_MIN_FACE" in caplog.text
    monkeypatch.setenv("MOODSTREAM_STRICT", "1")
    with pytest.raises(SystemExit, match="MOODSTREAM_DETECTOR_MINFACE"):
        load_settings()


def test_the_classifier_precision_picks_the_shipped_model(monkeypatch, tmp_path):
    from moodstream.cli import COMMANDS, command_parser
    from moodstream.workers import classifier

    monkeypatch.delenv("MOODSTREAM_MODEL_PATH", raising=False)
    assert load_settings().classifier.model_path.name == "emotion-int8.onnx"
    monkeypatch.setenv("MOODSTREAM_CLASSIFIER_PRECISION", "float")
    c = load_settings().classifier
    assert (c.precision, c.model_path.name) == ("float", "emotion.onnx")
    # A command's --precision wins over the setting; a model file named by path wins over both.
    parser = command_parser("classifier", COMMANDS["classifier"], classifier)
    assert c.model_for(parser.parse_args(["--precision", "int8"]).precision).name == \
        "emotion-int8.onnx"
    assert c.model_for(parser.parse_args([]).precision).name == "emotion.onnx"
    monkeypatch.setenv("MOODSTREAM_MODEL_PATH", str(tmp_path / "mine.onnx"))
    assert load_settings().classifier.model_path == tmp_path / "mine.onnx"


def test_a_bad_setting_stops_with_the_variables_name(monkeypatch):
    monkeypatch.setenv("MOODSTREAM_CLASSIFIER_PRECISION", "fp16")
    with pytest.raises(SystemExit, match="MOODSTREAM_CLASSIFIER_PRECISION: Input should be"):
        load_settings()
    done = subprocess.run([sys.executable, "-m", "moodstream.cli", "stats"], cwd=REPO,
                          capture_output=True, text=True, timeout=60,
                          env={**os.environ,
                               "MOODSTREAM_INGEST_CAMERAS_PER_PROCESS": "0"})
    assert done.returncode != 0 and "Traceback" not in done.stderr
    assert "MOODSTREAM_INGEST_CAMERAS_PER_PROCESS" in done.stderr
