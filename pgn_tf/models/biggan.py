"""Conditional BigGAN for 32x32 (biggan.32): CBN + spectral-norm G, projection critic."""

import functools

import keras
from keras import ops

from pgn_tf.models.layers import (
    XAVIER_UNIFORM,
    BatchNorm,
    ConditionalBatchNorm,
    SNConv2D,
    SNDense,
    SNEmbedding,
    channels,
    dense,
    initializer,
    piecewise_linear,
)
from pgn_tf.models.resnet import critic_blocks

layers = keras.layers

# The official generator's `partial(torch.nn.utils.spectral_norm, eps=1e-6)`.
G_SN_EPS = 1e-6


def generator(z_dim=128, num_classes=10, width=1.0):
    """G: SN Linear -> (4ch, 4, 4) -> 3 GenBlocks -> BN-ReLU-SN conv3-tanh.

    GenBlock: CBN1-ReLU-Up-SNconv3, CBN2-ReLU-SNconv3, + Up-SNconv1. Layer
    names are the PyTorch module paths; init xavier_uniform.

    Returns:
      A Keras model [z [N, z_dim], labels [N] int] -> images [N, 32, 32, 3].
    """
    c = channels(64 * 4, width)
    z = keras.Input((z_dim,), name="z")
    y = keras.Input((), dtype="int32", name="labels")
    sn_dense = functools.partial(SNDense, eps=G_SN_EPS)
    sn_conv = functools.partial(SNConv2D, eps=G_SN_EPS)
    h = sn_dense(4 * 4 * c, name="linear")(z)
    h = layers.Reshape((c, 4, 4))(h)
    h = layers.Permute((2, 3, 1))(h)
    for i in range(3):
        p = f"blocks.{i}"
        r = ConditionalBatchNorm(num_classes, name=f"{p}.bn1")([h, y])
        r = layers.ReLU()(r)
        r = layers.UpSampling2D(2)(r)
        r = sn_conv(c, 3, name=f"{p}.residual1.2")(r)
        r = ConditionalBatchNorm(num_classes, name=f"{p}.bn2")([r, y])
        r = layers.ReLU()(r)
        r = sn_conv(c, 3, name=f"{p}.residual2.1")(r)
        s = layers.UpSampling2D(2)(h)
        s = sn_conv(c, 1, name=f"{p}.shortcut.1")(s)
        h = layers.Add()([r, s])
    h = BatchNorm(name="output_layer.0")(h)
    h = layers.ReLU()(h)
    h = sn_conv(3, 3, name="output_layer.2")(h)
    x = layers.Activation("tanh")(h)
    return keras.Model([z, y], x, name="biggan32_generator")


@keras.saving.register_keras_serializable(package="pgn_tf")
class Projection(keras.layers.Layer):
    """Projection head: sum_hw(h) -> Linear + <Embedding(y), sum_hw(h)>.

    Sublayers are named `linear` and `embedding`, as in PyTorch; with
    spectral_norm both are spectrally normalized (SNGAN's projection critic).
    """

    def __init__(self, num_classes, spectral_norm=False, **kwargs):
        super().__init__(**kwargs)
        self.num_classes = num_classes
        self.spectral_norm = spectral_norm
        self.linear = None
        self.embedding = None

    def build(self, input_shape):
        ch = input_shape[0][-1]
        self.linear = dense(1, "linear", XAVIER_UNIFORM, self.spectral_norm)
        if self.spectral_norm:
            self.embedding = SNEmbedding(self.num_classes, ch, kernel_initializer=XAVIER_UNIFORM, name="embedding")
        else:
            self.embedding = layers.Embedding(
                self.num_classes, ch, embeddings_initializer=initializer(XAVIER_UNIFORM), name="embedding"
            )
        self.linear.build((None, ch))
        self.embedding.build(input_shape[1])

    def call(self, inputs, training=None):
        h, y = inputs
        h = ops.sum(h, axis=(1, 2))
        return self.linear(h, training=training) + ops.sum(
            self.embedding(y, training=training) * h, axis=1, keepdims=True
        )

    def compute_output_shape(self, input_shape):
        return (input_shape[0][0], 1)

    def get_config(self):
        return {**super().get_config(), "num_classes": self.num_classes, "spectral_norm": self.spectral_norm}


def critic(num_classes=10, width=1.0, spectral_norm=False):
    """D: Optimized(3->4ch), DisBlock(down), DisBlock, DisBlock, ReLU, projection.

    The official critic has no SN; spectral_norm=True puts torch's
    spectral_norm on every conv, the linear layer and the class embedding
    (the "sn" baseline).

    Returns:
      A Keras model [images [N, 32, 32, 3], labels [N] int] -> scores [N, 1].
    """
    c = channels(64 * 4, width)
    x = keras.Input((32, 32, 3), name="images")
    y = keras.Input((), dtype="int32", name="labels")
    h = critic_blocks(x, [c] * 4, [True, False, False], XAVIER_UNIFORM, "blocks", spectral_norm)
    f = Projection(num_classes, spectral_norm, name="projection")([h, y])
    return piecewise_linear(keras.Model([x, y], f, name=f"biggan32_{'sn_' if spectral_norm else ''}critic"))
