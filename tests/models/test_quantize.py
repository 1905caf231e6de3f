"""INT8 quantization of the emotion model (models/quantize.py), on the shipped float graph with
a few calibration faces from the small synthetic FER-2013 fixture."""

import json
import subprocess
import sys

import numpy as np
import pytest

from moodstream.models.quantize import body_nodes, calibration_faces, quantize

from .conftest import REPO_ROOT, SHIPPED_MODEL

onnx = pytest.importorskip("onnx")
ort = pytest.importorskip("onnxruntime")


def _session(path):
    return ort.InferenceSession(str(path), providers=["CPUExecutionProvider"])


@pytest.fixture(scope="module")
def int8_model(tmp_path_factory, tiny_npz):
    out = tmp_path_factory.mktemp("int8") / "tiny-int8.onnx"
    quantize(SHIPPED_MODEL, out, calibration=32, data=tiny_npz)
    return out


def test_the_body_is_quantized_and_the_standardisation_and_head_stay_float():
    graph = onnx.load(str(SHIPPED_MODEL)).graph
    chosen = set(body_nodes(onnx.load(str(SHIPPED_MODEL))))
    by_type = {}
    for node in graph.node:
        by_type.setdefault(node.op_type, []).append(node.name)
    assert set(by_type["Conv"]) <= chosen and set(by_type["MaxPool"]) <= chosen
    assert set(by_type["Relu"]) <= chosen
    # The per-image standardisation's epsilon Add (one per mirror pass) stays float; the
    # residual Adds of the four blocks (twice: the mirror pass) are quantized.
    adds = [name for name in by_type["Add"] if name in chosen]
    assert len(adds) == 8 and not any("per_image_std" in name for name in adds)
    assert all(node.op_type in ("Conv", "Relu", "MaxPool", "Add") for node in graph.node
               if node.name in chosen)


def test_the_int8_model_keeps_the_contract_and_agrees_with_the_float_one(int8_model, tiny_npz):
    f, q = _session(SHIPPED_MODEL), _session(int8_model)
    assert [(i.name, i.shape, i.type) for i in q.get_inputs()] == \
        [(i.name, i.shape, i.type) for i in f.get_inputs()]
    assert [(o.name, o.shape) for o in q.get_outputs()] == \
        [(o.name, o.shape) for o in f.get_outputs()]
    fmeta = f.get_modelmeta().custom_metadata_map
    qmeta = q.get_modelmeta().custom_metadata_map
    for key in ("classes", "input_height", "input_width", "scale", "offset", "tta",
                "class_weights", "recipe"):
        assert qmeta[key] == fmeta[key], key
    assert qmeta["precision"] == "int8"
    assert json.loads(qmeta["quantization"])["calibration_faces"] == 32
    assert qmeta["float_privatetest_accuracy"] == fmeta["privatetest_accuracy"]
    assert 0.0 <= float(qmeta["privatetest_accuracy"]) <= 1.0  # measured on the fixture
    side = json.loads(int8_model.with_suffix(".json").read_text())
    assert side["precision"] == "int8" and side["file_bytes"] == int8_model.stat().st_size
    assert int8_model.stat().st_size < 0.7 * SHIPPED_MODEL.stat().st_size
    # Its ops are INT8: what onnxruntime runs has QuantizeLinear/DequantizeLinear pairs.
    ops = {node.op_type for node in onnx.load(str(int8_model)).graph.node}
    assert {"QuantizeLinear", "DequantizeLinear"} <= ops

    x = calibration_faces(35, (48, 48), tiny_npz, seed=1)  # faces it was not calibrated on
    name = f.get_inputs()[0].name
    pf, pq = f.run(None, {name: x})[0], q.run(None, {name: x})[0]
    assert pq.shape == (35, 7)
    np.testing.assert_allclose(pq.sum(axis=1), 1.0, atol=1e-5)
    # Noise-like fixture images have near ties (29 of 35 agree); real faces: 97% (below).
    assert np.mean(pf.argmax(1) == pq.argmax(1)) >= 0.7
    assert np.abs(pf - pq).max() < 0.1


def test_the_classifier_runtime_runs_the_int8_model(int8_model):
    from moodstream.detection.emotion_model import EmotionModel, input_size

    model = EmotionModel(int8_model)
    assert input_size(int8_model) == (model.height, model.width) == (48, 48)
    crops = np.random.default_rng(0).integers(0, 256, (5, 48, 48), dtype=np.uint8)
    assert model.predict(crops).shape == (5, 7)


def test_bad_requests_get_clear_errors(int8_model, tiny_npz, tmp_path):
    with pytest.raises(ValueError, match="already quantized"):
        quantize(int8_model, tmp_path / "twice.onnx", calibration=8, data=tiny_npz)
    with pytest.raises(ValueError, match="calibration faces must be"):
        quantize(SHIPPED_MODEL, tmp_path / "none.onnx", calibration=0, data=tiny_npz)
    with pytest.raises(ValueError, match="calibration method"):
        quantize(SHIPPED_MODEL, tmp_path / "x.onnx", method="kl", data=tiny_npz)
    with pytest.raises(FileNotFoundError, match="float model not found"):
        quantize(tmp_path / "absent.onnx", tmp_path / "x.onnx", data=tiny_npz)


def test_the_command_refuses_missing_inputs_with_a_message(tmp_path, tiny_npz):
    def run(*args):
        return subprocess.run([sys.executable, "-m", "moodstream.cli", "quantize", *args],
                              cwd=REPO_ROOT, capture_output=True, text=True, timeout=120)

    missing_model = run(str(tmp_path / "absent.onnx"), "--data", str(tiny_npz))
    assert missing_model.returncode == 2
    assert "float model not found" in missing_model.stderr
    assert "Traceback" not in missing_model.stderr
    missing_data = run(str(SHIPPED_MODEL), "--data", str(tmp_path / "absent.npz"))
    assert missing_data.returncode == 2 and "FER-2013 not found" in missing_data.stderr
    assert not (tmp_path / "absent.onnx").exists()


@pytest.mark.slow
def test_the_command_writes_the_model_and_prints_its_figures_without_tensorflow(tmp_path,
                                                                                tiny_npz):
    out = tmp_path / "cli-int8.onnx"
    argv = ["quantize", str(SHIPPED_MODEL), "--out", str(out), "--data", str(tiny_npz),
            "--calibration", "16", "--speed-batches", "3"]
    # A machine without the training extras can quantize: nothing here needs TensorFlow.
    code = (f"import sys\nfrom moodstream.cli import main\ncode = main({argv!r})\n"
            "print('tensorflow loaded' if 'tensorflow' in sys.modules else 'no tensorflow')\n"
            "sys.exit(code)")
    done = subprocess.run([sys.executable, "-c", code], cwd=REPO_ROOT, capture_output=True,
                          text=True, timeout=300)
    assert done.returncode == 0, done.stderr[-2000:]
    assert out.exists() and out.with_suffix(".json").exists()
    for line in ("PrivateTest accuracy", "recall fear", "file KiB", "int8/float", "floors",
                 "no tensorflow"):
        assert line in done.stdout, done.stdout
