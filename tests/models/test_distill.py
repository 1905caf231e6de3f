import numpy as np
import pytest

pytest.importorskip("tensorflow")

from moodstream.models import distill  # noqa: E402
from moodstream.models.data import make_dataset  # noqa: E402

from .conftest import TINY_ARCH  # noqa: E402


def test_settings_merge_defaults_and_refuse_nonsense():
    assert distill.settings(None) is None and distill.settings({}) is None
    got = distill.settings({"teachers": ["models/runs/a"]})
    assert got["alpha"] == distill.DEFAULTS["alpha"] and got["temperature"] > 0
    with pytest.raises(KeyError):
        distill.settings({"teachers": ["a"], "alhpa": 0.5})
    with pytest.raises(ValueError):
        distill.settings({"teachers": []})
    with pytest.raises(ValueError):
        distill.settings({"teachers": ["a"], "alpha": 1.5})


def _numpy_loss(hard, teacher_logp, student_p, alpha, t):
    log_s = np.log(student_p)

    def log_softmax(z):
        z = z - z.max(axis=1, keepdims=True)
        return z - np.log(np.exp(z).sum(axis=1, keepdims=True))

    ce = -(hard * log_s).sum(1)
    pt, ps = log_softmax(teacher_logp / t), log_softmax(log_s / t)
    kl = (np.exp(pt) * (pt - ps)).sum(1)
    return (alpha * ce + (1 - alpha) * t * t * kl).mean()


def test_loss_is_hard_cross_entropy_plus_tempered_kl():
    rng = np.random.default_rng(0)
    hard = np.eye(7, dtype="float32")[rng.integers(0, 7, 5)]
    teacher = np.log(rng.dirichlet(np.ones(7), 5)).astype("float32")
    student = rng.dirichlet(np.ones(7), 5).astype("float32")
    loss_class, _ = distill.objects()
    y_true = np.concatenate([hard, teacher], axis=1)
    for alpha, t in ((0.3, 2.0), (1.0, 1.0), (0.0, 4.0)):
        got = float(loss_class(alpha, t)(y_true, student))
        assert got == pytest.approx(_numpy_loss(hard, teacher, student, alpha, t), rel=1e-4)
    # A student that agrees with the teacher pays nothing for the soft part.
    same = np.exp(teacher)
    assert float(loss_class(0.0, 2.0)(y_true, same)) == pytest.approx(0.0, abs=1e-5)


def test_soft_labels_travel_with_their_images_through_the_shuffle():
    n = 64
    y = np.arange(n) % 7
    x = np.repeat(y.astype(np.uint8)[:, None, None, None] * 30, 16, axis=1).repeat(16, axis=2)
    soft = np.log(np.full((n, 7), 0.01, "float32"))
    soft[np.arange(n), (y + 1) % 7] = 0.0  # the "teacher" names the next class
    ds = make_dataset(x, y, 16, training=True, aug=None, soft=soft)
    for xb, yb in ds:
        yb = yb.numpy()
        assert yb.shape == (16, 14)
        hard = yb[:, :7].argmax(1)
        assert (yb[:, 7:].argmax(1) == (hard + 1) % 7).all()
        # the pixels still belong to the label
        assert np.allclose((xb.numpy()[:, 0, 0, 0] + 1.0) * 127.5 / 30, hard, atol=1e-3)
    _, metric_class = distill.objects()
    metric = metric_class()
    metric.update_state(yb, np.eye(7)[hard])
    assert float(metric.result()) == 1.0


@pytest.mark.slow
def test_a_student_trains_and_resumes_against_a_teacher_run(tiny_npz, tmp_path):
    from moodstream.models.train import train

    base = {"data": str(tiny_npz), "batch_size": 16, **TINY_ARCH}
    train({**base, "name": "teacher", "epochs": 1}, runs_dir=tmp_path, verbose=0)
    logp = distill.teacher_log_probs([tmp_path / "teacher"], "val", tiny_npz)
    assert logp.shape == (28, 7)
    np.testing.assert_allclose(np.exp(logp).sum(1), 1.0, atol=0.05)  # near a distribution
    student = {**base, "name": "student", "epochs": 1,
               "distill": {"teachers": [str(tmp_path / "teacher")], "alpha": 0.5},
               "init_from": str(tmp_path / "teacher" / "best.keras")}
    r1 = train(student, runs_dir=tmp_path, verbose=0)
    assert r1["epochs_run"] == 1 and 0.0 <= r1["test_accuracy"] <= 1.0
    r2 = train({"name": "student", "data": str(tiny_npz), "epochs": 2}, runs_dir=tmp_path,
               verbose=0)  # a fresh resume must compile the saved distillation loss
    assert r2["epochs_run"] == 2 and r2["config"]["distill"]["alpha"] == 0.5
