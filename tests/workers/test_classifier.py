import subprocess
import sys

import numpy as np
import pytest

from moodstream.config import load_settings
from moodstream.contract import CLASSES, Face
from moodstream.workers.classifier import label_faces
from moodstream.workers.emotion_model import EmotionModel, ModelError


def test_the_classifier_process_never_imports_tensorflow():
    code = ("import sys; from moodstream.cli import main; sys.argv = ['x', 'classifier', '-h']\n"
            "try: main()\nexcept SystemExit: pass\n"
            "sys.exit(1 if 'tensorflow' in sys.modules else 0)")
    assert subprocess.run([sys.executable, "-c", code]).returncode == 0


@pytest.fixture
def model():
    path = load_settings().classifier.model_path
    if not path.exists():
        pytest.skip(f"no model at {path}")
    return EmotionModel(path)


def test_labels_follow_the_faces_and_markers_pass_through(model):
    crop = np.full((model.height, model.width), 128, np.uint8)
    faces = [Face("a", 1, 1.0, 0, 2, (0, 0, 9, 9), 0.99, crop),
             Face("b", 7, 2.0, -1, 0),
             Face("a", 1, 1.0, 1, 2, (5, 5, 9, 9), 0.98, crop[:20, :30])]  # resized on the way
    batch = label_faces(model, faces, maxlen=100)
    assert batch.counters == {"labels:in": 3, "labels:faces": 2}
    labels = [out.fields for out in batch.outputs]
    assert [f["camera"] for f in labels] == ["a", "b", "a"]
    assert labels[0]["label"] in CLASSES and "probs" not in labels[1]


def test_a_model_without_the_metadata_contract_is_refused(tmp_path):
    import onnx
    from onnx import TensorProto, helper
    from onnxruntime.capi.onnxruntime_pybind11_state import InvalidProtobuf

    bare = tmp_path / "bare.onnx"  # a valid ONNX model, but none of the contract's metadata
    graph = helper.make_graph([helper.make_node("Identity", ["x"], ["y"])], "bare",
                              [helper.make_tensor_value_info("x", TensorProto.FLOAT, [1, 7])],
                              [helper.make_tensor_value_info("y", TensorProto.FLOAT, [1, 7])])
    onnx.save(helper.make_model(graph, opset_imports=[helper.make_opsetid("", 13)]), bare)
    with pytest.raises(ModelError, match="lacks ONNX metadata"):
        EmotionModel(bare)
    bogus = tmp_path / "bogus.onnx"
    bogus.write_bytes(b"not onnx")
    with pytest.raises(InvalidProtobuf):
        EmotionModel(bogus)
    with pytest.raises(ModelError, match="not found"):
        EmotionModel(tmp_path / "absent.onnx")
