"""The baselines' gradient penalties (WGAN-GP's 1-GP, the zero-centred 0-GP, R1, R2, R1 + R2) and input-gradient norms.

D below is what the loss sees: a raw critic, a spectrally normalized one, or
a `PGNDiscriminator` (PGN / GN / none), so a penalty combines with any
normalization. For PGN and GN the penalty differentiates through the inner
input gradient as well (third-order terms: slower, but exact).
"""

import tensorflow as tf

from pgn_tf.normalization import EPS, PGNDiscriminator, call_critic, per_sample_norm

PENALTIES = ("gp1", "gp0", "r1", "r2", "r1r2")


def _apply(critic, x, labels, training):
    if isinstance(critic, PGNDiscriminator):
        return critic(x, labels=labels, training=training)
    return call_critic(critic, x, labels, training)


def input_gradients(critic, x, labels=None, training=True):
    """(D(x) [N, 1], grad_x sum(D(x)) [N, ...]): each sample's own input gradient (no batch coupling in D).

    Recorded by any outer tape, so a loss on the gradient trains D's weights.
    """
    x = tf.convert_to_tensor(x)
    with tf.GradientTape(watch_accessed_variables=False) as tape:
        tape.watch(x)
        out = _apply(critic, x, labels, training)
    return out, tape.gradient(out, x)


def input_gradient_norm(critic, x, labels=None, training=True, eps=EPS):
    """||grad_x D(x)||_2 per sample [N]: sqrt(sum of squares + eps) over each flattened gradient."""
    return per_sample_norm(input_gradients(critic, x, labels, training)[1], eps)


def interpolate(real, fake, alpha):
    """alpha * real + (1 - alpha) * fake per sample; alpha [N] in [0, 1], images [N, ...]."""
    alpha = tf.reshape(tf.cast(alpha, real.dtype), [-1] + [1] * (len(real.shape) - 1))
    return alpha * real + (1.0 - alpha) * fake


def gradient_penalty(critic, real, fake, alpha, center=1.0, labels=None, training=True, eps=EPS):
    """mean_i (||grad_xh D(xh_i)||_2 - center)^2 on xh = alpha * real + (1 - alpha) * fake.

    center 1: WGAN-GP (Gulrajani et al. 2017); center 0: the zero-centred
    penalty on interpolates (0-GP, Thanh-Tung et al. 2019).

    Args:
      critic: D as the loss sees it (a Keras critic or a PGNDiscriminator).
      real, fake: [N, H, W, C] images.
      alpha: [N] interpolation weights in [0, 1].
      center: the target norm.
      labels: [N] int labels for a conditional critic (the real images'),
        used for every interpolate.
      training: passed to D (a spectrally normalized D then runs one power
        iteration, as torch's forward in training mode does).
      eps: under the square root of the norm (PGN's), so its gradient is
        finite at a zero gradient.

    Returns:
      A scalar.
    """
    norm = input_gradient_norm(critic, interpolate(real, fake, alpha), labels, training, eps)
    return tf.reduce_mean(tf.square(norm - center))


def r1_penalty(critic, real, labels=None, training=True):
    """mean_i ||grad_x D(x_i)||_2^2 on real images (Mescheder et al. 2018); the trainer applies gamma / 2.

    Args as `gradient_penalty`. Returns a scalar.
    """
    grad = input_gradients(critic, real, labels, training)[1]
    return tf.reduce_mean(tf.reduce_sum(tf.square(grad), axis=list(range(1, len(grad.shape)))))


def penalty(name, critic, real, fake, alpha, labels=None, training=True, fake_labels=None):
    """The unweighted penalty `name` of one critic step (a scalar).

    "gp1", "gp0": on interpolates (the real images' labels); "r1": R1 on reals; "r2": the same on fakes (R3GAN's
    R2, with the fakes' labels); "r1r2": their sum (R3GAN: gamma / 2 * (R1 + R2)).
    """
    if name == "gp1":
        return gradient_penalty(critic, real, fake, alpha, 1.0, labels, training)
    if name == "gp0":
        return gradient_penalty(critic, real, fake, alpha, 0.0, labels, training)
    if name == "r1":
        return r1_penalty(critic, real, labels, training)
    if name == "r2":
        return r1_penalty(critic, fake, fake_labels, training)
    if name == "r1r2":
        return r1_penalty(critic, real, labels, training) + r1_penalty(critic, fake, fake_labels, training)
    raise ValueError(f"Unknown penalty {name!r}; expected one of {PENALTIES}.")


def weight(name, penalty_weight):
    """The factor on the penalty in the critic loss: penalty_weight, or gamma / 2 for R1, R2 and R1 + R2."""
    return penalty_weight / 2.0 if name in ("r1", "r2", "r1r2") else penalty_weight
