"""Gradient penalties and the Lipschitz monitor against hand computations and finite differences."""

import keras
import numpy as np
import pytest
import tensorflow as tf

from pgn_tf import penalties, precision
from pgn_tf.config import LoopConfig
from pgn_tf.gan import PGNGAN
from pgn_tf.models.layers import SNDense
from pgn_tf.normalization import EPS, PGNDiscriminator


@pytest.fixture
def float64():
    with precision.scope("float64"):
        yield


def _mlp_critic(seed=0):
    """f(x) = w2 . tanh(W1^T flat(x) + b1) + b2 on [N, 2, 2, 1] inputs: a critic with a closed-form input gradient."""
    keras.utils.set_random_seed(seed)
    x = keras.Input((2, 2, 1))
    h = keras.layers.Dense(5, activation="tanh", bias_initializer="random_normal")(keras.layers.Flatten()(x))
    f = keras.layers.Dense(1, bias_initializer="random_normal")(h)
    return keras.Model(x, f)


def _mlp_numpy(critic, x):
    """(f [N], grad_x f [N, 4]) of `_mlp_critic` in numpy."""
    w1, b1, w2, b2 = (v.numpy() for v in critic.weights)
    flat = x.reshape(len(x), -1)
    t = np.tanh(flat @ w1 + b1)
    return t @ w2[:, 0] + b2[0], ((1.0 - t**2) * w2[:, 0]) @ w1.T


def _images(seed, n=6):
    return np.random.default_rng(seed).standard_normal((n, 2, 2, 1))


@pytest.mark.parametrize("center", [1.0, 0.0])
def test_gradient_penalty_is_the_hand_computation(float64, center):
    critic = _mlp_critic()
    real, fake, alpha = _images(1), _images(2), np.random.default_rng(3).uniform(size=6)
    got = float(penalties.gradient_penalty(critic, tf.constant(real), tf.constant(fake), tf.constant(alpha), center))
    xh = alpha[:, None, None, None] * real + (1 - alpha[:, None, None, None]) * fake
    _, grad = _mlp_numpy(critic, xh)
    norm = np.sqrt(np.sum(grad**2, axis=1) + EPS)
    assert got == pytest.approx(np.mean((norm - center) ** 2), rel=1e-12)
    assert got > 1e-3  # not a trivially zero penalty


def test_r1_penalty_is_the_hand_computation(float64):
    critic = _mlp_critic()
    real = _images(4)
    _, grad = _mlp_numpy(critic, real)
    got = float(penalties.r1_penalty(critic, tf.constant(real)))
    assert got == pytest.approx(np.mean(np.sum(grad**2, axis=1)), rel=1e-12)
    assert penalties.weight("r1", 10.0) == 5.0 and penalties.weight("gp1", 10.0) == 10.0


def test_r2_is_r1_on_fakes_and_r1r2_their_sum(float64):
    """R3GAN's zero-centred penalties: R2 is ||grad_x D||^2 on fakes, and both weigh gamma / 2."""
    critic = _mlp_critic()
    real, fake = _images(4), _images(5)
    alpha = tf.constant(np.zeros(6))
    want_r1 = np.mean(np.sum(_mlp_numpy(critic, real)[1] ** 2, axis=1))
    want_r2 = np.mean(np.sum(_mlp_numpy(critic, fake)[1] ** 2, axis=1))
    got = {name: float(penalties.penalty(name, critic, tf.constant(real), tf.constant(fake), alpha))
           for name in ("r1", "r2", "r1r2")}  # fmt: skip
    assert got["r1"] == pytest.approx(want_r1, rel=1e-12) and got["r2"] == pytest.approx(want_r2, rel=1e-12)
    assert got["r1r2"] == pytest.approx(want_r1 + want_r2, rel=1e-12) and abs(want_r1 - want_r2) > 1e-3
    assert penalties.weight("r2", 0.05) == penalties.weight("r1r2", 0.05) == 0.025


@pytest.mark.parametrize("name", penalties.PENALTIES)
def test_penalty_weight_gradients_match_finite_differences(float64, name):
    """What the trainer differentiates: d penalty / d critic weights, through the input gradient."""
    critic = _mlp_critic(seed=5)
    real, fake = tf.constant(_images(6)), tf.constant(_images(7))
    alpha = tf.constant(np.random.default_rng(8).uniform(size=6))
    fn = lambda: penalties.penalty(name, critic, real, fake, alpha)
    with tf.GradientTape() as tape:
        value = fn()
    grads = tape.gradient(value, critic.trainable_variables)
    # The last bias does not move the input gradient: no (zero) gradient.
    grads = [np.zeros(v.shape) if g is None else g.numpy() for v, g in zip(critic.trainable_variables, grads)]
    rng = np.random.default_rng(9)
    h = 1e-6
    for var, grad in zip(critic.trainable_variables, grads):
        base = var.numpy()
        for _ in range(3):
            idx = tuple(rng.integers(0, s) for s in base.shape)
            diffs = []
            for sign in (1, -1):
                bumped = base.copy()
                bumped[idx] += sign * h
                var.assign(bumped)
                diffs.append(float(fn()))
            var.assign(base)
            fd = (diffs[0] - diffs[1]) / (2 * h)
            np.testing.assert_allclose(grad[idx], fd, rtol=1e-5, atol=1e-8)


@pytest.mark.parametrize("mode", ["pgn", "gn"])
def test_penalty_on_a_normalized_critic_sees_its_output(float64, mode):
    """With a PGNDiscriminator, the gradient in the penalty is that of f_hat (checked by finite differences)."""
    d = PGNDiscriminator(_mlp_critic(seed=10), mode=mode)
    x = _images(11, n=3)
    norm = penalties.input_gradient_norm(d, tf.constant(x)).numpy()
    h = 1e-6
    fd = np.zeros((3, 4))
    for j in range(4):
        step = np.zeros(4)
        step[j] = h
        up = d(tf.constant(x + step.reshape(1, 2, 2, 1))).numpy()[:, 0]
        down = d(tf.constant(x - step.reshape(1, 2, 2, 1))).numpy()[:, 0]
        fd[:, j] = (up - down) / (2 * h)
    np.testing.assert_allclose(norm, np.sqrt(np.sum(fd**2, axis=1)), rtol=1e-6)
    raw = penalties.input_gradient_norm(d.critic, tf.constant(x)).numpy()
    assert np.all(np.abs(norm - raw) > 1e-3)  # not the raw critic's


def test_conditional_penalties_use_the_labels(float64):
    """f(x, y) = <flat(x), E[y]>: grad_x f = E[y], so the penalties are functions of the labels' embeddings."""
    x_in, y_in = keras.Input((2, 2, 1)), keras.Input((), dtype="int32")
    emb = keras.layers.Embedding(3, 4)
    f = keras.ops.sum(keras.layers.Flatten()(x_in) * emb(y_in), axis=1, keepdims=True)
    critic = keras.Model([x_in, y_in], f)
    table = emb.embeddings.numpy()
    real, fake = tf.constant(_images(12, 4)), tf.constant(_images(13, 4))
    labels = tf.constant([0, 1, 2, 1])
    norms = np.sqrt(np.sum(table[labels.numpy()] ** 2, axis=1) + EPS)
    alpha = tf.constant(np.full(4, 0.3))
    gp1 = float(penalties.gradient_penalty(critic, real, fake, alpha, 1.0, labels=labels))
    assert gp1 == pytest.approx(np.mean((norms - 1.0) ** 2), rel=1e-10)
    r1 = float(penalties.r1_penalty(critic, real, labels=labels))
    assert r1 == pytest.approx(np.mean(norms**2 - EPS), rel=1e-10)


def test_unknown_penalty_is_refused():
    with pytest.raises(ValueError, match="Unknown penalty 'gp2'"):
        penalties.penalty("gp2", None, None, None, None)


def _linear_gan(mode, spectral_norm=False, **pgn):
    """A PGNGAN whose critic is f(x) = w . flat(x) + b (grad_x f = w everywhere) and a one-layer generator."""
    x = keras.Input((2, 2, 1))
    layer = SNDense(1, kernel_initializer="xavier_uniform") if spectral_norm else keras.layers.Dense(1)
    critic = keras.Model(x, layer(keras.layers.Flatten()(x)))
    z = keras.Input((3,))
    generator = keras.Model(z, keras.layers.Reshape((2, 2, 1))(keras.layers.Dense(4, activation="tanh")(z)))
    loop = LoopConfig(normalization=mode, z_dim=3, batch_size_D=4, batch_size_G=4, **pgn)
    return PGNGAN(generator, critic, loop), critic, layer


def test_lipschitz_monitor_of_a_linear_critic_is_its_known_gradient_norm():
    real, z = tf.constant(_images(14, 4), tf.float32), tf.random.normal((4, 3), seed=1)
    alpha = tf.constant([0.0, 0.3, 0.7, 1.0])

    gan, critic, _ = _linear_gan("none")
    w = critic.weights[0].numpy()[:, 0]
    out = {k: float(v) for k, v in gan.lipschitz(real, z, alpha).items()}
    assert set(out) == {f"{a}_{b}" for a in ("real", "fake", "interp") for b in ("mean", "max")}
    np.testing.assert_allclose(list(out.values()), np.linalg.norm(w), rtol=1e-5)

    # SN: after a training call (one power iteration) sigma is ||w|| exactly for one output, so the norm is 1.
    gan, critic, layer = _linear_gan("none", spectral_norm=True)
    layer.kernel.assign(layer.kernel * 3.0 / np.linalg.norm(layer.kernel.numpy()))  # unnormalized, the norm is 3
    critic(real, training=True)
    out = gan.lipschitz(real, z, alpha)
    np.testing.assert_allclose([float(v) for v in out.values()], 1.0, rtol=1e-5)

    # PGN: f_hat = a / (c + |a|), a = 1 - f, c = ||1 - w||, so ||grad f_hat|| = c ||w|| / (c + |a|)^2.
    gan, critic, _ = _linear_gan("pgn")
    out = gan.lipschitz(real, z, alpha)
    w, b = critic.weights[0].numpy()[:, 0], critic.weights[1].numpy()[0]
    c = np.sqrt(np.sum((1.0 - w) ** 2) + EPS)
    fake = gan.generate(z).numpy()
    a_ = alpha.numpy()[:, None, None, None]
    for name, x in (("real", real.numpy()), ("fake", fake), ("interp", a_ * real.numpy() + (1 - a_) * fake)):
        f = x.reshape(4, -1) @ w + b
        norms = c * np.linalg.norm(w) / (c + np.abs(1.0 - f)) ** 2
        np.testing.assert_allclose(float(out[f"{name}_mean"]), norms.mean(), rtol=1e-4)
        np.testing.assert_allclose(float(out[f"{name}_max"]), norms.max(), rtol=1e-4)


@pytest.mark.parametrize("mode,s,center", [("pgn", 1.0, False), ("gn", 1.0, False), ("none", 1.0, False),
                                           ("pgn", 2.5, True)])  # fmt: skip
def test_critic_diagnostics_of_a_linear_critic(mode, s, center):
    """f on reals / fakes, ||grad_x f|| = ||w||, the share on its side, the saturated share, the loss's pull on
    each side's f and the gradient's alignment with the ones vector, as computed by hand; with PGN's scale s
    and center, the pull goes through s (1 - f_c) / (c + |1 - f_c|) and saturation is |f_hat| > 0.99 s."""
    from pgn_tf import losses

    gan, critic, layer = _linear_gan(mode, **({"pgn_scale": s, "pgn_center": True} if center else {}))
    gan.compile(keras.optimizers.SGD(0.0), keras.optimizers.SGD(0.0), losses.bce)  # lr 0: D stays as measured
    real = tf.constant(_images(14, 4), tf.float32)
    logs = gan.critic_step(real)
    z, _ = gan.latents(4, 0)
    both = tf.concat([real, gan.generate(z)], axis=0)
    f = critic(both).numpy()[:, 0]
    f_hat = gan.discriminator.normalize(both).f_hat.numpy()[:, 0]
    np.testing.assert_allclose(logs["f_real_mean"], f[:4].mean(), rtol=1e-5)
    np.testing.assert_allclose(logs["f_fake_std"], f[4:].std(), rtol=1e-4, atol=1e-7)
    w_norm = np.linalg.norm(layer.kernel.numpy()) if mode != "none" else 0.0
    np.testing.assert_allclose(logs["input_grad_norm_mean"], w_norm, rtol=1e-5)
    np.testing.assert_allclose(logs["accuracy"], np.mean(np.r_[f_hat[:4] > 0, f_hat[4:] < 0]))
    np.testing.assert_allclose(logs["saturated"], np.mean(np.abs(f_hat) > 0.99 * s))
    # The pull, -d loss_i / d f_i: BCE's -d/d f_hat is sigmoid(-f_hat) for a real, -sigmoid(f_hat) for a fake,
    # times d f_hat / d f with the denominator's norm c held, here by central differences of f_hat's definition.
    w = layer.kernel.numpy()[:, 0].astype(np.float64)
    c = np.sqrt(np.sum((1.0 - w) ** 2) + EPS) if mode == "pgn" else np.sqrt(np.sum(w**2) + EPS)
    held_mean = f.astype(np.float64).mean() if center else 0.0  # center's mean is held: a constant here
    of_f = {
        "pgn": lambda v: s * (1.0 - (v - held_mean)) / (c + np.abs(1.0 - (v - held_mean))),
        "gn": lambda v: v / (c + np.abs(v)),
        "none": lambda v: v,
    }
    h, f64 = 1e-5, f.astype(np.float64)
    slope = (of_f[mode](f64 + h) - of_f[mode](f64 - h)) / (2 * h)
    sigmoid = 1.0 / (1.0 + np.exp(-f_hat))
    pull = np.r_[1.0 - sigmoid[:4], -sigmoid[4:]] * slope
    np.testing.assert_allclose(logs["pull_real_mean"], pull[:4].mean(), rtol=1e-5)
    np.testing.assert_allclose(logs["pull_fake_mean"], pull[4:].mean(), rtol=1e-5)
    # cos(grad_x f, 1) = sum(w) / (sqrt(d) ||w||), d = 4 input numbers; the raw critic computes no gradient: 0.
    cos = np.sum(w) / (2.0 * np.linalg.norm(w)) if mode != "none" else 0.0
    np.testing.assert_allclose(logs["ones_cos_mean"], cos, rtol=1e-5, atol=1e-7)
