"""Augmentations inside the training step: consistency regularisation's transform."""

import numpy as np
import tensorflow as tf

from pgn_tf.augment import cr_augment


def test_cr_augment_flips_translates_and_fills_black():
    x = tf.random.uniform((64, 10, 10, 3), 0.5, 1.0)
    out = cr_augment(x, tf.random.uniform((64, 3), seed=1)).numpy()
    assert out.shape == x.shape
    assert np.any(out == -1.0)  # some border filled
    assert np.all((out == -1.0) | ((out >= 0.5) & (out <= 1.0)))
    filled = [np.sum(np.all(o == -1.0, axis=-1)) for o in out]
    assert max(filled) <= 10 * 10 - 8 * 8  # at most 2 px (20%) in each direction
    # No translation and an identity flip for a constant image.
    c = tf.ones((4, 10, 10, 3))
    assert np.all(cr_augment(c, tf.random.uniform((4, 3), seed=2), max_shift=0.0).numpy() == 1.0)


def _shifted(img, dx, dy, fill=-1.0):
    out = np.full_like(img, fill)
    h, w = img.shape[:2]
    out[max(dy, 0) : h + min(dy, 0), max(dx, 0) : w + min(dx, 0)] = img[
        max(-dy, 0) : h - max(dy, 0), max(-dx, 0) : w - max(dx, 0)
    ]
    return out


def test_cr_augment_is_the_drawn_flip_and_integer_shift_and_compiles_with_xla():
    x = tf.random.uniform((16, 10, 10, 3), -1.0, 1.0, seed=3)
    u = tf.random.uniform((16, 3), seed=4)
    eager = cr_augment(x, u).numpy()
    xla = tf.function(cr_augment, jit_compile=True)(x, u).numpy()
    np.testing.assert_array_equal(eager, xla)
    # u[:, 0] < 0.5 flips; shifts round(u * 2 * 2 - 2) px (20% of 10) in x and y.
    for img, out, (flip, ux, uy) in zip(x.numpy(), eager, u.numpy()):
        src = img[:, ::-1] if flip < 0.5 else img
        np.testing.assert_array_equal(out, _shifted(src, int(np.round(ux * 4 - 2)), int(np.round(uy * 4 - 2))))
