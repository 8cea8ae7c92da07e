"""Builds and runs a training run: gin bindings -> RunConfig -> build -> run.

    config = train_lib.settings()              # the gin bindings, checked once (or RunConfig.make(**settings))
    built = train_lib.build(config, workdir)   # models, optimizers, PGNGAN, checkpoints (writes nothing)
    train_lib.run(built)                       # resume, train, sample, evaluate, save

`train_and_evaluate(workdir)` does all three while holding the workdir;
`from_workdir(workdir)` rebuilds a trained run from its own folder (evaluate,
export); `build_gan(config)` makes the compiled GAN alone and touches no
file (tools, benchmarks). The shape of Flax's examples' train.py and TF-GAN's
train_lib.
"""

import dataclasses
import math
import os
import sys

import gin
import keras
import numpy as np
import tensorflow as tf

from pgn_tf import callbacks, data, distribute, faults, precision
from pgn_tf.checkpoints import Checkpoints
from pgn_tf.configurables import settings
from pgn_tf.errors import ConfigError, UsageError, UserError, first_line
from pgn_tf.eval import evaluator
from pgn_tf.gan import PGNGAN
from pgn_tf.gin_files import operative_config, parse_gin
from pgn_tf.optimizers import LinearDecay
from pgn_tf.workdir import claimed

__all__ = ["Run", "build", "build_gan", "dataset_fn", "from_workdir", "run", "settings", "train_and_evaluate"]

LIPSCHITZ_IMAGES = 16  # real images (and as many fakes and interpolates) of the Lipschitz monitor


@dataclasses.dataclass
class Run:
    """A built run: its config, where it lives, its strategy, the compiled PGNGAN and its checkpoints.

    Attributes:
      config: the `config.RunConfig` it was built from (a "folder:" / "tfds:" dataset resolved).
      workdir: the run's folder.
      strategy: the tf.distribute strategy it was built in.
      gan: the compiled `PGNGAN`.
      checkpoints: its `checkpoints.Checkpoints` (restore, save, the sample latents, the best score).
    """

    config: object
    workdir: str
    strategy: object
    gan: PGNGAN
    checkpoints: Checkpoints

    @property
    def chief(self):
        return distribute.is_chief(self.strategy)


def train_and_evaluate(workdir, strategy=None, **overrides):
    """Trains a PGN-GAN in `workdir` from the gin bindings (and `overrides` of them), resuming; returns the Run.

    The workdir gets checkpoints/ (and checkpoints/best/), samples/,
    TensorBoard events, eval.jsonl and operative_config.gin; it is held
    (`workdir.claimed`) for the run.
    """
    config = settings(**overrides)
    strategy = strategy or tf.distribute.get_strategy()
    with claimed(config, workdir, strategy):
        return run(build(config, workdir, strategy))


def _build_critic(critic_fn, spectral_norm, cond):
    """critic_fn(**cond), with spectral_norm=True for "sn" (which must then give spectral-norm layers)."""
    if not spectral_norm:
        return critic_fn(**cond)
    try:
        critic = critic_fn(spectral_norm=True, **cond)
    except TypeError as e:
        raise ConfigError(
            f"normalization 'sn' calls critic_fn(spectral_norm=True), which {critic_fn} does not take ({e})."
        ) from None
    if not any("sn_u" in v.path for v in critic.weights):  # each SpectralNorm layer keeps its power-iteration u
        raise ConfigError(f"normalization 'sn': the critic {critic.name!r} has no spectral-norm layers.")
    return critic


def _optimizers(config):
    """The critic's and G's optimizers (gin scopes d/ and g/), with the linearly decaying learning rates."""
    loop = config.loop
    with gin.config_scope("d"):
        d_opt = config.d_optimizer(
            learning_rate=LinearDecay(config.lr_D, config.lr_decay_start, config.total_steps, loop.n_dis)
        )
    with gin.config_scope("g"):
        g_opt = config.g_optimizer(learning_rate=LinearDecay(config.lr_G, config.lr_decay_start, config.total_steps, 1))
    if config.precision == "mixed_float16":  # float16 gradients underflow without a loss scale
        d_opt, g_opt = keras.optimizers.LossScaleOptimizer(d_opt), keras.optimizers.LossScaleOptimizer(g_opt)
    return d_opt, g_opt


def build_gan(config, strategy=None, latents=None):
    """The compiled PGNGAN of a config, its optimizers built; touches no file.

    Args:
      config: a `config.RunConfig` (`RunConfig.make(...)` or `settings()`).
      strategy: a tf.distribute strategy, or None for the current one; batch sizes are global.
      latents: PGNGAN's injectable latent source (None: its own seeded draws).

    Returns:
      The PGNGAN, seeded by the config's seed (weights, latents, data order).
    """
    strategy = strategy or tf.distribute.get_strategy()
    loop, jit_compile = config.loop, config.jit_compile
    if jit_compile and strategy.num_replicas_in_sync > 1:
        # XLA compiles one device's program; a step that spans replicas runs as a plain tf.function.
        print("jit_compile is off: XLA does not compile a step spread over several replicas.", file=sys.stderr)
        jit_compile = False
    keras.utils.set_random_seed(loop.seed)
    with strategy.scope(), precision.scope(config.precision):
        cond = {"num_classes": loop.num_classes} if loop.conditional else {}
        generator = config.generator_fn(z_dim=loop.z_dim, **cond)  # first after the seed: `initial_generator_weights`
        critic = _build_critic(config.critic_fn, loop.spectral_norm, cond)
        gan = PGNGAN(generator, critic, loop, latents=latents)
        d_opt, g_opt = _optimizers(config)
        gan.compile(d_optimizer=d_opt, g_optimizer=g_opt, loss_fn=config.loss_fn(), jit_compile=jit_compile)
        d_opt.build(gan.discriminator.trainable_variables)
        g_opt.build(generator.trainable_variables)
    return gan


def initial_generator_weights(config):
    """The weights `build_gan` gives G at step 0: a generator built as it builds it (the seed set, the run's
    precision, conditional if the loop is). Sets the global seed as build_gan does (the loop's own draws are
    stateless, keyed by (seed, step, salt), so a run goes on as before)."""
    loop = config.loop
    keras.utils.set_random_seed(loop.seed)
    with precision.scope(config.precision):
        cond = {"num_classes": loop.num_classes} if loop.conditional else {}
        return config.generator_fn(z_dim=loop.z_dim, **cond).get_weights()


def build(config, workdir, strategy=None):
    """A Run: the config's GAN (`build_gan`) and its checkpoints in workdir. Writes no file.

    A "folder:PATH" / "tfds:NAME" dataset is resolved at the side the critic takes.

    Returns:
      The Run, not restored: `run` resumes it, `run.checkpoints.restore(...)` restores any checkpoint.

    Raises:
      CheckpointError: the workdir's checkpoint list is damaged.
    """
    strategy = strategy or tf.distribute.get_strategy()
    gan = build_gan(config, strategy)
    config = dataclasses.replace(config, dataset_fn=dataset_fn(config, gan))
    with strategy.scope():
        checkpoints = Checkpoints(gan, workdir, strategy)
    return Run(config, workdir, strategy, gan, checkpoints)


def dataset_fn(config, gan):
    """The config's dataset function; "folder:PATH" / "tfds:NAME" resolved at the side gan's critic takes."""
    if isinstance(config.dataset_fn, str):
        return data.named(config.dataset_fn, gan.discriminator.critic.inputs[0].shape[1])
    return config.dataset_fn


def from_workdir(workdir, checkpoint="latest", params=()):
    """Rebuilds a trained run from its workdir's operative config (plus gin `params`) and restores a checkpoint.

    Returns:
      (the Run, the restored checkpoint's path).

    Raises:
      UsageError: no such workdir or checkpoint, or one that cannot be restored (one line).
    """
    if not workdir or not os.path.isdir(workdir):
        raise UsageError(f"workdir {workdir} does not exist; pass the folder a training run wrote (--workdir).")
    parse_gin([operative_config(workdir)], list(params))
    try:
        built = build(settings(), workdir)
        path = built.checkpoints.restore(checkpoint)
    except UserError as e:
        raise UsageError(first_line(e)) from None
    if path is None:
        raise UsageError(
            f"no checkpoint in {built.checkpoints.manager.directory}; train first (python -m pgn_tf.train)."
        )
    return built, path


def run(built, reporting=None, checkpoint="latest"):
    """Trains a Run to its config's total_steps, resuming from its workdir's latest checkpoint; returns it.

    Hold the workdir while it runs (`workdir.claimed`). In a multi-worker run
    only the chief writes summaries, samples, evaluations and DIR/checkpoints
    (which every worker resumes from); the others save to DIR/workers/<index>/.

    Args:
      built: a `Run`.
      reporting: the chief's reporting callbacks, as writer -> [keras callbacks] (the writer is the run's
        TensorBoard writer); None: the run's own (operative config, sample grids, progress line, Lipschitz
        monitor, evaluation). Divergence guard, saving, stopping and preemption are always the run's.
      checkpoint: what to resume from: "latest", "best", a checkpoint path, or None to train on from the
        state as it is (as built, or as the caller restored it).
    """
    config, gan = built.config, built.gan
    restored = checkpoint and built.checkpoints.restore(checkpoint)
    start = int(gan.step.numpy())
    if restored:
        print(f"Resuming from {restored} at step {start}.", flush=True)
    if start >= config.total_steps:
        print(f"Already trained to step {start} >= total_steps {config.total_steps}.", flush=True)
        return built
    dataset, first_batch = _training_data(built, start)
    # Load the feature network and reference before training (and before any file is written), so a missing
    # model fails at once.
    scorer = None
    if reporting is None and built.chief and config.evaluations_due(start):
        scorer = evaluator.for_run(config, built.workdir)
    writer = tf.summary.create_file_writer(built.workdir) if built.chief else None
    signals = faults.StopSignals()
    remaining = config.total_steps - start
    per_epoch = min(config.log_every, remaining)
    if not built.chief:
        chief_callbacks = []
    elif reporting is None:
        chief_callbacks = _reporting(built, writer, first_batch, scorer)
    else:
        chief_callbacks = list(reporting(writer))
    try:
        with signals.installed(), built.strategy.scope():
            # shuffle=False: the dataset's order is the run's (seeded, resumable); Keras would only warn.
            gan.fit(
                dataset,
                epochs=math.ceil(remaining / per_epoch),
                steps_per_epoch=per_epoch,
                callbacks=_callbacks(built, chief_callbacks, signals),
                shuffle=False,
                verbose=0,
            )
    finally:
        if writer:
            writer.close()
    return built


def _training_data(built, start):
    """(the global batches from step `start`, split over the replicas; the first of them, for the monitor)."""
    config, loop, strategy = built.config, built.config.loop, built.strategy

    def global_batches():
        return config.dataset_fn(batch_size=loop.n_dis * loop.batch_size_D, seed=loop.seed, start_step=start)

    dataset = global_batches()
    data.check_num_classes(dataset, loop.num_classes)  # a conditional run needs labels of its class count
    want = tuple(built.gan.discriminator.critic.inputs[0].shape[1:])
    got = tuple(dataset.element_spec[0].shape[1:])
    if got != want:
        raise ConfigError(f"the dataset gives images of shape {got} but the critic takes {want}; match their sizes.")
    first_batch = dataset
    if strategy.num_replicas_in_sync > 1:
        dataset = distribute.distribute_dataset(strategy, global_batches, loop.n_dis, loop.batch_size_D)
    return dataset, first_batch


def _reporting(built, writer, monitor_data, scorer):
    """The run's own chief callbacks: operative config, samples, progress, Lipschitz monitor, evaluation."""
    config, loop, ckpt = built.config, built.config.loop, built.checkpoints
    log_every = min(config.log_every, config.total_steps)
    sample_y = ckpt.fixed_y if loop.conditional else None
    cbs = [
        callbacks.OperativeConfig(writer, built.workdir, gin.operative_config_str),
        callbacks.Samples(writer, os.path.join(built.workdir, "samples"), ckpt.fixed_z, sample_y, config.sample_every),
        callbacks.StepLogger(writer, config.total_steps, log_every),
        _lipschitz_monitor(writer, log_every, config.total_steps, monitor_data, loop),
    ]
    if scorer:
        cbs.append(
            callbacks.Evaluate(
                scorer, config.eval_every, writer, built.workdir, ckpt.save, ckpt.best_manager, ckpt.best_metric,
                config.best_by,
            )
        )  # fmt: skip
    return cbs


def _callbacks(built, chief_callbacks, signals):
    """Divergence guard; the chief's reporting; saving, stopping, preemption."""
    config, ckpt = built.config, built.checkpoints
    return [
        callbacks.DivergenceGuard(ckpt.diverged_message),
        *chief_callbacks,
        callbacks.Checkpointer(ckpt.save, ckpt.manager, config.save_every),
        callbacks.StopAt(config.total_steps),
        callbacks.Preemption(
            signals,
            lambda step: ckpt.save(ckpt.manager, step),
            _preemption_handler(built.strategy, signals, built.workdir),
        ),
    ]


def _lipschitz_monitor(writer, every, total_steps, dataset, loop):
    """The monitor with its fixed inputs: the first images (and labels) this run trains on, seeded latents and alphas.

    Taken from the run's own dataset (a second iterator; no second copy of
    the data): a resumed run monitors on the first batch it resumes with.
    """
    images, labels = (t[:LIPSCHITZ_IMAGES] for t in next(iter(dataset)))
    n = int(images.shape[0])
    rng = np.random.default_rng([loop.seed, 1])
    z = tf.constant(rng.standard_normal((n, loop.z_dim)), images.dtype)
    alpha = tf.constant(rng.uniform(size=n), images.dtype)
    return callbacks.LipschitzMonitor(
        writer, every, images, labels if loop.conditional else None, z, alpha, total_steps
    )


def _preemption_handler(strategy, signals, workdir):
    """For a multi-worker run: how to make TensorFlow's PreemptionCheckpointHandler watching `signals`; else None.

    The handler agrees with the other workers on the step to save at, saves
    through save_fn (the run's own checked save) and calls exit_fn. It also
    restores from its manager when made: it gets an empty one, since the run
    has restored itself already.
    """
    resolver = getattr(strategy, "cluster_resolver", None)
    if resolver is None or not resolver.cluster_spec().jobs:
        return None

    def make(save_fn, exit_fn):
        config = tf.distribute.experimental.TerminationConfig(
            termination_watcher_fn=signals.event.is_set, exit_fn=exit_fn, grace_period=0, save_fn=save_fn
        )
        empty = tf.train.CheckpointManager(tf.train.Checkpoint(), os.path.join(workdir, "preemption"), max_to_keep=1)
        return tf.distribute.experimental.PreemptionCheckpointHandler(resolver, empty, termination_config=config)

    return make
