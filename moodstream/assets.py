"""Files shipped inside the installed package, found with importlib.resources.

The same calls work from a checkout (editable install) and from a wheel, and from any working
directory: nothing here is relative to the repository or to the current directory.
"""

from __future__ import annotations

from importlib import resources
from pathlib import Path

# Socket.IO and Chart.js come from npm; scripts/setup.sh (and the Dockerfile) copy these two
# files into the package, so that a wheel built after setup serves them by itself.
VENDOR_FILES = {
    "socket.io.min.js": ("socket.io-client", "dist/socket.io.min.js"),
    "chart.umd.min.js": ("chart.js", "dist/chart.umd.min.js"),
}


def path(package: str, *parts: str) -> Path:
    """A packaged file as a filesystem path (wheels install unzipped, so it is a real file)."""
    return Path(str(resources.files(package).joinpath(*parts)))


# The shipped emotion model at each precision (docs/model.md): the same network and metadata.
EMOTION_MODELS = {"float": "emotion.onnx", "int8": "emotion-int8.onnx"}


def emotion_model(precision: str = "float") -> Path:
    return path("moodstream.models", EMOTION_MODELS[precision])


def mtcnn_dir() -> Path:
    return path("moodstream.models", "mtcnn")


def dashboard_dir() -> Path:
    return path("moodstream.dashboard")


def vendor_dir() -> Path:
    return path("moodstream.dashboard", "static", "vendor")


def demo_image() -> Path:
    """The shipped demo's face: Grace Hopper's public-domain portrait from matplotlib."""
    return path("matplotlib", "mpl-data", "sample_data", "grace_hopper.jpg")
