"""The contract of the shipped models/emotion.onnx, checked against the real FER-2013 data."""

import numpy as np
import pytest

from .conftest import SHARED_NPZ, SHIPPED_MODEL

# Measured PrivateTest accuracy of the shipped model is recorded in docs/model.md; the
# threshold sits just below it so a regression (or a wrong preprocessing) fails loudly.
MIN_PRIVATETEST_ACCURACY = 0.68  # the shipped model scores 68.38%
MIN_CLASS_RECALL = 0.45  # no expression starved

ort = pytest.importorskip("onnxruntime")


def _graph():
    import onnx

    return onnx.load(str(SHIPPED_MODEL)).graph


@pytest.fixture(scope="module")
def session():
    if not SHIPPED_MODEL.exists():
        pytest.skip(f"{SHIPPED_MODEL} not built yet")
    return ort.InferenceSession(str(SHIPPED_MODEL), providers=["CPUExecutionProvider"])


def test_shipped_metadata_contract(session):
    meta = session.get_modelmeta().custom_metadata_map
    assert meta["classes"].split(",") == ["angry", "disgust", "fear", "happy", "sad",
                                          "surprise", "neutral"]
    h, w = int(meta["input_height"]), int(meta["input_width"])
    assert h == w and h in (48, 64)  # FER-2013's own 48 px, or the paper's 64 px
    assert float(meta["scale"]) == pytest.approx(1 / 127.5)
    assert float(meta["offset"]) == pytest.approx(-1.0)
    for key in ("recipe", "params", "privatetest_accuracy", "valtest_accuracy"):
        assert meta[key]
    assert meta["tta"] in ("flip", "none")  # mirror averaging inside the graph, or none
    # The Training split is sharp now: no input blur in the shipped graph (docs/model.md).
    assert float(meta.get("input_blur_sigma", 0)) == 0
    assert not any("blur" in node.name.lower() for node in _graph().node)
    assert int(meta["params"]) <= 250_000
    assert SHIPPED_MODEL.stat().st_size <= 1024 * 1024
    inp = session.get_inputs()[0]
    assert inp.type == "tensor(float)" and inp.shape[1:] == [h, w, 1]
    p = session.run(None, {inp.name: np.zeros((3, h, w, 1), np.float32)})[0]
    assert p.shape == (3, 7)
    np.testing.assert_allclose(p.sum(axis=1), 1.0, atol=1e-5)


@pytest.mark.slow
def test_shipped_privatetest_accuracy(session):
    if not SHARED_NPZ.exists():
        pytest.skip(f"FER-2013 not available at {SHARED_NPZ} (../shared absent)")
    from moodstream.models.evaluate import evaluate

    rep = evaluate(SHIPPED_MODEL, data=SHARED_NPZ, timing=False)
    assert rep["accuracy"] >= MIN_PRIVATETEST_ACCURACY
    assert min(rep["per_class_recall"].values()) >= MIN_CLASS_RECALL, rep["per_class_recall"]
    assert rep["accuracy"] == pytest.approx(
        float(session.get_modelmeta().custom_metadata_map["privatetest_accuracy"]), abs=5e-4)


@pytest.mark.slow
def test_shipped_model_reads_the_pipelines_crops_almost_as_well(session):
    """The live pipeline cuts faces by the detector's box, margin and eye alignment, not by
    FER-2013's framing. The model shipped before lost 2.5 points on the same PrivateTest faces
    re-cut that way (66.92% against 69.46%); the shipped one was trained on such crops too
    and loses 1.2 (68.12% against 69.30%)."""
    if not SHARED_NPZ.exists():
        pytest.skip(f"FER-2013 not available at {SHARED_NPZ} (../shared absent)")
    from moodstream.models.evaluate import evaluate

    rep = evaluate(SHIPPED_MODEL, data=SHARED_NPZ, timing=False, through_detector=True)
    assert rep["detected"] >= 0.8
    assert rep["accuracy_where_detected"] >= 0.67
    assert rep["accuracy_where_detected_fer_framing"] - rep["accuracy_where_detected"] <= 0.02


def test_shared_training_split_is_as_sharp_as_the_test_splits():
    """Version 1 of the shared FER-2013 had a Gaussian-blurred Training split (median
    neighbour difference 3.7 against 13.7 for the test splits), and a model trained on it
    learned blurred faces (docs/model.md). Version 2 is sharp; a regression must fail here."""
    if not SHARED_NPZ.exists():
        pytest.skip(f"FER-2013 not available at {SHARED_NPZ} (../shared absent)")

    def sharpness(x):
        return float(np.median(np.abs(np.diff(x.astype(np.float32), axis=2)).mean(axis=(1, 2))))

    with np.load(SHARED_NPZ) as d:
        train, val, test = (d[k][:3000] for k in ("x_train", "x_val", "x_test"))
    assert sharpness(val) > 10 and sharpness(test) > 10
    # Training went through a 224-px JPEG, so it is a little smoother (12.4 vs 13.7): allow 25%.
    assert sharpness(train) >= 0.75 * min(sharpness(val), sharpness(test)), (
        "the Training split is much smoother than the test splits: blurred data is back")
