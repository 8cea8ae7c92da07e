"""Layers with PyTorch's semantics: BatchNorm statistics, spectral norm, initialisers."""

import keras
import tensorflow as tf
from keras import ops

# torch.nn.init.kaiming_normal_ defaults: fan_in, gain sqrt(2), untruncated.
KAIMING_NORMAL = "kaiming_normal"
DCGAN_NORMAL = "dcgan_normal"  # torch.nn.init.normal_(std=0.02)
XAVIER_UNIFORM = "xavier_uniform"


def initializer(name):
    """A fresh Keras initializer for one of the official init schemes."""
    if name == KAIMING_NORMAL:
        return keras.initializers.VarianceScaling(2.0, "fan_in", "untruncated_normal")
    if name == DCGAN_NORMAL:
        return keras.initializers.RandomNormal(stddev=0.02)
    if name == XAVIER_UNIFORM:
        return keras.initializers.GlorotUniform()
    raise ValueError(f"Unknown initializer {name!r}.")


def channels(c, width):
    """Official channel count c scaled by the width multiplier (at least 1)."""
    return max(1, round(c * width))


@keras.saving.register_keras_serializable(package="pgn_tf")
class BatchNorm(keras.layers.BatchNormalization):
    """torch.nn.BatchNorm2d semantics in NHWC.

    eps 1e-5 and momentum 0.1 (Keras momentum 0.9); in training the batch is
    normalized with the biased variance while the running variance is
    updated with the unbiased one, as PyTorch does. Batch statistics are used
    whenever training=True, also for non-trainable copies (EMA generator), as
    the official code samples with G in training mode.

    Inside a step of a multi-replica tf.distribute strategy the statistics
    are those of the global batch (all replicas, two all-reduced passes), as
    the official multi-GPU script's synchronised BatchNorm; every replica
    then holds the same moving statistics.
    """

    def __init__(self, momentum=0.9, epsilon=1e-5, **kwargs):
        super().__init__(momentum=momentum, epsilon=epsilon, **kwargs)
        if self.axis not in (-1, 3):
            raise ValueError("BatchNorm here is channels-last (axis=-1).")

    def call(self, inputs, training=None, mask=None):
        if not training:
            return super().call(inputs, training=False)
        # As Keras does: at least float32 for the statistics.
        inputs = ops.cast(inputs, keras.backend.result_type(inputs.dtype, "float32"))
        ch = inputs.shape[-1]
        scale = self.gamma if self.scale else ops.ones((ch,), inputs.dtype)
        offset = self.beta if self.center else ops.zeros((ch,), inputs.dtype)
        ctx = tf.distribute.get_replica_context()
        if ctx is not None and ctx.num_replicas_in_sync > 1:
            mean, variance, n = _global_moments(inputs, ctx)
            unbiased = variance * n / ops.maximum(n - 1.0, 1.0)
            outputs = ops.batch_normalization(
                inputs, mean, variance, axis=-1, offset=offset, scale=scale, epsilon=self.epsilon
            )
        elif len(inputs.shape) == 4 and inputs.dtype == "float32" and not self.synchronized:
            # One fused kernel (and a fused gradient, more accurate in float32
            # than the composed ops); it returns the unbiased variance.
            outputs, mean, unbiased = tf.raw_ops.FusedBatchNormV3(
                x=inputs,
                scale=ops.cast(scale, "float32"),
                offset=ops.cast(offset, "float32"),
                mean=tf.zeros((0,)),
                variance=tf.zeros((0,)),
                epsilon=self.epsilon,
                data_format="NHWC",
                is_training=True,
            )[:3]
        else:
            axes = list(range(len(inputs.shape) - 1))  # all but channels, as BatchNormalization reduces
            mean, variance = ops.moments(inputs, axes, synchronized=self.synchronized)
            n = ops.cast(ops.size(inputs), inputs.dtype) / ch  # values per channel
            unbiased = variance * n / ops.maximum(n - 1.0, 1.0)
            outputs = ops.batch_normalization(
                inputs, mean, variance, axis=-1, offset=offset, scale=scale, epsilon=self.epsilon
            )
        m = self.momentum
        self.moving_mean.assign(self.moving_mean * m + ops.cast(mean, self.moving_mean.dtype) * (1.0 - m))
        self.moving_variance.assign(
            self.moving_variance * m + ops.cast(unbiased, self.moving_variance.dtype) * (1.0 - m)
        )
        return ops.cast(outputs, self.compute_dtype)


def _global_moments(x, ctx):
    """Per-channel mean, biased variance and count over every replica's batch (differentiable all-reduces)."""
    axes = list(range(len(x.shape) - 1))
    count = tf.cast(tf.reduce_prod(tf.shape(x)[:-1]), x.dtype)
    total, n = ctx.all_reduce("SUM", [tf.reduce_sum(x, axes), count])
    mean = total / n
    variance = ctx.all_reduce("SUM", tf.reduce_sum(tf.square(x - mean), axes)) / n
    return mean, variance, n


def _l2_normalize(v, eps):
    # torch.nn.functional.normalize: v / max(||v||, eps)
    return v / ops.maximum(ops.sqrt(ops.sum(ops.square(v))), eps)


class SpectralNorm(keras.layers.Layer):
    """torch.nn.utils.spectral_norm on this layer's kernel.

    The kernel is reshaped to PyTorch's (out, in * kh * kw) weight matrix, so
    the power-iteration vectors u [out] and v [in * kh * kw] are exactly
    PyTorch's `weight_u` / `weight_v`. One power iteration per training call
    (no gradient through u, v), none in inference; W / (u^T W v). u and v are
    non-trainable weights, so checkpoints keep them.

    eps: torch's `spectral_norm(eps=...)`: 1e-12 is torch's default (the SN
    critics); the official biggan.32 generator uses 1e-6.
    """

    def __init__(self, eps=1e-12, kernel_initializer=XAVIER_UNIFORM, **kwargs):
        super().__init__(**kwargs)
        self.eps = eps
        self.kernel_init = kernel_initializer

    def _build_sn(self, kernel_shape, out_dim, bias=True):
        self.kernel = self.add_weight(name="kernel", shape=kernel_shape, initializer=initializer(self.kernel_init))
        self.bias = self.add_weight(name="bias", shape=(out_dim,), initializer="zeros") if bias else None
        in_dim = 1
        for s in kernel_shape:
            in_dim *= s
        in_dim //= out_dim
        unit = keras.initializers.RandomNormal(stddev=1.0)
        # Updated in place by a training call; under a tf.distribute strategy each replica updates its own
        # copy (aggregation "none") with the same value, computed from the same mirrored kernel.
        self.sn_u = self.add_weight(name="sn_u", shape=(out_dim,), initializer=unit, trainable=False)
        self.sn_v = self.add_weight(name="sn_v", shape=(in_dim,), initializer=unit, trainable=False)

    def weight_matrix(self):
        """The kernel as PyTorch's [out, in * kh * kw] matrix."""
        k = self.kernel
        rank = len(k.shape)
        # Keras (kh, kw, in, out) / (in, out) -> torch (out, in, kh, kw) / (out, in).
        perm = [rank - 1, rank - 2] + list(range(rank - 2))
        return ops.reshape(ops.transpose(k, perm), (k.shape[-1], -1))

    def normalized_kernel(self, training):
        w = self.weight_matrix()
        u, v = self.sn_u, self.sn_v
        if training:
            w_const = ops.stop_gradient(w)
            v = _l2_normalize(ops.matmul(ops.transpose(w_const), u), self.eps)
            u = _l2_normalize(ops.matmul(w_const, v), self.eps)
            self.sn_u.assign(u)
            self.sn_v.assign(v)
        u = ops.stop_gradient(ops.convert_to_tensor(u))
        v = ops.stop_gradient(ops.convert_to_tensor(v))
        sigma = ops.sum(u * ops.matmul(w, v))
        return self.kernel / sigma

    def get_config(self):
        config = super().get_config()
        config.update(eps=self.eps, kernel_initializer=self.kernel_init)
        return config


@keras.saving.register_keras_serializable(package="pgn_tf")
class SNDense(SpectralNorm):
    """Spectrally normalized Linear (torch `sn(nn.Linear(in, units))`)."""

    def __init__(self, units, **kwargs):
        super().__init__(**kwargs)
        self.units = units

    def build(self, input_shape):
        self._build_sn((input_shape[-1], self.units), self.units)

    def call(self, inputs, training=None):
        return ops.matmul(inputs, self.normalized_kernel(training)) + self.bias

    def compute_output_shape(self, input_shape):
        return tuple(input_shape[:-1]) + (self.units,)

    def get_config(self):
        return {**super().get_config(), "units": self.units}


@keras.saving.register_keras_serializable(package="pgn_tf")
class SNConv2D(SpectralNorm):
    """Spectrally normalized 'same' conv (torch `sn(nn.Conv2d(.., k, stride, padding=(k - 1) // 2))`).

    With an even input size, k = 4, stride 2 pads one pixel on each side, as
    torch's padding=1 does (the dcgan critic's downsampling convs).
    """

    def __init__(self, filters, kernel_size, strides=1, **kwargs):
        super().__init__(**kwargs)
        self.filters = filters
        self.kernel_size = kernel_size
        self.strides = strides

    def build(self, input_shape):
        k = self.kernel_size
        self._build_sn((k, k, input_shape[-1], self.filters), self.filters)

    def call(self, inputs, training=None):
        y = ops.conv(inputs, self.normalized_kernel(training), strides=self.strides, padding="same")
        return y + self.bias

    def compute_output_shape(self, input_shape):
        n, h, w, _ = input_shape
        out = lambda d: None if d is None else -(-d // self.strides)
        return (n, out(h), out(w), self.filters)

    def get_config(self):
        return {
            **super().get_config(),
            "filters": self.filters,
            "kernel_size": self.kernel_size,
            "strides": self.strides,
        }


@keras.saving.register_keras_serializable(package="pgn_tf")
class SNEmbedding(SpectralNorm):
    """Spectrally normalized class embedding (torch `sn(nn.Embedding(n, dim))`: W is the [n, dim] table itself).

    Call with int labels [N] -> [N, dim]. No bias.
    """

    def __init__(self, input_dim, output_dim, **kwargs):
        super().__init__(**kwargs)
        self.input_dim = input_dim
        self.output_dim = output_dim

    def build(self, input_shape):
        self._build_sn((self.input_dim, self.output_dim), self.input_dim, bias=False)

    def weight_matrix(self):
        return self.kernel  # torch's Embedding weight is (n, dim) already: u [n], v [dim]

    def call(self, inputs, training=None):
        return ops.take(self.normalized_kernel(training), ops.cast(inputs, "int32"), axis=0)

    def compute_output_shape(self, input_shape):
        return tuple(input_shape) + (self.output_dim,)

    def get_config(self):
        return {**super().get_config(), "input_dim": self.input_dim, "output_dim": self.output_dim}


def piecewise_linear(critic):
    """Marks a critic made of convolutions, dense layers, (Leaky)ReLU, average pooling and projections only.

    Its input gradient is constant between kinks, which lets PGN's generator
    step reuse it (normalization.normalize, `frozen`). Returns the critic.
    """
    critic.piecewise_linear = True
    return critic


def conv2d(filters, kernel_size, name, init, strides=1, spectral_norm=False):
    """A "same" Conv2D (biases zero), spectrally normalized (torch's default eps) when asked."""
    if spectral_norm:
        return SNConv2D(filters, kernel_size, strides=strides, kernel_initializer=init, name=name)
    return keras.layers.Conv2D(
        filters,
        kernel_size,
        strides=strides,
        padding="same",
        name=name,
        kernel_initializer=initializer(init),
        bias_initializer="zeros",
    )


def dense(units, name, init, spectral_norm=False):
    """A Dense (biases zero), spectrally normalized (torch's default eps) when asked."""
    if spectral_norm:
        return SNDense(units, kernel_initializer=init, name=name)
    return keras.layers.Dense(units, name=name, kernel_initializer=initializer(init), bias_initializer="zeros")


@keras.saving.register_keras_serializable(package="pgn_tf")
class ConditionalBatchNorm(keras.layers.Layer):
    """BigGAN's class-conditional BatchNorm: BN(x) * (1 + gain[y]) + bias[y].

    BN has no affine part; gain and bias are per-class embeddings. Sublayers
    are named `<name>.batchnorm2d`, `<name>.gain`, `<name>.bias`, as in PyTorch.
    Call with [x, labels].
    """

    def __init__(self, num_classes, **kwargs):
        super().__init__(**kwargs)
        self.num_classes = num_classes
        self.batchnorm2d = BatchNorm(center=False, scale=False, name=f"{self.name}.batchnorm2d")
        self.gain = None
        self.bias = None

    def build(self, input_shape):
        ch = input_shape[0][-1]
        make = lambda part: keras.layers.Embedding(
            self.num_classes, ch, embeddings_initializer=initializer(XAVIER_UNIFORM), name=f"{self.name}.{part}"
        )
        self.gain, self.bias = make("gain"), make("bias")
        self.batchnorm2d.build(input_shape[0])
        self.gain.build(input_shape[1])
        self.bias.build(input_shape[1])

    def call(self, inputs, training=None):
        x, y = inputs
        h = self.batchnorm2d(x, training=training)
        gain = self.gain(y)[:, None, None, :]
        bias = self.bias(y)[:, None, None, :]
        return h * (1.0 + gain) + bias

    def compute_output_shape(self, input_shape):
        return input_shape[0]

    def get_config(self):
        return {**super().get_config(), "num_classes": self.num_classes}
