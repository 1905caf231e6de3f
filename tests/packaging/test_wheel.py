"""The wheel: one top-level package with its assets, working from any directory without
TensorFlow or the checkout (no ../shared, no node_modules)."""

from __future__ import annotations

import json
import os
import shutil
import signal
import subprocess
import sys
import urllib.request
import zipfile
from pathlib import Path

import pytest

from tests.conftest import REPO, free_port, wait_for

pytestmark = pytest.mark.slow
VENDOR = REPO / "dashboard" / "static" / "vendor"


@pytest.fixture(scope="module")
def wheel(tmp_path_factory) -> Path:
    out = tmp_path_factory.mktemp("wheel")
    # From a copy of the tracked files plus what setup puts into the package (the npm
    # libraries): setuptools' build/ folder in the checkout could hold stale modules.
    src = tmp_path_factory.mktemp("src")
    tracked = subprocess.run(["git", "ls-files", "-co", "--exclude-standard"], cwd=REPO,
                             capture_output=True, text=True, check=True).stdout.split()
    for rel in [*tracked, *(str(p.relative_to(REPO)) for p in VENDOR.iterdir())]:
        if (REPO / rel).is_file():
            (src / rel).parent.mkdir(parents=True, exist_ok=True)
            shutil.copy2(REPO / rel, src / rel)
    subprocess.run([sys.executable, "-m", "pip", "wheel", "--no-deps", "--no-build-isolation",
                    "-q", "-w", str(out), str(src)], check=True, cwd=out)
    return next(out.glob("moodstream-*.whl"))


@pytest.fixture(scope="module")
def fresh_venv(wheel, tmp_path_factory) -> Path:
    """A new venv holding only the wheel; its dependencies are borrowed from the dev venv's
    site-packages as a plain path (that venv's editable-install hook is not run), with
    TensorFlow made unimportable."""
    venv = tmp_path_factory.mktemp("venv") / "v"
    subprocess.run([sys.executable, "-m", "venv", "--without-pip", str(venv)], check=True)
    subprocess.run([sys.executable, "-m", "pip", "--python", str(venv / "bin/python"),
                    "install", "-q", "--no-deps", str(wheel)], check=True)
    site = next((venv / "lib").glob("python3*/site-packages"))
    dev_site = next(p for p in map(Path, sys.path) if p.name == "site-packages")
    (site / "zz_borrowed.pth").write_text(
        f"{dev_site}\nimport sys; sys.modules.update(tensorflow=None, keras=None)\n")
    return venv


def test_the_wheel_holds_one_package_and_its_assets(wheel):
    names = zipfile.ZipFile(wheel).namelist()
    top = {n.split("/")[0] for n in names}
    assert top == {"moodstream", wheel.name.split("-py3")[0] + ".dist-info"}, top
    for asset in ("moodstream/models/emotion.onnx", "moodstream/models/emotion-int8.onnx",
                  "moodstream/models/mtcnn/pnet.onnx",
                  "moodstream/dashboard/static/vendor/socket.io.min.js",
                  "moodstream/dashboard/static/vendor/chart.umd.min.js",
                  "moodstream/dashboard/templates/camera.html",
                  "moodstream/history/migrations/env.py",
                  "moodstream/history/migrations/versions/0001_history_tables.py"):
        assert asset in names, asset


def run_in(venv: Path, cwd: Path, *args: str, **kw):
    env = {k: v for k, v in os.environ.items() if not k.startswith(("MOODSTREAM_", "REDIS_"))}
    return subprocess.run([str(venv / "bin/moodstream"), *args], cwd=cwd, env=env,
                          capture_output=True, text=True, timeout=120, **kw)


def test_detect_json_from_elsewhere_without_tensorflow(fresh_venv, tmp_path):
    code = "import moodstream, tensorflow"
    blocked = subprocess.run([str(fresh_venv / "bin/python"), "-c", code], cwd=tmp_path,
                             capture_output=True, text=True)
    assert blocked.returncode != 0 and "tensorflow" in blocked.stderr
    where = subprocess.run([str(fresh_venv / "bin/python"), "-c",
                            "import moodstream.assets as a; print(a.emotion_model())"],
                           cwd=tmp_path, capture_output=True, text=True, check=True).stdout
    assert str(fresh_venv) in where and str(REPO) not in where
    image = subprocess.run([str(fresh_venv / "bin/python"), "-c",
                            "import moodstream.assets as a; print(a.demo_image())"],
                           cwd=tmp_path, capture_output=True, text=True, check=True).stdout.strip()
    done = run_in(fresh_venv, tmp_path, "detect", "--json", image)
    assert done.returncode == 0, done.stderr
    (result,) = json.loads(done.stdout)
    assert len(result["faces"]) == 1, result


def test_up_shows_the_shipped_demo_from_the_wheel(fresh_venv, tmp_path):
    """`moodstream up` with no --source, no REDIS_URL and no ../shared: the demo camera's
    faces get labels, and the dashboard serves its npm libraries from the package."""
    port = free_port()
    log = tmp_path / "up.log"
    env = {k: v for k, v in os.environ.items() if not k.startswith(("MOODSTREAM_", "REDIS_"))}
    token = "wheel-test-token-0123456789"
    env["MOODSTREAM_TOKEN"] = token
    env["MOODSTREAM_DATA_DIR"] = str(tmp_path / "data")  # not the user's history
    with open(log, "wb") as out:
        up = subprocess.Popen([str(fresh_venv / "bin/moodstream"), "up", "--fps", "2",
                               "--port", str(port)], cwd=tmp_path, env=env, stdout=out,
                              stderr=subprocess.STDOUT, start_new_session=True)

    def get(path: str):
        request = urllib.request.Request(f"http://127.0.0.1:{port}{path}",
                                         headers={"Authorization": f"Bearer {token}"})
        try:
            with urllib.request.urlopen(request, timeout=2) as response:
                return response.status, response.read()
        except OSError:
            assert up.poll() is None, log.read_text()[-3000:]
            return None, b""

    try:
        wait_for(lambda: json.loads(get("/api/stats")[1] or b"{}").get("labels", 0) >= 3,
                 timeout=180, what="labelled faces of the shipped demo")
        status, body = get("/vendor/socket.io.min.js")
        assert status == 200 and len(body) > 10_000
        cams = json.loads(get("/api/cameras")[1])
        demo = next(c for c in cams if c["id"] == "demo")
        assert demo["status"]["state"] == "connected", demo
    finally:
        os.killpg(up.pid, signal.SIGINT)
        try:
            up.wait(60)
        except subprocess.TimeoutExpired:
            os.killpg(up.pid, signal.SIGKILL)
    assert "Traceback" not in log.read_text(), log.read_text()[-3000:]
    # The history database, made by the migrations shipped in the wheel.
    assert (tmp_path / "data" / "history.db").is_file()
