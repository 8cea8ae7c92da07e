"""The private Keras names pgn_tf relies on (pyproject pins keras to the tested minor): each behaves as used."""

import keras
import numpy as np
import tensorflow as tf

from pgn_tf import losses, models
from pgn_tf.config import LoopConfig
from pgn_tf.gan import PGNGAN


def test_fit_calls_the_build_hook_that_pgngan_overrides(monkeypatch):
    """gan.py: PGNGAN._maybe_symbolic_build returns at once (fit would trace call(z) on an image batch)."""
    calls = []
    monkeypatch.setattr(PGNGAN, "_maybe_symbolic_build", lambda self, *a, **k: calls.append(k))
    g, d = models.build_generator("dcgan.32", z_dim=8, width=0.0625), models.build_critic("dcgan.32", width=0.0625)
    gan = PGNGAN(g, d, LoopConfig(z_dim=8, batch_size_D=2, batch_size_G=2))
    gan.compile(keras.optimizers.SGD(0.01), keras.optimizers.SGD(0.01), losses.hinge)
    x = tf.zeros((2, 32, 32, 3))
    gan.fit(tf.data.Dataset.from_tensors((x, tf.zeros((2,), tf.int32))).repeat(), steps_per_epoch=1, verbose=0)
    assert calls and int(gan.step.numpy()) == 1


def test_flatten_layers_walks_nested_models():
    """normalization.py and torch_port.py: every layer of a model, inner models' layers included, each once."""
    inner = keras.Sequential([keras.Input((3,)), keras.layers.Dense(2, name="a"), keras.layers.Dense(2, name="b")])
    x = keras.Input((3,))
    outer = keras.Model(x, keras.layers.Dense(1, name="c")(inner(x)))
    names = [layer.name for layer in outer._flatten_layers(include_self=False, recursive=True)]
    assert sorted(n for n in names if n in "abc") == ["a", "b", "c"]
    assert outer in list(outer._flatten_layers(include_self=True, recursive=True))


def test_adam_slots_are_found_by_variable_index():
    """optimizers.py: torch's Adam reads Keras Adam's m and v slots through _get_variable_index."""
    v = [keras.Variable(np.ones(3, np.float32)), keras.Variable(np.ones(2, np.float32))]
    opt = keras.optimizers.Adam(0.1)
    opt.build(v)
    opt.apply([tf.ones(3), 2 * tf.ones(2)], v)
    m = opt._momentums[opt._get_variable_index(v[1])]
    np.testing.assert_allclose(m.numpy(), 0.2, rtol=1e-6)  # (1 - beta_1) * gradient after one step
    assert opt._velocities[opt._get_variable_index(v[0])].shape == (3,)


def test_batchnorm_moments_are_the_batch_mean_and_biased_variance():
    """models/layers.py: BatchNorm computes its statistics with BatchNormalization._moments(inputs, mask)."""
    layer = keras.layers.BatchNormalization()
    x = tf.constant(np.random.default_rng(0).normal(size=(4, 2, 2, 3)), tf.float32)
    layer.build(x.shape)
    mean, variance = layer._moments(x, None)
    np.testing.assert_allclose(mean.numpy().ravel(), x.numpy().mean((0, 1, 2)), rtol=1e-5)
    np.testing.assert_allclose(variance.numpy().ravel(), x.numpy().var((0, 1, 2)), rtol=1e-4)
