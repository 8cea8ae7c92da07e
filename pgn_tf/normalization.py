"""Penalty gradient normalization (PGN), gradient normalization (GN) and PGNDiscriminator."""

import math
from typing import NamedTuple

import keras
import tensorflow as tf

from pgn_tf.layer_walk import walk_layers

# Added under the square root of every norm so that its gradient stays finite
# at 0 (tf.norm's is NaN there) and f = 1 with grad = 1 gives f_hat = 0.
EPS = 1e-12

MODES = ("pgn", "gn", "none")
# PGN's constant vector c * 1 in ||c * 1 - grad_x f||: c = 1 is the paper's (the default); "unit" is
# c = 1 / sqrt(d), a unit vector; any c >= 0 (c = 0 is GN applied to 1 - f). Variants beyond the paper.
UNIT = "unit"
# pgn_scale's value for s = sqrt(d): f_hat * sqrt(d) is ~ 1 - f where the denominator is ~ sqrt(d).
SQRT_D = "sqrt_d"


def check_scale(scale):
    """Raises ValueError unless scale is a number > 0 (not a bool) or "sqrt_d"."""
    ok = scale == SQRT_D or (
        isinstance(scale, (int, float)) and not isinstance(scale, bool) and math.isfinite(scale) and scale > 0
    )
    if not ok:
        raise ValueError(f'PGN\'s scale must be a number > 0 or "{SQRT_D}", got {scale!r}.')


def check_constant(constant):
    """Raises ValueError unless constant is a number >= 0 (not a bool) or "unit"."""
    ok = constant == UNIT or (
        isinstance(constant, (int, float))
        and not isinstance(constant, bool)
        and math.isfinite(constant)
        and constant >= 0
    )
    if not ok:
        raise ValueError(f'PGN\'s constant must be a number >= 0 or "{UNIT}", got {constant!r}.')


class Normalized(NamedTuple):
    """What a normalized critic computes, for losses and for monitoring.

    f_hat: [N, 1] the normalized output; f: [N, 1] the raw critic output;
    grad_norm: [N] the per-sample norm in the denominator (||1 - grad_x f|| for
    PGN, ||grad_x f|| for GN, zeros for "none"); input_grad_norm: [N] the raw
    ||grad_x f|| (the same as grad_norm for GN, zeros for "none", which
    computes no input gradient); ones_cos: [N] cos(grad_x f, 1), the raw
    gradient's alignment with the ones vector of PGN's 1 - grad_x f (PGN and
    GN; zeros for "none"). Since ||1 - g||^2 = d - 2 cos sqrt(d) ||g|| + ||g||^2,
    the denominator is below sqrt(d) where cos > ||g|| / (2 sqrt(d)).
    slope: [N, 1] d f_hat / d f with the denominator's norm G held, PGN's
    interventions included (-s G / (G + |1 - f_c|)^2 for PGN, G / (G + |f|)^2
    for GN, ones for "none"): how much of the loss's pull on f_hat reaches f.
    Both normalisers flatten as the numerator grows: a sample far from
    f_hat = 0, on either side, passes little of the pull on. scale: the scalar
    s that f_hat was multiplied by (1 unless PGN's scale), so that |f_hat| <= s.
    """

    f_hat: tf.Tensor
    f: tf.Tensor
    grad_norm: tf.Tensor
    input_grad_norm: tf.Tensor
    ones_cos: tf.Tensor
    slope: tf.Tensor
    scale: tf.Tensor


def call_critic(critic, x, labels, training):
    """critic(x) or, for a conditional critic, critic([x, labels])."""
    if labels is None:
        return critic(x, training=training)
    return critic([x, labels], training=training)


def is_piecewise_linear(critic):
    """Whether `critic` says it is piecewise linear in its input (`critic.piecewise_linear = True`).

    Convolutions, dense layers, (Leaky)ReLU, average pooling, sums and a class
    projection keep f piecewise linear in x, so grad_x f is constant between
    kinks and its own gradient with respect to x is zero. Our critics say so;
    a critic with smooth activations (tanh, softplus, attention) must not.
    """
    return getattr(critic, "piecewise_linear", False) is True


def per_sample_norm(t, eps):
    """sqrt(sum of squares + eps) over all but the first axis: [N, ...] -> [N]."""
    axes = list(range(1, len(t.shape)))
    return tf.sqrt(tf.reduce_sum(tf.square(t), axis=axes) + eps)


def normalize(
    critic, x, labels=None, mode="pgn", training=None, eps=EPS, frozen=False, hold=False, constant=1.0, scale=1.0,
    center=False,
):  # fmt: skip
    """Applies a critic to x through PGN, GN or nothing.

        PGN: f_hat = (1 - f) / (||1 - grad_x f||_2 + |1 - f|)
        GN:  f_hat = f / (||grad_x f||_2 + |f|)
        PGN with constant c (a variant): f_hat = (1 - f) / (||c * 1 - grad_x f||_2 + |1 - f|)
        PGN's interventions (not the method; docs/models.md): f_hat * s (scale), and f - mean(f) for f (center)

    grad_x f is the per-sample gradient of f with respect to its input (one
    inner tape; samples must be independent, so no BatchNorm in the critic),
    `1 - grad` is taken elementwise and the norm is over each sample's
    flattened gradient, as in the official `penalty_normalize_gradient`.
    The inner gradient is recorded by any outer tape, so losses on f_hat
    differentiate through it (double backprop).

    Args:
      critic: a Keras model taking x (or [x, labels]) -> [N, 1] scores.
      x: [N, H, W, C] float images (any rank >= 2 works).
      labels: optional [N] int class labels for conditional critics.
      mode: "pgn", "gn" or "none" (the raw critic, for baselines).
      training: passed to the critic.
      eps: added under the square root of the norm.
      frozen: the caller differentiates f_hat with respect to x (and what x
        depends on, such as G's weights) only, never the critic's weights: the
        generator step. For a piecewise linear critic (`is_piecewise_linear`)
        d f_hat / dx is then (d f_hat / d f) * grad_x f exactly, and grad_x f is
        the inner tape's, so the outer backward pass through the critic is
        skipped (one input-gradient convolution per layer, about a tenth of a
        dcgan.32 PGN iteration). The values are the same; the critic's weights
        get no gradient (None). Other critics take the full path.
      hold: an ablation, not the method: the denominator's norm enters f_hat
        as a constant (tf.stop_gradient), so losses on f_hat get no gradient
        through it (the double-backprop term). f_hat's value is the same.
      constant: PGN's constant c: 1.0 (the paper's; this path is the official
        formula, unchanged), any number >= 0, or "unit" (c = 1 / sqrt(d), d
        the input size, so that the constant vector has norm 1). Not the
        method: a variant (docs/models.md, "PGN variants").
      scale: PGN's f_hat multiplied by s before the loss: 1.0 (the method), a
        number > 0, or "sqrt_d" (s = sqrt(d)). An intervention, not the method.
      center: PGN's raw output taken less its mean over the batch (the mean
        held constant: no gradient through it), so an offset that reals and
        fakes share never reaches f_hat: f_hat = (1 - f_c) / (||1 - grad_x f||
        + |1 - f_c|), f_c = f - mean(f). Couples the samples of a batch (the
        loop runs it on one device, without accumulation, CR, a penalty or a
        relativistic loss). An intervention, not the method.

    Returns:
      A `Normalized` (f_hat, f, grad_norm, input_grad_norm, ones_cos, slope, scale).
    """
    if mode not in MODES:
        raise ValueError(f"Unknown normalization mode {mode!r}; expected one of {MODES}.")
    check_constant(constant)
    check_scale(scale)
    if (scale != 1.0 or center) and mode != "pgn":
        raise ValueError(f"PGN's scale and center need mode 'pgn', not {mode!r}.")
    x = tf.convert_to_tensor(x)
    if mode == "none":
        f = tf.cast(call_critic(critic, x, labels, training), x.dtype)
        zeros = tf.zeros(tf.shape(f)[:1], f.dtype)
        return Normalized(f, f, zeros, zeros, zeros, tf.ones_like(f), tf.ones((), f.dtype))
    with tf.GradientTape(watch_accessed_variables=False) as tape:
        tape.watch(x)
        # In x's dtype: a mixed-precision critic computes in (b)float16, the norm and division do not.
        f = tf.cast(call_critic(critic, x, labels, training), x.dtype)
    # d(sum f)/dx: the same as autograd.grad(f, x, ones_like(f)).
    grad = tape.gradient(f, x)
    axes, d = list(range(1, len(x.shape))), tf.cast(tf.reduce_prod(tf.shape(x)[1:]), x.dtype)
    if frozen and is_piecewise_linear(critic):
        grad = tf.stop_gradient(grad)  # constant between kinks: no second-order term
        linear = tf.reduce_sum(grad * (x - tf.stop_gradient(x)), axis=axes)
        f = tf.stop_gradient(f) + tf.reshape(linear, tf.shape(f))  # the same value; d f / dx = grad
    input_grad_norm = per_sample_norm(grad, eps)
    ones_cos = tf.reduce_sum(grad, axis=axes) / (tf.sqrt(d) * input_grad_norm)
    if mode == "pgn":
        if constant == 1.0:
            grad_norm = per_sample_norm(1.0 - grad, eps)  # the official formula, exactly
        else:
            c = 1.0 / tf.sqrt(d) if constant == UNIT else tf.constant(constant, x.dtype)
            grad_norm = per_sample_norm(c - grad, eps)
    else:
        grad_norm = input_grad_norm
    grad_norm_b = tf.reshape(grad_norm, [-1] + [1] * (len(f.shape) - 1))
    if hold:
        grad_norm_b = tf.stop_gradient(grad_norm_b)
    s = scale_value(scale, d, x.dtype)
    f_hat, slope = ratio(f, grad_norm_b, mode, s, center)
    return Normalized(f_hat, f, grad_norm, input_grad_norm, ones_cos, slope, s)


def scale_value(scale, d, dtype=tf.float32):
    """PGN's scale s as a scalar tensor: the number itself, or sqrt(d) for "sqrt_d" (d: the input size)."""
    return tf.sqrt(tf.cast(d, dtype)) if scale == SQRT_D else tf.constant(scale, dtype)


def ratio(f, grad_norm, mode, s=1.0, center=False):
    """f_hat from the raw output f [N, 1] and the denominator's norm grad_norm [N, 1], and its slope d f_hat / d f
    with that norm held: PGN s (1 - f_c) / (G + |1 - f_c|) (f_c = f less its held batch mean when center, else f),
    GN f / (G + |f|). What `normalize` ends with; pass tf.stop_gradient(G) for the held f_hat."""
    if mode == "pgn":
        num = 1.0 - (f - tf.stop_gradient(tf.reduce_mean(f)) if center else f)
        denominator = grad_norm + tf.abs(num)
        return num / denominator * s, -s * grad_norm / tf.square(denominator)  # f_hat as the method computes it, s = 1
    denominator = grad_norm + tf.abs(f)
    return f / denominator, grad_norm / tf.square(denominator)


def penalty_normalize(critic, x, labels=None, training=None, eps=EPS):
    """PGN: f_hat = (1 - f) / (||1 - grad_x f|| + |1 - f|); see `normalize`."""
    return normalize(critic, x, labels, "pgn", training, eps).f_hat


def gradient_normalize(critic, x, labels=None, training=None, eps=EPS):
    """GN: f_hat = f / (||grad_x f|| + |f|); see `normalize`."""
    return normalize(critic, x, labels, "gn", training, eps).f_hat


def _batch_coupling_layers(model):
    found = []
    for layer in walk_layers(model, include_self=True):
        if isinstance(layer, keras.layers.BatchNormalization):
            found.append(layer.name)
    return found


@keras.saving.register_keras_serializable(package="pgn_tf")
class PGNDiscriminator(keras.Model):
    """Wraps any critic so that calling it returns the normalized output f_hat.

    `PGNDiscriminator(critic)(x)` is `penalty_normalize(critic, x)`; mode "gn"
    gives gradient normalization and "none" the raw critic, so that baselines
    run through the same code. Conditional critics take `[x, labels]`; pass
    `labels=` here. Works eagerly, under `tf.function` (with or without
    `jit_compile`) and inside an outer `tf.GradientTape`.

    Raises:
      ValueError: for an unknown mode, or when the critic holds a
        BatchNormalization layer (it couples the samples of a batch, so the
        gradient of sum(f) is no longer each sample's own gradient).
    """

    def __init__(
        self, critic, mode="pgn", eps=EPS, hold_denominator=False, constant=1.0, scale=1.0, center=False, **kwargs
    ):
        # Under a mixed-precision policy the critic computes in (b)float16; the wrapper (its input
        # gradient, norm and division) keeps the variables' dtype, so it is not the policy's compute dtype.
        kwargs.setdefault("dtype", keras.config.dtype_policy().variable_dtype)
        super().__init__(**kwargs)
        if mode not in MODES:
            raise ValueError(f"Unknown normalization mode {mode!r}; expected one of {MODES}.")
        check_constant(constant)
        check_scale(scale)
        if (constant != 1.0 or scale != 1.0 or center) and mode != "pgn":
            raise ValueError(f"PGN's constant, scale and center need mode 'pgn', not {mode!r}.")
        coupled = _batch_coupling_layers(critic)
        if coupled:
            raise ValueError(
                f"The critic {critic.name!r} has BatchNormalization layers {coupled}: "
                "PGN/GN need samples that do not depend on each other; remove them "
                "(use LayerNormalization or no normalization)."
            )
        self.critic = critic
        self.mode = mode
        self.eps = eps
        self.hold_denominator = hold_denominator  # the ablation `normalize(hold=True)`; False is the method
        self.constant = constant  # PGN's constant c (`normalize`); 1.0 is the method
        self.scale, self.center = scale, center  # PGN's interventions (`normalize`); 1.0 and False are the method
        self.built = True  # no weights of its own; the critic is built

    def call(self, inputs, labels=None, training=None):
        return self.normalize(inputs, labels=labels, training=training).f_hat

    def normalize(self, x, labels=None, training=None, frozen=False):
        """Returns the `Normalized` tuple (f_hat and what monitoring reads); see `normalize`."""
        return normalize(
            self.critic, x, labels, self.mode, training, self.eps, frozen, self.hold_denominator, self.constant,
            self.scale, self.center,
        )  # fmt: skip

    def get_config(self):
        config = super().get_config()
        config.update(
            critic=keras.saving.serialize_keras_object(self.critic),
            mode=self.mode,
            eps=self.eps,
            hold_denominator=self.hold_denominator,
            constant=self.constant,
            scale=self.scale,
            center=self.center,
        )
        return config

    @classmethod
    def from_config(cls, config):
        config = dict(config)
        config["critic"] = keras.saving.deserialize_keras_object(config["critic"])
        return cls(**config)
