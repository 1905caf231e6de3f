import numpy as np
import pytest

from moodstream.models import data as fer


def test_dataset_path_env_override(monkeypatch, tmp_path):
    monkeypatch.setenv(fer.ENV_VAR, str(tmp_path / "x.npz"))
    assert fer.dataset_path() == tmp_path / "x.npz"
    assert fer.dataset_path("/a/b.npz").as_posix() == "/a/b.npz"
    monkeypatch.delenv(fer.ENV_VAR)
    assert fer.dataset_path() == fer.DEFAULT_PATH


def test_load_split_resizes(tiny_npz):
    x, y = fer.load_split("val", 64, tiny_npz)
    assert x.shape == (28, 64, 64, 1) and x.dtype == np.uint8
    assert y.dtype == np.int32 and set(y) == set(range(7))


def test_numpy_resize_matches_constant_image():
    x = np.full((2, 48, 48), 77, np.uint8)
    out = fer._resize_bilinear_np(x, 64, 64)
    assert out.shape == (2, 64, 64) and (out == 77).all()


def test_normalise_range():
    x = np.array([0, 255], np.uint8)
    np.testing.assert_allclose(fer.normalise(x), [-1.0, 1.0], atol=1e-6)


def test_training_batches_drop_remainder_and_augment(tiny_npz):
    pytest.importorskip("tensorflow")
    x, y = fer.load_split("train", 32, tiny_npz)  # 70 images
    ds = fer.make_dataset(x, y, 16, training=True,
                          aug={"rotation": 10, "zoom": 0.1, "shift": 0.1, "flip": 0.5})
    shapes = [tuple(xb.shape) for xb, _ in ds]
    assert shapes == [(16, 32, 32, 1)] * 4  # 70 // 16, short batch dropped
    xb, yb = next(iter(ds))
    assert float(np.min(xb)) >= -1.0 - 1e-5 and float(np.max(xb)) <= 1.0 + 1e-5
    assert yb.shape == (16, 7)
    ev = fer.make_dataset(x, y, 16, training=False)
    assert sum(int(xb.shape[0]) for xb, _ in ev) == 70


def test_blur_and_sharpen_move_sharpness_both_ways():
    tf = pytest.importorskip("tensorflow")
    rng = np.random.default_rng(0)
    x = tf.constant(rng.uniform(-0.5, 0.5, (64, 24, 24, 1)).astype("float32"))

    def sharpness(t):
        return float(np.mean(np.abs(np.diff(np.asarray(t), axis=2))))

    assert sharpness(fer.blur_or_sharpen(x, 1.0, 0.0)) < 0.8 * sharpness(x)
    assert sharpness(fer.blur_or_sharpen(x, 0.0, 1.0)) > 1.2 * sharpness(x)
    flat = tf.fill((2, 8, 8, 1), 0.3)
    np.testing.assert_allclose(np.asarray(fer.blur_or_sharpen(flat, 1.0, 1.0)), 0.3, atol=1e-6)


def test_jpeg_recompression_changes_pixels_only_when_drawn(tiny_npz):
    pytest.importorskip("tensorflow")
    x, y = fer.load_split("train", 32, tiny_npz)
    always = fer.jpeg_recompress(x[0], 1.0, (10, 10)).numpy()
    never = fer.jpeg_recompress(x[0], 0.0, (10, 10)).numpy()
    assert always.shape == x[0].shape and always.dtype == np.uint8
    np.testing.assert_array_equal(never, x[0])
    assert np.abs(always.astype(int) - x[0].astype(int)).mean() > 5  # quality 10: lossy
    ds = fer.make_dataset(x, y, 16, training=True, aug={"jpeg": 0.5, "blur": 0.5,
                                                       "sharpen": 0.5})
    assert [tuple(xb.shape) for xb, _ in ds] == [(16, 32, 32, 1)] * 4
