"""The mini-Xception of "A Light Weight Convolution Neural Network for Real time Facial
Expression Detection" (Keras 3).

The default configuration reproduces the paper exactly: 64x64x1 input, 58,423 parameters of
which 56,951 are trainable. ``width`` scales every filter count (base and blocks) and
``block_filters`` replaces the block widths, so wider variants can be built from the same code.
"""

from __future__ import annotations

from collections.abc import Sequence

CLASSES = ("angry", "disgust", "fear", "happy", "sad", "surprise", "neutral")
NUM_CLASSES = len(CLASSES)

PAPER_BASE_FILTERS = 8
PAPER_BLOCK_FILTERS = (16, 32, 64, 128)
PAPER_INPUT_SIZE = 64
PAPER_L2 = 0.01
PAPER_PARAMS = 58_423
PAPER_TRAINABLE_PARAMS = 56_951


def _standardization_layer():
    """Parameter-free per-image standardisation: (x - mean) / sqrt(var + eps) per image."""
    import keras

    @keras.saving.register_keras_serializable(package="moodstream")
    class PerImageStandardization(keras.layers.Layer):
        def __init__(self, epsilon: float = 1e-3, **kwargs):
            super().__init__(**kwargs)
            self.epsilon = epsilon

        def call(self, x):
            ops = keras.ops
            mean = ops.mean(x, axis=(1, 2, 3), keepdims=True)
            var = ops.mean(ops.square(x - mean), axis=(1, 2, 3), keepdims=True)
            return (x - mean) / ops.sqrt(var + self.epsilon)

        def get_config(self):
            return {**super().get_config(), "epsilon": self.epsilon}

    return PerImageStandardization


def gaussian_kernel_1d(sigma: float):
    """Normalised 1-D Gaussian taps, radius ceil(3 sigma) (same as cv2.getGaussianKernel)."""
    import math

    import numpy as np

    radius = max(1, int(math.ceil(3.0 * sigma)))
    t = np.arange(-radius, radius + 1, dtype=np.float64)
    k = np.exp(-0.5 * (t / sigma) ** 2)
    return (k / k.sum()).astype("float32")


def _blur_layer():
    """Fixed (non-trainable, parameter-free) separable Gaussian blur, reflect-101 borders."""
    import keras

    @keras.saving.register_keras_serializable(package="moodstream")
    class FixedGaussianBlur(keras.layers.Layer):
        def __init__(self, sigma: float, **kwargs):
            super().__init__(**kwargs)
            self.sigma = float(sigma)
            self.taps = gaussian_kernel_1d(self.sigma)

        def call(self, x):
            ops = keras.ops
            r = len(self.taps) // 2
            x = ops.pad(x, [[0, 0], [r, r], [r, r], [0, 0]], mode="reflect")
            kh = ops.convert_to_tensor(self.taps.reshape(-1, 1, 1, 1))
            kw = ops.convert_to_tensor(self.taps.reshape(1, -1, 1, 1))
            x = ops.depthwise_conv(x, kh, strides=1, padding="valid")
            return ops.depthwise_conv(x, kw, strides=1, padding="valid")

        def get_config(self):
            return {**super().get_config(), "sigma": self.sigma}

    return FixedGaussianBlur


def _fused_batch_norm_layer():
    """BatchNormalization whose training step is one fused op (FusedBatchNormV3).

    Keras 3 normalises with separate moment, subtract, scale and shift ops, and their
    gradients; on this small-channel network at 64 px that was about 45% of a training step.
    The fused op computes the same function and gradient (within float rounding) about 3.4x
    faster on the CPU. Inference runs the parent's ops, so the exported graph is unchanged and
    the weights are the standard layer's (gamma, beta, moving mean and variance)."""
    import keras

    @keras.saving.register_keras_serializable(package="moodstream")
    class FusedBatchNormalization(keras.layers.BatchNormalization):
        def call(self, inputs, training=None, mask=None):
            fusable = (training and self.trainable and mask is None and self.scale
                       and self.center and not self.renorm and len(inputs.shape) == 4
                       and self.axis in (-1, 3) and keras.backend.backend() == "tensorflow")
            if not fusable:
                return super().call(inputs, training=training, mask=mask)
            import tensorflow as tf

            x = tf.cast(inputs, tf.float32)
            # The op returns the Bessel-corrected batch variance, as Keras 2 used for the
            # moving average; over a batch of 128 faces the difference is under 1e-5.
            y, mean, variance = tf.compat.v1.nn.fused_batch_norm(
                x, tf.cast(self.gamma, tf.float32), tf.cast(self.beta, tf.float32),
                epsilon=self.epsilon, is_training=True, data_format="NHWC")
            m = self.momentum
            self.moving_mean.assign(self.moving_mean * m + mean * (1.0 - m))
            self.moving_variance.assign(self.moving_variance * m + variance * (1.0 - m))
            return tf.cast(y, self.compute_dtype)

    return FusedBatchNormalization


def build_mini_xception(
    input_size: int | tuple[int, int] = PAPER_INPUT_SIZE,
    num_classes: int = NUM_CLASSES,
    width: float = 1.0,
    base_filters: int = PAPER_BASE_FILTERS,
    block_filters: Sequence[int] = PAPER_BLOCK_FILTERS,
    l2: float = PAPER_L2,
    l2_separable: bool = False,
    dropout: float = 0.0,
    input_norm: str = "none",
    input_blur_sigma: float = 0.0,
    name: str = "mini_xception",
    fused_batch_norm: bool = True,
):
    """Build the mini-Xception.

    Regularisation follows the reference Keras implementation of the paper: l2 on the kernels of
    the two base 3x3 convolutions. That implementation also passed ``kernel_regularizer`` to
    ``SeparableConv2D``, which Keras silently ignores; ``l2_separable=True`` applies the l2 to
    the depthwise and pointwise kernels instead (an option, off by default = paper behaviour).
    ``dropout`` > 0 inserts dropout before the classifier conv (0 = paper).
    ``input_norm="per_image"`` prepends a parameter-free per-image standardisation layer
    (contrast/brightness invariance; parameter count unchanged).
    ``input_blur_sigma`` > 0 prepends a fixed Gaussian blur (sigma in input pixels; no
    parameters). The shared FER-2013 Training split is Gaussian-blurred (see docs/model.md), so
    the shipped model blurs its (sharp) input the same way before classifying.
    """
    import keras
    from keras import layers

    # fused_batch_norm=False keeps Keras' own layer (the train-speed benchmark's "before").
    batch_norm = _fused_batch_norm_layer() if fused_batch_norm else layers.BatchNormalization
    if isinstance(input_size, int):
        height = width_px = input_size
    else:
        height, width_px = input_size
    reg = keras.regularizers.L2(l2) if l2 > 0 else None
    sep_reg = reg if l2_separable else None

    def w(n: int) -> int:
        return max(1, int(round(n * width)))

    inputs = keras.Input(shape=(height, width_px, 1), name="input")
    x = inputs
    if input_blur_sigma and input_blur_sigma > 0:
        x = _blur_layer()(input_blur_sigma, name="input_blur")(x)
    if input_norm == "per_image":
        x = _standardization_layer()(name="per_image_std")(x)
    elif input_norm != "none":
        raise ValueError(f"unknown input_norm {input_norm!r}")
    x = layers.Conv2D(w(base_filters), 3, use_bias=False, kernel_regularizer=reg,
                      name="base_conv1")(x)
    x = batch_norm(name="base_bn1")(x)
    x = layers.Activation("relu", name="base_relu1")(x)
    x = layers.Conv2D(w(base_filters), 3, use_bias=False, kernel_regularizer=reg,
                      name="base_conv2")(x)
    x = batch_norm(name="base_bn2")(x)
    x = layers.Activation("relu", name="base_relu2")(x)

    for i, filters in enumerate(block_filters, start=1):
        f = w(filters)
        # Subsample, then a 1x1 conv with stride 1: the same function and weights as the
        # paper's strided 1x1 conv (a 1x1 'same' kernel never pads), but a strided 1x1 conv
        # whose output meets the Add crashes TensorFlow's AVX-512 oneDNN kernels in training
        # (heap corruption; docs/model.md).
        residual = layers.MaxPooling2D(1, strides=2, padding="same",
                                       name=f"block{i}_res_subsample")(x)
        residual = layers.Conv2D(f, 1, use_bias=False, name=f"block{i}_res_conv")(residual)
        residual = batch_norm(name=f"block{i}_res_bn")(residual)
        x = layers.SeparableConv2D(f, 3, padding="same", use_bias=False,
                                   depthwise_regularizer=sep_reg, pointwise_regularizer=sep_reg,
                                   name=f"block{i}_sep1")(x)
        x = batch_norm(name=f"block{i}_bn1")(x)
        x = layers.Activation("relu", name=f"block{i}_relu1")(x)
        x = layers.SeparableConv2D(f, 3, padding="same", use_bias=False,
                                   depthwise_regularizer=sep_reg, pointwise_regularizer=sep_reg,
                                   name=f"block{i}_sep2")(x)
        x = batch_norm(name=f"block{i}_bn2")(x)
        x = layers.MaxPooling2D(3, strides=2, padding="same", name=f"block{i}_pool")(x)
        x = layers.add([x, residual], name=f"block{i}_add")

    if dropout > 0:
        x = layers.Dropout(dropout, name="dropout")(x)
    x = layers.Conv2D(num_classes, 3, padding="same", name="classifier_conv")(x)
    x = layers.GlobalAveragePooling2D(name="gap")(x)
    outputs = layers.Activation("softmax", name="probabilities", dtype="float32")(x)
    return keras.Model(inputs, outputs, name=name)


def build_from_config(config: dict, with_blur: bool = False):
    """Build the model described by a training config dict (see ``models.train``).

    ``with_blur``: include the fixed input blur (``input_blur_sigma``) - used for the
    exported/inference model; the training model sees already-blurred Training images."""
    size = config.get("input_size", PAPER_INPUT_SIZE)
    return build_mini_xception(
        input_size=size,
        width=config.get("width", 1.0),
        base_filters=config.get("base_filters", PAPER_BASE_FILTERS),
        block_filters=tuple(config.get("block_filters", PAPER_BLOCK_FILTERS)),
        l2=config.get("l2", PAPER_L2),
        l2_separable=config.get("l2_separable", False),
        dropout=config.get("dropout", 0.0),
        input_norm=config.get("input_norm", "none"),
        input_blur_sigma=config.get("input_blur_sigma", 0.0) if with_blur else 0.0,
    )


def load_keras(path, compile: bool = False):
    """Load a saved .keras model; registers the custom layers first, since they are defined
    lazily (TensorFlow is not imported until a model is built) and a fresh process resuming a
    run has built none yet."""
    import keras

    _standardization_layer()
    _blur_layer()
    _fused_batch_norm_layer()
    return keras.models.load_model(path, compile=compile)


def count_params(model) -> tuple[int, int]:
    """Return (total, trainable) parameter counts."""
    import numpy as np

    trainable = int(sum(np.prod(v.shape) for v in model.trainable_weights))
    total = trainable + int(sum(np.prod(v.shape) for v in model.non_trainable_weights))
    return total, trainable
