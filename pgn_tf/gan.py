"""PGNGAN: the official training loop as a Keras model (n_dis critic steps, one G step, EMA)."""

import contextlib
import functools

import keras
import tensorflow as tf

from pgn_tf import augment, penalties
from pgn_tf.augment import cr_augment
from pgn_tf.config import LoopConfig
from pgn_tf.diagnostics import DIAGNOSTICS, critic_diagnostics
from pgn_tf.normalization import PGNDiscriminator

TRACKERS = (
    "d_loss",
    "d_loss_real",
    "d_loss_fake",
    "cr_loss",
    "penalty",
    "g_loss",
    "f_hat_mean",
    "f_hat_max",
    "grad_norm_mean",
    "grad_norm_max",
    *DIAGNOSTICS,
)
AUGMENT_TRACKERS = ("augment_p",)  # with augmentation: p in effect (and ADA's r_t: "ada_rt")
# Salts of the augmentation draws: apart from the latents' and penalties' (0 .. 4 n_dis + 1) in any loop.
AUGMENT_SALT = 1 << 16


def _rows(t, j, m):
    """Micro-batch j's m rows of t (None stays None)."""
    return None if t is None else t[j * m : (j + 1) * m]


def _summed(total, part):
    """The micro-batches' gradients so far plus one more (part alone at first). An embedding's gradient is
    IndexedSlices, which `+` does not take: those are summed densely (a class table, small)."""
    if total is None:
        return list(part)
    sparse = (tf.IndexedSlices,)
    return [
        None if a is None
        else tf.convert_to_tensor(a) + tf.convert_to_tensor(b) if isinstance(a, sparse) or isinstance(b, sparse)
        else a + b
        for a, b in zip(total, part)
    ]  # fmt: skip


def _after(grads, *tensors):
    """tensors, available only once grads (the micro-batches so far) are computed: in a traced step the
    micro-batches then run one after another, so only one micro-batch's activations are alive at a time.
    Unordered, TensorFlow's executor runs them side by side and accumulation saves no memory (measured:
    tools/bench_accumulation.py). The values are unchanged."""
    if grads is None or not tf.inside_function():
        return tensors
    with tf.control_dependencies([g.op for g in grads if g is not None]):
        return tuple(None if t is None else tf.identity(t) for t in tensors)


def accumulate(micro_step, tensors, parts, m):
    """Runs micro_step on `parts` micro-batches of m rows of `tensors`, one after another; sums their gradients.

    micro_step(*rows) -> (gradients, logs) for one micro-batch, whose loss is
    already divided by the number of parts (so the sum is the gradient of the
    global batch's mean loss). Logs are combined as the loop logs them: a
    "_max" key is the maximum over the micro-batches, any other their mean.

    Returns:
      (summed gradients, combined logs).
    """
    grads, logs = None, {}
    for j in range(parts):
        rows = _after(grads, *(_rows(t, j, m) for t in tensors))
        micro_grads, micro_logs = micro_step(*rows)
        grads = _summed(grads, micro_grads)
        for key, value in micro_logs.items():
            logs[key] = value if key not in logs else (tf.maximum if key.endswith("_max") else tf.add)(logs[key], value)
    return grads, {key: v if key.endswith("_max") else v / parts for key, v in logs.items()}


@keras.saving.register_keras_serializable(package="pgn_tf")
class PGNGAN(keras.Model):
    """Generator, normalized critic and EMA generator, trained with `fit`.

    Each `train_step` is one outer step of the official loop: the batch holds
    n_dis * batch_size_D real images (and labels for conditional models);
    each of n_dis critic steps takes the next batch_size_D of them with a
    fresh batch of fakes (no gradient into G) and applies the loss to
    PGN(D)(concat([real, fake])); then one generator step on a fresh z of
    batch_size_G; then the EMA of G (weights and BatchNorm statistics; a plain
    copy before ema_start).

    Args:
      generator: z [N, z_dim] (or [z, labels]) -> images.
      critic: images (or [images, labels]) -> [N, 1]; wrapped in
        PGNDiscriminator with the loop's `critic_mode`.
      loop: the loop's settings (`config.LoopConfig`; its defaults if None).
      latents: (n, salt) -> (z [n, z_dim], labels [n] or None), this
        replica's draw for one purpose of the current step; None draws them
        from (seed, step, salt) (`default_latents`). Tools inject their own
        (e.g. the official code's draws) to replay a run.
      diagnostics: (Normalized, m, loss_fn) -> {DIAGNOSTICS key: scalar}
        for each critic micro-step (m reals then m fakes); None:
        `diagnostics.critic_diagnostics`. A settable attribute of that name.

    Under a tf.distribute strategy with R replicas, each replica gets 1/R of
    the real batch (see `distribute.distribute_dataset`) and the same rows of
    every z / label / augmentation draw that a single device would use
    there; its losses are divided by R because the optimizers sum the
    replicas' gradients. With the generator's BatchNorm synchronised
    (`models.layers.BatchNorm`), a step on R replicas computes the
    single-device step.
    """

    def __init__(self, generator, critic, loop=None, latents=None, diagnostics=None, **kwargs):
        super().__init__(**kwargs)
        self.loop = loop or LoopConfig()
        self.generator = generator
        self.discriminator = PGNDiscriminator(
            critic,
            mode=self.loop.critic_mode,
            hold_denominator=self.loop.hold_denominator,
            constant=self.loop.pgn_constant,
            scale=self.loop.pgn_scale,
            center=self.loop.pgn_center,
        )
        self.ema_generator = keras.models.clone_model(generator)
        self.ema_generator.set_weights(generator.get_weights())
        self.ema_generator.trainable = False
        self._latent_source = latents
        self.diagnostics = diagnostics or critic_diagnostics
        self.step = keras.Variable(0, dtype="int64", trainable=False, name="step")
        names = TRACKERS + (AUGMENT_TRACKERS if self.loop.augment else ()) + (("ada_rt",) if self.loop.ada else ())
        self.trackers = {name: keras.metrics.Mean(name=name) for name in names}
        self.ada = AdaState(self.loop) if self.loop.ada else None
        self.built = True  # every part is built above

    def _maybe_symbolic_build(self, iterator=None, data_batch=None):
        # Private Keras hook, kept (pinned by tests/test_keras_private.py): under
        # a strategy, fit would build the model by tracing call() (z -> images) on a data batch (images).
        return

    @property
    def z_dim(self):
        return self.loop.z_dim

    @property
    def num_classes(self):
        return self.loop.num_classes

    @property
    def conditional(self):
        return self.loop.conditional

    @property
    def metrics(self):
        return list(self.trackers.values())

    def compile(self, d_optimizer, g_optimizer, loss_fn, **kwargs):
        """loss_fn: a `losses.GANLoss`; the optimizers update D and G."""
        super().compile(**kwargs)
        self.d_optimizer = d_optimizer
        self.g_optimizer = g_optimizer
        self.loss_fn = loss_fn

    @staticmethod
    def _replicas():
        """(this replica's index, replicas in sync): (0, 1) on one device or outside a step."""
        ctx = tf.distribute.get_replica_context()
        if ctx is None or ctx.num_replicas_in_sync == 1:
            return 0, 1
        return ctx.replica_id_in_sync_group, ctx.num_replicas_in_sync

    def _random(self, sample, n, shape, salt):
        """This replica's n rows of a draw of n * replicas, keyed by (seed, step, salt).

        Stateless, so nothing is shared between replicas (which MirroredStrategy
        traces in parallel threads) and a resumed run draws what an
        uninterrupted one draws. Each draw of a step has its own salt.
        sample: tf.random.stateless_normal or stateless_uniform (or a partial of one).
        """
        rid, replicas = self._replicas()
        key = tf.stack([tf.constant(self.loop.seed, tf.int64), tf.cast(self.step, tf.int64)])
        key = tf.random.experimental.stateless_fold_in(key, salt)
        x = sample([n * replicas, *shape], seed=key)
        if replicas == 1:
            return x
        return tf.slice(x, [rid * n] + [0] * len(shape), [n] + [-1] * len(shape))

    def latents(self, n, salt):
        """z [n, z_dim] and labels [n] (or None) for this replica: the injected source's, else `default_latents`."""
        return (self._latent_source or self.default_latents)(n, salt)

    def default_latents(self, n, salt):
        """z [n, z_dim] (and labels [n]) for this replica, keyed by (seed, step, salt); salts salt and salt + 1."""
        dtype = self.dtype  # the variables' dtype: float32 under a mixed policy, float64 in a float64 run
        z = self._random(lambda s, seed: tf.random.stateless_normal(s, seed, dtype=dtype), n, (self.z_dim,), salt)
        if not self.conditional:
            return z, None
        randint = functools.partial(tf.random.stateless_uniform, minval=0, maxval=self.num_classes, dtype=tf.int32)
        return z, self._random(randint, n, (), salt + 1)

    @property
    def augment_p(self):
        """The probability in effect that each augmentation transform applies: ADA's current p, or the fixed one."""
        return self.ada.p if self.ada is not None else self.loop.augment_p

    def augmented(self, images, n, salt):
        """This replica's n images through the loop's DiffAugment policy, drawn by (seed, step, salt).

        n is passed, not read from the images' shape: in a traced step the batch dimension is unknown.
        """
        u = self._random(tf.random.stateless_uniform, n, (augment.draws(self.loop.augment),), AUGMENT_SALT + salt)
        return self._augment(images, u)

    def _augment(self, images, u):
        """The images through the loop's DiffAugment policy at the p in effect, with the draws u [n, draws]."""
        loop = self.loop
        return augment.diff_augment(images, u, loop.augment, self.augment_p, loop.translation_ratio, loop.cutout_ratio)

    def generate(self, z, labels=None, ema=False, training=True):
        """Images [N, H, W, 3] in [-1, 1]; training=True uses batch statistics, as the official sampling does."""
        g = self.ema_generator if ema else self.generator
        # In the variables' dtype (float32 under a mixed-precision policy, whose layers compute in (b)float16).
        return tf.cast(g(z if labels is None else [z, labels], training=training), self.dtype)

    @contextlib.contextmanager
    def statistics_kept(self):
        """Within it, sampling with batch statistics leaves both generators' BatchNorm moving statistics unchanged.

        Training never reads them (G always runs on batch statistics), only an
        inference-mode export does; keeping samples and evaluations out of them
        also keeps them equal on every worker when only the chief samples.
        """
        saved = [(v, v.numpy()) for g in (self.generator, self.ema_generator) for v in g.non_trainable_weights]
        try:
            yield
        finally:
            for v, value in saved:
                v.assign(value)

    def call(self, inputs, training=False):
        z, labels = inputs if self.conditional else (inputs, None)
        return self.generate(z, labels, ema=True, training=training)

    def critic_step(self, real, real_y=None, k=0):
        """Critic step k of the outer step on this replica's b = batch_size_D / replicas real images.

        Its draws are keyed by salts 4k .. 4k + 3 and, with augmentation, AUGMENT_SALT + 4k for the reals'
        transforms and AUGMENT_SALT + 4k + 1 for the fakes'.

        All draws (fakes, CR augmentations, penalty interpolations) are made
        for the b rows at once; with accumulation a, the critic's loss and
        gradient run on a micro-batches of b / a rows and one update applies
        their summed gradients.

        Returns:
          The step's logs: losses, penalty, PGN's f_hat / ||1 - grad|| summaries and the DIAGNOSTICS (scalars).
        """
        loop, replicas = self.loop, self._replicas()[1]
        b = loop.batch_size_D // replicas
        z, fake_y = self.latents(b, 4 * k)
        fake = tf.stop_gradient(self.generate(z, fake_y))  # all b at once: no tape, so no activations kept
        if loop.augment:  # outside any tape: the critic's gradients start at its (augmented) input
            real, fake = self.augmented(real, b, 4 * k), self.augmented(fake, b, 4 * k + 1)
        uniforms = self._random(tf.random.stateless_uniform, b, (3,), 4 * k + 2) if loop.cr > 0 else None
        alpha = self._random(tf.random.stateless_uniform, b, (), 4 * k + 3) if loop.penalty else None
        d_vars = self.discriminator.trainable_variables
        m = b // loop.accumulation  # each micro-batch's mean loss / accumulation: the gradient of the batch's mean
        grads, logs = accumulate(
            functools.partial(self._critic_micro_step, d_vars, m),
            (real, real_y, fake, fake_y, uniforms, alpha),
            loop.accumulation,
            m,
        )
        self.d_optimizer.apply(grads, d_vars)
        return logs

    def _critic_micro_step(self, d_vars, m, real, real_y, fake, fake_y, uniforms, alpha):
        """(gradients of one micro-batch's share of the critic loss, its logs); the tensors are its m rows each.

        m is passed, not read from real's shape: in a traced step the batch dimension is unknown.
        """
        loop, replicas = self.loop, self._replicas()[1]
        both = tf.concat([real, fake], axis=0)
        both_y = None if real_y is None else tf.concat([real_y, fake_y], axis=0)
        with tf.GradientTape() as tape:
            out = self.discriminator.normalize(both, labels=both_y, training=True)
            pred_real, pred_fake = out.f_hat[:m], out.f_hat[m:]
            loss, loss_real, loss_fake = self.loss_fn.critic(pred_real, pred_fake)
            cr_loss = tf.zeros((), loss.dtype)
            if loop.cr > 0:
                aug = cr_augment(real, tf.cast(uniforms, real.dtype))
                pred_aug = self.discriminator(aug, labels=real_y, training=True)
                cr_loss = tf.reduce_mean(tf.square(pred_aug - pred_real))
            total = loss + loop.cr * cr_loss
            penalty = tf.zeros((), loss.dtype)
            if loop.penalty:
                penalty = penalties.penalty(
                    loop.penalty, self.discriminator, real, fake, alpha, real_y, fake_labels=fake_y
                )
                total += penalties.weight(loop.penalty, loop.penalty_weight) * penalty
            total /= replicas * loop.accumulation  # the optimizer sums the replicas' gradients; we sum the parts'
            scaled = self.d_optimizer.scale_loss(total)  # float16's loss scale (unscaled by apply); else itself
        logs = {
            "d_loss": loss,
            "d_loss_real": loss_real,
            "d_loss_fake": loss_fake,
            "cr_loss": cr_loss,
            "penalty": penalty,
            "f_hat_mean": tf.reduce_mean(out.f_hat),
            "f_hat_max": tf.reduce_max(out.f_hat),
            "grad_norm_mean": tf.reduce_mean(out.grad_norm),
            "grad_norm_max": tf.reduce_max(out.grad_norm),
            **self.diagnostics(out, m, self.loss_fn),
        }
        if loop.ada:  # ADA's overfitting heuristic reads the sign of what the loss sees on reals
            # PGN's sign is sign(1 - f), with f near 0 at init: every sample, real or fake, starts on the real side,
            # so PGN (as a relativistic loss) reads each real against its fake, row by row.
            paired = self.loss_fn.relativistic or self.discriminator.mode == "pgn"
            logit = pred_real - pred_fake if paired else pred_real
            logs["ada_sign"] = tf.reduce_mean(tf.sign(logit))
        return tape.gradient(scaled, d_vars), logs

    def lipschitz(self, real, z, alpha, labels=None):
        """The Lipschitz monitor: ||grad_x D_out(x)|| on real images, on G(z) and on interpolates between them.

        D_out is what the loss sees (f_hat for PGN / GN, the raw or SN critic
        otherwise), in inference mode (an SN critic keeps its u, v). Fakes are
        made with the real images' labels, so each interpolate has one class.
        Sampling updates G's BatchNorm moving statistics: call it within
        `statistics_kept()`.

        Args:
          real: [N, H, W, 3] real images; z: [N, z_dim]; alpha: [N] in [0, 1];
          labels: [N] int labels of the real images (conditional models).

        Returns:
          {"real_mean", "real_max", "fake_mean", "fake_max", "interp_mean", "interp_max"}: scalars.
        """
        real = tf.cast(real, self.dtype)
        fake = self.generate(tf.cast(z, self.dtype), labels)
        out = {}
        for name, x in (("real", real), ("fake", fake), ("interp", penalties.interpolate(real, fake, alpha))):
            norm = penalties.input_gradient_norm(self.discriminator, x, labels, training=False)
            out[f"{name}_mean"], out[f"{name}_max"] = tf.reduce_mean(norm), tf.reduce_max(norm)
        return out

    def generator_step(self, batch_size, real=None, real_y=None):
        """The generator step on this replica's batch_size fresh latents (salts 4 n_dis, 4 n_dis + 1); its loss.

        With augmentation the fakes' transforms draw AUGMENT_SALT + 4 n_dis and, for a relativistic loss, their
        partner reals' AUGMENT_SALT + 4 n_dis + 1.

        With accumulation k, G and the critic run on k micro-batches of
        batch_size / k (G's BatchNorm then normalises each on its own, as the
        official train_ddp.py does) and their gradients are summed.

        A relativistic loss (`losses.GANLoss.relativistic`, e.g. rpgan) pairs
        fake i of the global batch_size_G with real floor(i * batch_size_D /
        batch_size_G) of the outer step's first critic slice (each real twice
        when batch_size_G = 2 batch_size_D, as the paper rows have it); the
        critic's output on them enters the loss as a constant (no gradient
        reaches G through it). `real` (labels real_y) is this replica's share
        of the outer step's real images; replica r's fakes and first-slice
        reals are rows r * g.. and r * b.. of the global ones, so every replica
        pairs what one device pairs. Other losses ignore `real`.
        """
        loop = self.loop
        z, y = self.latents(batch_size, 4 * loop.n_dis)
        partners = (None, None)
        if self.loss_fn.relativistic:
            if real is None:
                raise ValueError(f"the {self.loss_fn.name} loss pairs fakes with reals: pass the step's real images.")
            b = loop.batch_size_D // self._replicas()[1]  # this replica's rows of the first critic slice
            rows = tf.range(batch_size) * b // batch_size
            partners = (tf.gather(real, rows), None if real_y is None else tf.gather(real_y, rows))
            if loop.augment:
                partners = (self.augmented(partners[0], batch_size, 4 * loop.n_dis + 1), partners[1])
        uniforms = None
        if loop.augment:  # drawn for the whole batch, applied per micro-batch (inside the tape: G's gradient)
            shape = (augment.draws(loop.augment),)
            uniforms = self._random(tf.random.stateless_uniform, batch_size, shape, AUGMENT_SALT + 4 * loop.n_dis)
        g_vars = self.generator.trainable_variables
        m = batch_size // loop.accumulation
        step = functools.partial(self._generator_micro_step, g_vars)
        grads, logs = accumulate(step, (z, y, uniforms, *partners), loop.accumulation, m)
        self.g_optimizer.apply(grads, g_vars)
        return logs["g_loss"]

    def _generator_micro_step(self, g_vars, z, y, uniforms, real=None, real_y=None):
        """(gradients of one micro-batch's share of the generator loss, {"g_loss": its loss}); uniforms: the
        augmentation's draws (None without); real: the fakes' partners for a relativistic loss, else None."""
        loop, replicas = self.loop, self._replicas()[1]
        if real is not None:
            pred_real = self.discriminator.normalize(real, labels=real_y, training=True, frozen=True).f_hat
            pred_real = tf.stop_gradient(pred_real)
        with tf.GradientTape() as tape:
            # The critic is frozen here: its weights get no gradient, which lets PGN / GN skip a backward pass.
            fake = self.generate(z, y)
            if uniforms is not None:
                fake = self._augment(fake, uniforms)
            pred = self.discriminator.normalize(fake, labels=y, training=True, frozen=True).f_hat
            loss = self.loss_fn.generator(pred) if real is None else self.loss_fn.generator(pred, pred_real)
            scaled = self.g_optimizer.scale_loss(loss / (replicas * loop.accumulation))
        return tape.gradient(scaled, g_vars), {"g_loss": loss}

    def _update_ema(self):
        before_start = self.step < self.loop.ema_start
        for ema_var, var in zip(self.ema_generator.weights, self.generator.weights):
            # The decay in the variable's own dtype (float32(0.9999) is not 0.9999 in float64).
            decay = tf.where(before_start, tf.zeros((), ema_var.dtype), tf.constant(self.loop.ema_decay, ema_var.dtype))
            ema_var.assign(decay * ema_var + (1.0 - decay) * var)

    def _last_value(self, name, value):
        """Tracker `name` reports value itself (not a mean since the epoch began)."""
        self.trackers[name].reset_state()
        self.trackers[name].update_state(value)

    def train_step(self, data):
        images, labels = (data[0], data[1]) if isinstance(data, (tuple, list)) else (data, None)
        images = tf.cast(images, self.dtype)  # float32 data in a float64 run (exact: uint8 / 127.5 - 1)
        if not self.conditional:
            labels = None
        loop, replicas = self.loop, self._replicas()[1]
        b = loop.batch_size_D // replicas  # the batch sizes split evenly (LoopConfig.check_replicas)
        self.step.assign_add(1)
        sums = {}
        for k in range(loop.n_dis):
            real_y = None if labels is None else labels[k * b : (k + 1) * b]
            logs = self.critic_step(images[k * b : (k + 1) * b], real_y, k)
            sums = {key: sums.get(key, 0.0) + value for key, value in logs.items()}
        ada_sign = sums.pop("ada_sign", None)
        for key, value in sums.items():  # averaged over the n_dis critic steps, as logged officially
            self.trackers[key].update_state(value / loop.n_dis)
        self.trackers["g_loss"].update_state(self.generator_step(loop.batch_size_G // replicas, images, labels))
        self._update_ema()
        if loop.augment:
            self._last_value("augment_p", self.augment_p)  # the p this step used
        if self.ada is not None:  # after the step, which used the p before the adjustment
            sign = ada_sign / loop.n_dis
            if replicas > 1:  # every replica adjusts p alike, from the whole batch's signs
                ctx = tf.distribute.get_replica_context()
                sign = ctx.all_reduce(tf.distribute.ReduceOp.SUM, sign) / replicas
            self.ada.update(sign, loop.n_dis * loop.batch_size_D)
            self._last_value("ada_rt", self.ada.r_t)
        results = {name: tracker.result() for name, tracker in self.trackers.items()}
        if replicas > 1:  # Keras averages per-replica results along axis 0, which a scalar lacks (multi-worker)
            results = {name: tf.reshape(value, [1]) for name, value in results.items()}
        return results


class AdaState(tf.Module):
    """ADA's state (Karras et al. 2020): p, and the signs of the critic on reals since p last moved.

    Every `ada_interval` outer steps, r_t = the mean over them of
    E[sign(D(real))] (E[sign(D(real_i) - D(fake_i))] under PGN or a
    relativistic loss; each step's global batch weighted alike) and p moves by
    `augment.ada_step`. Checkpointed with the run (`checkpoints.Checkpoints`),
    so a resumed run adapts as an uninterrupted one.
    """

    def __init__(self, loop):
        super().__init__(name="ada")
        self.loop = loop
        # Every replica computes the same values (from all-reduced signs); the first one's are kept.
        kw = {"trainable": False, "aggregation": tf.VariableAggregation.ONLY_FIRST_REPLICA}
        self.p = tf.Variable(0.0, name="p", **kw)
        self.sign_sum = tf.Variable(0.0, name="sign_sum", **kw)
        self.steps = tf.Variable(0, dtype=tf.int64, name="steps", **kw)
        self.r_t = tf.Variable(0.0, name="r_t", **kw)  # the last interval's, reported

    def update(self, sign, reals_per_step):
        """Adds one outer step's mean sign (the global batch's); adjusts p when an interval is complete."""
        loop = self.loop
        total, steps = self.sign_sum + tf.cast(sign, tf.float32), self.steps + 1
        due = steps >= loop.ada_interval
        r_t = total / tf.cast(steps, tf.float32)
        moved = augment.ada_step(self.p, r_t, loop.ada_target, float(reals_per_step * loop.ada_interval), loop.ada_kimg)
        self.p.assign(tf.where(due, moved, self.p))
        self.r_t.assign(tf.where(due, r_t, self.r_t))
        self.sign_sum.assign(tf.where(due, 0.0, total))
        self.steps.assign(tf.where(due, tf.zeros_like(steps), steps))
