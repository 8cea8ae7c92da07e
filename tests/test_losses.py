"""The three GAN losses against their numpy definitions (the official losses.py)."""

import numpy as np
import pytest
import tensorflow as tf

from pgn_tf import losses

REAL = np.array([[-2.0], [0.3], [1.5], [40.0]], np.float32)
FAKE = np.array([[-1.2], [0.9], [-30.0]], np.float32)


def softplus(x):
    return np.log1p(np.exp(-np.abs(x))) + np.maximum(x, 0)


def bce_with_logits(x, target):
    p = 1 / (1 + np.exp(-x.astype(np.float64)))
    eps = 1e-300
    return -np.mean(target * np.log(p + eps) + (1 - target) * np.log(1 - p + eps))


EXPECTED = {
    "hinge": (np.mean(np.maximum(0, 1 - REAL)), np.mean(np.maximum(0, 1 + FAKE)), -FAKE.mean()),
    "bce": (np.mean(softplus(-REAL)), np.mean(softplus(FAKE)), np.mean(softplus(-FAKE))),
    "wasserstein": (-REAL.mean(), FAKE.mean(), -FAKE.mean()),
}


@pytest.mark.parametrize("name", sorted(EXPECTED))
def test_matches_numpy(name):
    loss = losses.get(name)
    total, real, fake = loss.critic(tf.constant(REAL), tf.constant(FAKE))
    exp_real, exp_fake, exp_g = EXPECTED[name]
    np.testing.assert_allclose([real.numpy(), fake.numpy()], [exp_real, exp_fake], rtol=1e-6)
    np.testing.assert_allclose(total.numpy(), exp_real + exp_fake, rtol=1e-6)
    np.testing.assert_allclose(loss.generator(tf.constant(FAKE)).numpy(), exp_g, rtol=1e-6)


def test_bce_is_binary_cross_entropy_with_logits():
    # Moderate logits, where the textbook formula is exact enough to compare.
    real, fake = REAL[:3], FAKE[:2]
    total, _, _ = losses.bce.critic(tf.constant(real), tf.constant(fake))
    np.testing.assert_allclose(total.numpy(), bce_with_logits(real, 1) + bce_with_logits(fake, 0), rtol=1e-5)
    np.testing.assert_allclose(losses.bce.generator(tf.constant(fake)).numpy(), bce_with_logits(fake, 1), rtol=1e-5)


def test_unknown_loss():
    with pytest.raises(ValueError, match="Unknown loss 'hing'"):
        losses.get("hing")


def test_rpgan_pairs_reals_and_fakes_row_by_row():
    """RpGAN (R3GAN's loss): D softplus(f(fake_i) - f(real_i)), G softplus(f(real_i) - f(fake_i)), means over pairs."""
    real, fake = REAL[:3], FAKE
    total, part_real, part_fake = losses.rpgan.critic(tf.constant(real), tf.constant(fake))
    want = np.mean(softplus((fake - real).astype(np.float64)))
    np.testing.assert_allclose(total.numpy(), want, rtol=1e-6)
    np.testing.assert_allclose([part_real.numpy(), part_fake.numpy()], [want / 2, want / 2], rtol=1e-6)
    g = losses.rpgan.generator(tf.constant(fake), tf.constant(real))
    np.testing.assert_allclose(g.numpy(), np.mean(softplus((real - fake).astype(np.float64))), rtol=1e-6)
    # The pairing matters: the same values in another order give another loss (unlike BCE's sums of sides).
    shuffled, _, _ = losses.rpgan.critic(tf.constant(real[::-1]), tf.constant(fake))
    assert abs(float(shuffled) - want) > 1e-3
    assert losses.get("rpgan").relativistic and not any(losses.get(n).relativistic for n in EXPECTED)
