"""GAN losses on (normalized) critic outputs: hinge, bce (non-saturating), wasserstein, and rpgan (relativistic pairing).

Each loss is a `GANLoss(critic, generator)` of pure functions, as the official
`losses.py` defines them:

    critic(pred_real [N, 1], pred_fake [M, 1]) -> (loss, loss_real, loss_fake), loss = real + fake
    generator(pred_fake [M, 1]) -> loss                     (relativistic: generator(pred_fake, pred_real [M, 1]))

all scalars (means over the batch). A relativistic loss compares each fake with a real partner (the same row),
so its generator step needs the critic's output on reals too (`PGNGAN` pairs them: `GANLoss.relativistic`).
"""

from collections.abc import Callable
from typing import NamedTuple

import tensorflow as tf


class GANLoss(NamedTuple):
    """A critic loss and its generator loss."""

    name: str
    critic: Callable
    generator: Callable
    relativistic: bool = False  # generator(pred_fake, pred_real): paired with reals, row by row
    # Whether the critic's output has a sign that tells real from fake (positive: real), which ADA's r_t reads:
    # of pred_real, or of pred_real - pred_fake for a relativistic loss. The Wasserstein critic's has none.
    signed: bool = True


def _hinge_critic(pred_real, pred_fake):
    loss_real = tf.reduce_mean(tf.nn.relu(1.0 - pred_real))
    loss_fake = tf.reduce_mean(tf.nn.relu(1.0 + pred_fake))
    return loss_real + loss_fake, loss_real, loss_fake


def _mean_neg(pred_fake):
    return -tf.reduce_mean(pred_fake)


def _bce_critic(pred_real, pred_fake):
    # BCE-with-logits against 1 is softplus(-x); against 0 it is softplus(x).
    loss_real = tf.reduce_mean(tf.nn.softplus(-pred_real))
    loss_fake = tf.reduce_mean(tf.nn.softplus(pred_fake))
    return loss_real + loss_fake, loss_real, loss_fake


def _bce_generator(pred_fake):
    return tf.reduce_mean(tf.nn.softplus(-pred_fake))


def _wasserstein_critic(pred_real, pred_fake):
    # The official code reports +mean(real) as its "real" part; here the parts
    # add up to the loss, so the real part is -mean(real).
    loss_real = -tf.reduce_mean(pred_real)
    loss_fake = tf.reduce_mean(pred_fake)
    return loss_real + loss_fake, loss_real, loss_fake


def _rpgan_critic(pred_real, pred_fake):
    # Rows are pairs: one term per pair, reported half as "real" and half as "fake" (parts add up to the loss).
    loss = tf.reduce_mean(tf.nn.softplus(pred_fake - pred_real))
    return loss, loss / 2.0, loss / 2.0


def _rpgan_generator(pred_fake, pred_real):
    return tf.reduce_mean(tf.nn.softplus(pred_real - pred_fake))


# D: relu(1 - real).mean() + relu(1 + fake).mean(); G: -fake.mean().
hinge = GANLoss("hinge", _hinge_critic, _mean_neg)
# D: BCE(real, 1) + BCE(fake, 0) from logits; G: BCE(fake, 1) (non-saturating).
bce = GANLoss("bce", _bce_critic, _bce_generator)
# D: -real.mean() + fake.mean(); G: -fake.mean().
wasserstein = GANLoss("wasserstein", _wasserstein_critic, _mean_neg, signed=False)
# The relativistic pairing loss (Jolicoeur-Martineau 2019; R3GAN, Huang et al. 2024): pairs (real_i, fake_i),
# D: softplus(fake_i - real_i).mean(); G: softplus(real_i - fake_i).mean().
rpgan = GANLoss("rpgan", _rpgan_critic, _rpgan_generator, relativistic=True)

LOSSES = {loss.name: loss for loss in (hinge, bce, wasserstein, rpgan)}
LOSSES["wass"] = wasserstein  # the official code's flag value


def get(name):
    """The GANLoss called `name` ("hinge", "bce", "wasserstein" or "wass", "rpgan")."""
    if name not in LOSSES:
        raise ValueError(f"Unknown loss {name!r}; expected one of {sorted(LOSSES)}.")
    return LOSSES[name]
