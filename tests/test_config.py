"""The run's settings: one frozen config from gin, and runs written by earlier code still restore and resume."""

import shutil
import subprocess
import sys

import pytest
from conftest import ROOT, assert_same_checkpoints

from pgn_tf import train

OLD_RUN = f"{ROOT}/tests/data/old_run"


def test_a_run_written_before_the_refactor_restores_and_resumes(tmp_path, capsys):
    """tests/data/old_run (README there): its operative config parses, ckpt-2 restores, step 3 is the old code's."""
    wd = tmp_path / "wd"
    shutil.copytree(OLD_RUN, wd, ignore=shutil.ignore_patterns("step3", "README.md"))
    code = train.run([str(wd / "operative_config.gin")], ["train_and_evaluate.total_steps = 3"], str(wd))
    out, err = capsys.readouterr()
    assert code == 0, err
    assert f"Resuming from {wd}/checkpoints/ckpt-2 at step 2." in out
    assert_same_checkpoints(wd / "checkpoints" / "ckpt-3", f"{OLD_RUN}/step3/ckpt-3", atol=1e-9)


def test_the_gin_roots_defaults_are_the_configs():
    """train_and_evaluate's signature (the gin contract) and RunConfig.make agree on every default.

    Adam and the Inception loader are gin's configurable copies at the root (so that their bindings apply) and
    the originals in the config; the four components have no default (gin.REQUIRED / a TypeError).
    """
    import dataclasses
    import inspect

    import gin

    from pgn_tf import configurables, optimizers, train_lib
    from pgn_tf.config import LoopConfig, RunConfig
    from pgn_tf.eval import inception

    signature = inspect.signature(train_lib.settings).parameters
    loop_fields = {f.name: f.default for f in dataclasses.fields(LoopConfig)}
    run_fields = {f.name: f.default for f in dataclasses.fields(RunConfig) if f.name != "loop"}
    assert set(signature) == set(loop_fields) | set(run_fields)  # each setting is a field, once
    copies = {configurables.Adam: optimizers.Adam, configurables.load_inception: inception.load_inception}
    for name, default in {**loop_fields, **run_fields}.items():
        given = signature[name].default
        if given is gin.REQUIRED:
            assert default is dataclasses.MISSING, name
        else:
            assert copies.get(given, given) == default, name
    with pytest.raises(TypeError, match="dataset_fn"):
        RunConfig.make(generator_fn=print, critic_fn=print, loss_fn=print)


@pytest.mark.parametrize(
    "bad, message",
    [
        ({"total_steps": "ten"}, "train_and_evaluate.total_steps must be an integer >= 1, got 'ten' (str)."),
        ({"ema_decay": 1.5}, "train_and_evaluate.ema_decay must be a number >= 0 and <= 1, got 1.5 (float)."),
        ({"lr_D": 0}, "train_and_evaluate.lr_D must be a number > 0, got 0 (int)."),
        ({"jit_compile": 1}, "train_and_evaluate.jit_compile must be True or False, got 1 (int)."),
        ({"accumulation": 3}, "batch_size_D = 64 does not split into accumulation = 3 micro-batches"),
    ],
)
def test_a_bad_setting_is_one_config_error_naming_its_binding(bad, message):
    import gin

    from pgn_tf import data, errors, losses, train_lib

    gin.clear_config()
    parts = {"dataset_fn": data.digits, "generator_fn": print, "critic_fn": print, "loss_fn": losses.get}
    with pytest.raises(errors.ConfigError) as info:
        train_lib.settings(**parts, **bad)
    assert message in errors.first_line(info.value)


def _accumulated_step(accumulation, penalty="gp1"):
    """Weights after one outer step (n_dis 2, CR, a penalty, PGN) of a BatchNorm-free 8x8 GAN, in float64, SGD."""
    import keras
    import numpy as np
    import tensorflow as tf

    from pgn_tf import losses, train_lib

    def generator(z_dim):
        z = keras.Input((z_dim,))
        return keras.Model(z, keras.layers.Reshape((8, 8, 3))(keras.layers.Dense(192, activation="tanh")(z)))

    def critic():
        x = keras.Input((8, 8, 3))
        h = keras.layers.Dense(16, activation="relu")(keras.layers.Flatten()(x))
        return keras.Model(x, keras.layers.Dense(1)(h))

    images = tf.constant(np.random.default_rng(0).uniform(-1, 1, (16, 8, 8, 3)), tf.float32)
    sgd = lambda learning_rate: keras.optimizers.SGD(learning_rate)
    config = train_lib.settings(
        dataset_fn=lambda batch_size, seed, start_step: None, generator_fn=generator, critic_fn=critic,
        loss_fn=lambda: losses.bce, d_optimizer=sgd, g_optimizer=sgd, lr_D=0.5, lr_G=0.5, z_dim=6, n_dis=2,
        batch_size_D=8, batch_size_G=8, cr=1.0, penalty=penalty, accumulation=accumulation, precision="float64",
    )  # fmt: skip
    gan = train_lib.build_gan(config)
    batches = tf.data.Dataset.from_tensor_slices((images, tf.zeros((16,), tf.int32))).batch(16)  # batch dim unknown
    gan.fit(batches, epochs=1, steps_per_epoch=1, verbose=0, shuffle=False)  # traced, as training runs it
    return [v.numpy() for v in gan.generator.weights + gan.discriminator.weights]


def test_gradient_accumulation_computes_the_one_batch_step():
    """k micro-batches of batch / k give the global batch's step (to float64 rounding), critic and generator."""
    import numpy as np

    one = _accumulated_step(1)
    for k in (2, 4):
        for a, b in zip(one, _accumulated_step(k)):
            np.testing.assert_allclose(b, a, rtol=0, atol=1e-12)
    assert max(float(np.abs(a - b).max()) for a, b in zip(one, _accumulated_step(1, penalty=None))) > 1e-6


def test_a_batchnorm_generator_accumulates_each_micro_batch_with_its_own_statistics():
    """The generator step with accumulation k, against its definition written out: G normalises each micro-batch
    of batch / k on its own (as the official train_ddp.py), the gradients are averaged, and the moving statistics
    take k updates. The full batch's statistics give another step (so the comparison can fail)."""
    import keras
    import numpy as np
    import tensorflow as tf

    from pgn_tf import losses, train_lib

    def generator(z_dim):
        z = keras.Input((z_dim,))
        h = keras.layers.BatchNormalization(momentum=0.5)(keras.layers.Dense(192)(z))
        return keras.Model(z, keras.layers.Reshape((8, 8, 3))(keras.layers.Activation("tanh")(h)))

    def critic():
        x = keras.Input((8, 8, 3))
        return keras.Model(
            x, keras.layers.Dense(1)(keras.layers.Dense(16, activation="relu")(keras.layers.Flatten()(x)))
        )

    def build(accumulation):
        keras.utils.set_random_seed(0)
        config = train_lib.settings(
            dataset_fn=lambda batch_size, seed, start_step: None, generator_fn=generator, critic_fn=critic,
            loss_fn=lambda: losses.bce, d_optimizer=lambda learning_rate: keras.optimizers.SGD(learning_rate),
            g_optimizer=lambda learning_rate: keras.optimizers.SGD(learning_rate), lr_D=1.0, lr_G=1.0, z_dim=6,
            n_dis=1, batch_size_D=8, batch_size_G=8, accumulation=accumulation, precision="float64",
        )  # fmt: skip
        return train_lib.build_gan(config)

    k, n = 2, 8
    gan = build(k)
    g = gan.generator
    trainable, moving = g.trainable_variables, g.non_trainable_variables
    before = [v.numpy() for v in g.variables]
    z, _ = gan.latents(n, 4)  # what the step draws: salt 4 n_dis
    grads = [tf.zeros_like(v) for v in trainable]
    for j in range(k):
        with tf.GradientTape() as tape:
            pred = gan.discriminator.normalize(gan.generate(z[j * n // k : (j + 1) * n // k]), training=True).f_hat
            loss = losses.bce.generator(pred) / k
        grads = [a + b for a, b in zip(grads, tape.gradient(loss, trainable))]
    expected_weights = [v.numpy() - gr.numpy() for v, gr in zip(trainable, grads)]  # SGD, lr 1
    expected_moving = [v.numpy() for v in moving]  # after k momentum updates, one per micro-batch
    for v, value in zip(g.variables, before):
        v.assign(value)
    tf.function(lambda: gan.generator_step(n))()  # traced, as training runs it
    for got, want in zip(trainable + moving, expected_weights + expected_moving):
        np.testing.assert_allclose(got.numpy(), want, rtol=0, atol=1e-12)
    one = build(1)
    tf.function(lambda: one.generator_step(n))()
    assert (
        max(float(np.abs(a.numpy() - b.numpy()).max()) for a, b in zip(one.generator.trainable_variables, trainable))
        > 1e-6
    )


def test_accumulation_sums_an_embeddings_sparse_gradients():
    """A conditional critic and generator (class embeddings: IndexedSlices gradients) accumulate to the one-batch
    step, in float64."""
    import keras
    import numpy as np
    import tensorflow as tf

    from pgn_tf import losses, train_lib

    def generator(z_dim, num_classes):
        z, y = keras.Input((z_dim,)), keras.Input((), dtype="int32")
        h = keras.layers.Concatenate()([z, keras.layers.Embedding(num_classes, 4)(y)])
        return keras.Model([z, y], keras.layers.Reshape((8, 8, 3))(keras.layers.Dense(192, activation="tanh")(h)))

    def critic(num_classes):
        x, y = keras.Input((8, 8, 3)), keras.Input((), dtype="int32")
        h = keras.layers.Dense(16, activation="relu")(keras.layers.Flatten()(x))
        projection = keras.layers.Dot(axes=1)([h, keras.layers.Embedding(num_classes, 16)(y)])
        return keras.Model([x, y], keras.layers.Add()([keras.layers.Dense(1)(h), projection]))

    def step(accumulation):
        keras.utils.set_random_seed(0)
        sgd = lambda learning_rate: keras.optimizers.SGD(learning_rate)
        config = train_lib.settings(
            dataset_fn=lambda batch_size, seed, start_step: None, generator_fn=generator, critic_fn=critic,
            loss_fn=lambda: losses.hinge, d_optimizer=sgd, g_optimizer=sgd, lr_D=0.5, lr_G=0.5, z_dim=6,
            num_classes=3, batch_size_D=8, batch_size_G=8, accumulation=accumulation, precision="float64",
        )  # fmt: skip
        gan = train_lib.build_gan(config)
        images = np.random.default_rng(0).uniform(-1, 1, (8, 8, 8, 3))
        labels = np.array([0, 1, 2, 0, 1, 2, 0, 1], np.int32)
        gan.fit(tf.data.Dataset.from_tensor_slices((images, labels)).batch(8), epochs=1, steps_per_epoch=1, verbose=0)
        return [v.numpy() for v in gan.generator.weights + gan.discriminator.weights]

    one = step(1)
    for a, b in zip(one, step(2)):
        np.testing.assert_allclose(b, a, rtol=0, atol=1e-12)


def test_hold_denominator_needs_a_denominator():
    from pgn_tf.config import LoopConfig
    from pgn_tf.errors import ConfigError

    assert LoopConfig(normalization="gn", hold_denominator=True).hold_denominator
    for normalization in ("sn", "none"):
        with pytest.raises(ConfigError, match=f"needs a denominator.*not '{normalization}'"):
            LoopConfig(hold_denominator=True, normalization=normalization)
    with pytest.raises(ConfigError, match="hold_denominator must be True or False"):
        LoopConfig(hold_denominator="yes")


def test_parse_gin_is_quiet_outside_absl(tmp_path):
    """gin logs each folder it searches for an include to Python's root logger; a plain script sees none of it."""
    code = "from pgn_tf.cli import parse_gin; parse_gin(['quickstart.gin'], [])"
    r = subprocess.run([sys.executable, "-c", code], check=False, capture_output=True, text=True, cwd=str(tmp_path))
    assert r.returncode == 0 and "Path not found" not in r.stderr, r.stderr
