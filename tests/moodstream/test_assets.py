"""Every emotion model a setting can select ships everywhere the package goes: the checkout,
the wheel's package data and the Docker image."""

import re
import tomllib

import pytest

from moodstream import assets
from tests.conftest import REPO


@pytest.mark.parametrize("precision", sorted(assets.EMOTION_MODELS))
def test_each_selectable_emotion_model_ships(precision):
    path = assets.emotion_model(precision)
    name = assets.EMOTION_MODELS[precision]
    assert path.name == name and path.is_file()
    package_data = tomllib.loads((REPO / "pyproject.toml").read_text())[
        "tool"]["setuptools"]["package-data"]["moodstream.models"]
    assert name in package_data and name.replace(".onnx", ".json") in package_data
    copied = " ".join(line for line in re.split(r"(?<!\\)\n",
                                                (REPO / "Dockerfile").read_text())
                      if line.startswith("COPY models/"))
    assert f"models/{name}" in copied, "the Docker image would lack the model"
