"""PGNGAN's loop: gradient accumulation computes the one-batch step (float64), per micro-batch BatchNorm, sparse
gradients summed."""


def _accumulated_step(accumulation, penalty="gp1", augment=""):
    """Weights after one outer step (n_dis 2, CR, a penalty, PGN; an augmentation policy) of a BatchNorm-free 8x8
    GAN, in float64, SGD."""
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
        augment=augment,
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
    policy = "color,translation,cutout"  # drawn for the whole batch, applied per micro-batch
    augmented = _accumulated_step(1, augment=policy)
    assert max(float(np.abs(a - b).max()) for a, b in zip(one, augmented)) > 1e-6
    for a, b in zip(augmented, _accumulated_step(4, augment=policy)):
        np.testing.assert_allclose(b, a, rtol=0, atol=1e-12)


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


def test_a_relativistic_generator_step_pairs_each_fake_with_a_real_of_the_first_critic_slice():
    """rpgan's G loss in PGNGAN: mean softplus(f_hat(real_(i // 2)) - f_hat(G(z_i))): 8 fakes, a critic slice of 4."""
    import functools

    import numpy as np
    import pytest
    import tensorflow as tf

    from pgn_tf import data, losses, models, train_lib
    from pgn_tf.config import RunConfig

    config = RunConfig.make(
        dataset_fn=data.digits, generator_fn=functools.partial(models.build_generator, "dcgan.32", width=0.0625),
        critic_fn=functools.partial(models.build_critic, "dcgan.32", width=0.0625), loss_fn=lambda: losses.rpgan,
        z_dim=8, batch_size_D=4, batch_size_G=8, n_dis=2, penalty="r1r2", penalty_weight=0.05,
    )  # fmt: skip
    gan = train_lib.build_gan(config)
    real = tf.constant(np.random.default_rng(0).uniform(-1, 1, (8, 32, 32, 3)), tf.float32)  # n_dis x 4
    z, _ = gan.latents(8, 4 * gan.loop.n_dis)
    pred_fake = gan.discriminator.normalize(gan.generate(z), training=True).f_hat
    pred_real = gan.discriminator.normalize(tf.gather(real, np.arange(8) // 2), training=True).f_hat
    want = float(tf.reduce_mean(tf.nn.softplus(pred_real - pred_fake)))
    before = [w.numpy() for w in gan.generator.trainable_weights]
    got = float(gan.generator_step(8, real))
    assert got == pytest.approx(want, rel=1e-5)
    assert any(np.abs(b - w.numpy()).max() > 0 for b, w in zip(before, gan.generator.trainable_weights))
    with pytest.raises(ValueError, match="pairs fakes with reals"):
        gan.generator_step(8)
    history = gan.fit(data.digits(batch_size=8), epochs=1, steps_per_epoch=2, verbose=0)  # the whole step runs
    assert np.isfinite(history.history["g_loss"][-1]) and history.history["penalty"][-1] > 0
