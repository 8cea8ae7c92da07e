"""DCGAN-style CNN generator and critic (the paper's "cnn" rows: dcgan.32, dcgan.48)."""

import keras

from pgn_tf.models.layers import DCGAN_NORMAL, BatchNorm, channels, conv2d, dense, initializer, piecewise_linear

layers = keras.layers


def generator(size=32, z_dim=128, width=1.0):
    """G: Linear -> (512, M, M) -> 3 x (BN-ReLU-ConvT4s2) -> BN-ReLU-ConvT3 -> tanh.

    Layer names are the PyTorch module paths (`linear`, `main.2`, ...). The
    linear output is reshaped in PyTorch's (C, M, M) order, then moved to NHWC.

    Args:
      size: 32 (M = 4) or 48 (M = 6).
      z_dim: latent size.
      width: channel multiplier (1 = official).

    Returns:
      A Keras model z [N, z_dim] -> images [N, size, size, 3] in [-1, 1].
    """
    m = size // 8
    chs = [channels(c, width) for c in (512, 256, 128, 64)]
    z = keras.Input((z_dim,), name="z")
    h = dense(m * m * chs[0], "linear", DCGAN_NORMAL)(z)
    h = layers.Reshape((chs[0], m, m))(h)
    h = layers.Permute((2, 3, 1))(h)
    idx = 0
    for c_out, k, s in [(chs[1], 4, 2), (chs[2], 4, 2), (chs[3], 4, 2), (3, 3, 1)]:
        h = BatchNorm(name=f"main.{idx}")(h)
        h = layers.ReLU()(h)
        h = layers.Conv2DTranspose(
            c_out, k, strides=s, padding="same", name=f"main.{idx + 2}", kernel_initializer=initializer(DCGAN_NORMAL)
        )(h)
        idx += 3
    x = layers.Activation("tanh")(h)
    return keras.Model(z, x, name=f"dcgan{size}_generator")


def critic(size=32, width=1.0, spectral_norm=False):
    """D: 7 convs (3x3 s1 / 4x4 s2 alternating) with LeakyReLU(0.1) -> Linear.

    The features are flattened in PyTorch's NCHW order so that the final
    linear layer's weights are the official ones as they are.
    spectral_norm=True: torch's spectral_norm on every conv and the linear
    layer (SNGAN's CNN critic; the "sn" baseline).

    Returns:
      A Keras model images [N, size, size, 3] -> scores [N, 1].
    """
    chs = [channels(c, width) for c in (64, 128, 128, 256, 256, 512, 512)]
    x = keras.Input((size, size, 3), name="images")
    h = x
    for i, c in enumerate(chs):
        k, s = (3, 1) if i % 2 == 0 else (4, 2)
        h = conv2d(c, k, f"main.{2 * i}", DCGAN_NORMAL, strides=s, spectral_norm=spectral_norm)(h)
        h = layers.LeakyReLU(negative_slope=0.1)(h)
    h = layers.Permute((3, 1, 2))(h)
    h = layers.Flatten()(h)
    f = dense(1, "linear", DCGAN_NORMAL, spectral_norm)(h)
    return piecewise_linear(keras.Model(x, f, name=f"dcgan{size}_{'sn_' if spectral_norm else ''}critic"))
