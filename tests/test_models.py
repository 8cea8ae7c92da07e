"""The paper's architectures: official parameter counts, shapes, PyTorch-semantics layers."""

import keras
import numpy as np
import pytest
import tensorflow as tf

from pgn_tf import PGNDiscriminator, models, torch_port
from pgn_tf.layer_walk import walk_layers
from pgn_tf.models.layers import (
    BatchNorm,
    ConditionalBatchNorm,
    SNConv2D,
    SNDense,
    SNEmbedding,
    SpectralNorm,
)

# Trainable parameters of the official PyTorch models (G, D).
OFFICIAL_COUNTS = {
    "dcgan.32": (3_813_379, 5_860_865),
    "dcgan.48": (5_134_339, 5_871_105),
    "resnet.32": (4_276_739, 1_053_825),
    "resnet.48": (4_878_083, 4_859_073),
    "resnet.128": (32_150_787, 38_419_137),
    "resnet.256": (37_135_107, 43_401_409),
    "biggan.32": (4_304_387, 4_207_361),
}


def n_trainable(model):
    return sum(int(np.prod(v.shape)) for v in model.trainable_variables)


def test_registry_is_complete():
    assert sorted(models.ARCHS) == sorted(OFFICIAL_COUNTS)
    with pytest.raises(ValueError, match="Unknown architecture"):
        models.build_generator("resnet.64")


@pytest.mark.parametrize("arch", sorted(OFFICIAL_COUNTS))
def test_official_parameter_counts(arch):
    g, d = OFFICIAL_COUNTS[arch]
    assert n_trainable(models.build_generator(arch)) == g
    assert n_trainable(models.build_critic(arch)) == d


@pytest.mark.parametrize("arch", sorted(OFFICIAL_COUNTS))
def test_small_width_runs_through_pgn(arch):
    size = models.image_size(arch)
    n = 2
    g = models.build_generator(arch, z_dim=16, width=0.0625)
    d = models.build_critic(arch, width=0.0625)
    assert n_trainable(g) < OFFICIAL_COUNTS[arch][0] / 50
    z = tf.random.normal((n, 16))
    labels = tf.constant([1, 7]) if models.is_conditional(arch) else None
    x = g(z if labels is None else [z, labels], training=True)
    assert x.shape == (n, size, size, 3)
    assert np.all(np.abs(x.numpy()) <= 1.0)
    f_hat = PGNDiscriminator(d)(x, labels=labels, training=True)
    assert f_hat.shape == (n, 1)
    assert np.all(np.isfinite(f_hat.numpy()))
    with pytest.raises(ValueError):  # wrong image size
        d(tf.zeros((n, size + 8, size + 8, 3)) if labels is None else [tf.zeros((n, size + 8, size + 8, 3)), labels])


def test_batchnorm_has_pytorch_semantics():
    x = np.random.default_rng(0).standard_normal((4, 3, 3, 5)) * 2 + 1
    flat = x.reshape(-1, 5)
    ref = (flat - flat.mean(0)) / np.sqrt(flat.var(0) + 1e-5)
    for dtype in ("float32", "float64"):  # fused kernel and composed ops
        bn = BatchNorm(dtype=dtype)
        y = bn(tf.constant(x, dtype), training=True).numpy().reshape(-1, 5)
        np.testing.assert_allclose(y, ref, rtol=1e-4, atol=1e-5)
        # torch: running = 0.9 * running + 0.1 * batch, with the unbiased variance.
        np.testing.assert_allclose(bn.moving_mean.numpy(), 0.1 * flat.mean(0), rtol=1e-5)
        np.testing.assert_allclose(bn.moving_variance.numpy(), 0.9 + 0.1 * flat.var(0, ddof=1), rtol=1e-5)
        y_inf = bn(tf.constant(x, dtype), training=False).numpy().reshape(-1, 5)
        mm, mv = bn.moving_mean.numpy(), bn.moving_variance.numpy()
        np.testing.assert_allclose(y_inf, (flat - mm) / np.sqrt(mv + 1e-5), rtol=1e-4, atol=1e-5)


def _np_normalize(v, eps=1e-6):
    return v / max(np.linalg.norm(v), eps)


def test_spectral_norm_matches_pytorch_power_iteration():
    layer = SNConv2D(6, 3)
    x = tf.random.normal((2, 5, 5, 4))
    layer.build(x.shape)
    w = np.transpose(layer.kernel.numpy(), (3, 2, 0, 1)).reshape(6, -1)  # torch (out, in*kh*kw)
    u0 = layer.sn_u.numpy()
    y = layer(x, training=True).numpy()
    v = _np_normalize(w.T @ u0)
    u = _np_normalize(w @ v)
    sigma = u @ w @ v
    np.testing.assert_allclose(layer.sn_u.numpy(), u, rtol=1e-5)
    np.testing.assert_allclose(layer.sn_v.numpy(), v, rtol=1e-5)
    ref = tf.nn.conv2d(x, layer.kernel / sigma, 1, "SAME") + layer.bias
    np.testing.assert_allclose(y, ref.numpy(), rtol=1e-4, atol=1e-5)
    # Inference: no power iteration, the stored u, v.
    before = layer.sn_u.numpy().copy()
    layer(x, training=False)
    np.testing.assert_array_equal(layer.sn_u.numpy(), before)
    # No gradient flows through u, v; the kernel gets one.
    with tf.GradientTape() as tape:
        loss = tf.reduce_sum(layer(x, training=True))
    grads = tape.gradient(loss, layer.trainable_variables)
    assert len(layer.trainable_variables) == 2 and all(g is not None for g in grads)

    dense = SNDense(3)
    out = dense(tf.ones((2, 7)), training=True)
    sv = np.linalg.svd(dense.kernel.numpy(), compute_uv=False)[0]
    assert out.shape == (2, 3) and sv > 0


def _np_power_iteration(w, u0, eps=1e-12):
    v = _np_normalize(w.T @ u0, eps)
    u = _np_normalize(w @ v, eps)
    return u, v, u @ w @ v


def test_strided_sn_conv_and_sn_embedding_match_pytorch_power_iteration():
    """The layers of the "sn" critics: torch's default eps, a 4x4 stride-2 conv padded 1, an embedding table."""
    conv = SNConv2D(6, 4, strides=2)
    x = tf.random.normal((2, 8, 8, 4))
    conv.build(x.shape)
    w = np.transpose(conv.kernel.numpy(), (3, 2, 0, 1)).reshape(6, -1)
    u, v, sigma = _np_power_iteration(w, conv.sn_u.numpy())
    y = conv(x, training=True).numpy()
    assert y.shape == (2, 4, 4, 6) and conv.eps == 1e-12
    np.testing.assert_allclose(conv.sn_u.numpy(), u, rtol=1e-5)
    np.testing.assert_allclose(conv.sn_v.numpy(), v, rtol=1e-5)
    padded = tf.pad(x, [[0, 0], [1, 1], [1, 1], [0, 0]])  # torch's padding=1
    ref = tf.nn.conv2d(padded, conv.kernel / sigma, 2, "VALID") + conv.bias
    np.testing.assert_allclose(y, ref.numpy(), rtol=1e-4, atol=1e-5)

    emb = SNEmbedding(5, 3)
    labels = tf.constant([4, 0, 2])
    emb.build(labels.shape)
    table = emb.kernel.numpy()  # torch's (num_embeddings, dim) weight: u [5], v [3]
    u, v, sigma = _np_power_iteration(table, emb.sn_u.numpy())
    out = emb(labels, training=True).numpy()
    assert emb.sn_u.shape == (5,) and emb.sn_v.shape == (3,) and emb.bias is None
    np.testing.assert_allclose(emb.sn_u.numpy(), u, rtol=1e-5)
    np.testing.assert_allclose(out, table[[4, 0, 2]] / sigma, rtol=1e-5)
    assert np.linalg.svd(table / sigma, compute_uv=False)[0] == pytest.approx(1.0, abs=0.3)


@pytest.mark.parametrize("arch", sorted(OFFICIAL_COUNTS))
def test_sn_critics_normalize_every_weight_layer_and_port_to_torch_names(arch):
    plain = models.build_critic(arch, width=0.0625)
    sn = models.build_critic(arch, width=0.0625, spectral_norm=True)
    weighted = (keras.layers.Conv2D, keras.layers.Dense, keras.layers.Embedding)
    layers = lambda m: walk_layers(m, include_self=False)
    assert not [layer.name for layer in layers(sn) if isinstance(layer, weighted)]
    plain_names = sorted(layer.name for layer in layers(plain) if isinstance(layer, weighted))
    assert sorted(layer.name for layer in layers(sn) if isinstance(layer, SpectralNorm)) == plain_names
    assert n_trainable(sn) == n_trainable(plain)
    # torch's spectral_norm names: weight -> weight_orig, plus weight_u / weight_v.
    names = set(torch_port.state_dict(sn))
    expected = {k.replace(".weight", ".weight_orig") for k in torch_port.state_dict(plain)}
    expected |= {f"{n}.{s}" for n in plain_names for s in ("weight_u", "weight_v")}
    assert names == expected
    labels = tf.constant([1, 7]) if models.is_conditional(arch) else None
    size = models.image_size(arch)
    x = tf.random.normal((2, size, size, 3))
    f = sn(x if labels is None else [x, labels], training=True)
    assert f.shape == (2, 1) and np.all(np.isfinite(f.numpy()))


def test_conditional_batchnorm():
    cbn = ConditionalBatchNorm(4, name="blocks.0.bn1")
    x = tf.random.normal((6, 2, 2, 3))
    y = tf.constant([0, 1, 2, 3, 0, 1])
    out = cbn([x, y], training=True).numpy()
    assert [layer.name for layer in (cbn.batchnorm2d, cbn.gain, cbn.bias)] == [
        "blocks.0.bn1.batchnorm2d",
        "blocks.0.bn1.gain",
        "blocks.0.bn1.bias",
    ]
    flat = x.numpy().reshape(-1, 3)
    normed = (x.numpy() - flat.mean(0)) / np.sqrt(flat.var(0) + 1e-5)
    gain = cbn.gain.embeddings.numpy()[y.numpy()][:, None, None, :]
    bias = cbn.bias.embeddings.numpy()[y.numpy()][:, None, None, :]
    np.testing.assert_allclose(out, normed * (1 + gain) + bias, rtol=1e-4, atol=1e-5)


def test_initializers_follow_the_official_schemes():
    # kaiming_normal fan_in: std sqrt(2 / fan_in); dcgan: N(0, 0.02); biases 0.
    g = models.build_generator("resnet.32")
    k = g.get_layer("blocks.0.residual.3").kernel.numpy()
    assert abs(k.std() / np.sqrt(2.0 / (3 * 3 * 256)) - 1) < 0.02
    d = models.build_critic("dcgan.32")
    k = d.get_layer("main.12").kernel.numpy()
    assert abs(k.std() - 0.02) < 0.001
    assert np.all(d.get_layer("main.12").bias.numpy() == 0)
    # xavier_uniform: bound sqrt(6 / (fan_in + fan_out)).
    emb = models.build_critic("biggan.32").get_layer("projection").embedding.embeddings.numpy()
    bound = np.sqrt(6.0 / (10 + 256))
    assert emb.max() <= bound and emb.max() > 0.9 * bound
    assert keras.backend.backend() == "tensorflow"


def test_walk_layers_reaches_inner_models_and_custom_sublayers_each_once():
    """normalization.py and torch_port.py find BatchNorms and weights anywhere in a model through walk_layers."""
    shared = keras.layers.Dense(3, name="shared")
    inner = keras.Sequential([keras.Input((3,)), shared, keras.layers.Dense(3, name="b")], name="inner")
    x, y = keras.Input((1, 1, 3)), keras.Input((), dtype="int32")
    h = ConditionalBatchNorm(2, name="cbn")([x, y])
    out = shared(inner(keras.layers.Reshape((3,))(h)))
    outer = keras.Model([x, y], out, name="outer")
    names = [layer.name for layer in walk_layers(outer, include_self=True)]
    assert names[0] == "outer" and len(names) == len(set(names))
    cbn_at, inner_at = names.index("cbn"), names.index("inner")
    assert names[cbn_at + 1 : cbn_at + 4] == ["cbn.batchnorm2d", "cbn.gain", "cbn.bias"]
    assert names[inner_at + 1 : inner_at + 3] == ["shared", "b"]
    assert [layer.name for layer in walk_layers(outer, include_self=False)] == names[1:]
