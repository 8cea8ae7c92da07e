"""One way to build a run and one to run it: build(config, workdir, strategy) -> Experiment, and run(experiment).

Training (`train_lib.train_and_evaluate`, the CLI), evaluation, export, the
mode-collapse benchmark and the tools all build through `build`: it is the
one place that makes the models, optimizers, `PGNGAN` and checkpoint.
"""

import contextlib
import dataclasses
import math
import os
import sys

import gin
import keras
import numpy as np
import tensorflow as tf

from pgn_tf import callbacks, data, distribute, faults, precision, workdir_lock
from pgn_tf.errors import CheckpointError, ConfigError, first_line
from pgn_tf.eval import evaluator, stats
from pgn_tf.gan import PGNGAN, LinearDecay

SAMPLES = 64  # images in each sample grid
LIPSCHITZ_IMAGES = 16  # real images (and as many fakes and interpolates) of the Lipschitz monitor


def check_workdir(workdir):
    """Creates workdir if needed; ConfigError unless this process can write there."""
    try:
        os.makedirs(workdir, exist_ok=True)
        probe = os.path.join(workdir, f".write_test.{os.getpid()}")  # per process: workers share the workdir
        with open(probe, "w") as f:
            f.write("ok")
        os.remove(probe)
    except OSError as e:
        raise ConfigError(f"workdir {workdir} is not writable ({e.strerror}); pass another --workdir.") from None


@contextlib.contextmanager
def claimed(config, workdir, strategy):
    """Checks that the run fits the strategy and can write to workdir, then holds workdir for the block.

    Only the chief holds the workdir's lock (`workdir_lock`): the other
    workers of a multi-worker run share the chief's folder.

    Raises:
      ConfigError: a batch that does not split over the replicas, or a workdir that cannot be written.
      workdir_lock.WorkdirInUse: another run holds the workdir (nothing changed).
    """
    config.loop.check_replicas(strategy.num_replicas_in_sync)
    check_workdir(workdir)
    with workdir_lock.hold(workdir) if distribute.is_chief(strategy) else contextlib.nullcontext():
        yield


def _damaged_list(directory, e):
    return CheckpointError(
        f"cannot read the checkpoint list {os.path.join(directory, 'checkpoint')} ({first_line(e)[:120]}); "
        "move it aside with the checkpoints it names to start afresh, or use a new --workdir."
    )


def _manager(checkpoint, directory, max_to_keep):
    """A CheckpointManager, or CheckpointError if its directory's checkpoint list is damaged (it reads it)."""
    try:
        return tf.train.CheckpointManager(checkpoint, directory, max_to_keep=max_to_keep)
    except Exception as e:  # noqa: BLE001
        raise _damaged_list(directory, e) from None


class Experiment:
    """A built run: its config, the PGNGAN, its checkpoint (and managers) and how to score it.

    Attributes:
      config: the `config.RunConfig` it was built from.
      gan: the compiled `PGNGAN`.
      checkpoint: tf.train.Checkpoint over G, EMA-G, D, both optimizers, the
        step, the sample latents and the best score (names fixed: existing
        checkpoints restore by them).
      fixed_z, fixed_y: the latents (and labels) of the sample grids.
      manager, best_manager: the run's checkpoints (this worker's own in a
        multi-worker run) and the best-scoring one.
    """

    def __init__(self, config, workdir, strategy, gan, checkpoint):
        self.config = config
        self.workdir = workdir
        self.strategy = strategy
        self.gan = gan
        self.checkpoint = checkpoint
        self.fixed_z, self.fixed_y, self.best_metric = checkpoint.fixed_z, checkpoint.fixed_y, checkpoint.best_metric
        self.chief = distribute.is_chief(strategy)
        self.checkpoint_dir = os.path.join(workdir, "checkpoints")
        # Every worker of a multi-worker run saves (TensorFlow requires it); only the chief's are the run's.
        own = self.checkpoint_dir
        if not self.chief:
            own = os.path.join(workdir, "workers", str(distribute.worker_id(strategy)), "checkpoints")
        self.manager = _manager(checkpoint, own, max_to_keep=3 if self.chief else 1)
        self.best_manager = _manager(checkpoint, os.path.join(self.checkpoint_dir, "best"), max_to_keep=1)

    def _variables(self):
        """(name, variable) of everything a checkpoint holds that training changes: models and optimizer state."""
        gan = self.gan
        for owner, obj in (("generator", gan.generator), ("ema_generator", gan.ema_generator),
                           ("critic", gan.discriminator.critic), ("d_optimizer", gan.d_optimizer),
                           ("g_optimizer", gan.g_optimizer)):  # fmt: skip
            for v in obj.variables:
                yield f"{owner}/{v.path}", v

    def latest(self):
        """The chief's newest saved checkpoint that is still on disk, and the ones before it (newest first).

        Raises:
          CheckpointError: the checkpoint list (DIR/checkpoints/checkpoint) cannot be read.
        """
        try:
            state = tf.train.get_checkpoint_state(self.checkpoint_dir)
        except Exception as e:  # noqa: BLE001  (a damaged list raises parse errors of several kinds)
            raise _damaged_list(self.checkpoint_dir, e) from None
        paths = [] if state is None else list(state.all_model_checkpoint_paths or [state.model_checkpoint_path])
        paths = [p for p in paths if tf.io.gfile.exists(p + ".index")]  # one moved aside is skipped
        return sorted(paths, key=lambda p: int(p.rsplit("-", 1)[1]), reverse=True)

    def restore(self, which="latest"):
        """Restores "latest", "best" or a checkpoint path; returns the path, or None for latest with no checkpoint.

        Raises:
          CheckpointError: no such checkpoint, or one that cannot be restored
            (one line naming it and the ways out; nothing is changed).
        """
        earlier = []
        if which == "latest":
            # Every worker resumes from the chief's checkpoints (a filesystem all hosts share).
            paths = self.latest()
            if not paths:
                return None
            path, earlier = paths[0], paths[1:]
        elif which == "best":
            path = tf.train.latest_checkpoint(self.best_manager.directory)
            if path is None:
                raise CheckpointError(f"no best checkpoint in {self.best_manager.directory} (no evaluation ran yet).")
        else:
            path = which
        if not tf.io.gfile.exists(path + ".index"):
            raise CheckpointError(f"checkpoint {path} does not exist (want best, latest or a path like DIR/ckpt-1000).")
        status = None
        try:
            status = self.checkpoint.restore(path)
            status.assert_existing_objects_matched()
        except Exception as e:  # noqa: BLE001  (damage surfaces as OpError, IndexError, ValueError, AssertionError)
            if status is not None:
                status.expect_partial()  # no warnings about the values left unrestored
            mismatch = self._precision_mismatch(path)
            if mismatch:
                raise CheckpointError(f"checkpoint {path} {mismatch}, or use a new --workdir.") from None
            way_out = (
                f"move {path}.* aside to resume from {os.path.basename(earlier[0])}"
                if earlier
                else f"move {path}.* aside to start afresh"
            )
            raise CheckpointError(
                f"cannot restore checkpoint {path} ({first_line(e)[:200]}); {way_out}, or use a new --workdir."
            ) from None
        return path

    def _precision_mismatch(self, path):
        """Why `path` cannot resume in this run's precision, or None: float16 runs keep a loss scale.

        float32 and mixed_bfloat16 runs hold the same variables, so a run can
        switch between them; mixed_float16 wraps both optimizers in a
        LossScaleOptimizer, whose checkpoint the others cannot read.
        """
        try:
            saved_fp16 = any(name.startswith("d_optimizer/dynamic_scale/") for name, _ in tf.train.list_variables(path))
        except Exception:  # noqa: BLE001  (a damaged file: the generic line says so)
            return None
        fp16 = isinstance(self.gan.d_optimizer, keras.optimizers.LossScaleOptimizer)
        if saved_fp16 and not fp16:
            return (
                "was written by a mixed_float16 run (its optimizers keep a loss scale); resume it with "
                "--gin_param=\"train_and_evaluate.precision='mixed_float16'\""
            )
        if fp16 and not saved_fp16:
            return (
                "was written by a float32 or mixed_bfloat16 run (no loss scale); resume it in one of those precisions"
            )
        return None

    def save(self, manager, step):
        """Saves the run at `step` through `manager` (atomic), after checking that every saved tensor is finite.

        Raises:
          faults.Diverged: a weight or optimizer slot is not finite (nothing is written).
          faults.DiskFull: no space left; the checkpoints saved before are intact.
        """
        bad = faults.nonfinite(self._variables())
        if bad:
            name, count = bad[0]
            raise faults.Diverged(
                self.diverged_message(step, f"{len(bad)} tensors hold non-finite values, e.g. {count} in {name}")
            )
        try:
            return manager.save(checkpoint_number=step)
        except (tf.errors.OpError, OSError) as e:
            if not faults.is_disk_full(e):
                raise
            # The manager lists a checkpoint only once it is complete; remove what this save left behind.
            prefix = os.path.join(manager.directory, f"ckpt-{step}")
            if prefix not in manager.checkpoints:
                for leftover in tf.io.gfile.glob(prefix + ".*") + tf.io.gfile.glob(prefix + "_temp*"):
                    with contextlib.suppress(tf.errors.OpError):
                        (tf.io.gfile.rmtree if tf.io.gfile.isdir(leftover) else tf.io.gfile.remove)(leftover)
            last = manager.latest_checkpoint or "none yet"
            raise faults.DiskFull(
                f"no space left on the device while saving {prefix}; the saved checkpoints are intact "
                f"(latest: {last}). Free some space and run the same command to resume",
            ) from None

    def diverged_message(self, step, what):
        last = self.latest()
        resume = (
            f"the last finite checkpoint is {os.path.basename(last[0])}; lower the learning rates (lr_D, lr_G) or "
            "add a penalty, then run again to resume from it, or use a new --workdir"
            if last
            else "no checkpoint was saved yet; lower the learning rates (lr_D, lr_G) or add a penalty and run again"
        )
        return f"training diverged at step {step} ({what}); {resume}."

    def evaluator(self, num_images=None, fid_stats=None, feature_fn=None):
        """An Evaluator with the run's feature network and reference statistics (computed and cached if needed).

        The reference is, in order: `fid_stats` (or the config's), else
        DIR/fid_stats.<feature net>.npz, else made from the first num_images
        training images and saved there.
        """
        loop, num_images = self.config.loop, int(num_images or self.config.num_images)
        feature_net = (feature_fn or self.config.feature_fn)()
        path = fid_stats or self.config.fid_stats
        if path:
            reference = stats.Reference.load(path)
        else:
            path = os.path.join(self.workdir, f"fid_stats.{feature_net.name}.npz")
            if os.path.isfile(path):
                reference = stats.Reference.load(path)
            else:
                print(f"Computing reference statistics of {num_images} training images -> {path}", file=sys.stderr)
                dataset = self.config.dataset_fn(batch_size=loop.batch_size_G, seed=loop.seed, start_step=0)
                reference = evaluator.reference_from_dataset(feature_net, dataset, num_images, loop.seed)
                reference.save(path)
        return evaluator.Evaluator(
            feature_net, reference, num_images, loop.batch_size_G, loop.seed, metrics=self.config.metrics
        )


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


def build(config, workdir, strategy=None, latents=None):
    """Makes everything a run holds: models, optimizers, the compiled PGNGAN and its checkpoint. Changes no file.

    Args:
      config: a `config.RunConfig`.
      workdir: where the run's checkpoints are (read by `Experiment.restore`, written by `run`).
      strategy: a tf.distribute strategy (`distribute.make_strategy`), or None for the current one; the
        batch sizes are global (`claimed` checks they split over its replicas).
      latents: the PGNGAN's latent source (None: its own seeded draws).

    Returns:
      The Experiment (not restored: call `restore`, or `run`, which resumes).
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
        generator = config.generator_fn(z_dim=loop.z_dim, **cond)
        critic = _build_critic(config.critic_fn, loop.spectral_norm, cond)
        if isinstance(config.dataset_fn, str):  # "folder:PATH" / "tfds:NAME": at the side the critic takes
            config = dataclasses.replace(config, dataset_fn=data.named(config.dataset_fn, critic.inputs[0].shape[1]))
        gan = PGNGAN(generator, critic, loop, latents=latents)
        d_opt, g_opt = _optimizers(config)
        gan.compile(d_optimizer=d_opt, g_optimizer=g_opt, loss_fn=config.loss_fn(), jit_compile=jit_compile)
        d_opt.build(gan.discriminator.trainable_variables)
        g_opt.build(generator.trainable_variables)
        rng = np.random.default_rng(loop.seed)
        checkpoint = tf.train.Checkpoint(
            generator=generator, ema_generator=gan.ema_generator, critic=critic, d_optimizer=d_opt,
            g_optimizer=g_opt, step=gan.step,
            fixed_z=tf.Variable(rng.standard_normal((SAMPLES, loop.z_dim)).astype(np.float32), trainable=False),
            fixed_y=tf.Variable(np.arange(SAMPLES, dtype=np.int32) % (loop.num_classes or 1), trainable=False),
            best_metric=tf.Variable(np.inf, dtype=tf.float64, trainable=False),
        )  # fmt: skip
        return Experiment(config, workdir, strategy, gan, checkpoint)


def run(exp):
    """Trains exp to its config's total_steps, resuming from its workdir's latest checkpoint; returns exp.

    Hold the workdir while it runs (`claimed`). In a multi-worker run only the
    chief writes summaries, samples, evaluations and DIR/checkpoints (which
    every worker resumes from); the others save to DIR/workers/<index>/.
    """
    config, gan = exp.config, exp.gan
    restored = exp.restore("latest")
    start = int(gan.step.numpy())
    if restored:
        print(f"Resuming from {restored} at step {start}.", flush=True)
    if start >= config.total_steps:
        print(f"Already trained to step {start} >= total_steps {config.total_steps}.", flush=True)
        return exp
    dataset, first_batch = _training_data(exp, start)
    # Load the feature network and reference before training, so a missing model fails at once.
    scorer = exp.evaluator() if exp.chief and config.evaluations_due(start) else None
    writer = tf.summary.create_file_writer(exp.workdir) if exp.chief else None
    signals = faults.StopSignals()
    remaining = config.total_steps - start
    per_epoch = min(config.log_every, remaining)
    try:
        with signals.installed(), exp.strategy.scope():
            # shuffle=False: the dataset's order is the run's (seeded, resumable); Keras would only warn.
            gan.fit(
                dataset,
                epochs=math.ceil(remaining / per_epoch),
                steps_per_epoch=per_epoch,
                callbacks=_callbacks(exp, writer, first_batch, scorer, signals),
                shuffle=False,
                verbose=0,
            )
    finally:
        if writer:
            writer.close()
    return exp


def _training_data(exp, start):
    """(the global batches from step `start`, split over the replicas; the first of them, for the monitor)."""
    config, loop, strategy = exp.config, exp.config.loop, exp.strategy

    def global_batches():
        return config.dataset_fn(batch_size=loop.n_dis * loop.batch_size_D, seed=loop.seed, start_step=start)

    dataset = global_batches()
    data.check_num_classes(dataset, loop.num_classes)  # a conditional run needs labels of its class count
    want = tuple(exp.gan.discriminator.critic.inputs[0].shape[1:])
    got = tuple(dataset.element_spec[0].shape[1:])
    if got != want:
        raise ConfigError(f"the dataset gives images of shape {got} but the critic takes {want}; match their sizes.")
    first_batch = dataset
    if strategy.num_replicas_in_sync > 1:
        dataset = distribute.distribute_dataset(strategy, global_batches, loop.n_dis, loop.batch_size_D)
    return dataset, first_batch


def _callbacks(exp, writer, monitor_data, scorer, signals):
    """Divergence guard; on the chief config, samples, progress, Lipschitz monitor, evaluation; saving, stopping."""
    config, loop = exp.config, exp.config.loop
    cbs = [callbacks.DivergenceGuard(exp.diverged_message)]
    if exp.chief:
        log_every = min(config.log_every, config.total_steps)
        sample_y = exp.fixed_y if loop.conditional else None
        cbs += [
            callbacks.OperativeConfig(writer, exp.workdir, gin.operative_config_str),
            callbacks.Samples(writer, os.path.join(exp.workdir, "samples"), exp.fixed_z, sample_y, config.sample_every),
            callbacks.StepLogger(writer, config.total_steps, log_every),
            _lipschitz_monitor(writer, log_every, config.total_steps, monitor_data, loop),
        ]
        if scorer:
            cbs.append(
                callbacks.Evaluate(
                    scorer, config.eval_every, writer, exp.workdir, exp.save, exp.best_manager, exp.best_metric,
                    config.best_by,
                )
            )  # fmt: skip
    return cbs + [
        callbacks.Checkpointer(exp.save, exp.manager, config.save_every),
        callbacks.StopAt(config.total_steps),
        callbacks.Preemption(
            signals, lambda step: exp.save(exp.manager, step), _preemption_handler(exp.strategy, signals, exp.workdir)
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
