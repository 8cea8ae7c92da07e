"""PyTorch state_dicts <-> Keras weights: round trips, layouts and strict errors."""

import keras
import numpy as np
import pytest
import tensorflow as tf

from pgn_tf import models, torch_port


def _inputs(arch, n=2, z_dim=16):
    size = models.image_size(arch)
    z = tf.random.normal((n, z_dim))
    x = tf.random.uniform((n, size, size, 3), -1, 1)
    if models.is_conditional(arch):
        y = tf.constant([3, 5][:n])
        return [z, y], [x, y]
    return z, x


@pytest.mark.parametrize("arch", sorted(models.ARCHS))
def test_round_trip(arch):
    kw = {"width": 0.0625}
    g1, d1 = models.build_generator(arch, z_dim=16, **kw), models.build_critic(arch, **kw)
    g2, d2 = models.build_generator(arch, z_dim=16, **kw), models.build_critic(arch, **kw)
    g_in, d_in = _inputs(arch)
    for a, b, inp in [(g1, g2, g_in), (d1, d2, d_in)]:
        sd = torch_port.state_dict(a)
        assert len(sd) == len(a.weights)
        torch_port.load_state_dict(b, sd)
        np.testing.assert_array_equal(a(inp, training=False).numpy(), b(inp, training=False).numpy())


def test_pytorch_layouts():
    d = models.build_critic("dcgan.32", width=0.125)
    sd = torch_port.state_dict(d)
    assert sd["main.0.weight"].shape == (8, 3, 3, 3)  # (out, in, kh, kw)
    assert sd["linear.weight"].shape == (1, 4 * 4 * 64)  # (out, in)
    g = models.build_generator("dcgan.32", width=0.125)
    sd = torch_port.state_dict(g)
    assert sd["main.2.weight"].shape == (64, 32, 4, 4)  # ConvTranspose (in, out, kh, kw)
    assert {"main.0.running_mean", "main.0.running_var", "main.0.weight", "main.0.bias"} <= set(sd)
    sd = torch_port.state_dict(models.build_generator("biggan.32", width=0.125))
    assert sd["linear.weight_orig"].shape == (512, 128)
    assert sd["blocks.0.residual1.2.weight_v"].shape == (32 * 9,)
    assert sd["blocks.1.bn2.gain.weight"].shape == (10, 32)
    assert "blocks.1.bn2.batchnorm2d.running_var" in sd


def test_nchw_flatten_of_the_dcgan_critic():
    """The last Linear sees features in PyTorch's (C, H, W) order."""
    d = models.build_critic("dcgan.32", width=0.0625)
    sd = torch_port.state_dict(d)
    sd["linear.weight"] = np.zeros_like(sd["linear.weight"])
    sd["linear.bias"] = np.zeros_like(sd["linear.bias"])
    c, h, w = 2, 1, 3  # one feature, addressed in NCHW order
    sd["linear.weight"][0, c * 16 + h * 4 + w] = 1.0
    torch_port.load_state_dict(d, sd)
    x = tf.random.uniform((2, 32, 32, 3), -1, 1)
    features = d.get_layer("main.12").output
    feat = keras.Model(d.inputs, features)(x)  # pre-activation of the last conv
    expected = tf.nn.leaky_relu(feat, 0.1)[:, h, w, c]
    np.testing.assert_allclose(d(x)[:, 0].numpy(), expected.numpy(), rtol=1e-5, atol=1e-7)


def test_strict_errors_leave_the_model_untouched():
    g = models.build_generator("resnet.32", width=0.0625)
    before = [v.numpy().copy() for v in g.weights]
    sd = torch_port.state_dict(g)
    sd = {k: v + 1 for k, v in sd.items()}
    missing = dict(sd)
    del missing["blocks.0.residual.3.weight"]
    with pytest.raises(ValueError, match=r"missing \['blocks.0.residual.3.weight'\]"):
        torch_port.load_state_dict(g, missing)
    with pytest.raises(ValueError, match="unexpected"):
        torch_port.load_state_dict(g, {**sd, "blocks.9.weight": np.zeros(3)})
    bad = dict(sd)
    bad["linear.weight"] = bad["linear.weight"].T
    with pytest.raises(ValueError, match="does not fit"):
        torch_port.load_state_dict(g, bad)
    for a, b in zip(before, g.weights):
        np.testing.assert_array_equal(a, b.numpy())
    # num_batches_tracked is accepted and ignored; non-strict loads a subset.
    torch_port.load_state_dict(g, {**sd, "output.0.num_batches_tracked": np.array(3)})
    torch_port.load_state_dict(g, {"output.2.bias": np.zeros(3, np.float32)}, strict=False)
    assert np.all(g.get_layer("output.2").bias.numpy() == 0)
