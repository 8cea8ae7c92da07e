"""The paper's architectures, by the official code's names ("dcgan.32", "resnet.48", ...)."""

import functools

from pgn_tf.models import biggan, dcgan, resnet

# name -> (generator builder, critic builder, conditional)
ARCHS = {
    "dcgan.32": (functools.partial(dcgan.generator, 32), functools.partial(dcgan.critic, 32), False),
    "dcgan.48": (functools.partial(dcgan.generator, 48), functools.partial(dcgan.critic, 48), False),
    "resnet.32": (functools.partial(resnet.generator, 32), functools.partial(resnet.critic, 32), False),
    "resnet.48": (functools.partial(resnet.generator, 48), functools.partial(resnet.critic, 48), False),
    "resnet.128": (functools.partial(resnet.generator, 128), functools.partial(resnet.critic, 128), False),
    "resnet.256": (functools.partial(resnet.generator, 256), functools.partial(resnet.critic, 256), False),
    "biggan.32": (biggan.generator, biggan.critic, True),
}


def _lookup(arch):
    if arch not in ARCHS:
        raise ValueError(f"Unknown architecture {arch!r}; expected one of {sorted(ARCHS)}.")
    return ARCHS[arch]


def is_conditional(arch):
    """True when G and D take class labels ([z, labels] / [images, labels])."""
    return _lookup(arch)[2]


def build_generator(arch, z_dim=128, width=1.0, num_classes=10):
    """The generator of `arch`: z [N, z_dim] (+ labels [N]) -> [N, S, S, 3] in [-1, 1]."""
    gen, _, cond = _lookup(arch)
    if cond:
        return gen(z_dim=z_dim, num_classes=num_classes, width=width)
    return gen(z_dim=z_dim, width=width)


def build_critic(arch, width=1.0, num_classes=10, spectral_norm=False):
    """The critic of `arch`: [N, S, S, 3] images (+ labels [N]) -> [N, 1] scores.

    spectral_norm=True: torch's spectral_norm on every conv, linear layer and
    class embedding (the "sn" baseline).
    """
    _, crit, cond = _lookup(arch)
    if cond:
        return crit(num_classes=num_classes, width=width, spectral_norm=spectral_norm)
    return crit(width=width, spectral_norm=spectral_norm)


def image_size(arch):
    """The image side length of `arch` ("resnet.48" -> 48)."""
    _lookup(arch)
    return int(arch.split(".")[1])
