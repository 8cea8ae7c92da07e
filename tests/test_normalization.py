"""PGN / GN values and gradients against numpy, and PGNDiscriminator in every execution mode."""

import keras
import numpy as np
import pytest
import tensorflow as tf

from pgn_tf import PGNDiscriminator, gradient_normalize, normalize, penalty_normalize
from pgn_tf.normalization import EPS

SHAPE = (4, 4, 2)  # small images, NHWC without the batch axis


def mlp_critic(dtype="float64"):
    """f(x) = w2 . tanh(W1 vec(x) + b1) + b2, whose input gradient numpy can write down."""
    return keras.Sequential(
        [
            keras.Input(SHAPE, dtype=dtype),
            keras.layers.Flatten(dtype=dtype),
            keras.layers.Dense(16, activation="tanh", dtype=dtype),
            keras.layers.Dense(1, dtype=dtype),
        ]
    )


def np_f_and_grad(critic, x):
    w1, b1, w2, b2 = [np.asarray(v, np.float64) for v in critic.get_weights()]
    flat = x.reshape(len(x), -1)
    h = np.tanh(flat @ w1 + b1)
    f = h @ w2 + b2
    grad = ((1 - h**2) * w2[:, 0]) @ w1.T
    return f, grad.reshape(x.shape)


def np_normalized(critic, x, mode):
    f, g = np_f_and_grad(critic, x)
    if mode == "pgn":
        num, norm = 1 - f, np.sqrt(((1 - g) ** 2).reshape(len(x), -1).sum(1) + EPS)
    else:
        num, norm = f, np.sqrt((g**2).reshape(len(x), -1).sum(1) + EPS)
    return num / (norm[:, None] + np.abs(num))


@pytest.fixture
def data():
    critic = mlp_critic()
    x = np.random.default_rng(1).standard_normal((5,) + SHAPE)
    return critic, x


@pytest.mark.parametrize("mode", ["pgn", "gn"])
def test_values_match_numpy(data, mode):
    critic, x = data
    fn = penalty_normalize if mode == "pgn" else gradient_normalize
    got = fn(critic, tf.constant(x)).numpy()
    np.testing.assert_allclose(got, np_normalized(critic, x, mode), rtol=1e-10, atol=1e-12)
    out = normalize(critic, tf.constant(x), mode=mode)
    _, g = np_f_and_grad(critic, x)
    ref = np.sqrt((((1 - g) if mode == "pgn" else g) ** 2).reshape(len(x), -1).sum(1) + EPS)
    np.testing.assert_allclose(out.grad_norm.numpy(), ref, rtol=1e-10)


@pytest.mark.parametrize("mode", ["pgn", "gn"])
def test_input_gradient_matches_finite_differences(data, mode):
    critic, x = data
    xt = tf.constant(x)
    with tf.GradientTape() as tape:
        tape.watch(xt)
        total = tf.reduce_sum(normalize(critic, xt, mode=mode).f_hat)
    got = tape.gradient(total, xt).numpy()
    h = 1e-6
    ref = np.zeros_like(x)
    for idx in np.ndindex(x.shape):
        xp, xm = x.copy(), x.copy()
        xp[idx] += h
        xm[idx] -= h
        ref[idx] = (np_normalized(critic, xp, mode).sum() - np_normalized(critic, xm, mode).sum()) / (2 * h)
    np.testing.assert_allclose(got, ref, rtol=1e-5, atol=1e-8)


def test_weight_gradient_matches_finite_differences(data):
    """Double backprop: d sum(f_hat) / d W1 through the input gradient."""
    critic, x = data
    w1 = critic.layers[1].kernel
    with tf.GradientTape() as tape:
        total = tf.reduce_sum(penalty_normalize(critic, tf.constant(x)))
    assert_central_differences(tape.gradient(total, w1).numpy(), w1, lambda: np_normalized(critic, x, "pgn").sum())


def assert_central_differences(got, var, value, h=1e-6):
    """got[idx] against (value() at var[idx] + h - at var[idx] - h) / 2h, at a few entries of var (restored)."""
    base = var.numpy()
    for idx in [(0, 0), (3, 7), (31, 15), (12, 4)]:
        vals = []
        for sign in (1, -1):
            w = base.copy()
            w[idx] += sign * h
            var.assign(w)
            vals.append(value())
        var.assign(base)
        np.testing.assert_allclose(got[idx], (vals[0] - vals[1]) / (2 * h), rtol=1e-5, atol=1e-9)


def conv_critic(scale=1.0):
    init = keras.initializers.RandomNormal(stddev=scale)
    return keras.Sequential(
        [
            keras.Input((8, 8, 3)),
            keras.layers.Conv2D(8, 3, strides=2, padding="same", kernel_initializer=init),
            keras.layers.LeakyReLU(0.1),
            keras.layers.Flatten(),
            keras.layers.Dense(1, kernel_initializer=init),
        ]
    )


@pytest.mark.parametrize("mode", ["pgn", "gn"])
def test_bounded_on_extreme_inputs(mode):
    critic = conv_critic(scale=100.0)
    rng = np.random.default_rng(2)
    for x in [rng.standard_normal((6, 8, 8, 3)) * 1e6, np.zeros((6, 8, 8, 3)), -np.ones((6, 8, 8, 3)) * 1e4]:
        f_hat = normalize(critic, tf.constant(x, tf.float32), mode=mode).f_hat.numpy()
        assert np.all(np.isfinite(f_hat))
        assert np.all(np.abs(f_hat) <= 1.0 + 1e-6)


def test_eps_corner_gives_zero_not_nan():
    """f = sum(x) has grad 1 everywhere; with sum(x) = 1, PGN is 0/0 without eps."""
    sum_critic = keras.Sequential(
        [
            keras.Input((2, 2, 1)),
            keras.layers.Flatten(),
            keras.layers.Dense(1, use_bias=False, kernel_initializer="ones"),
        ]
    )
    x = tf.constant(np.full((3, 2, 2, 1), 0.25), tf.float32)
    zero_critic = keras.Sequential(
        [keras.Input((2, 2, 1)), keras.layers.Flatten(), keras.layers.Dense(1, kernel_initializer="zeros")]
    )
    for critic, mode in [(sum_critic, "pgn"), (zero_critic, "gn")]:
        with tf.GradientTape(persistent=True) as tape:
            tape.watch(x)
            f_hat = normalize(critic, x, mode=mode).f_hat
            total = tf.reduce_sum(f_hat)
        np.testing.assert_array_equal(f_hat.numpy(), 0.0)
        for g in [tape.gradient(total, x)] + tape.gradient(total, critic.trainable_variables):
            assert np.all(np.isfinite(g.numpy())), mode


def _loss_and_grads(disc, x):
    with tf.GradientTape() as tape:
        loss = tf.reduce_mean(tf.nn.relu(1.0 - disc(x, training=True)))
    return loss, tape.gradient(loss, disc.trainable_variables)


def test_eager_function_and_jit_agree():
    """Eager, graph and XLA compute the same gradients, in float64 (to rounding, on any CPU)."""
    from pgn_tf import precision

    with precision.scope("float64"):
        disc = PGNDiscriminator(conv_critic(scale=0.3))
        x = tf.constant(np.random.default_rng(3).uniform(-1, 1, (6, 8, 8, 3)), tf.float64)
        eager_loss, eager_grads = _loss_and_grads(disc, x)
        assert all(np.any(g.numpy() != 0) and np.all(np.isfinite(g.numpy())) for g in eager_grads)
        for jit in (False, True):
            loss, grads = tf.function(_loss_and_grads, jit_compile=jit)(disc, x)
            np.testing.assert_allclose(loss.numpy(), eager_loss.numpy(), rtol=1e-12)
            for g, ge in zip(grads, eager_grads):
                np.testing.assert_allclose(g.numpy(), ge.numpy(), rtol=1e-10, atol=1e-13)
        np.testing.assert_allclose(disc(x).numpy(), penalty_normalize(disc.critic, x).numpy(), rtol=1e-12)


def test_modes_and_labels():
    critic = conv_critic()
    x = tf.random.uniform((4, 8, 8, 3), -1, 1)
    np.testing.assert_allclose(PGNDiscriminator(critic, mode="none")(x).numpy(), critic(x).numpy(), rtol=1e-6)
    np.testing.assert_allclose(
        PGNDiscriminator(critic, mode="gn")(x).numpy(), gradient_normalize(critic, x).numpy(), rtol=1e-6
    )

    class Conditional(keras.Model):  # subclassed, takes [x, labels]
        def __init__(self):
            super().__init__()
            self.body = conv_critic()
            self.embed = keras.layers.Embedding(3, 1)

        def call(self, inputs):
            x, y = inputs
            return self.body(x) + self.embed(y)

    cond = Conditional()
    labels = tf.constant([0, 1, 2, 1])
    out = PGNDiscriminator(cond)(x, labels=labels)
    assert out.shape == (4, 1)
    # The label term moves f but not grad_x f: same gradient norm, other values.
    a = normalize(cond, x, tf.constant([0, 0, 0, 0]))
    b = normalize(cond, x, tf.constant([2, 2, 2, 2]))
    np.testing.assert_allclose(a.grad_norm.numpy(), b.grad_norm.numpy(), rtol=1e-6)
    assert not np.allclose(a.f_hat.numpy(), b.f_hat.numpy())


def test_rejects_batchnorm_and_unknown_mode():
    bn_critic = keras.Sequential(
        [
            keras.Input((8, 8, 3)),
            keras.layers.Conv2D(4, 3),
            keras.layers.BatchNormalization(),
            keras.layers.Flatten(),
            keras.layers.Dense(1),
        ]
    )
    with pytest.raises(ValueError, match="BatchNormalization"):
        PGNDiscriminator(bn_critic)
    with pytest.raises(ValueError, match="Unknown normalization mode"):
        PGNDiscriminator(conv_critic(), mode="pgnn")
    with pytest.raises(ValueError, match="Unknown normalization mode"):
        normalize(conv_critic(), tf.zeros((1, 8, 8, 3)), mode="sn")


def _normalized_and_grads(critic, x, mode, frozen, labels=None):
    """f_hat, and the gradients of a per-sample-weighted sum of it w.r.t. x and the critic's weights."""
    x = tf.constant(x)
    weights = tf.constant(np.linspace(-1.0, 2.0, len(x))[:, None], x.dtype)
    with tf.GradientTape(persistent=True) as tape:
        tape.watch(x)
        f_hat = normalize(critic, x, labels, mode, training=True, frozen=frozen).f_hat
        loss = tf.reduce_sum(weights * f_hat)
    return f_hat.numpy(), tape.gradient(loss, x).numpy(), tape.gradient(loss, critic.trainable_variables)


@pytest.mark.parametrize("arch", ["dcgan.32", "resnet.32", "biggan.32"])
@pytest.mark.parametrize("mode", ["pgn", "gn"])
def test_frozen_critic_shortcut_gives_the_full_paths_input_gradient(arch, mode):
    """Our critics are piecewise linear: the generator step skips a backward pass and gets the same numbers."""
    from pgn_tf import models, precision

    with precision.scope("float64"):  # no float noise: the two paths differ only in rounding
        critic = models.build_critic(arch, width=0.125)
        assert critic.piecewise_linear is True
        rng = np.random.default_rng(3)
        x = rng.uniform(-1, 1, (6, 32, 32, 3))
        labels = tf.constant(rng.integers(0, 10, 6), tf.int32) if models.is_conditional(arch) else None
        full = _normalized_and_grads(critic, x, mode, frozen=False, labels=labels)
        short = _normalized_and_grads(critic, x, mode, frozen=True, labels=labels)
    np.testing.assert_array_equal(short[0], full[0])  # the same values, bit for bit
    np.testing.assert_allclose(short[1], full[1], rtol=1e-9, atol=1e-12 * np.abs(full[1]).max())
    assert all(g is not None for g in full[2]) and all(g is None for g in short[2])  # the frozen weights get none


def test_frozen_takes_the_full_path_unless_the_critic_is_piecewise_linear(data):
    """A tanh critic has a second-order term: unmarked it keeps it; wrongly marked, the gradient changes."""
    critic, x = data
    full = _normalized_and_grads(critic, x, "pgn", frozen=False)
    unmarked = _normalized_and_grads(critic, x, "pgn", frozen=True)
    np.testing.assert_array_equal(unmarked[1], full[1])
    critic.piecewise_linear = True  # a false claim
    wrong = _normalized_and_grads(critic, x, "pgn", frozen=True)
    assert np.abs(wrong[1] - full[1]).max() > 1e-3 * np.abs(full[1]).max()


def test_graph_flops_counts_what_runs():
    """The benchmark's FLOP count: live ops (outputs and state changes) only, 2 per multiply-add."""
    from pgn_tf.flops import graph_flops as flops

    v = tf.Variable(tf.zeros((3, 5)))

    @tf.function
    def f(a, b):
        tf.linalg.matmul(b, b, transpose_b=True)  # dead: nothing uses it
        v.assign(tf.linalg.matmul(a, b))  # live through the variable update only
        return tf.linalg.matmul(a, b)[:, :1]

    graph = f.get_concrete_function(tf.zeros((3, 4)), tf.zeros((4, 5))).graph
    assert flops(graph) == (2 * (2 * 3 * 4 * 5), False)


def test_frozen_generator_step_skips_exactly_one_backward_pass_through_the_critic():
    """Counted in FLOPs: the shortcut removes one input-gradient op per critic layer, as many FLOPs as its forward."""
    from pgn_tf import losses, models, optimizers
    from pgn_tf.config import LoopConfig
    from pgn_tf.flops import graph_flops as flops
    from pgn_tf.gan import PGNGAN

    counts = []
    for marked in (True, False):
        critic = models.build_critic("dcgan.32", width=0.125)
        critic.piecewise_linear = marked
        loop = LoopConfig(batch_size_D=4, batch_size_G=4)
        gan = PGNGAN(models.build_generator("dcgan.32", width=0.125), critic, loop)
        gan.compile(optimizers.Adam(2e-4), optimizers.Adam(2e-4), losses.get("hinge"))
        step = tf.function(gan.generator_step).get_concrete_function(4)
        counts.append(flops(step.graph)[0])
    x = tf.zeros((4, 32, 32, 3))
    forward = flops(tf.function(lambda: critic(x)).get_concrete_function().graph)[0]
    # The same up to the element-wise ops (bias adds count in the forward, activation gradients in the backward).
    assert forward > 0 and abs((counts[1] - counts[0]) - forward) < 0.01 * forward


@pytest.mark.parametrize("mode", ["pgn", "gn"])
def test_hold_denominator_keeps_the_value_and_drops_the_gradient_through_the_norm(data, mode):
    """The ablation: f_hat as before; d sum(f_hat) / d W1 is the finite difference with the norm at its base value."""
    critic, x = data
    disc = PGNDiscriminator(critic, mode=mode, hold_denominator=True)
    w1 = critic.layers[1].kernel
    with tf.GradientTape(persistent=True) as tape:
        held = disc.normalize(tf.constant(x)).f_hat
        full = normalize(critic, tf.constant(x), mode=mode).f_hat
        totals = tf.reduce_sum(held), tf.reduce_sum(full)
    np.testing.assert_allclose(held.numpy(), full.numpy(), rtol=0, atol=0)
    got, unheld = (tape.gradient(t, w1).numpy() for t in totals)
    _, g0 = np_f_and_grad(critic, x)
    norm0 = np.sqrt((((1 - g0) if mode == "pgn" else g0) ** 2).reshape(len(x), -1).sum(1) + EPS)[:, None]

    def held_value():
        f = np_f_and_grad(critic, x)[0]
        num = 1 - f if mode == "pgn" else f
        return (num / (norm0 + np.abs(num))).sum()

    assert_central_differences(got, w1, held_value)
    assert np.abs(got - unheld).max() > 1e-3 * np.abs(unheld).max()  # the norm's own gradient is not negligible here
    back = PGNDiscriminator.from_config(disc.get_config())
    assert back.hold_denominator and back.mode == mode


# --- PGN's constant (variants beyond the paper; the default c = 1 is the official formula) ---------------------

D = int(np.prod(SHAPE))
CONSTANTS = [1.0, 0.3, 0.1, "unit", 0.0]


def linear_critic(seed=0):
    """f(x) = w . vec(x) + b in float64: grad_x f = w everywhere."""
    critic = keras.Sequential([keras.Input(SHAPE, dtype="float64"), keras.layers.Flatten(dtype="float64"),
                               keras.layers.Dense(1, dtype="float64")])  # fmt: skip
    rng = np.random.default_rng(seed)
    critic.set_weights([rng.standard_normal((D, 1)) * 0.3, np.array([0.4])])
    return critic


@pytest.mark.parametrize("constant", CONSTANTS)
def test_a_pgn_constant_is_the_hand_computation_on_a_linear_critic(constant):
    """f_hat_c = (1 - f) / (||c 1 - w|| + |1 - f|) for f = w.x + b; "unit" is c = 1 / sqrt(d)."""
    critic = linear_critic()
    (w, b), x = critic.get_weights(), np.random.default_rng(2).standard_normal((6,) + SHAPE)
    f = x.reshape(6, -1) @ w + b
    c = 1 / np.sqrt(D) if constant == "unit" else constant
    norm = np.sqrt(np.sum((c - w[:, 0]) ** 2) + EPS)
    out = normalize(critic, tf.constant(x), mode="pgn", constant=constant)
    np.testing.assert_allclose(out.f_hat.numpy(), (1 - f) / (norm + np.abs(1 - f)), rtol=1e-12)
    np.testing.assert_allclose(out.grad_norm.numpy(), np.full(6, norm), rtol=1e-12)
    wrapped = PGNDiscriminator(critic, constant=constant, dtype="float64")
    np.testing.assert_array_equal(wrapped(tf.constant(x)).numpy(), out.f_hat.numpy())
    assert PGNDiscriminator.from_config(wrapped.get_config()).constant == constant


def test_the_default_constant_is_the_official_formula_bit_for_bit(data):
    critic, x = data
    for default in (normalize(critic, tf.constant(x)), normalize(critic, tf.constant(x), constant=1)):
        np.testing.assert_array_equal(
            default.f_hat.numpy(), normalize(critic, tf.constant(x), constant=1.0).f_hat.numpy()
        )
    np.testing.assert_allclose(normalize(critic, tf.constant(x)).f_hat.numpy(), np_normalized(critic, x, "pgn"),
                               rtol=1e-10, atol=1e-12)  # fmt: skip
    # The official penalty_normalize_gradient, op for op in TF: equal to the last bit.
    xt = tf.constant(x)
    with tf.GradientTape() as tape:
        tape.watch(xt)
        f = critic(xt)
    grad = tape.gradient(f, xt)
    norm = tf.reshape(tf.sqrt(tf.reduce_sum(tf.square(1.0 - grad), axis=[1, 2, 3]) + EPS), [-1, 1])
    official = (1.0 - f) / (norm + tf.abs(1.0 - f))
    np.testing.assert_array_equal(normalize(critic, xt).f_hat.numpy(), official.numpy())


@pytest.mark.parametrize("constant", CONSTANTS)
def test_a_pgn_constants_input_gradient_is_bounded_as_docs_state(constant):
    """On a piecewise-linear critic (ReLU MLP), ||grad_x f_hat|| = ||g|| G / (G + |u|)^2 with g = grad_x f,
    G = ||c 1 - g||, u = 1 - f, which is <= 1 + c sqrt(d) / (G + |u|); <= 1 for c = 0 (GN's bound)."""
    keras.utils.set_random_seed(3)
    critic = keras.Sequential([keras.Input(SHAPE, dtype="float64"), keras.layers.Flatten(dtype="float64"),
                               keras.layers.Dense(32, activation="relu", dtype="float64"),
                               keras.layers.Dense(1, dtype="float64")])  # fmt: skip
    critic.piecewise_linear = True
    x = tf.constant(np.random.default_rng(4).standard_normal((256,) + SHAPE) * 3.0)
    with tf.GradientTape() as tape:
        tape.watch(x)
        out = normalize(critic, x, mode="pgn", constant=constant)
    got = np.sqrt(np.sum(tape.gradient(out.f_hat, x).numpy().reshape(256, -1) ** 2, axis=1))
    g, big_g, u = out.input_grad_norm.numpy(), out.grad_norm.numpy(), np.abs(1.0 - out.f.numpy()[:, 0])
    np.testing.assert_allclose(got, g * big_g / (big_g + u) ** 2, rtol=1e-6)
    c = 1 / np.sqrt(D) if constant == "unit" else constant
    assert np.all(got <= 1.0 + c * np.sqrt(D) / (big_g + u) + 1e-9)
    if constant == 0.0:
        assert got.max() <= 1.0 + 1e-9


@pytest.mark.parametrize("bad", [-0.5, "half", True, float("nan")])
def test_a_bad_constant_is_refused(bad):
    with pytest.raises(ValueError, match='constant must be a number >= 0 or "unit"'):
        PGNDiscriminator(linear_critic(), constant=bad)


# --- PGN's interventions (scale, center): not the method, opt-in -------------------------------------------------


@pytest.mark.parametrize("scale", [2.5, "sqrt_d"])
def test_a_pgn_scale_multiplies_f_hat_and_its_input_gradient(scale):
    """f_hat_s = s (1 - f) / (||1 - w|| + |1 - f|) on a linear critic; "sqrt_d" is s = sqrt(d)."""
    critic = linear_critic()
    (w, b), x = critic.get_weights(), np.random.default_rng(2).standard_normal((6,) + SHAPE)
    f = x.reshape(6, -1) @ w + b
    s = np.sqrt(D) if scale == "sqrt_d" else scale
    norm = np.sqrt(np.sum((1 - w[:, 0]) ** 2) + EPS)
    out = normalize(critic, tf.constant(x), mode="pgn", scale=scale)
    np.testing.assert_allclose(out.f_hat.numpy(), s * (1 - f) / (norm + np.abs(1 - f)), rtol=1e-12)
    wrapped = PGNDiscriminator(critic, scale=scale, dtype="float64")
    assert PGNDiscriminator.from_config(wrapped.get_config()).scale == scale


def test_pgn_center_removes_the_batch_mean_of_f_and_no_gradient_flows_through_it():
    """f_hat = (1 - (f - mean f)) / (||1 - w|| + |1 - (f - mean f)|); a shift of every f changes nothing; the
    input gradient of each sample is its own (the mean held)."""
    critic = linear_critic()
    (w, b), x = critic.get_weights(), np.random.default_rng(2).standard_normal((6,) + SHAPE)
    f = x.reshape(6, -1) @ w + b
    u = 1 - (f - f.mean())
    norm = np.sqrt(np.sum((1 - w[:, 0]) ** 2) + EPS)
    out = normalize(critic, tf.constant(x), mode="pgn", center=True)
    np.testing.assert_allclose(out.f_hat.numpy(), u / (norm + np.abs(u)), rtol=1e-12)
    np.testing.assert_allclose(out.f.numpy(), f, rtol=1e-12)  # the raw output is reported as it is
    shifted = linear_critic()
    shifted.set_weights([w, b + 1000.0])  # the shared offset the intervention is about
    np.testing.assert_allclose(normalize(shifted, tf.constant(x), center=True).f_hat, out.f_hat, rtol=1e-9)
    xt = tf.constant(x)
    with tf.GradientTape() as tape:
        tape.watch(xt)
        first = normalize(critic, xt, mode="pgn", center=True).f_hat[0, 0]
    grad = tape.gradient(first, xt).numpy()
    assert np.all(grad[1:] == 0) and np.abs(grad[0]).sum() > 0
    wrapped = PGNDiscriminator(critic, center=True, dtype="float64")
    assert PGNDiscriminator.from_config(wrapped.get_config()).center is True


@pytest.mark.parametrize("bad", [0, -1.0, "sqrt", True])
def test_a_bad_scale_is_refused_and_the_interventions_need_pgn(bad):
    with pytest.raises(ValueError, match='scale must be a number > 0 or "sqrt_d"'):
        PGNDiscriminator(linear_critic(), scale=bad)
    with pytest.raises(ValueError, match="need mode 'pgn'"):
        PGNDiscriminator(linear_critic(), mode="gn", center=True)
