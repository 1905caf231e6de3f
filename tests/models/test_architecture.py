import numpy as np
import pytest

keras = pytest.importorskip("keras")

from moodstream.models.architecture import (  # noqa: E402
    PAPER_PARAMS,
    PAPER_TRAINABLE_PARAMS,
    build_from_config,
    build_mini_xception,
    count_params,
)


def test_paper_param_count_exact():
    model = build_mini_xception()
    total, trainable = count_params(model)
    assert total == PAPER_PARAMS == 58_423
    assert trainable == PAPER_TRAINABLE_PARAMS == 56_951
    assert model.count_params() == 58_423
    assert tuple(model.input_shape) == (None, 64, 64, 1)
    assert tuple(model.output_shape) == (None, 7)


def test_paper_layers():
    model = build_mini_xception()
    kinds = [type(layer).__name__ for layer in model.layers]
    assert kinds.count("SeparableConv2D") == 8
    assert kinds.count("Add") == 4
    # 4 pooling layers on the main branch, 4 stride-2 subsamplers on the residual branch
    assert kinds.count("MaxPooling2D") == 8
    assert "Dense" not in kinds and "GlobalAveragePooling2D" in kinds
    base = model.get_layer("base_conv1")
    assert base.kernel_size == (3, 3) and base.filters == 8 and not base.use_bias
    assert base.kernel_regularizer is not None
    assert model.get_layer("block4_res_conv").kernel_size == (1, 1)
    assert model.get_layer("block4_res_subsample").strides == (2, 2)


def test_residual_subsample_equals_the_papers_strided_1x1_conv():
    """The residual branch avoids the oneDNN crash by subsampling before a stride-1 1x1 conv;
    it must compute exactly what the paper's stride-2 1x1 'same' conv computes."""
    from keras import layers

    rng = np.random.default_rng(1)
    for side in (60, 30, 15, 11):  # even and odd sizes reached at 64 and 48 px input
        x = rng.normal(size=(2, side, side, 8)).astype("float32")
        strided = layers.Conv2D(16, 1, strides=2, padding="same", use_bias=False)
        want = np.asarray(strided(x))
        pool = layers.MaxPooling2D(1, strides=2, padding="same")
        conv = layers.Conv2D(16, 1, use_bias=False)
        conv.build((None, None, None, 8))
        conv.set_weights(strided.get_weights())
        got = np.asarray(conv(pool(x)))
        assert got.shape == want.shape
        np.testing.assert_allclose(got, want, rtol=1e-5, atol=1e-5)


def test_tiny_forward_pass_is_a_distribution():
    model = build_mini_xception(input_size=32, base_filters=2, block_filters=(4, 4, 4, 4))
    x = np.random.default_rng(0).uniform(-1, 1, (3, 32, 32, 1)).astype("float32")
    p = np.asarray(model(x, training=False))
    assert p.shape == (3, 7)
    np.testing.assert_allclose(p.sum(axis=1), 1.0, atol=1e-5)


def test_width_and_size_are_configurable():
    wide = build_from_config({"width": 2.0})
    assert count_params(wide)[0] > 3 * PAPER_PARAMS
    assert wide.get_layer("block1_sep1").filters == 32
    small = build_from_config({"input_size": 48})
    assert tuple(small.input_shape) == (None, 48, 48, 1)
    assert count_params(small)[0] == PAPER_PARAMS  # GAP: params do not depend on input size
    custom = build_mini_xception(block_filters=(16, 32, 64, 128, 256))
    assert custom.get_layer("block5_sep2").filters == 256


def test_input_blur_and_standardisation_add_no_parameters():
    from moodstream.models.architecture import gaussian_kernel_1d

    m = build_from_config({"input_blur_sigma": 4.27, "input_norm": "per_image"},
                          with_blur=True)
    assert count_params(m) == (PAPER_PARAMS, PAPER_TRAINABLE_PARAMS)
    assert m.get_layer("input_blur") is not None
    assert build_from_config({"input_blur_sigma": 4.27}).layers[1].name == "base_conv1"
    k = gaussian_kernel_1d(2.0)
    assert len(k) == 13 and abs(float(k.sum()) - 1.0) < 1e-6


def test_blur_layer_matches_numpy_blur():
    from moodstream.models.data import gaussian_blur

    rng = np.random.default_rng(0)
    x = rng.integers(0, 256, (2, 32, 32), dtype=np.uint8)
    m = build_mini_xception(input_size=32, base_filters=2, block_filters=(4, 4, 4, 4),
                            input_blur_sigma=2.0)
    blur = keras.Model(m.input, m.get_layer("input_blur").output)
    got = np.asarray(blur(x[..., None].astype("float32")))[..., 0]
    want = gaussian_blur(x, 2.0).astype("float32")
    assert np.abs(got - want).max() <= 0.5 + 1e-3  # numpy version rounds to uint8
    flat = np.full((1, 32, 32, 1), 100.0, "float32")
    np.testing.assert_allclose(np.asarray(blur(flat)), 100.0, rtol=1e-5)


def test_a_saved_model_with_custom_layers_loads_in_a_fresh_process(tmp_path):
    """Resuming a run starts a new process that has built no model yet; the custom layers
    (per-image standardisation) must still deserialise (this once stopped every resume)."""
    import subprocess
    import sys

    path = tmp_path / "m.keras"
    build_mini_xception(input_size=32, base_filters=2, block_filters=(4, 4, 4, 4),
                        input_norm="per_image").save(path)
    code = ("from moodstream.models.architecture import load_keras; "
            f"m = load_keras({str(path)!r}); print(m.get_layer('per_image_std').name)")
    done = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True,
                          timeout=300)
    assert done.returncode == 0, done.stderr[-1500:]
    assert done.stdout.strip().endswith("per_image_std")


def test_fused_batch_norm_trains_like_the_keras_layer():
    """The fused training step must compute what Keras' BatchNormalization computes: the same
    output, the same input and weight gradients, the same moving statistics; and inference
    must be the parent's (the exported graph stays the standard one)."""
    import tensorflow as tf

    from moodstream.models.architecture import _fused_batch_norm_layer

    fused_class = _fused_batch_norm_layer()
    x = tf.random.stateless_normal((16, 9, 9, 6), seed=(1, 2)) * 3.0 + 2.0
    plain, fused = keras.layers.BatchNormalization(), fused_class()
    plain.build(x.shape)
    fused.build(x.shape)
    gamma = tf.random.stateless_normal((6,), seed=(3, 4))
    for layer in (plain, fused):
        layer.gamma.assign(gamma)
        layer.beta.assign(tf.range(6, dtype=tf.float32) / 10.0)
    outputs, grads = [], []
    for layer in (plain, fused):
        with tf.GradientTape() as tape:
            tape.watch(x)
            y = layer(x, training=True)
            loss = tf.reduce_sum(tf.sin(y) * y)
        outputs.append(y.numpy())
        grads.append([g.numpy() for g in tape.gradient(loss, [x, layer.gamma, layer.beta])])
    np.testing.assert_allclose(outputs[1], outputs[0], atol=1e-4)
    for got, want in zip(grads[1], grads[0], strict=True):
        np.testing.assert_allclose(got, want, atol=2e-3, rtol=1e-3)
    np.testing.assert_allclose(fused.moving_mean.numpy(), plain.moving_mean.numpy(), atol=1e-5)
    # The fused op's variance is Bessel-corrected: n / (n - 1) over 16 * 81 values.
    np.testing.assert_allclose(fused.moving_variance.numpy(), plain.moving_variance.numpy(),
                               rtol=1e-3)
    np.testing.assert_allclose(fused(x, training=False).numpy(),
                               plain(x, training=False).numpy(), atol=1e-3, rtol=1e-3)


def test_the_network_uses_the_fused_batch_norm():
    model = build_mini_xception()
    kinds = {type(layer).__name__ for layer in model.layers}
    assert "FusedBatchNormalization" in kinds and "BatchNormalization" not in kinds
