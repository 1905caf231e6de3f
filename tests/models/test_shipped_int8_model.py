"""The shipped models/emotion-int8.onnx, the classifier's default: the float model's contract,
and its accuracy floors on the real FER-2013 PrivateTest (docs/model.md)."""

import numpy as np
import pytest

from moodstream.models.quantize import MAX_ACCURACY_DROP, MIN_CLASS_RECALL

from .conftest import REPO_ROOT, SHARED_NPZ, SHIPPED_MODEL

SHIPPED_INT8 = REPO_ROOT / "models" / "emotion-int8.onnx"

ort = pytest.importorskip("onnxruntime")


@pytest.fixture(scope="module")
def sessions():
    if not SHIPPED_INT8.exists():
        pytest.skip(f"{SHIPPED_INT8} not built yet (moodstream quantize)")
    return tuple(ort.InferenceSession(str(p), providers=["CPUExecutionProvider"])
                 for p in (SHIPPED_MODEL, SHIPPED_INT8))


def test_the_int8_model_is_the_float_one_quantized(sessions):
    f, q = sessions
    fmeta, qmeta = f.get_modelmeta().custom_metadata_map, q.get_modelmeta().custom_metadata_map
    assert qmeta["precision"] == "int8"
    # Quantized from the shipped float model, not from an older one; its mirror pass runs
    # only for the faces the network is unsure of (models/adaptive_mirror.py).
    for key in ("recipe", "exported_at", "class_weights", "input_height", "scale"):
        assert qmeta[key] == fmeta[key], key
    assert fmeta["tta"] == "flip" and qmeta["tta"] == "adaptive"
    assert 0.0 < float(qmeta["tta_mirrored_share"]) < 0.6
    assert qmeta["float_privatetest_accuracy"] == fmeta["privatetest_accuracy"]
    assert [(i.name, i.shape) for i in q.get_inputs()] == [(i.name, i.shape)
                                                           for i in f.get_inputs()]
    assert SHIPPED_INT8.stat().st_size < 0.6 * SHIPPED_MODEL.stat().st_size


def test_the_default_settings_pick_the_int8_model(monkeypatch):
    from moodstream.config import ClassifierSettings

    monkeypatch.delenv("MOODSTREAM_MODEL_PATH", raising=False)
    monkeypatch.delenv("MOODSTREAM_CLASSIFIER_PRECISION", raising=False)
    assert ClassifierSettings().model_path.resolve() == SHIPPED_INT8.resolve()
    assert ClassifierSettings(precision="float").model_path.resolve() == SHIPPED_MODEL.resolve()


@pytest.mark.slow
def test_shipped_int8_privatetest_floors(sessions):
    if not SHARED_NPZ.exists():
        pytest.skip(f"FER-2013 not available at {SHARED_NPZ} (../shared absent)")
    from moodstream.models.evaluate import evaluate

    int8 = evaluate(SHIPPED_INT8, data=SHARED_NPZ, timing=False)
    flt = evaluate(SHIPPED_MODEL, data=SHARED_NPZ, timing=False)
    assert int8["accuracy"] >= flt["accuracy"] - MAX_ACCURACY_DROP
    assert min(int8["per_class_recall"].values()) >= MIN_CLASS_RECALL, int8["per_class_recall"]
    assert int8["accuracy"] == pytest.approx(
        float(sessions[1].get_modelmeta().custom_metadata_map["privatetest_accuracy"]),
        abs=5e-4)


@pytest.mark.slow
def test_shipped_int8_labels_the_faces_as_the_float_model_does(sessions):
    if not SHARED_NPZ.exists():
        pytest.skip(f"FER-2013 not available at {SHARED_NPZ} (../shared absent)")
    from moodstream.models.data import load_split, normalise
    from moodstream.models.evaluate import predict

    x, _ = load_split("test", 48, SHARED_NPZ)
    x = normalise(x)
    pf, pq = (predict(s, x, 256) for s in sessions)  # as the classifier runs each
    assert np.mean(pf.argmax(1) == pq.argmax(1)) >= 0.95  # 97% measured
    assert np.abs(pf - pq).mean() < 0.02
