"""The gin root of training: train_and_evaluate(workdir, ...) builds everything and runs fit."""

import contextlib
import math
import os
import sys

import gin
import keras
import numpy as np
import tensorflow as tf

from pgn_tf import callbacks, data, distribute, faults, losses, optimizers, penalties
from pgn_tf.cli import first_line as _first_line
from pgn_tf.eval import digits_classifier, evaluator, inception, stats
from pgn_tf.gan import PGNGAN, LinearDecay
from pgn_tf.models import biggan, dcgan, resnet
from pgn_tf.models.layers import SpectralNorm
from pgn_tf.normalization import MODES
from pgn_tf.precision import PRECISIONS
from pgn_tf.precision import scope as precision_scope

SAMPLES = 64  # images in each sample grid
LIPSCHITZ_IMAGES = 16  # real images (and as many fakes and interpolates) of the Lipschitz monitor
# The critic's constraint: PGN / GN (PGNDiscriminator's modes), a spectrally normalized critic, or nothing.
NORMALIZATIONS = ("pgn", "gn", "sn", "none")


class ConfigError(ValueError):
    """A configuration a run cannot start with; the message says what to change."""


class CheckpointError(ValueError):
    """A checkpoint in the workdir that cannot be restored."""


# Components are gin references: @dcgan.generator, @data.cifar10, @losses.hinge,
# @d/optimizers.Adam (torch's Adam arithmetic, as the official code); Keras' own stays available.
# external_configurable returns a configurable copy and leaves the original alone: the defaults
# below must be these copies, or bindings such as d/optimizers.Adam.beta_1 would never apply.
Adam = gin.external_configurable(optimizers.Adam, module="optimizers")
gin.external_configurable(keras.optimizers.Adam, module="keras.optimizers")
for _module, _fns in (("dcgan", dcgan), ("resnet", resnet), ("biggan", biggan)):
    for _fn in (_fns.generator, _fns.critic):
        gin.external_configurable(_fn, module=_module)
for _fn in (data.digits, data.cifar10, data.stl10, data.celeb_a_hq):
    # Set by train_and_evaluate, never by a config.
    gin.external_configurable(_fn, module="data", denylist=["batch_size", "seed", "start_step"])
load_inception = gin.external_configurable(inception.load_inception, module="inception", denylist=["batch_size"])
gin.external_configurable(digits_classifier.load_digits_classifier, module="digits_classifier", denylist=["batch_size"])
for _loss in (losses.hinge, losses.bce, losses.wasserstein):
    gin.external_configurable(lambda _loss=_loss: _loss, name=_loss.name, module="losses")


def _check_workdir(workdir):
    try:
        os.makedirs(workdir, exist_ok=True)
        probe = os.path.join(workdir, f".write_test.{os.getpid()}")  # per process: workers share the workdir
        with open(probe, "w") as f:
            f.write("ok")
        os.remove(probe)
    except OSError as e:
        raise ConfigError(f"workdir {workdir} is not writable ({e.strerror}); pass another --workdir.") from None


def _kind(value):
    return f"{value!r} ({type(value).__name__})"


def _check_int(name, value, minimum):
    if isinstance(value, bool) or not isinstance(value, (int, np.integer)) or value < minimum:
        raise ConfigError(f"train_and_evaluate.{name} must be an integer >= {minimum}, got {_kind(value)}.")


def _check_number(name, value, minimum, maximum=math.inf, strict=False):
    ok = not isinstance(value, bool) and isinstance(value, (int, float, np.integer, np.floating))
    if ok and math.isfinite(value):
        ok = (value > minimum if strict else value >= minimum) and value <= maximum
    if not ok:
        bound = f"> {minimum}" if strict else f">= {minimum}"
        bound += f" and <= {maximum}" if maximum < math.inf else ""
        raise ConfigError(f"train_and_evaluate.{name} must be a number {bound}, got {_kind(value)}.")


def _check_choice(name, value, choices):
    if value not in choices:
        raise ConfigError(f"train_and_evaluate.{name} must be one of {choices}, got {value!r}.")


def _validate(args):
    """Every binding of train_and_evaluate, before anything is built: its type and range, or one ConfigError."""
    for name in ("total_steps", "batch_size_D", "batch_size_G", "n_dis", "z_dim", "sample_every", "eval_every",
                 "save_every", "num_images", "log_every"):  # fmt: skip
        _check_int(name, args[name], 1)
    for name in ("lr_decay_start", "ema_start", "seed"):
        _check_int(name, args[name], 0)
    if args["num_classes"] is not None:
        _check_int("num_classes", args["num_classes"], 1)
    for name in ("lr_D", "lr_G"):
        _check_number(name, args[name], 0, strict=True)
    _check_number("ema_decay", args["ema_decay"], 0, 1)
    _check_number("cr", args["cr"], 0)
    _check_number("penalty_weight", args["penalty_weight"], 0)
    _check_choice("normalization", args["normalization"], NORMALIZATIONS)
    _check_choice("penalty", args["penalty"], (None, *penalties.PENALTIES))
    _check_choice("best_by", args["best_by"], ("FID", "FID_ema"))
    _check_choice("precision", args["precision"], PRECISIONS)
    for name in ("dataset_fn", "generator_fn", "critic_fn", "loss_fn", "d_optimizer", "g_optimizer", "feature_fn"):
        if not callable(args[name]):
            raise ConfigError(
                f"train_and_evaluate.{name} must be a configurable (e.g. @data.digits), got {_kind(args[name])}."
            )
    if args["fid_stats"] is not None and not isinstance(args["fid_stats"], str):
        raise ConfigError(f"train_and_evaluate.fid_stats must be a path or None, got {_kind(args['fid_stats'])}.")
    if not isinstance(args["jit_compile"], bool):
        raise ConfigError(f"train_and_evaluate.jit_compile must be True or False, got {_kind(args['jit_compile'])}.")


def _damaged_list(directory, e):
    return CheckpointError(
        f"cannot read the checkpoint list {os.path.join(directory, 'checkpoint')} ({_first_line(e)[:120]}); "
        "move it aside with the checkpoints it names to start afresh, or use a new --workdir."
    )


def _manager(checkpoint, directory, max_to_keep):
    """A CheckpointManager, or CheckpointError if its directory's checkpoint list is damaged (it reads it)."""
    try:
        return tf.train.CheckpointManager(checkpoint, directory, max_to_keep=max_to_keep)
    except Exception as e:  # noqa: BLE001
        raise _damaged_list(directory, e) from None


class Experiment:
    """A built run: the PGNGAN, its checkpoint (and managers) and how to score it; what train_and_evaluate works on."""

    def __init__(
        self, workdir, gan, checkpoint, best_metric, feature_fn, fid_stats, dataset_fn, num_images, seed, strategy
    ):
        self.workdir = workdir
        self.gan = gan
        self.checkpoint = checkpoint
        self.best_metric = best_metric
        self.chief = distribute.is_chief(strategy)
        self.checkpoint_dir = os.path.join(workdir, "checkpoints")
        # Every worker of a multi-worker run saves (TensorFlow requires it); only the chief's are the run's.
        own = self.checkpoint_dir
        if not self.chief:
            own = os.path.join(workdir, "workers", str(distribute.worker_id(strategy)), "checkpoints")
        self.manager = _manager(checkpoint, own, max_to_keep=3 if self.chief else 1)
        self.best_manager = _manager(checkpoint, os.path.join(self.checkpoint_dir, "best"), max_to_keep=1)
        self.feature_fn = feature_fn
        self.fid_stats = fid_stats
        self.dataset_fn = dataset_fn
        self.num_images = num_images
        self.seed = seed

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
                f"cannot restore checkpoint {path} ({_first_line(e)[:200]}); {way_out}, or use a new --workdir."
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
        num_images = int(num_images or self.num_images)
        feature_net = (feature_fn or self.feature_fn)()
        path = fid_stats or self.fid_stats
        if path:
            reference = stats.Reference.load(path)
        else:
            path = os.path.join(self.workdir, f"fid_stats.{feature_net.name}.npz")
            if os.path.isfile(path):
                reference = stats.Reference.load(path)
            else:
                print(f"Computing reference statistics of {num_images} training images -> {path}", file=sys.stderr)
                dataset = self.dataset_fn(batch_size=self.gan.batch_size_G, seed=self.seed, start_step=0)
                reference = evaluator.reference_from_dataset(feature_net, dataset, num_images, self.seed)
                reference.save(path)
        return evaluator.Evaluator(feature_net, reference, num_images, self.gan.batch_size_G, self.seed)


def _build_critic(critic_fn, normalization, cond):
    """critic_fn(**cond), with spectral_norm=True for "sn" (which must then give spectral-norm layers)."""
    if normalization != "sn":
        return critic_fn(**cond)
    try:
        critic = critic_fn(spectral_norm=True, **cond)
    except TypeError as e:
        raise ConfigError(
            f"normalization 'sn' calls critic_fn(spectral_norm=True), which {critic_fn} does not take ({e})."
        ) from None
    if not any(isinstance(layer, SpectralNorm) for layer in critic._flatten_layers(recursive=True)):
        raise ConfigError(f"normalization 'sn': the critic {critic.name!r} has no spectral-norm layers.")
    return critic


def _lipschitz_monitor(writer, every, total_steps, dataset, z_dim, num_classes, seed):
    """The monitor with its fixed inputs: the first images (and labels) this run trains on, seeded latents and alphas.

    Taken from the run's own dataset (a second iterator; no second copy of
    the data): a resumed run monitors on the first batch it resumes with.
    """
    images, labels = (t[:LIPSCHITZ_IMAGES] for t in next(iter(dataset)))
    n = int(images.shape[0])
    rng = np.random.default_rng([seed, 1])
    z = tf.constant(rng.standard_normal((n, z_dim)), images.dtype)
    alpha = tf.constant(rng.uniform(size=n), images.dtype)
    return callbacks.LipschitzMonitor(
        writer, every, images, None if num_classes is None else labels, z, alpha, total_steps
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


@gin.configurable(denylist=["workdir", "train", "strategy"])
def train_and_evaluate(
    workdir,
    dataset_fn=gin.REQUIRED,
    generator_fn=gin.REQUIRED,
    critic_fn=gin.REQUIRED,
    loss_fn=gin.REQUIRED,
    d_optimizer=Adam,
    g_optimizer=Adam,
    normalization="pgn",
    penalty=None,
    penalty_weight=10.0,
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
    feature_fn=load_inception,
    fid_stats=None,
    best_by="FID",
    log_every=100,
    seed=0,
    jit_compile=False,
    precision="float32",
    train=True,
    strategy=None,
    announce=None,
):
    """Trains a PGN-GAN in `workdir`, resuming from its latest checkpoint.

    Args:
      workdir: checkpoints/ (and checkpoints/best/), samples/, TensorBoard
        events, eval.jsonl, operative_config.gin.
      dataset_fn: (batch_size, seed, start_step) -> tf.data of (images, labels).
      generator_fn, critic_fn: model builders, called with z_dim (G) and,
        for conditional models, num_classes.
      loss_fn: () -> losses.GANLoss (@losses.hinge, @losses.bce, @losses.wasserstein).
      d_optimizer, g_optimizer: optimizer classes (gin-scoped d/ and g/),
        called with the linearly decaying learning rate.
      normalization: "pgn", "gn", "sn" or "none": what constrains the critic.
        "sn" builds it with critic_fn(spectral_norm=True) and uses its raw
        output; "none" is the raw critic.
      penalty: None, "gp1" (WGAN-GP), "gp0" (zero-centred GP on
        interpolates) or "r1" (on real images); see `pgn_tf.penalties`.
        Added to the critic loss on D as the loss sees it, so it combines
        with any normalization.
      penalty_weight: the penalty's weight (R1: gamma, applied as gamma / 2).
      num_classes: class count of a conditional model; None otherwise.
      total_steps .. cr: the official loop's hyperparameters (outer steps).
      sample_every, save_every, log_every, eval_every: in outer steps. Every
        log_every steps the Lipschitz monitor logs ||grad_x D_out|| on
        fixed real images, fakes and interpolates (TensorBoard lipschitz/).
      num_images: samples per evaluation of G and of EMA-G.
      feature_fn: () -> FeatureNet (@inception.load_inception,
        @digits_classifier.load_digits_classifier); loaded before training
        when an evaluation is due, so a missing model fails at once.
      fid_stats: reference statistics (.npz: mu, sigma[, activations]);
        None: made from the training data, cached in DIR/fid_stats.<net>.npz.
      best_by: the score ("FID" of G, as the official code) whose minimum
        is kept in checkpoints/best/; "FID_ema" for EMA-G's.
      seed: seeds weights, data order and latents.
      jit_compile: XLA-compile the train step.
      precision: "float32", or a Keras mixed policy: "mixed_bfloat16" or
        "mixed_float16" (with dynamic loss scaling). The models' layers
        compute in (b)float16; their variables, the optimizer state, the EMA,
        PGN's norm and division, the penalties and the losses stay float32.
        "float64": everything in float64 (slow; for runs that must agree to
        rounding on any CPU, such as the equivalence tests).
      train: False builds and returns the Experiment without training or
        restoring (for evaluation and export).
      strategy: a tf.distribute strategy (`distribute.make_strategy`); the
        batch sizes are global and must divide by its replicas. In a
        multi-worker run only the chief writes summaries, samples,
        evaluations and the checkpoints in DIR/checkpoints (which every
        worker resumes from); the others save to DIR/workers/<index>/.
      announce: called with the precision once every binding and the workdir
        are checked, before anything is built (the CLI prints its header).

    Returns:
      The Experiment (its PGNGAN trained to total_steps).
    """
    _validate(dict(locals()))
    strategy = strategy or tf.distribute.get_strategy()
    replicas = strategy.num_replicas_in_sync
    for name, value in (("batch_size_D", batch_size_D), ("batch_size_G", batch_size_G)):
        if value % replicas:
            raise ConfigError(
                f"train_and_evaluate.{name} = {value} does not split over {replicas} replicas; use a multiple of {replicas}."
            )
    _check_workdir(workdir)
    if announce:
        announce(precision)
    keras.utils.set_random_seed(seed)
    with strategy.scope(), precision_scope(precision):
        cond = {} if num_classes is None else {"num_classes": num_classes}
        generator = generator_fn(z_dim=z_dim, **cond)
        critic = _build_critic(critic_fn, normalization, cond)
        gan = PGNGAN(
            generator, critic, normalization=normalization if normalization in MODES else "none", z_dim=z_dim,
            num_classes=num_classes, n_dis=n_dis, batch_size_D=batch_size_D, batch_size_G=batch_size_G,
            ema_decay=ema_decay, ema_start=ema_start, cr=cr, penalty=penalty, penalty_weight=penalty_weight,
            seed=seed,
        )  # fmt: skip
        with gin.config_scope("d"):
            d_opt = d_optimizer(learning_rate=LinearDecay(lr_D, lr_decay_start, total_steps, n_dis))
        with gin.config_scope("g"):
            g_opt = g_optimizer(learning_rate=LinearDecay(lr_G, lr_decay_start, total_steps, 1))
        if precision == "mixed_float16":  # float16 gradients underflow without a loss scale
            d_opt, g_opt = keras.optimizers.LossScaleOptimizer(d_opt), keras.optimizers.LossScaleOptimizer(g_opt)
        if jit_compile and strategy.num_replicas_in_sync > 1:
            # XLA compiles one device's program; a step that spans replicas runs as a plain tf.function.
            print("jit_compile is off: XLA does not compile a step spread over several replicas.", file=sys.stderr)
            jit_compile = False
        gan.compile(d_optimizer=d_opt, g_optimizer=g_opt, loss_fn=loss_fn(), jit_compile=jit_compile)
        d_opt.build(gan.discriminator.trainable_variables)
        g_opt.build(generator.trainable_variables)

        rng = np.random.default_rng(seed)
        fixed_z = tf.Variable(rng.standard_normal((SAMPLES, z_dim)).astype(np.float32), trainable=False)
        fixed_y = tf.Variable(np.arange(SAMPLES, dtype=np.int32) % (num_classes or 1), trainable=False)
        best_metric = tf.Variable(np.inf, dtype=tf.float64, trainable=False)
        checkpoint = tf.train.Checkpoint(
            generator=generator, ema_generator=gan.ema_generator, critic=critic, d_optimizer=d_opt,
            g_optimizer=g_opt, step=gan.step, fixed_z=fixed_z, fixed_y=fixed_y, best_metric=best_metric,
        )  # fmt: skip
        exp = Experiment(
            workdir, gan, checkpoint, best_metric, feature_fn, fid_stats, dataset_fn, num_images, seed, strategy
        )
    if not train:
        return exp
    restored = exp.restore("latest")
    start = int(gan.step.numpy())
    if restored:
        print(f"Resuming from {restored} at step {start}.", flush=True)
    if start >= total_steps:
        print(f"Already trained to step {start} >= total_steps {total_steps}.", flush=True)
        return exp

    def global_batches():
        return dataset_fn(batch_size=n_dis * batch_size_D, seed=seed, start_step=start)

    dataset = global_batches()
    want = tuple(critic.inputs[0].shape[1:])
    got = tuple(dataset.element_spec[0].shape[1:])
    if got != want:
        raise ConfigError(f"the dataset gives images of shape {got} but the critic takes {want}; match their sizes.")
    monitor_data = dataset
    if replicas > 1:
        dataset = distribute.distribute_dataset(strategy, global_batches, n_dis, batch_size_D)
    # Load the feature network and reference before training, so a missing model fails at once.
    evals_due = exp.chief and (total_steps // eval_every) > (start // eval_every)
    scorer = exp.evaluator() if evals_due else None

    remaining = total_steps - start
    cbs, writer = [callbacks.DivergenceGuard(exp.diverged_message)], None
    if exp.chief:
        writer = tf.summary.create_file_writer(workdir)
        sample_y = None if num_classes is None else fixed_y
        cbs += [
            callbacks.OperativeConfig(writer, workdir, gin.operative_config_str),
            callbacks.Samples(writer, os.path.join(workdir, "samples"), fixed_z, sample_y, sample_every),
            callbacks.StepLogger(writer, total_steps, min(log_every, total_steps)),
            _lipschitz_monitor(
                writer, min(log_every, total_steps), total_steps, monitor_data, z_dim, num_classes, seed
            ),
        ]
        if scorer:
            cbs.append(
                callbacks.Evaluate(
                    scorer, eval_every, writer, workdir, exp.save, exp.best_manager, best_metric, best_by
                )
            )
    signals = faults.StopSignals()
    cbs += [
        callbacks.Checkpointer(exp.save, exp.manager, save_every),
        callbacks.StopAt(total_steps),
        callbacks.Preemption(
            signals, lambda step: exp.save(exp.manager, step), _preemption_handler(strategy, signals, workdir)
        ),
    ]
    per_epoch = min(log_every, remaining)
    try:
        with signals.installed(), strategy.scope():
            # shuffle=False: the dataset's order is the run's (seeded, resumable); Keras would only warn.
            gan.fit(
                dataset,
                epochs=math.ceil(remaining / per_epoch),
                steps_per_epoch=per_epoch,
                callbacks=cbs,
                shuffle=False,
                verbose=0,
            )
    finally:
        if writer:
            writer.close()
    return exp
