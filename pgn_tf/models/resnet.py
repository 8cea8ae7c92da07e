"""SNGAN-style ResNet generator and critic without spectral norm (resnet.32/48/128/256)."""

import keras

from pgn_tf.models.layers import KAIMING_NORMAL, BatchNorm, channels, conv2d, dense, piecewise_linear

layers = keras.layers

# arch size -> (G start resolution, G channels [in, out of each block...],
#               D channels [Optimized out, then each block's out], D down flags)
SPECS = {
    32: (4, [256, 256, 256, 256], [128, 128, 128, 128], [True, False, False]),
    48: (6, [512, 256, 128, 64], [64, 128, 256, 512], [True, True, True]),
    128: (4, [1024, 1024, 512, 256, 128, 64], [64, 128, 256, 512, 1024, 1024], [True, True, True, True, False]),
    256: (
        4,
        [1024, 1024, 512, 512, 256, 128, 64],
        [64, 128, 256, 512, 512, 1024, 1024],
        [True, True, True, True, True, False],
    ),
}


def generator(size=32, z_dim=128, width=1.0):
    """G: Linear -> (C, M, M) -> GenBlocks (BN-ReLU-Up-conv3-BN-ReLU-conv3 + Up-conv1) -> BN-ReLU-conv3-tanh.

    Layer names are the PyTorch module paths; init kaiming_normal (fan_in).

    Returns:
      A Keras model z [N, z_dim] -> images [N, size, size, 3] in [-1, 1].
    """
    m, g_chs, _, _ = SPECS[size]
    chs = [channels(c, width) for c in g_chs]
    z = keras.Input((z_dim,), name="z")
    h = dense(m * m * chs[0], "linear", KAIMING_NORMAL)(z)
    h = layers.Reshape((chs[0], m, m))(h)
    h = layers.Permute((2, 3, 1))(h)
    for i, c_out in enumerate(chs[1:]):
        p = f"blocks.{i}"
        s = layers.UpSampling2D(2)(h)
        s = conv2d(c_out, 1, f"{p}.shortcut.1", KAIMING_NORMAL)(s)
        r = BatchNorm(name=f"{p}.residual.0")(h)
        r = layers.ReLU()(r)
        r = layers.UpSampling2D(2)(r)
        r = conv2d(c_out, 3, f"{p}.residual.3", KAIMING_NORMAL)(r)
        r = BatchNorm(name=f"{p}.residual.4")(r)
        r = layers.ReLU()(r)
        r = conv2d(c_out, 3, f"{p}.residual.6", KAIMING_NORMAL)(r)
        h = layers.Add()([r, s])
    h = BatchNorm(name="output.0")(h)
    h = layers.ReLU()(h)
    h = conv2d(3, 3, "output.2", KAIMING_NORMAL)(h)
    x = layers.Activation("tanh")(h)
    return keras.Model(z, x, name=f"resnet{size}_generator")


def critic_blocks(h, chs, downs, init, prefix, spectral_norm=False):
    """Optimized block then DisBlocks, ending in ReLU; shared with biggan.32.

    Optimized: conv3-ReLU-conv3-AvgPool2 + AvgPool2-conv1. DisBlock:
    ReLU-conv3-ReLU-conv3 (-AvgPool2) + conv1 (-AvgPool2) when the channels
    change or it downsamples, else identity.

    Args:
      h: [N, H, W, 3] Keras tensor.
      chs: [Optimized out, then each DisBlock's out] channels.
      downs: one flag per DisBlock.
      init: initializer name.
      prefix: PyTorch path of the block list ("model" or "blocks").
      spectral_norm: every conv spectrally normalized (the "sn" baseline).
    """
    _conv = lambda c, k, name, init: conv2d(c, k, name, init, spectral_norm=spectral_norm)
    p = f"{prefix}.0"
    s = layers.AveragePooling2D(2)(h)
    s = _conv(chs[0], 1, f"{p}.shortcut.1", init)(s)
    r = _conv(chs[0], 3, f"{p}.residual.0", init)(h)
    r = layers.ReLU()(r)
    r = _conv(chs[0], 3, f"{p}.residual.2", init)(r)
    r = layers.AveragePooling2D(2)(r)
    h = layers.Add()([r, s])
    for i, (c_in, c_out, down) in enumerate(zip(chs[:-1], chs[1:], downs), start=1):
        p = f"{prefix}.{i}"
        s = h
        if c_in != c_out or down:
            s = _conv(c_out, 1, f"{p}.shortcut.0", init)(s)
        if down:
            s = layers.AveragePooling2D(2)(s)
        r = layers.ReLU()(h)
        r = _conv(c_out, 3, f"{p}.residual.1", init)(r)
        r = layers.ReLU()(r)
        r = _conv(c_out, 3, f"{p}.residual.3", init)(r)
        if down:
            r = layers.AveragePooling2D(2)(r)
        h = layers.Add()([r, s])
    return layers.ReLU()(h)


def critic(size=32, width=1.0, spectral_norm=False):
    """D: Optimized block, DisBlocks, ReLU, global average pool, Linear.

    spectral_norm=True: torch's spectral_norm on every conv and the linear
    layer (SNGAN's critic; the "sn" baseline).

    Returns:
      A Keras model images [N, size, size, 3] -> scores [N, 1].
    """
    _, _, d_chs, downs = SPECS[size]
    chs = [channels(c, width) for c in d_chs]
    x = keras.Input((size, size, 3), name="images")
    h = critic_blocks(x, chs, downs, KAIMING_NORMAL, "model", spectral_norm)
    h = layers.GlobalAveragePooling2D()(h)
    f = dense(1, "linear", KAIMING_NORMAL, spectral_norm)(h)
    return piecewise_linear(keras.Model(x, f, name=f"resnet{size}_{'sn_' if spectral_norm else ''}critic"))
