"""The gin root of training: train_and_evaluate.* bindings -> a RunConfig -> build -> run.

    config = train_lib.settings()               # every binding checked, once
    exp = experiment.build(config, workdir)     # models, optimizers, PGNGAN, checkpoint
    experiment.run(exp)                         # resume, train, sample, evaluate, save

`train_and_evaluate(workdir)` does all three.
"""

import gin
import tensorflow as tf

from pgn_tf import experiment
from pgn_tf.config import GIN_ROOT, RunConfig
from pgn_tf.configurables import Adam, load_inception


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
    sample_every=500,
    eval_every=5000,
    save_every=5000,
    num_images=50_000,
    feature_fn=load_inception,
    fid_stats=None,
    best_by="FID",
    metrics=("IS", "FID", "KID", "precision", "recall", "density", "coverage"),
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
    return RunConfig.from_settings(locals())


def train_and_evaluate(workdir, strategy=None, **overrides):
    """Trains a PGN-GAN in `workdir` from the gin bindings (and `overrides` of them), resuming; returns the Experiment.

    workdir gets checkpoints/ (and checkpoints/best/), samples/, TensorBoard
    events, eval.jsonl and operative_config.gin; it is locked for the run.
    """
    config = settings(**overrides)
    strategy = strategy or tf.distribute.get_strategy()
    with experiment.claimed(config, workdir, strategy):
        return experiment.run(experiment.build(config, workdir, strategy))
