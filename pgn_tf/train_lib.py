"""The gin root of training: train_and_evaluate(workdir, ...) builds everything and runs fit."""

import math
import os
import sys

import gin
import keras
import numpy as np
import tensorflow as tf

from pgn_tf import callbacks, data, distribute, losses, optimizers, penalties
from pgn_tf.eval import digits_classifier, evaluator, inception, stats
from pgn_tf.gan import PGNGAN, LinearDecay
from pgn_tf.models import biggan, dcgan, resnet
from pgn_tf.models.layers import SpectralNorm
from pgn_tf.normalization import MODES

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


def _positive(**values):
    for name, value in values.items():
        if value is None or int(value) <= 0:
            raise ConfigError(f"train_and_evaluate.{name} must be positive, got {value}.")


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
        self.manager = tf.train.CheckpointManager(checkpoint, own, max_to_keep=3 if self.chief else 1)
        self.best_manager = tf.train.CheckpointManager(
            checkpoint, os.path.join(self.checkpoint_dir, "best"), max_to_keep=1
        )
        self.feature_fn = feature_fn
        self.fid_stats = fid_stats
        self.dataset_fn = dataset_fn
        self.num_images = num_images
        self.seed = seed

    def restore(self, which="latest"):
        """Restores "latest", "best" or a checkpoint path; returns the path, or None for latest with no checkpoint.

        Raises:
          CheckpointError: no such checkpoint, or one that cannot be restored.
        """
        if which in ("latest", "best"):
            # Every worker resumes from the chief's checkpoints (a filesystem all hosts share).
            path = tf.train.latest_checkpoint(self.checkpoint_dir if which == "latest" else self.best_manager.directory)
            if path is None:
                if which == "latest":
                    return None
                raise CheckpointError(f"no best checkpoint in {self.best_manager.directory} (no evaluation ran yet).")
        else:
            path = which
            if not tf.io.gfile.exists(path + ".index"):
                raise CheckpointError(
                    f"checkpoint {path} does not exist (want best, latest or a path like DIR/ckpt-1000)."
                )
        try:
            self.checkpoint.restore(path).assert_existing_objects_matched()
        except (tf.errors.OpError, ValueError, AssertionError) as e:
            first = str(e).strip().splitlines()[0] if str(e).strip() else type(e).__name__
            raise CheckpointError(
                f"cannot restore checkpoint {path} ({first[:200]}); move it out of "
                f"{os.path.dirname(path)} to resume from an earlier one, or use a new --workdir."
            ) from None
        return path

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
    train=True,
    strategy=None,
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
      train: False builds and returns the Experiment without training or
        restoring (for evaluation and export).
      strategy: a tf.distribute strategy (`distribute.make_strategy`); the
        batch sizes are global and must divide by its replicas. In a
        multi-worker run only the chief writes summaries, samples,
        evaluations and the checkpoints in DIR/checkpoints (which every
        worker resumes from); the others save to DIR/workers/<index>/.

    Returns:
      The Experiment (its PGNGAN trained to total_steps).
    """
    _positive(
        total_steps=total_steps, batch_size_D=batch_size_D, batch_size_G=batch_size_G, n_dis=n_dis,
        z_dim=z_dim, sample_every=sample_every, save_every=save_every, log_every=log_every,
        eval_every=eval_every, num_images=num_images,
    )  # fmt: skip
    if normalization not in NORMALIZATIONS:
        raise ConfigError(f"train_and_evaluate.normalization must be one of {NORMALIZATIONS}, got {normalization!r}.")
    if penalty is not None and penalty not in penalties.PENALTIES:
        raise ConfigError(f"train_and_evaluate.penalty must be None or one of {penalties.PENALTIES}, got {penalty!r}.")
    if isinstance(penalty_weight, bool) or not isinstance(penalty_weight, (int, float)) or not penalty_weight >= 0:
        raise ConfigError(f"train_and_evaluate.penalty_weight must be a number >= 0, got {penalty_weight!r}.")
    if best_by not in ("FID", "FID_ema"):
        raise ConfigError(f"train_and_evaluate.best_by must be 'FID' or 'FID_ema', got {best_by!r}.")
    strategy = strategy or tf.distribute.get_strategy()
    replicas = strategy.num_replicas_in_sync
    for name, value in (("batch_size_D", batch_size_D), ("batch_size_G", batch_size_G)):
        if value % replicas:
            raise ConfigError(
                f"train_and_evaluate.{name} = {value} does not split over {replicas} replicas; use a multiple of {replicas}."
            )
    _check_workdir(workdir)
    keras.utils.set_random_seed(seed)
    with strategy.scope():
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
    cbs, writer = [], None
    if exp.chief:
        writer = tf.summary.create_file_writer(workdir)
        sample_y = None if num_classes is None else fixed_y
        cbs = [
            callbacks.OperativeConfig(writer, workdir, gin.operative_config_str),
            callbacks.Samples(writer, os.path.join(workdir, "samples"), fixed_z, sample_y, sample_every),
            callbacks.StepLogger(writer, total_steps, min(log_every, total_steps)),
            _lipschitz_monitor(
                writer, min(log_every, total_steps), total_steps, monitor_data, z_dim, num_classes, seed
            ),
        ]
        if scorer:
            cbs.append(callbacks.Evaluate(scorer, eval_every, writer, workdir, exp.best_manager, best_metric, best_by))
    cbs += [callbacks.Checkpointer(exp.manager, save_every), callbacks.StopAt(total_steps)]
    per_epoch = min(log_every, remaining)
    with strategy.scope():
        gan.fit(dataset, epochs=math.ceil(remaining / per_epoch), steps_per_epoch=per_epoch, callbacks=cbs, verbose=0)
    if writer:
        writer.close()
    return exp
