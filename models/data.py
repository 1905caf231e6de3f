"""FER-2013 loading and tf.data input pipelines with augmentation.

Splits: Training for training, PublicTest ("val") for model selection, PrivateTest ("test") only
for the final number. Images are resized once from 48x48 to the model input size (bilinear),
kept as uint8, and normalised in the pipeline with ``x * SCALE + OFFSET`` (to [-1, 1]); the
exported ONNX model carries the same scale/offset in its metadata.
"""

from __future__ import annotations

import math
import os
from pathlib import Path

import numpy as np

ENV_VAR = "MOODSTREAM_FER2013"
SCALE = 1.0 / 127.5
OFFSET = -1.0
REPO_ROOT = Path(__file__).resolve().parent.parent
DEFAULT_PATH = REPO_ROOT.parent / "shared" / "data" / "fer2013" / "fer2013.npz"

SPLITS = {"train": ("x_train", "y_train"), "val": ("x_val", "y_val"),
          "test": ("x_test", "y_test")}


def dataset_path(path: str | os.PathLike | None = None) -> Path:
    """Resolve the FER-2013 npz path: explicit argument, then $MOODSTREAM_FER2013, then default."""
    if path:
        return Path(path)
    env = os.environ.get(ENV_VAR)
    if env:
        return Path(env)
    return DEFAULT_PATH


def resize_images(x: np.ndarray, size: int | tuple[int, int]) -> np.ndarray:
    """Bilinear-resize uint8 (N, h, w) images to (N, H, W) uint8 (no-op if already that size).

    Uses OpenCV when available (what the pipeline uses for face crops), else numpy.
    """
    h, w = (size, size) if isinstance(size, int) else size
    if x.shape[1:3] == (h, w):
        return x
    try:
        import cv2

        return np.stack([cv2.resize(im, (w, h), interpolation=cv2.INTER_LINEAR) for im in x])
    except ImportError:  # pragma: no cover - opencv is a project dependency
        return _resize_bilinear_np(x, h, w)


def _resize_bilinear_np(x: np.ndarray, h: int, w: int) -> np.ndarray:
    n, sh, sw = x.shape
    ys = np.clip((np.arange(h) + 0.5) * sh / h - 0.5, 0, sh - 1)
    xs = np.clip((np.arange(w) + 0.5) * sw / w - 0.5, 0, sw - 1)
    y0 = np.floor(ys).astype(int)
    x0 = np.floor(xs).astype(int)
    y1 = np.minimum(y0 + 1, sh - 1)
    x1 = np.minimum(x0 + 1, sw - 1)
    wy = (ys - y0)[None, :, None]
    wx = (xs - x0)[None, None, :]
    f = x.astype(np.float32)
    top = f[:, y0][:, :, x0] * (1 - wx) + f[:, y0][:, :, x1] * wx
    bot = f[:, y1][:, :, x0] * (1 - wx) + f[:, y1][:, :, x1] * wx
    return np.clip(np.rint(top * (1 - wy) + bot * wy), 0, 255).astype(np.uint8)


def gaussian_blur(x: np.ndarray, sigma: float) -> np.ndarray:
    """Blur uint8 (N, H, W) images exactly like the model's FixedGaussianBlur layer
    (separable Gaussian, radius ceil(3 sigma), reflect-101 borders); returns uint8."""
    from moodstream.models.architecture import gaussian_kernel_1d

    k = gaussian_kernel_1d(sigma).astype(np.float64)
    r = len(k) // 2
    f = np.pad(x.astype(np.float64), ((0, 0), (r, r), (r, r)), mode="reflect")
    h, w = x.shape[1:3]
    f = sum(k[i] * f[:, i:i + h, :] for i in range(len(k)))
    f = sum(k[i] * f[:, :, i:i + w] for i in range(len(k)))
    return np.clip(np.rint(f), 0, 255).astype(np.uint8)


def load_split(split: str, input_size: int = 64, path=None,
               blur_sigma: float = 0.0) -> tuple[np.ndarray, np.ndarray]:
    """Return (images uint8 (N, H, W, 1), labels int32 (N,)) for 'train', 'val' or 'test'.

    ``blur_sigma`` > 0 blurs the resized images (model-input pixels), as the shipped model's
    input blur does."""
    xk, yk = SPLITS[split]
    with np.load(dataset_path(path)) as d:
        x, y = d[xk], d[yk]
    x = resize_images(x, input_size)
    if blur_sigma and blur_sigma > 0:
        x = gaussian_blur(x, blur_sigma)
    return x[..., None], y.astype(np.int32)


def normalise(x: np.ndarray) -> np.ndarray:
    """uint8 pixels -> float32 model input."""
    return x.astype(np.float32) * np.float32(SCALE) + np.float32(OFFSET)


def _affine_transforms(tf, n, size, aug):
    """Per-sample 8-parameter projective transforms (output -> input mapping) combining a
    random rotation, zoom, shift and horizontal flip about the image centre."""
    h, w = size
    rot = tf.random.uniform([n], -1.0, 1.0) * (aug.get("rotation", 10.0) * math.pi / 180.0)
    zoom_r = aug.get("zoom", 0.1)
    # scale > 1 samples a larger input area (zoom out), < 1 zooms in
    scale = tf.random.uniform([n], 1.0 - zoom_r, 1.0 + zoom_r)
    shift = aug.get("shift", 0.1)
    tx = tf.random.uniform([n], -shift, shift) * w
    ty = tf.random.uniform([n], -shift, shift) * h
    flip = tf.where(tf.random.uniform([n]) < aug.get("flip", 0.5), -1.0, 1.0)
    cos, sin = tf.cos(rot) * scale, tf.sin(rot) * scale
    cx, cy = (w - 1) / 2.0, (h - 1) / 2.0
    # input = A @ (output - c) + c + t, with A = R*s*diag(flip, 1)
    a0, a1 = cos * flip, -sin
    b0, b1 = sin * flip, cos
    a2 = cx - a0 * cx - a1 * cy + tx
    b2 = cy - b0 * cx - b1 * cy + ty
    zeros = tf.zeros([n])
    return tf.stack([a0, a1, a2, b0, b1, b2, zeros, zeros], axis=1)


def augment_batch(images, aug: dict):
    """Randomly rotate / zoom / shift / flip a float batch (N, H, W, 1) in one resampling op."""
    import tensorflow as tf

    n = tf.shape(images)[0]
    size = images.shape[1:3]
    t = _affine_transforms(tf, n, size, aug)
    out = tf.raw_ops.ImageProjectiveTransformV3(
        images=images, transforms=t, output_shape=tf.constant(list(size), tf.int32),
        fill_value=0.0, interpolation="BILINEAR", fill_mode=aug.get("fill_mode", "NEAREST"))
    if aug.get("blur", 0.0) > 0 or aug.get("sharpen", 0.0) > 0:
        out = blur_or_sharpen(out, aug.get("blur", 0.0), aug.get("sharpen", 0.0))
    if aug.get("brightness", 0.0) > 0 or aug.get("contrast", 0.0) > 0:
        b = aug.get("brightness", 0.0)
        c = aug.get("contrast", 0.0)
        gain = tf.random.uniform([n, 1, 1, 1], 1.0 - c, 1.0 + c)
        bias = tf.random.uniform([n, 1, 1, 1], -b, b)
        out = tf.clip_by_value(out * gain + bias, -1.0, 1.0)
    return out


def blur_or_sharpen(images, blur: float, sharpen: float):
    """Per image, move towards a 3x3 Gaussian blur of itself (softer camera optics) or away
    from it (an unsharp mask, as camera firmware sharpens): x + a * (blur(x) - x) with a
    uniform in [-sharpen, blur]. Crops from real cameras are softer or crisper than FER-2013's."""
    import tensorflow as tf

    n = tf.shape(images)[0]
    taps = tf.constant([0.25, 0.5, 0.25])
    kernel = tf.reshape(taps[:, None] * taps[None, :], (3, 3, 1, 1))
    soft = tf.nn.conv2d(tf.pad(images, [[0, 0], [1, 1], [1, 1], [0, 0]], mode="SYMMETRIC"),
                        kernel, strides=1, padding="VALID")
    amount = tf.random.uniform([n, 1, 1, 1], -sharpen, blur)
    return tf.clip_by_value(images + amount * (soft - images), -1.0, 1.0)


def jpeg_recompress(image, probability: float, quality: tuple[int, int]):
    """Re-encode one uint8 (H, W, 1) image as JPEG at a random quality, with a probability:
    the pipeline's frames are JPEG on the wire (ms:frames), FER-2013's faces mostly are not."""
    import tensorflow as tf

    image = tf.convert_to_tensor(image)

    def recompress():
        q = tf.random.uniform([], quality[0], quality[1] + 1, dtype=tf.int32)
        out = tf.image.adjust_jpeg_quality(image, q)  # float in [0, 1]
        return tf.image.convert_image_dtype(out, tf.uint8, saturate=True)

    out = tf.cond(tf.random.uniform([]) < probability, recompress, lambda: image)
    out.set_shape(image.shape)  # the JPEG round trip loses the static shape
    return out


def make_dataset(x: np.ndarray, y: np.ndarray, batch_size: int, training: bool,
                 aug: dict | None = None, seed: int = 0, num_classes: int = 7,
                 label_smoothing: float = 0.0, soft: np.ndarray | None = None):
    """tf.data pipeline. Training batches drop the remainder (oneDNN short-batch crash).

    ``soft``: per-image teacher log-probabilities (N, classes) for distillation; they are
    shuffled with their images and appended to the one-hot label (``models.distill``)."""
    import tensorflow as tf

    columns = (x, y) if soft is None else (x, y, soft)
    ds = tf.data.Dataset.from_tensor_slices(columns)
    if training:
        ds = ds.shuffle(len(x), seed=seed, reshuffle_each_iteration=True)
        if aug and aug.get("jpeg", 0.0) > 0:
            quality = tuple(aug.get("jpeg_quality", (30, 95)))
            ds = ds.map(lambda xi, *rest: (jpeg_recompress(xi, aug["jpeg"], quality), *rest),
                        num_parallel_calls=tf.data.AUTOTUNE)
    # Always drop the remainder when fitting: Keras fit with oneDNN crashes on short batches.
    ds = ds.batch(batch_size, drop_remainder=training)

    def prep(xb, yb, *soft_b):
        xb = tf.cast(xb, tf.float32) * SCALE + OFFSET
        if training and aug:
            xb = augment_batch(xb, aug)
        yb = tf.one_hot(yb, num_classes)
        if label_smoothing > 0:
            yb = yb * (1.0 - label_smoothing) + label_smoothing / num_classes
        if soft_b:
            yb = tf.concat([yb, soft_b[0]], axis=-1)
        return xb, yb

    ds = ds.map(prep, num_parallel_calls=tf.data.AUTOTUNE)
    return ds.prefetch(tf.data.AUTOTUNE)
