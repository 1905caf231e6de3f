import subprocess
import sys

import numpy as np
import pytest

from moodstream.config import load_settings
from moodstream.contract import CLASSES, FaceSet, LabelSet
from moodstream.detection.emotion_model import EmotionModel, ModelError
from moodstream.detection.label_reuse import LabelReuse
from moodstream.detection.labelling import label_frames


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


def faces(camera: str, seq: int, ts: float, crops: list[np.ndarray], tracks: list[int]):
    n = len(crops)
    return FaceSet(camera, seq, ts, np.tile([[0, 0, 9, 9]], (n, 1)).astype(np.int32),
                   np.full(n, 0.99, np.float32), np.array(tracks, np.int64),
                   np.stack(crops) if n else np.zeros((0, 0, 0), np.uint8))


def test_one_labels_entry_per_frame_and_frames_without_faces_pass_through(model):
    crop = np.full((model.height, model.width), 128, np.uint8)
    frames = [faces("a", 1, 1.0, [crop, crop + 20], [1, 2]), faces("b", 7, 2.0, [], [])]
    batch = label_frames(model, LabelReuse(0.4, 6.0), frames, maxlen=100)
    assert batch.counters == {"labels:in": 2, "labels:faces": 2, "labels:classified": 2,
                              "labels:reused": 0}
    labels = [LabelSet.decode(out.fields) for out in batch.outputs]
    assert [(f.camera, f.count) for f in labels] == [("a", 2), ("b", 0)]
    assert set(labels[0].labels) <= set(CLASSES) and labels[0].fresh.all()


def test_a_tracked_face_is_classified_again_only_when_it_can_have_changed(model):
    rng = np.random.default_rng(1)
    crop = rng.integers(40, 200, (model.height, model.width), dtype=np.uint8)
    reuse = LabelReuse(max_age_s=0.4, change_level=6.0)
    first = label_frames(model, reuse, [faces("a", 1, 10.0, [crop], [7])], 100)
    assert first.counters["labels:classified"] == 1
    # 200 ms later, the same crop with a little noise: it carries the probabilities.
    noisy = np.clip(crop + rng.integers(-3, 4, crop.shape), 0, 255).astype(np.uint8)
    same = label_frames(model, reuse, [faces("a", 2, 10.2, [noisy], [7])], 100)
    assert same.counters["labels:reused"] == 1
    kept = LabelSet.decode(same.outputs[0].fields)
    assert not kept.fresh[0]
    assert kept.probs[0] == pytest.approx(LabelSet.decode(first.outputs[0].fields).probs[0],
                                          abs=1e-4)
    # Another track, a changed crop, an old classification: each is classified.
    changed = crop.copy()
    changed[crop.shape[0] // 2:] = 255 - changed[crop.shape[0] // 2:]
    again = label_frames(model, reuse, [faces("a", 3, 10.3, [noisy], [8]),
                                        faces("a", 4, 10.3, [changed], [7]),
                                        faces("b", 5, 10.3, [noisy], [7])], 100)
    assert again.counters["labels:classified"] == 3
    old = label_frames(model, reuse, [faces("a", 6, 10.75, [noisy], [8])], 100)
    assert old.counters["labels:classified"] == 1, "400 ms after its last classification"
    close = faces("a", 7, 10.8, [noisy], [8])
    close.boxes[:] = (0, 0, 90, 120)  # a close face (a driver): classified on every frame
    assert label_frames(model, reuse, [close], 100).counters["labels:classified"] == 1
    every = LabelReuse(max_age_s=0, change_level=6.0)  # reuse off
    for seq in range(3):
        out = label_frames(model, every, [faces("a", seq, 20 + seq * 0.1, [crop], [7])], 100)
        assert out.counters["labels:classified"] == 1


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
