"""Augmentations inside the training step: consistency regularisation's transform, DiffAugment's policies against
hand computations, ADA's rule, and augmentation in the loop (seeded draws, gradients to G, p adapting)."""

import numpy as np
import pytest
import tensorflow as tf

from pgn_tf import augment
from pgn_tf.augment import cr_augment


def test_cr_augment_flips_translates_and_fills_black():
    x = tf.random.uniform((64, 10, 10, 3), 0.5, 1.0)
    out = cr_augment(x, tf.random.uniform((64, 3), seed=1)).numpy()
    assert out.shape == x.shape
    assert np.any(out == -1.0)  # some border filled
    assert np.all((out == -1.0) | ((out >= 0.5) & (out <= 1.0)))
    filled = [np.sum(np.all(o == -1.0, axis=-1)) for o in out]
    assert max(filled) <= 10 * 10 - 8 * 8  # at most 2 px (20%) in each direction
    # No translation and an identity flip for a constant image.
    c = tf.ones((4, 10, 10, 3))
    assert np.all(cr_augment(c, tf.random.uniform((4, 3), seed=2), max_shift=0.0).numpy() == 1.0)


def _shifted(img, dx, dy, fill=-1.0):
    out = np.full_like(img, fill)
    h, w = img.shape[:2]
    out[max(dy, 0) : h + min(dy, 0), max(dx, 0) : w + min(dx, 0)] = img[
        max(-dy, 0) : h - max(dy, 0), max(-dx, 0) : w - max(dx, 0)
    ]
    return out


def test_cr_augment_is_the_drawn_flip_and_integer_shift_and_compiles_with_xla():
    x = tf.random.uniform((16, 10, 10, 3), -1.0, 1.0, seed=3)
    u = tf.random.uniform((16, 3), seed=4)
    eager = cr_augment(x, u).numpy()
    xla = tf.function(cr_augment, jit_compile=True)(x, u).numpy()
    np.testing.assert_array_equal(eager, xla)
    # u[:, 0] < 0.5 flips; shifts round(u * 2 * 2 - 2) px (20% of 10) in x and y.
    for img, out, (flip, ux, uy) in zip(x.numpy(), eager, u.numpy()):
        src = img[:, ::-1] if flip < 0.5 else img
        np.testing.assert_array_equal(out, _shifted(src, int(np.round(ux * 4 - 2)), int(np.round(uy * 4 - 2))))


def _images(n=16, size=12, seed=0):
    return tf.constant(np.random.default_rng(seed).uniform(-1, 1, (n, size, size, 3)), tf.float64)


def test_translation_is_the_drawn_whole_pixel_shift_with_zero_fill():
    x, u = _images(), tf.random.stateless_uniform((16, 2), (1, 2), dtype=tf.float64)
    out = augment.translation(x, u, ratio=0.125).numpy()
    s = int(12 * 0.125 + 0.5)  # 2 px each way, uniform over -2..2
    seen = set()
    for img, o, (uy, ux) in zip(x.numpy(), out, u.numpy()):
        dy, dx = int(np.floor(uy * (2 * s + 1))) - s, int(np.floor(ux * (2 * s + 1))) - s
        seen |= {dx, dy}
        np.testing.assert_array_equal(o, _shifted(img, dx, dy, fill=0.0))
    assert seen <= set(range(-s, s + 1)) and len(seen) > 2


def test_cutout_zeroes_one_box_of_the_stated_size():
    x = tf.ones((32, 12, 12, 3), tf.float64)  # no zero of its own
    u = tf.random.stateless_uniform((32, 2), (3, 4), dtype=tf.float64)
    out = augment.cutout(x, u, ratio=0.5).numpy()
    s = int(12 * 0.5 + 0.5)
    for o, (uy, ux) in zip(out, u.numpy()):
        cy, cx = int(np.floor(uy * (12 + 1 - s % 2))), int(np.floor(ux * (12 + 1 - s % 2)))
        want = np.ones((12, 12, 3))
        want[max(cy - s // 2, 0) : max(cy - s // 2 + s, 0), max(cx - s // 2, 0) : max(cx - s // 2 + s, 0)] = 0.0
        np.testing.assert_array_equal(o, want)
    zeros = (out[..., 0] == 0).sum(axis=(1, 2))
    assert zeros.max() == s * s and zeros.min() < s * s  # whole boxes inside, clipped ones at the border


def test_colour_transforms_are_diffaugments_formulas_and_neutral_at_the_middle_draw():
    x = _images()
    u = tf.random.stateless_uniform((16,), (5, 6), dtype=tf.float64)
    xs, us = x.numpy(), u.numpy()[:, None, None, None]
    np.testing.assert_allclose(augment.brightness(x, u), xs + us - 0.5, atol=1e-15)
    chan = xs.mean(axis=3, keepdims=True)
    np.testing.assert_allclose(augment.saturation(x, u), (xs - chan) * 2 * us + chan, atol=1e-15)
    mean = xs.mean(axis=(1, 2, 3), keepdims=True)
    np.testing.assert_allclose(augment.contrast(x, u), (xs - mean) * (us + 0.5) + mean, atol=1e-15)
    half = tf.fill((16,), tf.constant(0.5, tf.float64))
    for f in (augment.brightness, augment.saturation, augment.contrast):
        np.testing.assert_allclose(f(x, half), xs, atol=1e-15)
    # The range: brightness moves each image by at most 0.5; a grey image (equal channels) keeps its saturation.
    assert np.abs(augment.brightness(x, u).numpy() - xs).max() <= 0.5
    grey = tf.repeat(x[..., :1], 3, axis=3)
    np.testing.assert_allclose(augment.saturation(grey, u), grey, atol=1e-15)


def test_the_policy_applies_its_transforms_in_order_each_gated_by_p():
    x = _images()
    policy = "translation,color"
    k = augment.draws(policy)
    assert augment.transforms(policy) == ("translation", "brightness", "saturation", "contrast") and k == 3 + 3 * 2
    u = tf.random.stateless_uniform((16, k), (7, 8), dtype=tf.float64)
    want = augment.translation(x, u[:, 1:3])
    for col, f in ((3, augment.brightness), (5, augment.saturation), (7, augment.contrast)):
        want = f(want, u[:, col + 1])
    np.testing.assert_array_equal(augment.diff_augment(x, u, policy, p=1.0), want)
    np.testing.assert_array_equal(augment.diff_augment(x, u, policy, p=0.0), x)  # p = 0: nothing applies
    # p = 0.25: each image's each transform applies when its own gate (the column before its draws) is < p.
    gates = u.numpy()[:, [0, 3, 5, 7]] < 0.25
    some = augment.diff_augment(x, u, policy, p=0.25).numpy()
    untouched = ~gates.any(axis=1)
    assert 0 < untouched.sum() < 16
    np.testing.assert_array_equal(some[untouched], x.numpy()[untouched])
    assert all(not np.allclose(a, b) for a, b in zip(some[~untouched], x.numpy()[~untouched]))


@pytest.mark.parametrize("policy", ["color", "translation", "cutout", "color,translation,cutout"])
def test_gradients_flow_through_each_policy_and_xla_computes_the_same(policy):
    x = tf.Variable(_images(4))
    u = tf.random.stateless_uniform((4, augment.draws(policy)), (9, 10), dtype=tf.float64)
    weight = tf.constant(np.random.default_rng(1).normal(size=(4, 12, 12, 3)))
    with tf.GradientTape() as tape:
        loss = tf.reduce_sum(weight * augment.diff_augment(x, u, policy))
    grad = tape.gradient(loss, x).numpy()
    assert np.isfinite(grad).all() and np.abs(grad).sum() > 0
    # Against finite differences along a random direction (every transform is piecewise linear in the images).
    v = np.random.default_rng(2).normal(size=x.shape)
    f = lambda t: float(tf.reduce_sum(weight * augment.diff_augment(x + t * v, u, policy)))
    np.testing.assert_allclose((f(1e-6) - f(-1e-6)) / 2e-6, np.sum(grad * v), rtol=1e-6)
    xla = tf.function(augment.diff_augment, jit_compile=True)
    np.testing.assert_allclose(xla(x, u, policy), augment.diff_augment(x, u, policy), atol=1e-15)


def test_ada_step_moves_p_by_the_images_seen_toward_the_target():
    step = lambda p, r: float(augment.ada_step(tf.constant(p), tf.constant(r), 0.6, 2048.0, 500.0))
    assert step(0.2, 0.9) == pytest.approx(0.2 + 2048 / 500_000)
    assert step(0.2, 0.1) == pytest.approx(0.2 - 2048 / 500_000)
    assert step(0.0, 0.1) == 0.0 and step(0.999, 1.0) == 1.0  # within [0, 1]


def test_a_policy_string_keeps_its_order_and_refuses_unknown_or_repeated_names():
    assert augment.parse_policy("cutout, color") == ("cutout", "color") and augment.parse_policy("") == ()
    for bad in ("colour", "color,color", "color,"):
        with pytest.raises(ValueError):
            augment.parse_policy(bad)


def _gan(bias=None, **settings):
    """A BatchNorm-free 8x8 GAN (float64, SGD); its critic starts as the constant `bias` if one is given."""
    import keras

    from pgn_tf import losses, train_lib

    def generator(z_dim):
        z = keras.Input((z_dim,))
        return keras.Model(z, keras.layers.Reshape((8, 8, 3))(keras.layers.Dense(192, activation="tanh")(z)))

    def critic():
        x = keras.Input((8, 8, 3))
        h = keras.layers.Dense(16, activation="relu")(keras.layers.Flatten()(x))
        if bias is None:
            return keras.Model(x, keras.layers.Dense(1)(h))
        constant = keras.layers.Dense(1, kernel_initializer="zeros", bias_initializer=keras.initializers.Constant(bias))
        return keras.Model(x, constant(h))

    sgd = lambda learning_rate: keras.optimizers.SGD(learning_rate)
    config = train_lib.settings(
        dataset_fn=lambda batch_size, seed, start_step: None, generator_fn=generator, critic_fn=critic,
        loss_fn=lambda: losses.bce, d_optimizer=sgd, g_optimizer=sgd, z_dim=6, batch_size_D=8, batch_size_G=8,
        precision="float64", **settings,
    )  # fmt: skip
    return train_lib.build_gan(config)


def test_a_critic_step_augments_once_for_its_loss_and_its_penalty_with_the_seeded_draw():
    from pgn_tf import penalties

    gan = _gan(normalization="none", penalty="r1", augment="color,translation,cutout", lr_D=0.1, lr_G=0.1)
    real = _images(8, size=8, seed=3)
    gan.step.assign(3)
    aug = gan.augmented(real, 8, 0)  # critic step 0's draw for the reals
    np.testing.assert_array_equal(aug, gan.augmented(real, 8, 0))  # stateless: keyed by (seed, step, salt)
    assert not np.allclose(aug, real)
    gan.step.assign(4)
    assert not np.allclose(gan.augmented(real, 8, 0), aug)  # another step, another draw
    gan.step.assign(3)
    want_penalty = float(penalties.r1_penalty(gan.discriminator, aug))
    want_real = float(tf.reduce_mean(tf.nn.softplus(-gan.discriminator(aug, training=True))))
    logs = gan.critic_step(real, None, 0)
    assert float(logs["penalty"]) == pytest.approx(want_penalty, rel=1e-12) and want_penalty > 0
    assert float(logs["d_loss_real"]) == pytest.approx(want_real, rel=1e-12)


def test_ada_under_pgn_reads_each_real_against_its_fake_not_the_sign_every_sample_starts_with():
    """PGN's f_hat has the sign of 1 - f, and f starts near 0: every real (and every fake) is on the real side at
    init, so E[sign(f_hat(real))] = 1 would raise p from the first step. ADA under PGN reads sign(f_hat(real_i) -
    f_hat(fake_i)) instead, as for a relativistic loss."""
    gan = _gan(normalization="pgn", augment="translation", augment_p="ada", lr_D=0.1, lr_G=0.1)
    real = _images(8, size=8, seed=5)
    gan.step.assign(1)
    z, _ = gan.latents(8, 0)
    both = tf.concat([gan.augmented(real, 8, 0), gan.augmented(gan.generate(z), 8, 1)], axis=0)
    f_hat = gan.discriminator.normalize(both, training=True).f_hat.numpy()[:, 0]
    plain, fakes = np.mean(np.sign(f_hat[:8])), np.mean(np.sign(f_hat[8:]))
    assert plain > 0.6 and fakes > 0.6  # reals and fakes alike above ADA's target: the plain rule would raise p
    logs = gan.critic_step(real, None, 0)
    paired = np.mean(np.sign(f_hat[:8] - f_hat[8:]))
    assert float(logs["ada_sign"]) == pytest.approx(paired, abs=1e-12) and paired < 0.6


@pytest.mark.parametrize("bias,moves", [(3.0, True), (-3.0, False)])
def test_ada_raises_p_by_its_rule_on_a_critic_sure_of_every_real_and_leaves_it_at_0_otherwise(bias, moves):
    """A critic that is constant (lr ~ 0) and positive reads r_t = 1 > 0.6: p rises by n_dis * batch * interval /
    (kimg * 1000) per interval; a negative one reads -1: p stays at 0."""
    gan = _gan(bias, normalization="none", augment="translation", augment_p="ada", ada_interval=2, ada_kimg=0.1,
               n_dis=2, lr_D=1e-30, lr_G=1e-30)  # fmt: skip
    images = tf.data.Dataset.from_tensor_slices(_images(16, size=8)).batch(16).repeat()
    history = gan.fit(images, epochs=1, steps_per_epoch=5, verbose=0).history
    per_interval = 2 * 8 * 2 / 100
    assert float(gan.ada.p.numpy()) == pytest.approx(2 * per_interval if moves else 0.0)  # steps 2 and 4
    assert float(gan.ada.r_t.numpy()) == (1.0 if moves else -1.0) and int(gan.ada.steps.numpy()) == 1
    assert history["augment_p"][-1] == pytest.approx(float(gan.ada.p.numpy()))  # step 5 used p after step 4


def test_augment_study_tabulates_finished_runs_and_refuses_to_resume_a_run_under_another_code(tmp_path):
    """tools/augment_study.py's summary from runs' eval.jsonl (a missing FID skipped, the best step found, the
    code version of each run named), and its refusal to mix two code versions in one run."""
    import json

    from conftest import load_tool

    tool = load_tool("augment_study")
    args, runs = tool.parse_args(
        [f"--out={tmp_path}", "--sizes=500", "--methods=pgn,gn", "--augments=none", "--seeds=0,1", "--steps=4"]
    )
    assert runs == [(500, "pgn", "none", 0), (500, "gn", "none", 0), (500, "pgn", "none", 1), (500, "gn", "none", 1)]
    for seed, fids in ((0, [None, 30.0, 20.0]), (1, [50.0, 10.0, 40.0])):
        workdir = tmp_path / "runs" / tool.run_name(500, "pgn", "none", seed)
        workdir.mkdir(parents=True)
        rows = [{"step": s, "FID": f, "precision": 0.5, "recall": 0.25} for s, f in zip((0, 2, 4), fids)]
        (workdir / "eval.jsonl").write_text("".join(json.dumps(r) + "\n" for r in rows))
        (workdir / "code_version").write_text("abc123\n")
    unfinished = tmp_path / "runs" / tool.run_name(500, "gn", "none", 0)
    unfinished.mkdir()
    (unfinished / "eval.jsonl").write_text(json.dumps({"step": 2, "FID": 9.0}) + "\n")
    # An ADA run: p and r_t from its TensorBoard events, two files as a resume leaves them (the newer wins).
    ada_args, ada_runs = tool.parse_args([f"--out={tmp_path}", "--sizes=500", "--methods=pgn", "--augments=ada",
                                          "--seeds=0", "--steps=4"])  # fmt: skip
    ada = tmp_path / "runs" / tool.run_name(500, "pgn", "ada", 0)
    ada.mkdir()
    (ada / "eval.jsonl").write_text(json.dumps({"step": 4, "FID": 5.0}) + "\n")
    for start, points in ((1, ((2, 0.3, 0.9), (4, 0.9, 0.9))), (2, ((4, 0.2, 0.1),))):
        folder = tmp_path / f"events{start}"
        writer = tf.summary.create_file_writer(str(folder))
        with writer.as_default():
            for step, p, r_t in points:
                tf.summary.scalar("train/augment_p", p, step=step)
                tf.summary.scalar("train/ada_rt", r_t, step=step)
        writer.close()
        (written,) = folder.iterdir()
        written.rename(ada / f"events.out.tfevents.{start}.x")  # named by start time, as TensorBoard names them
    tool.summarise(str(tmp_path), ada_runs, ada_args)
    trace = [json.loads(x) for x in (ada / "ada.jsonl").read_text().splitlines()]
    assert json.loads((ada / "trained.json").read_text())["minutes"] >= 0  # written from the same events
    assert [r["step"] for r in trace] == [2, 4]
    assert [v for r in trace for v in (r["augment_p"], r["ada_rt"])] == pytest.approx([0.3, 0.9, 0.2, 0.1])
    assert (
        "| 500 | pgn | ada | 5.0 +- 0.0 [5.0] | 5.0 +- 0.0 [5.0] (4) | - | - | - | 0.20 (0.30) |"
        in (tmp_path / "summary.md").read_text()
    )

    tool.summarise(str(tmp_path), runs, args)
    summary = (tmp_path / "summary.md").read_text()
    assert summary.startswith("# Augmentation on 500 real digits") and "code abc123" in summary
    # FID at the end 20 and 40: mean 30, std 10 (ddof 0); best 20 at step 4 and 10 at step 2.
    assert "| 500 | pgn | none | 30.0 +- 10.0 [20.0, 40.0] | 15.0 +- 5.0 [20.0, 10.0] (4, 2) |" in summary
    assert "| gn |" not in summary  # unfinished: left out
    lines = [json.loads(x) for x in (tmp_path / "results.jsonl").read_text().splitlines()]
    assert len(lines) == 6 and {x["code"] for x in lines} == {"abc123"}
    (unfinished / "code_version").write_text("abc123\n")
    with pytest.raises(SystemExit, match="was trained by code abc123"):
        tool.train_all(str(tmp_path), "stats.npz", [(500, "gn", "none", 0)], args)


def test_augment_study_auc_is_the_share_of_pairs_ranked_right():
    """The critic-memory AUC against its definition, every pair counted (ties a half)."""
    from conftest import load_tool

    tool = load_tool("augment_study")
    assert tool.auc([1.0, 2.0, 3.0], [2.0]) == 0.5  # one below, one tied, one above
    rng = np.random.default_rng(0)
    a, b = rng.integers(0, 5, 40).astype(float), rng.integers(0, 5, 30).astype(float)  # many ties
    pairs = (a[:, None] > b[None, :]) + 0.5 * (a[:, None] == b[None, :])
    assert tool.auc(a, b) == pytest.approx(pairs.mean(), abs=1e-12)


@pytest.mark.parametrize("flag", ["--seeds=0,one", "--sizes=500,big"])
def test_augment_study_refuses_a_list_that_is_not_integers_with_one_usage_line(tmp_path, flag, capsys):
    from conftest import load_tool

    tool = load_tool("augment_study")
    with pytest.raises(SystemExit) as stopped:
        tool.parse_args([f"--out={tmp_path}", flag])
    assert stopped.value.code == 2
    (line,) = [x for x in capsys.readouterr().err.splitlines() if "error:" in x]
    assert "integers separated by commas" in line and flag.split("=")[1] in line
