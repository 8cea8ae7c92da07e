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


def test_adam_slots_are_found_by_variable_index():
    """optimizers.py: torch's Adam reads Keras Adam's m and v slots through _get_variable_index."""
    v = [keras.Variable(np.ones(3, np.float32)), keras.Variable(np.ones(2, np.float32))]
    opt = keras.optimizers.Adam(0.1)
    opt.build(v)
    opt.apply([tf.ones(3), 2 * tf.ones(2)], v)
    m = opt._momentums[opt._get_variable_index(v[1])]
    np.testing.assert_allclose(m.numpy(), 0.2, rtol=1e-6)  # (1 - beta_1) * gradient after one step
    assert opt._velocities[opt._get_variable_index(v[0])].shape == (3,)
