"""pgn_tf.optimizers: Adam does torch.optim.Adam's arithmetic (epsilon after the bias correction); LinearDecay is the
official LambdaLR."""

import keras
import numpy as np
import pytest
import tensorflow as tf

from pgn_tf import optimizers
from pgn_tf.optimizers import LinearDecay


def _torch_adam(grads, w0, lr, b1, b2, eps):
    """torch.optim.Adam (amsgrad=False, no weight decay), written out in numpy float64."""
    w, m, v = w0.copy(), np.zeros_like(w0), np.zeros_like(w0)
    for t, g in enumerate(grads, start=1):
        m = b1 * m + (1 - b1) * g
        v = b2 * v + (1 - b2) * g * g
        w = w - lr / (1 - b1**t) * m / (np.sqrt(v) / np.sqrt(1 - b2**t) + eps)
    return w


@pytest.mark.parametrize("betas", [(0.0, 0.9), (0.5, 0.999), (0.0, 0.999)])
def test_adam_is_torch_adam_even_for_gradients_near_epsilon(betas):
    rng = np.random.default_rng(0)
    # PGN's early gradients are often within a few orders of magnitude of eps = 1e-8.
    grads = [rng.normal(size=50) * 10.0 ** rng.uniform(-10, -4, 50) for _ in range(6)]
    w0 = rng.normal(size=50)
    lr = 2.0**-12  # exact in the optimizer's float32 learning-rate variable
    expected = _torch_adam(grads, w0, lr, *betas, 1e-8)
    results = {}
    for name, cls in (("ours", optimizers.Adam), ("keras", keras.optimizers.Adam)):
        w = tf.Variable(w0)
        opt = cls(lr, beta_1=betas[0], beta_2=betas[1], epsilon=1e-8)
        for g in grads:
            opt.apply([tf.constant(g)], [w])
        results[name] = w.numpy()
    np.testing.assert_allclose(results["ours"], expected, rtol=0, atol=1e-15)
    # Keras' own Adam puts epsilon elsewhere: visibly different steps on these gradients.
    assert np.max(np.abs(results["keras"] - expected)) > 1e-6


def test_adam_serializes_and_rejects_amsgrad():
    opt = optimizers.Adam(1e-3, beta_1=0.0, beta_2=0.9)
    clone = keras.optimizers.deserialize(keras.optimizers.serialize(opt))
    assert isinstance(clone, optimizers.Adam) and clone.beta_2 == 0.9
    scheduled = optimizers.Adam(LinearDecay(2e-4, 5, 10, 2))  # the schedule every run's optimizers carry
    clone = keras.optimizers.deserialize(keras.optimizers.serialize(scheduled))
    schedule = keras.optimizers.serialize(clone)["config"]["learning_rate"]
    assert schedule["registered_name"] == "pgn_tf>LinearDecay" and schedule["config"] == {
        "learning_rate": 2e-4, "decay_start": 5, "total_steps": 10, "updates_per_step": 2}  # fmt: skip
    with pytest.raises(ValueError):
        optimizers.Adam(amsgrad=True)


def test_linear_decay_is_the_official_lambda_lr():
    sched = LinearDecay(4e-4, decay_start=10, total_steps=30, updates_per_step=5)
    # D iterations 0..4 are outer step 1 (s = 0 steps done): full rate.
    assert float(sched(0)) == pytest.approx(4e-4)
    assert float(sched(5 * 10 + 4)) == pytest.approx(4e-4)
    assert float(sched(5 * 20)) == pytest.approx(4e-4 * 0.5)
    assert float(sched(5 * 30)) == pytest.approx(0.0)


@pytest.mark.parametrize("loss_scaled", [False, True])
def test_reset_state_zeroes_the_count_and_moments_and_keeps_the_learning_rate_and_loss_scale(loss_scaled):
    """A new G's optimizer (the benchmark's pgn_newg): Adam's moments and count are a new one's; a fixed learning
    rate stays, and so does a LossScaleOptimizer's scale (zeroed, no gradient would ever be unscaled)."""
    w = keras.Variable(np.ones(3, np.float32))
    opt = optimizers.Adam(learning_rate=0.01)
    if loss_scaled:
        opt = keras.optimizers.LossScaleOptimizer(opt)
    g = lambda: opt.scale_loss(tf.constant([0.5, -1.0, 2.0]))  # as a loss-scaled gradient arrives (else itself)
    for _ in range(2):
        opt.apply([g()], [w])
    scale = [v.numpy() for v in opt.variables if "scale" in v.name]
    optimizers.reset_state(opt)
    inner = getattr(opt, "inner_optimizer", opt)
    assert int(opt.iterations.numpy()) == 0 and int(inner.iterations.numpy()) == 0
    assert all(not np.any(m.numpy()) for m in inner.moments(w))
    assert float(inner.learning_rate.numpy()) == pytest.approx(0.01)
    assert [v.numpy() for v in opt.variables if "scale" in v.name] == scale and (not loss_scaled or scale[0] > 0)
    before = w.numpy().copy()
    opt.apply([g()], [w])  # a new Adam's first step: lr * sign(g) (to Adam's epsilon)
    np.testing.assert_allclose(before - w.numpy(), 0.01 * np.sign([0.5, -1.0, 2.0]), rtol=1e-5)
