"""Every gin configurable of pgn_tf, registered in one place; imported on purpose by what parses gin.

Components are gin references: @dcgan.generator, @data.cifar10, @losses.hinge,
@d/optimizers.Adam (torch's Adam arithmetic, as the official code); Keras' own
stays available as @keras.optimizers.Adam. The gin root, train_and_evaluate,
is `settings`: its arguments are the `config.RunConfig` fields, with the same
defaults (a test checks), except that Adam and Inception are gin's copies
here, so that their bindings apply.
"""

import gin
import keras

from pgn_tf import data, losses, optimizers
from pgn_tf.config import GIN_ROOT, RunConfig
from pgn_tf.eval import digits_classifier, evaluator, inception, mnist_classifier
from pgn_tf.models import biggan, dcgan, resnet

# external_configurable returns a configurable copy and leaves the original alone: the gin root's defaults
# must be these copies, or bindings such as d/optimizers.Adam.beta_1 would never apply.
Adam = gin.external_configurable(optimizers.Adam, module="optimizers")
gin.external_configurable(keras.optimizers.Adam, module="keras.optimizers")
for _module, _fns in (("dcgan", dcgan), ("resnet", resnet), ("biggan", biggan)):
    for _fn in (_fns.generator, _fns.critic):
        gin.external_configurable(_fn, module=_module)
for _fn in data.SOURCES:
    # Set by the run, never by a config.
    gin.external_configurable(_fn, module="data", denylist=["batch_size", "seed", "start_step"])
load_inception = gin.external_configurable(inception.load_inception, module="inception", denylist=["batch_size"])
gin.external_configurable(digits_classifier.load_digits_classifier, module="digits_classifier", denylist=["batch_size"])
gin.external_configurable(mnist_classifier.load_mnist_classifier, module="mnist_classifier", denylist=["batch_size"])
for _loss in (losses.hinge, losses.bce, losses.wasserstein, losses.rpgan):
    gin.external_configurable(lambda _loss=_loss: _loss, name=_loss.name, module="losses")


@gin.configurable(GIN_ROOT)
def settings(
    dataset_fn=gin.REQUIRED,
    generator_fn=gin.REQUIRED,
    critic_fn=gin.REQUIRED,
    loss_fn=gin.REQUIRED,
    d_optimizer=Adam,
    g_optimizer=Adam,
    normalization="pgn",
    penalty=None,
    penalty_weight=10.0,
    hold_denominator=False,
    pgn_constant=1.0,
    pgn_scale=1.0,
    pgn_center=False,
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
    accumulation=1,
    augment="",
    augment_p=1.0,
    translation_ratio=0.125,
    cutout_ratio=0.5,
    ada_target=0.6,
    ada_kimg=500.0,
    ada_interval=4,
    sample_every=500,
    eval_every=5000,
    save_every=5000,
    num_images=50_000,
    feature_fn=load_inception,
    fid_stats=None,
    best_by="FID",
    metrics=evaluator.METRICS,
    log_every=100,
    seed=0,
    jit_compile=False,
    precision="float32",
):
    """The run's settings as gin binds them (`train_and_evaluate.*`), checked: a `config.RunConfig`.

    Each argument is the RunConfig (or LoopConfig) field of its name, documented there.

    Raises:
      errors.ConfigError: a setting of the wrong type or out of range (one line naming the binding).
    """
    return RunConfig.make(**locals())
