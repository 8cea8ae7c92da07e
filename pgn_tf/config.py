"""A run's settings as frozen configs, each validated once where it is made: the loop's and the run's.

The flow is gin -> config -> build -> run: gin binds `train_and_evaluate.*`
(`configurables.settings`, the gin root), which makes a `RunConfig`; without
gin, `RunConfig.make(**settings)` makes one from keywords;
`train_lib.build(config, workdir, strategy)` turns it into models,
optimizers, checkpoints and the `PGNGAN`; `train_lib.run` trains. Each
setting is written here (its field, its default, its check and its meaning),
in the gin root's signature, and nowhere else.
"""

import dataclasses
import math
from collections.abc import Callable
from dataclasses import field

import numpy as np

from pgn_tf import augment, penalties
from pgn_tf.augment import CUTOUT_RATIO, TRANSLATION_RATIO
from pgn_tf.errors import ConfigError
from pgn_tf.eval import evaluator
from pgn_tf.normalization import SQRT_D, UNIT, check_constant, check_scale
from pgn_tf.optimizers import Adam
from pgn_tf.precision import PRECISIONS

GIN_ROOT = "train_and_evaluate"  # a setting is named in errors as its gin binding
ADA = "ada"  # augment_p's adaptive value
# The critic's constraint: PGN / GN (PGNDiscriminator's modes), a spectrally normalized critic, or nothing.
NORMALIZATIONS = ("pgn", "gn", "sn", "none")


def _kind(value):
    return f"{value!r} ({type(value).__name__})"


def _integer(minimum, optional=False):
    def check(name, value):
        if optional and value is None:
            return
        if isinstance(value, bool) or not isinstance(value, (int, np.integer)) or value < minimum:
            raise ConfigError(f"{GIN_ROOT}.{name} must be an integer >= {minimum}, got {_kind(value)}.")

    return check


def _number(minimum, maximum=math.inf, strict=False):
    def check(name, value):
        ok = not isinstance(value, bool) and isinstance(value, (int, float, np.integer, np.floating))
        if ok and math.isfinite(value):
            ok = (value > minimum if strict else value >= minimum) and value <= maximum
        if not ok:
            bound = (f"> {minimum}" if strict else f">= {minimum}") + (
                f" and <= {maximum}" if maximum < math.inf else ""
            )
            raise ConfigError(f"{GIN_ROOT}.{name} must be a number {bound}, got {_kind(value)}.")

    return check


def _choice(choices):
    def check(name, value):
        if value not in choices:
            raise ConfigError(f"{GIN_ROOT}.{name} must be one of {choices}, got {value!r}.")

    return check


def _subset(choices):
    def check(name, value):
        if not isinstance(value, (tuple, list)) or not value or any(v not in choices for v in value):
            raise ConfigError(f"{GIN_ROOT}.{name} must be a non-empty tuple of {choices}, got {value!r}.")

    return check


def _component(name, value):
    if not callable(value):
        raise ConfigError(f"{GIN_ROOT}.{name} must be a configurable (e.g. @data.digits), got {_kind(value)}.")


def _dataset(name, value):
    """A dataset function, or the one-string form of your own data (`data.named`): "folder:PATH", "tfds:NAME"."""
    from pgn_tf.data import NAMED_FORMS, is_named

    if not (is_named(value) or callable(value)):
        raise ConfigError(
            f"{GIN_ROOT}.{name} must be a configurable (e.g. @data.cifar10), {NAMED_FORMS}, got {_kind(value)}."
        )


def _optional_path(name, value):
    if value is not None and not isinstance(value, str):
        raise ConfigError(f"{GIN_ROOT}.{name} must be a path or None, got {_kind(value)}.")


def _pgn_constant(name, value):
    try:
        check_constant(value)
    except ValueError:
        raise ConfigError(f'{GIN_ROOT}.{name} must be a number >= 0 or "{UNIT}", got {_kind(value)}.') from None


def _pgn_scale(name, value):
    try:
        check_scale(value)
    except ValueError:
        raise ConfigError(f'{GIN_ROOT}.{name} must be a number > 0 or "{SQRT_D}", got {_kind(value)}.') from None


def _policy(name, value):
    try:
        augment.parse_policy(value if isinstance(value, str) else None)
    except (ValueError, AttributeError):
        raise ConfigError(
            f'{GIN_ROOT}.{name} must be a comma-separated subset of {tuple(augment.POLICIES)} (or "" for none), '
            f"got {_kind(value)}."
        ) from None


def _probability(name, value):
    if value != ADA:
        try:
            _number(0, 1)(name, value)
        except ConfigError:
            raise ConfigError(f'{GIN_ROOT}.{name} must be a number in [0, 1] or "{ADA}", got {_kind(value)}.') from None


def _ratio(name, value):
    if not augment.check_ratio(value):
        raise ConfigError(f"{GIN_ROOT}.{name} must be a number in (0, 1), got {_kind(value)}.")


def _flag(name, value):
    if not isinstance(value, bool):
        raise ConfigError(f"{GIN_ROOT}.{name} must be True or False, got {_kind(value)}.")


def inception_features():
    """The default feature network, Inception (`eval.inception.load_inception`), loaded when an evaluation is due."""
    from pgn_tf.eval.inception import load_inception

    return load_inception()


class _Checked:
    def __post_init__(self):
        for f in dataclasses.fields(self):
            if "check" in f.metadata:
                f.metadata["check"](f.name, getattr(self, f.name))


@dataclasses.dataclass(frozen=True)
class LoopConfig(_Checked):
    """What the training loop (`PGNGAN`) needs: one outer step of the official loop.

    Attributes:
      normalization: "pgn", "gn", "sn" or "none": what constrains the critic.
        "sn" builds it with critic_fn(spectral_norm=True) and uses its raw
        output; "none" is the raw critic.
      penalty: None, "gp1" (WGAN-GP), "gp0" (zero-centred GP on
        interpolates), "r1" (on real images), "r2" (on fakes) or "r1r2"
        (both, R3GAN's); see `pgn_tf.penalties`. Added to the critic loss on
        D as the loss sees it, so it combines with any normalization.
      penalty_weight: the penalty's weight (R1 / R2: gamma, applied as gamma / 2).
      hold_denominator: an ablation for PGN and GN, off in the method: the
        denominator's norm enters f_hat as a constant, so the losses get no
        gradient through it (`normalization.normalize(hold=True)`).
      pgn_constant: PGN's constant c in ||c * 1 - grad_x f||: 1.0 is the paper's
        (the default, the official formula); a number >= 0 or "unit"
        (1 / sqrt(d)) is a variant beyond the paper (docs/models.md).
      pgn_scale, pgn_center: interventions on PGN, not the method (1.0 and
        False are): f_hat multiplied by pgn_scale (a number > 0, or "sqrt_d")
        before the loss; the raw output less its batch mean (held constant)
        in f_hat (one device, no accumulation, no CR, no penalty, no
        relativistic loss: each would centre another batch apart). See
        `normalization.normalize`.
      num_classes: class count of a conditional model; None otherwise.
      n_dis: critic steps per outer step, each on the next batch_size_D real
        images of the outer step's batch and a fresh batch of fakes.
      batch_size_D, batch_size_G: global batch sizes of a critic step (real
        images; as many fakes) and of the generator step.
      ema_decay, ema_start: the EMA of G (weights and BatchNorm statistics)
        and the outer step from which it applies (a plain copy before).
      cr: consistency-regularisation weight (0 = off).
      z_dim: latent size.
      accumulation: gradient accumulation: each critic and generator update
        sums the gradients of this many micro-batches of the global batch
        (batch sizes stay global, so k never changes the experiment, G's
        BatchNorm statistics and an SN critic's power iterations, one per
        micro-batch, aside). Official (batch B, --accumulation k) = ours with
        batch B * k and accumulation k.
      augment: differentiable augmentation (`augment.diff_augment`): a
        DiffAugment policy string, "color", "translation", "cutout" or any
        comma-separated subset in the order given; "" (the default) for none.
        The critic sees augmented reals and fakes in every critic step
        (penalties, CR and PGN's gradient are taken at the augmented images,
        the critic's input) and augmented fakes in the generator step
        (augmented partner reals with a relativistic loss). Sampling,
        evaluation and export never augment.
      augment_p: the probability that each transform applies to each image:
        a number in [0, 1] (1: DiffAugment), or "ada": adapted from 0 by
        ADA's rule (`augment.ada_step`).
      translation_ratio, cutout_ratio: DiffAugment's: shifts of up to
        int(size * ratio + 0.5) pixels; a cutout box of int(size * ratio + 0.5).
      ada_target: ADA's target for r_t = E[sign(D(real))] (0.6 in ADA); PGN and
        relativistic losses read E[sign(D(real_i) - D(fake_i))] (docs/augmentation.md).
      ada_kimg: ADA's speed: p can cross [0, 1] in this many thousand real images (500 in ADA).
      ada_interval: outer steps between adjustments of p (4 in ADA).
      seed: seeds weights, data order, latents, augmentations and penalties.
    """

    normalization: str = field(default="pgn", metadata={"check": _choice(NORMALIZATIONS)})
    penalty: str | None = field(default=None, metadata={"check": _choice((None, *penalties.PENALTIES))})
    penalty_weight: float = field(default=10.0, metadata={"check": _number(0)})
    hold_denominator: bool = field(default=False, metadata={"check": _flag})
    pgn_constant: float | str = field(default=1.0, metadata={"check": _pgn_constant})
    pgn_scale: float | str = field(default=1.0, metadata={"check": _pgn_scale})
    pgn_center: bool = field(default=False, metadata={"check": _flag})
    num_classes: int | None = field(default=None, metadata={"check": _integer(1, optional=True)})
    n_dis: int = field(default=1, metadata={"check": _integer(1)})
    batch_size_D: int = field(default=64, metadata={"check": _integer(1)})
    batch_size_G: int = field(default=128, metadata={"check": _integer(1)})
    ema_decay: float = field(default=0.9999, metadata={"check": _number(0, 1)})
    ema_start: int = field(default=0, metadata={"check": _integer(0)})
    cr: float = field(default=0.0, metadata={"check": _number(0)})
    z_dim: int = field(default=128, metadata={"check": _integer(1)})
    accumulation: int = field(default=1, metadata={"check": _integer(1)})
    augment: str = field(default="", metadata={"check": _policy})
    augment_p: float | str = field(default=1.0, metadata={"check": _probability})
    translation_ratio: float = field(default=TRANSLATION_RATIO, metadata={"check": _ratio})
    cutout_ratio: float = field(default=CUTOUT_RATIO, metadata={"check": _ratio})
    ada_target: float = field(default=0.6, metadata={"check": _number(0, 1, strict=True)})
    ada_kimg: float = field(default=500.0, metadata={"check": _number(0, strict=True)})
    ada_interval: int = field(default=4, metadata={"check": _integer(1)})
    seed: int = field(default=0, metadata={"check": _integer(0)})

    @property
    def ada(self):
        """Whether the augmentation probability adapts (augment_p "ada")."""
        return self.augment_p == ADA

    @property
    def spectral_norm(self):
        """Whether the critic is built with spectral-norm layers ("sn")."""
        return self.normalization == "sn"

    @property
    def critic_mode(self):
        """PGNDiscriminator's mode: "pgn" or "gn", else "none" (the SN critic's raw output too)."""
        return "none" if self.spectral_norm else self.normalization

    @property
    def conditional(self):
        return self.num_classes is not None

    def __post_init__(self):
        super().__post_init__()
        for name, method in (("pgn_constant", 1.0), ("pgn_scale", 1.0), ("pgn_center", False)):
            if getattr(self, name) != method and self.normalization != "pgn":
                raise ConfigError(
                    f'{GIN_ROOT}.{name} = {getattr(self, name)!r} needs normalization "pgn", '
                    f"not {self.normalization!r}."
                )
        if self.pgn_center and self.accumulation > 1:
            raise ConfigError(
                f"{GIN_ROOT}.pgn_center = True takes the mean over a whole batch: it needs accumulation = 1, "
                f"not {self.accumulation}."
            )
        if self.pgn_center and self.cr > 0:
            raise ConfigError(
                f"{GIN_ROOT}.pgn_center = True centres each critic call on its own batch: CR compares augmented "
                f"reals (centred on themselves) with reals centred with the fakes; it needs cr = 0, not {self.cr}."
            )
        if self.pgn_center and self.penalty:
            raise ConfigError(
                f"{GIN_ROOT}.pgn_center = True centres each critic call on its own batch: the {self.penalty} "
                f"penalty's critic calls would be centred apart from the loss's; it needs penalty = None."
            )
        if (self.ada or self.augment_p != 1.0) and not self.augment:
            raise ConfigError(
                f"{GIN_ROOT}.augment_p = {self.augment_p!r} needs a policy: set {GIN_ROOT}.augment "
                f'(e.g. "color,translation,cutout").'
            )
        if self.hold_denominator and self.critic_mode == "none":
            raise ConfigError(
                f'{GIN_ROOT}.hold_denominator = True needs a denominator: normalization "pgn" or "gn", '
                f"not {self.normalization!r}."
            )
        for name in ("batch_size_D", "batch_size_G"):
            value = getattr(self, name)
            if value % self.accumulation:
                raise ConfigError(
                    f"{GIN_ROOT}.{name} = {value} does not split into accumulation = {self.accumulation} "
                    f"micro-batches; use a multiple of {self.accumulation}."
                )

    def check_replicas(self, replicas):
        """Raises ConfigError unless both batch sizes split evenly over `replicas` (and then into micro-batches),
        and pgn_center (a whole batch's mean) runs on one replica."""
        if self.pgn_center and replicas > 1:
            raise ConfigError(
                f"{GIN_ROOT}.pgn_center = True takes the mean over a whole batch: it runs on one device, "
                f"not {replicas} replicas."
            )
        for name in ("batch_size_D", "batch_size_G"):
            value = getattr(self, name)
            if value % (replicas * self.accumulation):
                unit = replicas * self.accumulation
                what = f"{replicas} replicas" + (
                    f" x {self.accumulation} micro-batches" if self.accumulation > 1 else ""
                )
                raise ConfigError(f"{GIN_ROOT}.{name} = {value} does not split over {what}; use a multiple of {unit}.")


@dataclasses.dataclass(frozen=True)
class RunConfig(_Checked):
    """A whole run: its components, schedule, logging, evaluation and precision, and the loop's settings.

    Attributes:
      dataset_fn: (batch_size, seed, start_step) -> tf.data of (images, labels), or
        "folder:PATH" / "tfds:NAME" (`data.named`, at the critic's side).
      generator_fn, critic_fn: model builders, called with z_dim (G) and,
        for conditional models, num_classes.
      loss_fn: () -> losses.GANLoss (@losses.hinge, @losses.bce, @losses.wasserstein).
      d_optimizer, g_optimizer: optimizer classes (gin-scoped d/ and g/),
        called with the linearly decaying learning rate.
      total_steps: outer steps to train to.
      lr_D, lr_G: learning rates, decayed linearly to 0 at total_steps from
        lr_decay_start (outer steps).
      sample_every, save_every, log_every, eval_every: in outer steps. Every
        log_every steps the Lipschitz monitor logs ||grad_x D_out|| on
        fixed real images, fakes and interpolates (TensorBoard lipschitz/).
      num_images: samples per evaluation of G and of EMA-G.
      feature_fn: () -> FeatureNet (@inception.load_inception,
        @digits_classifier.load_digits_classifier); loaded before training
        when an evaluation is due, so a missing model fails at once.
      fid_stats: reference statistics (.npz: mu, sigma[, activations]);
        None: made from the training data, cached in DIR/fid_stats.<net>.npz.
      best_by: the score whose best value is kept in checkpoints/best/: any
        of `evaluator.BEST_BY`, lowest FID / KID, highest IS / precision /
        recall / density / coverage ("FID" of G, as the official code;
        an "_ema" suffix for EMA-G's).
      metrics: what an evaluation computes (default all: IS, FID, KID,
        precision, recall, density, coverage); best_by must be among them.
      jit_compile: XLA-compile the train step (single-device runs).
      precision: "float32", or a Keras mixed policy: "mixed_bfloat16" or
        "mixed_float16" (with dynamic loss scaling). The models' layers
        compute in (b)float16; their variables, the optimizer state, the EMA,
        PGN's norm and division, the penalties and the losses stay float32.
        "float64": everything in float64 (slow; for runs that must agree to
        rounding on any CPU, such as the equivalence tests).
      loop: the loop's settings (`LoopConfig`).
    """

    dataset_fn: Callable = field(metadata={"check": _dataset})
    generator_fn: Callable = field(metadata={"check": _component})
    critic_fn: Callable = field(metadata={"check": _component})
    loss_fn: Callable = field(metadata={"check": _component})
    d_optimizer: Callable = field(default=Adam, metadata={"check": _component})
    g_optimizer: Callable = field(default=Adam, metadata={"check": _component})
    total_steps: int = field(default=200_000, metadata={"check": _integer(1)})
    lr_D: float = field(default=2e-4, metadata={"check": _number(0, strict=True)})
    lr_G: float = field(default=2e-4, metadata={"check": _number(0, strict=True)})
    lr_decay_start: int = field(default=0, metadata={"check": _integer(0)})
    sample_every: int = field(default=500, metadata={"check": _integer(1)})
    eval_every: int = field(default=5000, metadata={"check": _integer(1)})
    save_every: int = field(default=5000, metadata={"check": _integer(1)})
    num_images: int = field(default=50_000, metadata={"check": _integer(1)})
    feature_fn: Callable = field(default=inception_features, metadata={"check": _component})
    fid_stats: str | None = field(default=None, metadata={"check": _optional_path})
    best_by: str = field(default="FID", metadata={"check": _choice(evaluator.BEST_BY)})
    metrics: tuple = field(default=evaluator.METRICS, metadata={"check": _subset(evaluator.METRICS)})
    log_every: int = field(default=100, metadata={"check": _integer(1)})
    jit_compile: bool = field(default=False, metadata={"check": _flag})
    precision: str = field(default="float32", metadata={"check": _choice(PRECISIONS)})
    loop: LoopConfig = LoopConfig()

    @classmethod
    def make(cls, **settings):
        """A RunConfig from keyword settings (the gin root's names), the rest at their defaults; no gin involved.

        What tools, the benchmark and tests build runs from:
        `RunConfig.make(dataset_fn=data.digits, generator_fn=..., critic_fn=..., loss_fn=..., total_steps=10)`.
        The defaults are the gin root's, with torch-arithmetic Adam (`optimizers.Adam`) and Inception features.

        Raises:
          errors.ConfigError: a setting of the wrong type or out of range.
          TypeError: an unknown setting, or a component (dataset_fn, generator_fn, critic_fn, loss_fn) missing.
        """
        loop_names = {f.name for f in dataclasses.fields(LoopConfig)}
        unknown = set(settings) - loop_names - {f.name for f in dataclasses.fields(cls)}
        if unknown:
            raise TypeError(f"unknown settings {sorted(unknown)}")
        loop = LoopConfig(**{k: v for k, v in settings.items() if k in loop_names})
        return cls(**{k: v for k, v in settings.items() if k not in loop_names}, loop=loop)

    def __post_init__(self):
        super().__post_init__()
        if self.loop.ada and not self.loss_fn().signed:
            raise ConfigError(
                f'{GIN_ROOT}.augment_p = "{ADA}" reads the sign of the critic on reals, which the '
                f"{self.loss_fn().name} loss does not give: use a fixed augment_p, or a loss such as hinge or bce."
            )
        if self.loop.pgn_center and self.loss_fn().relativistic:
            raise ConfigError(
                f"{GIN_ROOT}.pgn_center = True centres each critic call on its own batch: the "
                f"{self.loss_fn().name} loss's generator step would compare fakes and their partner reals each "
                "centred apart, losing the gap between them; use a loss such as hinge or bce."
            )
        if self.best_by.removesuffix("_ema") not in self.metrics:
            raise ConfigError(f"{GIN_ROOT}.best_by = {self.best_by!r} is not among {GIN_ROOT}.metrics {self.metrics}.")

    def evaluations_due(self, start_step):
        """Whether an evaluation falls after start_step (so the feature network must be ready)."""
        return (self.total_steps // self.eval_every) > (start_step // self.eval_every)
