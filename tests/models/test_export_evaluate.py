import json
import subprocess
import sys

import numpy as np
import pytest

from moodstream.models.evaluate import (
    accuracy,
    confusion_matrix,
    evaluate,
    format_report,
    row_normalise,
)

from .conftest import REPO_ROOT

CONTRACT_KEYS = ("classes", "input_height", "input_width", "scale", "offset", "recipe",
                 "params", "privatetest_accuracy", "valtest_accuracy")


def test_confusion_matrix_math():
    y_true = [0, 0, 0, 1, 1, 2, 6]
    y_pred = [0, 0, 3, 1, 0, 2, 6]
    cm = confusion_matrix(y_true, y_pred, 7)
    assert cm.sum() == 7
    assert cm[0, 0] == 2 and cm[0, 3] == 1 and cm[1, 0] == 1 and cm[1, 1] == 1
    cmn = row_normalise(cm)
    np.testing.assert_allclose(cmn[0], [2 / 3, 0, 0, 1 / 3, 0, 0, 0])
    np.testing.assert_allclose(cmn[1, :2], [0.5, 0.5])
    assert (cmn[3] == 0).all()  # a class with no samples: zero row, no NaN
    np.testing.assert_allclose(cmn[[0, 1, 2, 6]].sum(axis=1), 1.0)
    assert accuracy(y_true, y_pred) == pytest.approx(5 / 7)


def test_export_round_trip_metadata(tiny_onnx, tiny_npz):
    ort = pytest.importorskip("onnxruntime")
    sess = ort.InferenceSession(str(tiny_onnx), providers=["CPUExecutionProvider"])
    meta = sess.get_modelmeta().custom_metadata_map
    for key in CONTRACT_KEYS:
        assert key in meta, key
    assert meta["classes"] == "angry,disgust,fear,happy,sad,surprise,neutral"
    assert meta["input_height"] == meta["input_width"] == "32"
    assert float(meta["scale"]) == pytest.approx(1 / 127.5)
    assert float(meta["offset"]) == -1.0
    assert json.loads(meta["recipe"])["name"] == "tiny"
    assert 0.0 <= float(meta["privatetest_accuracy"]) <= 1.0
    inp = sess.get_inputs()[0]
    assert inp.shape[1:] == [32, 32, 1] and not isinstance(inp.shape[0], int)
    for n in (1, 5):
        p = sess.run(None, {inp.name: np.zeros((n, 32, 32, 1), np.float32)})[0]
        assert p.shape == (n, 7)
        np.testing.assert_allclose(p.sum(axis=1), 1.0, atol=1e-5)
    side = json.loads(tiny_onnx.with_suffix(".json").read_text())
    assert side["recipe"]["name"] == "tiny" and side["file_bytes"] > 0


def test_flip_tta_in_the_graph_averages_each_face_with_its_mirror(tiny_onnx):
    """Exports wrap the network in flip test-time augmentation (export(tta="flip")): the
    output is the mean of the face and its mirror image, so it cannot tell them apart."""
    ort = pytest.importorskip("onnxruntime")
    onnx = pytest.importorskip("onnx")
    sess = ort.InferenceSession(str(tiny_onnx), providers=["CPUExecutionProvider"])
    assert sess.get_modelmeta().custom_metadata_map["tta"] == "flip"
    name = sess.get_inputs()[0].name
    x = np.random.default_rng(1).uniform(-1, 1, (4, 32, 32, 1)).astype(np.float32)
    mirrored = x[:, :, ::-1].copy()
    p = sess.run(None, {name: x})[0]
    np.testing.assert_allclose(p, sess.run(None, {name: mirrored})[0], atol=1e-6)
    # Unwrapped, the same network's two passes average to exactly what the graph returns.
    from moodstream.models.export import with_flip_tta

    wrapped = onnx.load(str(tiny_onnx))
    assert with_flip_tta(wrapped) is wrapped, "wrapping twice changes nothing"
    graph = wrapped.graph
    network = [n for n in graph.node if not n.name.startswith("tta_")]
    mirror = [n for n in graph.node if n.name.startswith("tta_mirror/")]
    assert len(mirror) == len(network), "the mirror pass is one more copy of the network"
    del graph.node[:]
    graph.node.extend(network)
    graph.output[0].name = f"{graph.output[0].name}__tta"
    plain = ort.InferenceSession(wrapped.SerializeToString(), providers=["CPUExecutionProvider"])
    halves = plain.run(None, {name: x})[0] + plain.run(None, {name: mirrored})[0]
    np.testing.assert_allclose(p, halves / 2, atol=1e-6)


def test_evaluate_writes_report(tiny_onnx, tiny_npz, tmp_path):
    rep = evaluate(tiny_onnx, data=tiny_npz, report_dir=tmp_path, batch=8)
    assert rep["n"] == 35 and rep["split"] == "PrivateTest"
    assert rep["accuracy"] == pytest.approx(float(rep["metadata"]["privatetest_accuracy"]),
                                            abs=1e-4)
    cm = np.asarray(rep["confusion_counts"])
    assert cm.shape == (7, 7) and cm.sum() == 35
    assert rep["params"] > 0 and rep["ms_per_face"] > 0
    assert (tmp_path / "confusion.png").stat().st_size > 0
    assert json.loads((tmp_path / "report.json").read_text())["n"] == 35
    assert "accuracy" in format_report(rep)


def test_cli_is_light_and_parses():
    code = (
        "import argparse, sys\n"
        "import moodstream.models.cli as c\n"
        "assert 'tensorflow' not in sys.modules and 'keras' not in sys.modules\n"
        "p = argparse.ArgumentParser(); s = p.add_subparsers(dest='cmd')\n"
        "c.configure_train(s.add_parser('train')); c.configure_export(s.add_parser('export'))\n"
        "c.configure_evaluate(s.add_parser('evaluate'))\n"
        "a = p.parse_args(['evaluate']); assert a.model.endswith('emotion.onnx'), a.model\n"
        "a = p.parse_args(['train', '--epochs', '3', '--set', 'augment=null', '--no-augment'])\n"
        "cfg = c.config_from_args(a); assert cfg['epochs'] == 3 and cfg['augment'] is None\n"
        "import moodstream.models.evaluate\n"
        "assert 'tensorflow' not in sys.modules\n"
    )
    subprocess.run([sys.executable, "-c", code], cwd=REPO_ROOT, check=True)


def test_export_prepends_input_blur(tmp_path, tiny_npz):
    pytest.importorskip("tensorflow")
    ort = pytest.importorskip("onnxruntime")
    from moodstream.models.architecture import build_from_config
    from moodstream.models.export import export

    from .conftest import TINY_ARCH

    recipe = {**TINY_ARCH, "input_blur_sigma": 1.5}
    model = build_from_config(recipe)  # training model: no blur layer
    out = tmp_path / "blur.onnx"
    meta = export(model, out, recipe=recipe, data=tiny_npz, sidecar=False)
    assert meta["input_blur_sigma"] == "1.5"
    assert meta["params"] == str(sum(int(np.prod(w.shape)) for w in model.weights))
    sess = ort.InferenceSession(str(out), providers=["CPUExecutionProvider"])
    p = sess.run(None, {sess.get_inputs()[0].name: np.zeros((2, 32, 32, 1), np.float32)})[0]
    assert p.shape == (2, 7)


def test_evaluate_and_export_run_through_the_moodstream_command(tiny_onnx, tiny_npz, tmp_path,
                                                                capsys):
    """The top-level CLI passes its settings to every command's run function."""
    from moodstream.cli import main

    assert main(["evaluate", str(tiny_onnx), "--data", str(tiny_npz), "--no-plots"]) == 0
    assert "faces/s" in capsys.readouterr().out


def test_an_ensemble_exports_as_one_graph_that_averages_its_members(tmp_path, tiny_npz):
    pytest.importorskip("tensorflow")
    from moodstream.models.architecture import build_from_config
    from moodstream.models.export import export
    from tests.models.conftest import TINY_ARCH

    members = []
    for seed in (1, 2):
        import keras

        keras.utils.set_random_seed(seed)
        members.append(build_from_config(TINY_ARCH))
    out = tmp_path / "ensemble.onnx"
    meta = export(members, out, data=tiny_npz, sidecar=False, tta="none")
    assert int(meta["params"]) == sum(m.count_params() for m in members)
    x = np.random.default_rng(0).random((5, 32, 32, 1), dtype=np.float32)
    import onnxruntime as ort

    sess = ort.InferenceSession(str(out), providers=["CPUExecutionProvider"])
    got = sess.run(None, {sess.get_inputs()[0].name: x})[0]
    want = np.mean([m.predict(x, verbose=0) for m in members], axis=0)
    np.testing.assert_allclose(got, want, atol=1e-5)
    assert json.loads(meta["recipe"])["name"] == "ensemble"


def test_export_can_balance_recall_with_weights_fitted_on_publictest(tmp_path, tiny_npz):
    pytest.importorskip("tensorflow")
    from moodstream.models.architecture import build_from_config
    from moodstream.models.data import load_split
    from moodstream.models.export import export, onnx_probabilities
    from tests.models.conftest import TINY_ARCH

    out = tmp_path / "balanced.onnx"
    meta = export(build_from_config(TINY_ARCH), out, recipe=TINY_ARCH, data=tiny_npz,
                  sidecar=False, balance_recall=0.3)
    weights = json.loads(meta["class_weights"])
    assert len(weights) == 7 and meta["balance_recall"] == "0.3"
    x, _ = load_split("test", 32, tiny_npz)
    probs = onnx_probabilities(out, x)
    np.testing.assert_allclose(probs.sum(1), 1.0, rtol=1e-5)


def test_without_a_mirror_pass_the_weights_fold_into_the_networks_own_bias(tmp_path, tiny_npz):
    """softmax(logits) * w renormalised = softmax(logits + log w): one network, its own nodes
    and parameter count, the same probabilities as the separate weighting nodes."""
    pytest.importorskip("tensorflow")
    import onnx

    from moodstream.models.architecture import build_from_config
    from moodstream.models.data import load_split
    from moodstream.models.export import export, onnx_probabilities
    from tests.models.conftest import TINY_ARCH

    model = build_from_config(TINY_ARCH)
    before = [w.copy() for w in model.get_weights()]
    plain, folded = tmp_path / "plain.onnx", tmp_path / "folded.onnx"
    export(model, plain, recipe=TINY_ARCH, data=tiny_npz, sidecar=False, tta="none")
    meta = export(model, folded, recipe=TINY_ARCH, data=tiny_npz, sidecar=False, tta="none",
                  balance_recall=0.3)
    assert all(np.array_equal(a, b) for a, b in zip(before, model.get_weights(), strict=True))
    ops = {node.op_type for node in onnx.load(folded).graph.node}
    assert "Mul" not in ops and "ReduceSum" not in ops
    assert len(onnx.load(folded).graph.node) == len(onnx.load(plain).graph.node)
    x, _ = load_split("test", 32, tiny_npz)
    weights = np.array(json.loads(meta["class_weights"]))
    unweighted = onnx_probabilities(plain, x)
    want = unweighted * weights / (unweighted * weights).sum(1, keepdims=True)
    np.testing.assert_allclose(onnx_probabilities(folded, x), want, atol=2e-3)
    mirrored = export(model, tmp_path / "flip.onnx", recipe=TINY_ARCH, data=tiny_npz,
                      sidecar=False, tta="flip", balance_recall=0.3)
    assert "class_weights" in mirrored
    assert "Mul" in {node.op_type for node in onnx.load(tmp_path / "flip.onnx").graph.node}


def test_padded_channels_change_no_output(tmp_path, tiny_npz):
    """export pads 12- and 24-channel layers to onnxruntime's 16-channel blocks with zero
    weights: the exported graph must compute exactly what the trained network computes, and
    the metadata keeps the trained parameter count."""
    pytest.importorskip("tensorflow")
    import onnxruntime as ort

    from moodstream.models.architecture import build_from_config
    from moodstream.models.export import export, padded_channels

    assert [padded_channels(n, 16) for n in (8, 12, 16, 24, 48, 7)] == [8, 16, 16, 32, 48, 7]
    assert padded_channels(12, 0) == 12
    recipe = {"input_size": 32, "base_filters": 6, "block_filters": [12, 12, 24, 24],
              "input_norm": "per_image"}
    model = build_from_config(recipe)
    rng = np.random.default_rng(3)
    for layer in model.layers:  # trained-looking weights, batch-norm statistics included
        layer.set_weights([rng.uniform(0.5, 1.5, w.shape).astype(np.float32)
                           if "moving_variance" in v.path else
                           rng.normal(0, 0.3, w.shape).astype(np.float32)
                           for w, v in zip(layer.get_weights(), layer.weights, strict=True)])
    out = tmp_path / "padded.onnx"
    meta = export(model, out, recipe=recipe, data=tiny_npz, sidecar=False, tta="none",
                  pad_to=8)
    assert int(meta["params"]) == model.count_params() < int(meta["graph_params"])
    x = rng.uniform(-1, 1, (6, 32, 32, 1)).astype(np.float32)
    sess = ort.InferenceSession(str(out), providers=["CPUExecutionProvider"])
    got = sess.run(None, {sess.get_inputs()[0].name: x})[0]
    np.testing.assert_allclose(got, model.predict(x, verbose=0), atol=1e-5)
