"""The console command on an install without the training extras (no TensorFlow)."""

import json
import subprocess
import sys

from tests.conftest import REPO

# Runs `moodstream` with TensorFlow, Keras, tf2onnx and mtcnn made unimportable, as on a
# worker machine that installed `pip install moodstream` without `[train]`.
WITHOUT_TRAINING_EXTRAS = """
import sys
class Missing:
    def find_spec(self, name, path=None, target=None):
        if name.split(".")[0] in {"tensorflow", "keras", "tf2onnx", "mtcnn"}:
            raise ModuleNotFoundError(f"No module named {name!r}", name=name)
sys.meta_path.insert(0, Missing())
from moodstream.cli import main
sys.exit(main(sys.argv[1:]))
"""


def moodstream_without_tensorflow(*args: str) -> subprocess.CompletedProcess:
    return subprocess.run([sys.executable, "-c", WITHOUT_TRAINING_EXTRAS, *args], cwd=REPO,
                          capture_output=True, text=True, timeout=120)


def test_the_onnx_detector_needs_no_training_extras(media):
    done = moodstream_without_tensorflow("detect", "--json", str(media / "fer_justin.jpg"))
    assert done.returncode == 0, done.stderr
    (image,) = json.loads(done.stdout)
    assert len(image["faces"]) == 1


def test_a_command_that_needs_tensorflow_says_how_to_get_it(media):
    done = moodstream_without_tensorflow("detect", "--detector", "mtcnn",
                                         str(media / "fer_justin.jpg"))
    assert done.returncode == 2
    assert "pip install 'moodstream[train]'" in done.stderr and "Traceback" not in done.stderr


def test_stats_without_redis_is_a_clear_message_without_the_password():
    done = subprocess.run([sys.executable, "-m", "moodstream.cli", "stats", "--redis-url",
                           "redis://:hunter2@127.0.0.1:1/0"], cwd=REPO, capture_output=True,
                          text=True, timeout=60)
    assert done.returncode == 2 and "cannot be read" in done.stderr
    assert "Traceback" not in done.stderr and "hunter2" not in done.stderr
