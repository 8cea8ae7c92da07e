"""The gin root of training: train_and_evaluate(workdir, ...) builds everything and runs fit."""

import math
import os

import gin
import keras
import numpy as np
import tensorflow as tf

from pgn_tf import callbacks, data, losses
from pgn_tf.gan import PGNGAN, LinearDecay
from pgn_tf.models import biggan, dcgan, resnet
from pgn_tf.normalization import MODES

SAMPLES = 64  # images in each sample grid


class ConfigError(ValueError):
    """A configuration a run cannot start with; the message says what to change."""


class CheckpointError(ValueError):
    """A checkpoint in the workdir that cannot be restored."""


# Components are gin references: @dcgan.generator, @data.cifar10, @losses.hinge,
# @d/keras.optimizers.Adam.
gin.external_configurable(keras.optimizers.Adam, module="keras.optimizers")
for _module, _fns in (("dcgan", dcgan), ("resnet", resnet), ("biggan", biggan)):
    for _fn in (_fns.generator, _fns.critic):
        gin.external_configurable(_fn, module=_module)
for _fn in (data.digits, data.cifar10, data.stl10, data.celeb_a_hq):
    # Set by train_and_evaluate, never by a config.
    gin.external_configurable(_fn, module="data", denylist=["batch_size", "seed", "start_step"])
for _loss in (losses.hinge, losses.bce, losses.wasserstein):
    gin.external_configurable(lambda _loss=_loss: _loss, name=_loss.name, module="losses")


def _check_workdir(workdir):
    try:
        os.makedirs(workdir, exist_ok=True)
        probe = os.path.join(workdir, ".write_test")
        with open(probe, "w") as f:
            f.write("ok")
        os.remove(probe)
    except OSError as e:
        raise ConfigError(f"workdir {workdir} is not writable ({e.strerror}); pass another --workdir.") from None


def _positive(**values):
    for name, value in values.items():
        if value is None or int(value) <= 0:
            raise ConfigError(f"train_and_evaluate.{name} must be positive, got {value}.")


def restore_or_initialize(manager, checkpoint):
    """Restores the latest checkpoint of `manager` if there is one; returns its path or None."""
    latest = manager.latest_checkpoint
    if latest is None:
        return None
    try:
        checkpoint.restore(latest).assert_existing_objects_matched()
    except (tf.errors.OpError, ValueError, AssertionError) as e:
        first = str(e).strip().splitlines()[0] if str(e).strip() else type(e).__name__
        raise CheckpointError(
            f"cannot restore checkpoint {latest} ({first[:200]}); move it out of "
            f"{os.path.dirname(latest)} to resume from an earlier one, or use a new --workdir."
        ) from None
    return latest


@gin.configurable(denylist=["workdir"])
def train_and_evaluate(
    workdir,
    dataset_fn=gin.REQUIRED,
    generator_fn=gin.REQUIRED,
    critic_fn=gin.REQUIRED,
    loss_fn=gin.REQUIRED,
    d_optimizer=keras.optimizers.Adam,
    g_optimizer=keras.optimizers.Adam,
    normalization="pgn",
    num_classes=None,
    total_steps=200_000,
    batch_size_D=64,
    batch_size_G=128,
    n_dis=1,
    lr_D=2e-4,
    lr_G=2e-4,
    lr_decay_start=0,
    ema_decay=0.9999,
    ema_start=0,
    cr=0.0,
    z_dim=128,
    sample_every=500,
    eval_every=5000,
    save_every=5000,
    num_images=50_000,
    log_every=100,
    seed=0,
    jit_compile=False,
):
    """Trains a PGN-GAN in `workdir`, resuming from its latest checkpoint.

    Args:
      workdir: checkpoints/, samples/, TensorBoard events, operative_config.gin.
      dataset_fn: (batch_size, seed, start_step) -> tf.data of (images, labels).
      generator_fn, critic_fn: model builders, called with z_dim (G) and,
        for conditional models, num_classes.
      loss_fn: () -> losses.GANLoss (@losses.hinge, @losses.bce, @losses.wasserstein).
      d_optimizer, g_optimizer: optimizer classes (gin-scoped d/ and g/),
        called with the linearly decaying learning rate.
      normalization: "pgn", "gn" or "none".
      num_classes: class count of a conditional model; None otherwise.
      total_steps .. cr: the official loop's hyperparameters (outer steps).
      sample_every, save_every, log_every: in outer steps.
      eval_every, num_images: IS / FID schedule and size; accepted so that the
        paper configs are complete, not used until evaluation lands.
      seed: seeds weights, data order and latents.
      jit_compile: XLA-compile the train step.

    Returns:
      The trained PGNGAN.
    """
    _positive(
        total_steps=total_steps, batch_size_D=batch_size_D, batch_size_G=batch_size_G, n_dis=n_dis,
        z_dim=z_dim, sample_every=sample_every, save_every=save_every, log_every=log_every,
    )  # fmt: skip
    if normalization not in MODES:
        raise ConfigError(f"train_and_evaluate.normalization must be one of {MODES}, got {normalization!r}.")
    _check_workdir(workdir)
    keras.utils.set_random_seed(seed)

    cond = {} if num_classes is None else {"num_classes": num_classes}
    generator = generator_fn(z_dim=z_dim, **cond)
    critic = critic_fn(**cond)
    gan = PGNGAN(
        generator, critic, normalization=normalization, z_dim=z_dim, num_classes=num_classes, n_dis=n_dis,
        batch_size_D=batch_size_D, batch_size_G=batch_size_G, ema_decay=ema_decay, ema_start=ema_start,
        cr=cr, seed=seed,
    )  # fmt: skip
    with gin.config_scope("d"):
        d_opt = d_optimizer(learning_rate=LinearDecay(lr_D, lr_decay_start, total_steps, n_dis))
    with gin.config_scope("g"):
        g_opt = g_optimizer(learning_rate=LinearDecay(lr_G, lr_decay_start, total_steps, 1))
    gan.compile(d_optimizer=d_opt, g_optimizer=g_opt, loss_fn=loss_fn(), jit_compile=jit_compile)
    d_opt.build(gan.discriminator.trainable_variables)
    g_opt.build(generator.trainable_variables)

    rng = np.random.default_rng(seed)
    fixed_z = tf.Variable(rng.standard_normal((SAMPLES, z_dim)).astype(np.float32), trainable=False)
    fixed_y = tf.Variable(np.arange(SAMPLES, dtype=np.int32) % (num_classes or 1), trainable=False)
    checkpoint = tf.train.Checkpoint(
        generator=generator, ema_generator=gan.ema_generator, critic=critic, d_optimizer=d_opt,
        g_optimizer=g_opt, step=gan.step, rng=gan.seed_generator.state, fixed_z=fixed_z, fixed_y=fixed_y,
    )  # fmt: skip
    manager = tf.train.CheckpointManager(checkpoint, os.path.join(workdir, "checkpoints"), max_to_keep=3)
    restored = restore_or_initialize(manager, checkpoint)
    start = int(gan.step.numpy())
    if restored:
        print(f"Resuming from {restored} at step {start}.", flush=True)
    if start >= total_steps:
        print(f"Already trained to step {start} >= total_steps {total_steps}.", flush=True)
        return gan

    dataset = dataset_fn(batch_size=n_dis * batch_size_D, seed=seed, start_step=start)
    want = tuple(critic.inputs[0].shape[1:])
    got = tuple(dataset.element_spec[0].shape[1:])
    if got != want:
        raise ConfigError(f"the dataset gives images of shape {got} but the critic takes {want}; match their sizes.")

    writer = tf.summary.create_file_writer(workdir)
    remaining = total_steps - start
    cbs = [
        callbacks.OperativeConfig(writer, workdir, gin.operative_config_str),
        callbacks.Samples(
            writer, os.path.join(workdir, "samples"), fixed_z, None if num_classes is None else fixed_y, sample_every
        ),
        callbacks.StepLogger(writer, total_steps, min(log_every, total_steps)),
        callbacks.Checkpointer(manager, save_every),
        callbacks.StopAt(total_steps),
    ]
    per_epoch = min(log_every, remaining)
    gan.fit(dataset, epochs=math.ceil(remaining / per_epoch), steps_per_epoch=per_epoch, callbacks=cbs, verbose=0)
    writer.close()
    return gan
