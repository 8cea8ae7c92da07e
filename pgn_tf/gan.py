"""PGNGAN: the official training loop as a Keras model (n_dis critic steps, one G step, EMA)."""

import keras
import tensorflow as tf

from pgn_tf.normalization import PGNDiscriminator

TRACKERS = (
    "d_loss",
    "d_loss_real",
    "d_loss_fake",
    "cr_loss",
    "g_loss",
    "f_hat_mean",
    "f_hat_max",
    "grad_norm_mean",
    "grad_norm_max",
)


@keras.saving.register_keras_serializable(package="pgn_tf")
class LinearDecay(keras.optimizers.schedules.LearningRateSchedule):
    """lr * (1 - max(s - start, 0) / max(total - start, 1)), s = outer steps done.

    The official LambdaLR, stepped once per outer iteration. An optimizer that
    applies `updates_per_step` updates per outer step (the critic's n_dis)
    sees s = iterations // updates_per_step.
    """

    def __init__(self, learning_rate, decay_start, total_steps, updates_per_step=1):
        self.learning_rate = learning_rate
        self.decay_start = decay_start
        self.total_steps = total_steps
        self.updates_per_step = updates_per_step

    def __call__(self, iterations):
        s = tf.cast(iterations // self.updates_per_step, tf.float32)
        period = float(max(self.total_steps - self.decay_start, 1))
        return self.learning_rate * (1.0 - tf.maximum(s - self.decay_start, 0.0) / period)

    def get_config(self):
        return {
            "learning_rate": self.learning_rate,
            "decay_start": self.decay_start,
            "total_steps": self.total_steps,
            "updates_per_step": self.updates_per_step,
        }


def augment(images, seed, max_shift=0.2, fill=-1.0):
    """The official consistency-regularisation transform, on device.

    Random horizontal flip, then a random integer translation of up to
    max_shift of the size in each direction; the border is filled with black
    (0 in [0, 1], so -1 here), as torchvision's RandomAffine does.

    Args:
      images: [N, H, W, C] in [-1, 1].
      seed: a keras.random.SeedGenerator.
    """
    n, h, w = tf.shape(images)[0], images.shape[1], images.shape[2]
    flip = keras.random.uniform((n, 1, 1, 1), seed=seed) < 0.5
    images = tf.where(flip, tf.reverse(images, axis=[2]), images)
    limits = tf.constant([max_shift * w, max_shift * h])
    shift = tf.cast(tf.round(keras.random.uniform((n, 2), seed=seed) * 2.0 * limits - limits), tf.int32)
    # Output pixel (x, y) reads input (x - dx, y - dy); gathers (not ImageProjectiveTransform) so XLA compiles it.
    cols = tf.range(w)[None, :] - shift[:, :1]  # [n, w]
    rows = tf.range(h)[None, :] - shift[:, 1:]  # [n, h]
    out = tf.gather(images, tf.clip_by_value(rows, 0, h - 1), axis=1, batch_dims=1)
    out = tf.gather(out, tf.clip_by_value(cols, 0, w - 1), axis=2, batch_dims=1)
    inside = ((rows >= 0) & (rows < h))[:, :, None, None] & ((cols >= 0) & (cols < w))[:, None, :, None]
    return tf.where(inside, out, tf.cast(fill, images.dtype))


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
      critic: images (or [images, labels]) -> [N, 1]; wrapped in PGNDiscriminator.
      normalization: "pgn", "gn" or "none".
      z_dim, num_classes: latent size; class count for conditional models
        (None for unconditional).
      n_dis, batch_size_D, batch_size_G: the official loop's sizes.
      ema_decay, ema_start: EMA decay, and the step from which it applies.
      cr: consistency-regularisation weight (0 = off).
      seed: seeds the z / label / augmentation stream.
    """

    def __init__(
        self,
        generator,
        critic,
        normalization="pgn",
        z_dim=128,
        num_classes=None,
        n_dis=1,
        batch_size_D=64,
        batch_size_G=128,
        ema_decay=0.9999,
        ema_start=0,
        cr=0.0,
        seed=0,
        **kwargs,
    ):
        super().__init__(**kwargs)
        for name, value in (("n_dis", n_dis), ("batch_size_D", batch_size_D), ("batch_size_G", batch_size_G)):
            if int(value) <= 0:
                raise ValueError(f"{name} must be positive, got {value}.")
        self.generator = generator
        self.discriminator = PGNDiscriminator(critic, mode=normalization)
        self.ema_generator = keras.models.clone_model(generator)
        self.ema_generator.set_weights(generator.get_weights())
        self.ema_generator.trainable = False
        self.z_dim = z_dim
        self.num_classes = num_classes
        self.n_dis = int(n_dis)
        self.batch_size_D = int(batch_size_D)
        self.batch_size_G = int(batch_size_G)
        self.ema_decay = float(ema_decay)
        self.ema_start = int(ema_start)
        self.cr = float(cr)
        self.seed_generator = keras.random.SeedGenerator(seed)
        self.step = keras.Variable(0, dtype="int64", trainable=False, name="step")
        self.trackers = {name: keras.metrics.Mean(name=name) for name in TRACKERS}

    @property
    def conditional(self):
        return self.num_classes is not None

    @property
    def metrics(self):
        return list(self.trackers.values())

    def compile(self, d_optimizer, g_optimizer, loss_fn, **kwargs):
        """loss_fn: a `losses.GANLoss`; the optimizers update D and G."""
        super().compile(**kwargs)
        self.d_optimizer = d_optimizer
        self.g_optimizer = g_optimizer
        self.loss_fn = loss_fn

    def _latents(self, n):
        z = keras.random.normal((n, self.z_dim), seed=self.seed_generator)
        if not self.conditional:
            return z, None
        y = keras.random.randint((n,), 0, self.num_classes, seed=self.seed_generator, dtype="int32")
        return z, y

    def generate(self, z, labels=None, ema=False, training=True):
        """Images [N, H, W, 3] in [-1, 1]; training=True uses batch statistics, as the official sampling does."""
        g = self.ema_generator if ema else self.generator
        return g(z if labels is None else [z, labels], training=training)

    def call(self, inputs, training=False):
        z, labels = inputs if self.conditional else (inputs, None)
        return self.generate(z, labels, ema=True, training=training)

    def _critic_step(self, real, real_y):
        b = self.batch_size_D
        z, fake_y = self._latents(b)
        fake = tf.stop_gradient(self.generate(z, fake_y))
        both = tf.concat([real, fake], axis=0)
        both_y = None if real_y is None else tf.concat([real_y, fake_y], axis=0)
        d_vars = self.discriminator.trainable_variables
        with tf.GradientTape() as tape:
            out = self.discriminator.normalize(both, labels=both_y, training=True)
            pred_real, pred_fake = out.f_hat[:b], out.f_hat[b:]
            loss, loss_real, loss_fake = self.loss_fn.critic(pred_real, pred_fake)
            cr_loss = tf.zeros((), loss.dtype)
            if self.cr > 0:
                aug = augment(real, self.seed_generator)
                pred_aug = self.discriminator(aug, labels=real_y, training=True)
                cr_loss = tf.reduce_mean(tf.square(pred_aug - pred_real))
            total = loss + self.cr * cr_loss
        self.d_optimizer.apply(tape.gradient(total, d_vars), d_vars)
        return {
            "d_loss": loss,
            "d_loss_real": loss_real,
            "d_loss_fake": loss_fake,
            "cr_loss": cr_loss,
            "f_hat_mean": tf.reduce_mean(out.f_hat),
            "f_hat_max": tf.reduce_max(out.f_hat),
            "grad_norm_mean": tf.reduce_mean(out.grad_norm),
            "grad_norm_max": tf.reduce_max(out.grad_norm),
        }

    def _generator_step(self):
        z, y = self._latents(self.batch_size_G)
        g_vars = self.generator.trainable_variables
        with tf.GradientTape() as tape:
            pred = self.discriminator(self.generate(z, y), labels=y, training=True)
            loss = self.loss_fn.generator(pred)
        self.g_optimizer.apply(tape.gradient(loss, g_vars), g_vars)
        return loss

    def _update_ema(self):
        before_start = self.step < self.ema_start
        for ema_var, var in zip(self.ema_generator.weights, self.generator.weights):
            # The decay in the variable's own dtype (float32(0.9999) is not 0.9999 in float64).
            decay = tf.where(before_start, tf.zeros((), ema_var.dtype), tf.constant(self.ema_decay, ema_var.dtype))
            ema_var.assign(decay * ema_var + (1.0 - decay) * var)

    def train_step(self, data):
        images, labels = (data[0], data[1]) if isinstance(data, (tuple, list)) else (data, None)
        if not self.conditional:
            labels = None
        self.step.assign_add(1)
        sums = {}
        b = self.batch_size_D
        for k in range(self.n_dis):
            real_y = None if labels is None else labels[k * b : (k + 1) * b]
            logs = self._critic_step(images[k * b : (k + 1) * b], real_y)
            sums = {key: sums.get(key, 0.0) + value for key, value in logs.items()}
        for key, value in sums.items():  # averaged over the n_dis critic steps, as logged officially
            self.trackers[key].update_state(value / self.n_dis)
        self.trackers["g_loss"].update_state(self._generator_step())
        self._update_ema()
        return {name: tracker.result() for name, tracker in self.trackers.items()}
