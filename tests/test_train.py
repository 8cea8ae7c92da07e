"""Training: the loop's pieces, every gin file, one fit step per arch x loss x normalization, the CLI."""

import dataclasses
import glob
import json
import os
import subprocess
import sys
from pathlib import Path

import gin
import keras
import numpy as np
import pytest
import tensorflow as tf
from conftest import ROOT

from pgn_tf import PGNDiscriminator, data, errors, losses, models, optimizers, train, train_lib
from pgn_tf.config import LoopConfig
from pgn_tf.eval import digits_classifier, evaluator, inception
from pgn_tf.gan import PGNGAN

# base.gin is only included by the others.
GIN_FILES = sorted(p for p in glob.glob(os.path.join(ROOT, "gin_configs", "*.gin")) if not p.endswith("base.gin"))
OVERLAYS = sorted(glob.glob(os.path.join(ROOT, "gin_configs", "baselines", "*.gin")))


@pytest.fixture(autouse=True)
def _clear_gin():
    gin.clear_config()
    yield
    gin.clear_config()


def _small_gan(
    arch, loss="hinge", normalization="pgn", n_dis=2, cr=0.0, ema_start=0, nets=None, run_eagerly=False, opt=None,
    penalty=None,
):  # fmt: skip
    cond = models.is_conditional(arch)
    g, d = nets or (models.build_generator(arch, z_dim=8, width=0.0625), models.build_critic(arch, width=0.0625))
    loop = LoopConfig(normalization=normalization, z_dim=8, num_classes=10 if cond else None, n_dis=n_dis,
                      batch_size_D=2, batch_size_G=3, ema_decay=0.9, ema_start=ema_start, cr=cr, penalty=penalty,
                      seed=1)  # fmt: skip
    gan = PGNGAN(g, d, loop)
    opt = opt or (lambda: keras.optimizers.Adam(1e-3))
    gan.compile(opt(), opt(), losses.get(loss), run_eagerly=run_eagerly)
    size = models.image_size(arch)
    x = tf.random.stateless_uniform((2 * n_dis, size, size, 3), seed=[1, 2], minval=-1, maxval=1)
    y = tf.constant(np.arange(2 * n_dis) % 10, tf.int32)
    return gan, tf.data.Dataset.from_tensors((x, y)).repeat()


@pytest.mark.parametrize("arch", sorted(models.ARCHS))
def test_one_fit_step_every_loss_and_normalization(arch):
    """Eagerly (tracing 63 train steps would take CI a quarter of an hour); compiled below."""
    nets = (models.build_generator(arch, z_dim=8, width=0.0625), models.build_critic(arch, width=0.0625))
    for loss in ("hinge", "bce", "wasserstein"):
        for norm in ("pgn", "gn", "none"):
            cr = 5.0 if loss == "hinge" else 0.0
            gan, ds = _small_gan(arch, loss, norm, n_dis=1, cr=cr, nets=nets, run_eagerly=True)
            before = [v.numpy().copy() for v in gan.discriminator.trainable_variables]
            hist = gan.fit(ds, epochs=1, steps_per_epoch=1, verbose=0).history
            assert all(np.isfinite(v[0]) for v in hist.values()), (loss, norm, hist)
            assert _moved(before, gan.discriminator.trainable_variables), (loss, norm)
            assert int(gan.step.numpy()) == 1


def _moved(before, variables):
    return any(not np.array_equal(b, a.numpy()) for b, a in zip(before, variables))


@pytest.mark.parametrize("arch", sorted(models.ARCHS))
def test_one_fit_step_every_baseline(arch):
    """SN (raw SN critic) and each penalty on the raw critic, eagerly; PGN + gp1 + CR where the paper has CR."""
    g = models.build_generator(arch, z_dim=8, width=0.0625)
    plain = models.build_critic(arch, width=0.0625)
    sn = models.build_critic(arch, width=0.0625, spectral_norm=True)
    cases = [("none", None, sn, 0.0), ("none", "gp1", plain, 0.0), ("none", "gp0", plain, 0.0),
             ("none", "r1", plain, 0.0), ("pgn", "gp1", plain, 5.0)]  # fmt: skip
    for norm, penalty, critic, cr in cases:
        gan, ds = _small_gan(arch, "hinge", norm, n_dis=1, cr=cr, nets=(g, critic), run_eagerly=True, penalty=penalty)
        before = [v.numpy().copy() for v in critic.weights]
        hist = gan.fit(ds, epochs=1, steps_per_epoch=1, verbose=0).history
        assert all(np.isfinite(v[0]) for v in hist.values()), (norm, penalty, hist)
        assert _moved(before, critic.trainable_variables), (norm, penalty)
        assert (hist["penalty"][0] > 0) == (penalty is not None), (norm, penalty, hist["penalty"])
        if critic is sn:  # one power iteration per training call of D (critic step and G step)
            assert _moved(before, [v for v in critic.weights if "sn_u" in v.path])


@pytest.mark.parametrize("arch", ["dcgan.32", "biggan.32"])  # biggan.32 has residual blocks too (resnet.32: ~25 s)
def test_compiled_fit_matches_eager(arch):
    """Two fit steps (n_dis 2, CR, Adam) eagerly and compiled: the same weights to float64 rounding."""
    from pgn_tf import precision

    with precision.scope("float64"):
        nets = (models.build_generator(arch, z_dim=8, width=0.0625), models.build_critic(arch, width=0.0625))
        start = [v.numpy().copy() for v in nets[0].weights + nets[1].weights]
        results = []
        for eager in (True, False):
            for v, value in zip(nets[0].weights + nets[1].weights, start):
                v.assign(value)
            gan, ds = _small_gan(arch, "hinge", "pgn", n_dis=2, cr=1.0, nets=nets, run_eagerly=eager)
            gan.fit(ds, epochs=1, steps_per_epoch=2, verbose=0)
            results.append([v.numpy() for v in gan.generator.weights + gan.discriminator.weights])
    moved = max(np.abs(a - b).max() for a, b in zip(results[0], start))
    assert moved > 1e-3 and results[0][0].dtype == np.float64
    for a, b in zip(*results):
        np.testing.assert_allclose(a, b, rtol=0, atol=1e-9)


def test_train_step_counts_and_ema():
    gan, ds = _small_gan("dcgan.32", n_dis=3, ema_start=2)
    gan.fit(ds, epochs=1, steps_per_epoch=1, verbose=0)
    assert int(gan.d_optimizer.iterations.numpy()) == 3 and int(gan.g_optimizer.iterations.numpy()) == 1
    # Before ema_start the EMA is a plain copy (BatchNorm statistics included).
    for e, w in zip(gan.ema_generator.weights, gan.generator.weights):
        np.testing.assert_array_equal(e.numpy(), w.numpy())
    prev_ema = [v.numpy().copy() for v in gan.ema_generator.weights]
    gan.fit(ds, epochs=1, steps_per_epoch=1, verbose=0)
    for p, e, w in zip(prev_ema, gan.ema_generator.weights, gan.generator.weights):
        np.testing.assert_allclose(e.numpy(), 0.9 * p + 0.1 * w.numpy(), rtol=1e-5, atol=1e-7)


@pytest.mark.parametrize("path", GIN_FILES, ids=os.path.basename)
def test_every_gin_file_parses_and_builds(path):
    train.parse_gin([path], [])
    try:
        cond = gin.query_parameter("train_and_evaluate.num_classes")
    except ValueError:  # unbound: unconditional
        cond = None
    kw = {} if cond is None else {"num_classes": cond}
    g = gin.query_parameter("train_and_evaluate.generator_fn").scoped_configurable_fn(z_dim=128, **kw)
    d = gin.query_parameter("train_and_evaluate.critic_fn").scoped_configurable_fn(**kw)
    assert g.outputs[0].shape[1:] == d.inputs[0].shape[1:]
    if not path.endswith("quickstart.gin"):
        n_g = sum(int(np.prod(v.shape)) for v in g.trainable_variables)
        official = {32: (3_813_379, 4_276_739, 4_304_387), 48: (5_134_339, 4_878_083), 128: (32_150_787,),
                    256: (37_135_107,)}  # fmt: skip
        assert n_g in official[g.outputs[0].shape[1]]
        assert gin.query_parameter("train_and_evaluate.ema_decay") == 0.9999


@pytest.mark.parametrize("path", [p for p in GIN_FILES if p.endswith("_cr.gin")], ids=os.path.basename)
def test_each_cr_row_is_its_base_row_with_cr_on(path):
    """A PGN-GAN-CR row includes its PGN-GAN row and sets only the CR weight (5, as the official --cr 5)."""
    train.parse_gin([path.replace("_cr.gin", ".gin")], [])
    base = train_lib.settings()
    gin.clear_config()
    train.parse_gin([path], [])
    with_cr = train_lib.settings()
    assert with_cr.loop.cr == 5 and base.loop.cr == 0
    assert with_cr == dataclasses.replace(base, loop=dataclasses.replace(base.loop, cr=5))


@pytest.mark.parametrize("path", GIN_FILES, ids=os.path.basename)
def test_every_baseline_overlay_composes_with_every_paper_row(path, tmp_path):
    """Each overlay after each row changes the critic's constraint and nothing else (built at 1/16 width)."""
    train.parse_gin([path], [])
    row = gin.config_str()
    family = gin.query_parameter("train_and_evaluate.critic_fn").selector.split(".")[0]
    small = [f"{family}.generator.width=0.0625", f"{family}.critic.width=0.0625"]
    expected = {"pgn": ("pgn", None), "gn": ("gn", None), "sn": ("none", None), "none": ("none", None),
                "gp1": ("none", "gp1"), "gp0": ("none", "gp0"), "r1": ("none", "r1"), "r3": ("none", "r1r2")}  # fmt: skip
    assert sorted(os.path.basename(p)[:-4] for p in OVERLAYS) == sorted(expected)
    for overlay in OVERLAYS:
        name = os.path.basename(overlay)[:-4]
        gin.clear_config()
        train.parse_gin([path, overlay], [])
        changed = set(gin.config_str().splitlines()) ^ set(row.splitlines())
        assert all(line.startswith("train_and_evaluate.") for line in changed if line.strip()), (name, changed)
        if name != "sn":  # the SN critic is built once per family below
            continue
        gin.clear_config()
        train.parse_gin([path, overlay], small)
        gan = train_lib.build_gan(train_lib.settings())
        assert (gan.discriminator.mode, gan.loop.penalty) == expected[name]
        sn = {v.path.rsplit("/", 1)[0] for v in gan.discriminator.critic.weights if "sn_u" in v.path}
        assert len(sn) >= 4  # spectral-norm layers, each with its power-iteration vector


def test_sn_needs_a_critic_builder_that_gives_spectral_norm():
    plain = models.build_critic("dcgan.32", width=0.0625)
    with pytest.raises(errors.ConfigError, match="has no spectral-norm layers"):
        train_lib._build_critic(lambda **kw: plain, True, {})
    with pytest.raises(errors.ConfigError, match=r"calls critic_fn\(spectral_norm=True\)"):
        train_lib._build_critic(lambda: plain, True, {})
    assert train_lib._build_critic(lambda: plain, False, {}) is plain


# (gin file, arch family, Adam betas, lr D / G): the table, as the optimizers must receive it.
OPTIMIZER_ROWS = [
    ("quickstart.gin", "dcgan", (0.0, 0.9), (2e-4, 2e-4)),
    ("cifar_resnet.gin", "resnet", (0.0, 0.9), (4e-4, 2e-4)),
    ("cifar_biggan.gin", "biggan", (0.0, 0.999), (2e-4, 1e-4)),
]


@pytest.mark.parametrize("name, arch, betas, lrs", OPTIMIZER_ROWS)
def test_gin_bindings_reach_the_optimizers(name, arch, betas, lrs, tmp_path):
    small = [
        f"{arch}.generator.width=0.0625",
        f"{arch}.critic.width=0.0625",
        "train_and_evaluate.dataset_fn=@data.digits",
    ]
    train.parse_gin([name], small)
    gan = train_lib.build_gan(train_lib.settings())
    for opt, lr in zip((gan.d_optimizer, gan.g_optimizer), lrs):
        assert isinstance(opt, optimizers.Adam)  # torch's arithmetic
        assert (opt.beta_1, opt.beta_2, opt.epsilon) == (*betas, 1e-8)
        assert float(opt.learning_rate) == pytest.approx(lr)


def test_gin_binding_reaches_the_default_inception_loader(tmp_path):
    train.parse_gin(["cifar_cnn.gin"], ["inception.load_inception.path='/nonexistent/inception'"])
    exp = train_lib.build(train_lib.settings(), str(tmp_path))
    with pytest.raises(inception.InceptionError, match="/nonexistent/inception"):
        evaluator.for_run(exp.config, exp.workdir)


def _train(workdir, total, extra=()):
    params = [
        f"train_and_evaluate.total_steps={total}",
        "train_and_evaluate.log_every=2",
        "train_and_evaluate.save_every=2",
        "train_and_evaluate.sample_every=2",
        "dcgan.generator.width=0.0625",
        "dcgan.critic.width=0.0625",
        "train_and_evaluate.batch_size_D=8",
        "train_and_evaluate.batch_size_G=8",
        *extra,
    ]
    gin.clear_config()
    train.parse_gin(["quickstart.gin"], params)
    return train_lib.train_and_evaluate(str(workdir)).gan


@pytest.mark.parametrize("penalty", [None, "gp1"])
def test_resumed_run_matches_uninterrupted(tmp_path, penalty):
    """gp1: the interpolation weights are drawn from (seed, step) too, so a resumed run draws the same."""
    tf.config.experimental.enable_op_determinism()
    extra = ["train_and_evaluate.n_dis=2", "train_and_evaluate.cr=1.0"]
    if penalty:
        extra += [f"train_and_evaluate.penalty='{penalty}'", "train_and_evaluate.normalization='none'"]
    full = _train(tmp_path / "full", 4, extra)
    _train(tmp_path / "resumed", 2, extra)
    resumed = _train(tmp_path / "resumed", 4, extra)
    assert int(resumed.step.numpy()) == 4
    for model in ("generator", "ema_generator"):
        for a, b in zip(getattr(full, model).weights, getattr(resumed, model).weights):
            np.testing.assert_array_equal(a.numpy(), b.numpy())
    for a, b in zip(full.discriminator.weights, resumed.discriminator.weights):
        np.testing.assert_array_equal(a.numpy(), b.numpy())
    assert sorted(os.listdir(tmp_path / "resumed" / "checkpoints")) == sorted(
        os.listdir(tmp_path / "full" / "checkpoints")
    )


def _cli(args, cwd=ROOT):
    env = {**os.environ, "TF_CPP_MIN_LOG_LEVEL": "3"}
    return subprocess.run(
        [sys.executable, "-m", "pgn_tf.train", *args], capture_output=True, text=True, cwd=cwd, env=env, check=False
    )


@pytest.mark.subprocess
def test_cli_trains_writes_everything_and_resumes(tmp_path):
    wd = tmp_path / "wd"
    common = ["--gin_file=gin_configs/quickstart.gin", f"--workdir={wd}", "--gin_param=dcgan.generator.width=0.0625",
              "--gin_param=dcgan.critic.width=0.0625", "--gin_param=train_and_evaluate.log_every=2",
              "--gin_param=train_and_evaluate.sample_every=2", "--gin_param=train_and_evaluate.save_every=2"]  # fmt: skip
    first = _cli([*common, "--gin_param=train_and_evaluate.total_steps=2"])
    assert first.returncode == 0, first.stderr
    assert "step 2/2" in first.stdout and "steps/s" in first.stdout and "ETA" in first.stdout
    evals = ["--gin_param=train_and_evaluate.eval_every=4", "--gin_param=train_and_evaluate.num_images=20"]
    second = _cli([*common, "--gin_param=train_and_evaluate.total_steps=4", *evals])
    assert second.returncode == 0, second.stderr
    assert "Resuming from" in second.stdout and "at step 2" in second.stdout and "step 4/4" in second.stdout
    assert "eval step 4 (digits_classifier, 20 images)" in second.stdout  # the quickstart's offline scores
    scores = json.loads((wd / "eval.jsonl").read_text())
    assert scores["step"] == 4 and scores["feature_net"] == "digits_classifier" and scores["FID_ema"] > 0
    # which trained classifier counted them: the one in the cache the run was given
    assert scores["feature_net_fingerprint"] == digits_classifier.load_digits_classifier().fingerprint
    text = (wd / "operative_config.gin").read_text()
    assert "train_and_evaluate.total_steps = 2" in text and "dcgan.generator.width = 0.0625" in text
    assert (wd / "operative_config.3.gin").exists()  # the resumed run's differing config, beside the first
    assert {"sample_0000002.png", "sample_ema_0000004.png"} <= set(os.listdir(wd / "samples"))
    assert tf.io.decode_png(tf.io.read_file(str(wd / "samples" / "sample_ema_0000004.png"))).shape[-1] == 3
    tags = set()
    for event_file in glob.glob(str(wd / "events.out.tfevents.*")):
        for event in tf.compat.v1.train.summary_iterator(event_file):
            tags |= {v.tag for v in event.summary.value}
    assert {"train/d_loss", "train/g_loss", "train/cr_loss", "pgn/f_hat_mean", "pgn/grad_norm_max", "lr/D", "lr/G",
            "sample", "sample_ema",
            "operative_config", "eval_digits_classifier/FID", "eval_digits_classifier/IS_ema", "train/penalty",
            "lipschitz/real_mean", "lipschitz/fake_max", "lipschitz/interp_mean"} <= tags  # fmt: skip
    assert tf.train.latest_checkpoint(str(wd / "checkpoints")).endswith("ckpt-4")


@pytest.mark.subprocess
@pytest.mark.parametrize("overlay", ["sn", "gp1"])
def test_cli_trains_the_quickstart_with_a_baseline_overlay(overlay, tmp_path):
    wd = tmp_path / overlay
    proc = _cli(["--gin_file=gin_configs/quickstart.gin", f"--gin_file=gin_configs/baselines/{overlay}.gin",
                 f"--workdir={wd}", "--gin_param=dcgan.generator.width=0.0625", "--gin_param=dcgan.critic.width=0.0625",
                 "--gin_param=train_and_evaluate.total_steps=2", "--gin_param=train_and_evaluate.log_every=1"])  # fmt: skip
    assert proc.returncode == 0, proc.stderr[-2000:]
    assert "step 2/2" in proc.stdout and ("penalty" in proc.stdout) == (overlay == "gp1")
    config = (wd / "operative_config.gin").read_text()
    assert f"train_and_evaluate.normalization = '{'sn' if overlay == 'sn' else 'none'}'" in config
    values = {}
    for event_file in glob.glob(str(wd / "events.out.tfevents.*")):
        for event in tf.compat.v1.train.summary_iterator(event_file):
            for v in event.summary.value:
                if v.tag.startswith("lipschitz/"):
                    values.setdefault(v.tag, []).append(float(tf.make_ndarray(v.tensor)))
    assert sorted(values) == sorted(f"lipschitz/{a}_{b}" for a in ("real", "fake", "interp") for b in ("mean", "max"))
    assert all(len(v) == 2 and all(np.isfinite(v)) and min(v) > 0 for v in values.values())
    reader = tf.train.load_checkpoint(str(wd / "checkpoints" / "ckpt-2"))
    assert any("sn_u" in name for name in reader.get_variable_to_shape_map()) == (overlay == "sn")  # u is kept


BAD_INPUTS = {
    "missing gin file": (["--gin_file=nope.gin"], "gin file nope.gin does not exist"),
    "typo in binding": (["--gin_param=train_and_evaluate.total_step=5"], "doesn't have a parameter named 'total_step'"),
    "unknown dataset": (["--gin_param=train_and_evaluate.dataset_fn=@data.cifar11"], "'@data.cifar11'"),
    "unknown architecture": (["--gin_param=train_and_evaluate.generator_fn=@resnet.generatr"], "@resnet.generatr"),
    "unknown loss": (["--gin_param=train_and_evaluate.loss_fn=@losses.hing"], "@losses.hing"),
    "zero batch": (["--gin_param=train_and_evaluate.batch_size_D=0"], "batch_size_D must be an integer >= 1, got 0"),
    "zero n_dis": (["--gin_param=train_and_evaluate.n_dis=-1"], "n_dis must be an integer >= 1, got -1"),
    "unknown normalization": (["--gin_param=train_and_evaluate.normalization='spectral'"], "normalization must be"),
    "unknown penalty": (["--gin_param=train_and_evaluate.penalty='gp2'"], "penalty must be one of (None, "),
    "negative penalty weight": (["--gin_param=train_and_evaluate.penalty_weight=-1"], "penalty_weight must be"),
    "bad pgn constant": (
        ["--gin_param=train_and_evaluate.pgn_constant='half'"],
        'pgn_constant must be a number >= 0 or "unit"',
    ),
    "pgn constant without pgn": (
        ["--gin_param=train_and_evaluate.pgn_constant='unit'", "--gin_param=train_and_evaluate.normalization='gn'"],
        "pgn_constant = 'unit' needs normalization \"pgn\"",
    ),
    "wrong image size": (["--gin_param=data.digits.size=48"], "the dataset gives images of shape (48, 48, 3)"),
    "missing inception": (
        [
            "--gin_param=train_and_evaluate.feature_fn=@inception.load_inception",
            "--gin_param=inception.load_inception.path='/nonexistent'",
        ],
        "no SavedModel (saved_model.pb) in inception path /nonexistent",
    ),
}


@pytest.mark.parametrize("case", sorted(BAD_INPUTS))
def test_bad_input_is_one_line_and_exit_2(case, tmp_path, capsys):
    args, message = BAD_INPUTS[case]
    files = [a.split("=", 1)[1] for a in args if a.startswith("--gin_file=")] or ["quickstart.gin"]
    params = [a.split("=", 1)[1] for a in args if a.startswith("--gin_param=")]
    assert train.run(files, params, str(tmp_path / "wd")) == 2
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 1 and err[0].startswith("error: ") and message in err[0], err


@pytest.mark.subprocess
def test_cli_bad_input_exit_code_and_workdir_problems(tmp_path):
    proc = _cli(["--gin_file=gin_configs/quickstart.gin", "--gin_param=train_and_evaluate.total_step=5"])
    assert proc.returncode == 2 and "Traceback" not in proc.stderr
    assert proc.stderr.strip().splitlines()[-1].startswith("error: bad gin config")
    blocker = tmp_path / "file"
    blocker.write_text("x")
    assert train.run(["quickstart.gin"], [], str(blocker / "wd")) == 2


def test_corrupt_checkpoint_is_reported_and_kept(tmp_path, capsys):
    wd = tmp_path / "wd"
    _train(wd, 2)
    index = glob.glob(str(wd / "checkpoints" / "ckpt-2.index"))[0]
    with open(index, "wb") as f:
        f.write(b"not a checkpoint")
    before = sorted(os.listdir(wd / "checkpoints"))
    gin.clear_config()
    code = train.run(["quickstart.gin"], ["train_and_evaluate.total_steps=4", "dcgan.generator.width=0.0625",
                                          "dcgan.critic.width=0.0625"], str(wd))  # fmt: skip
    assert code == 2
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 1 and "cannot restore checkpoint" in err[0] and "ckpt-2" in err[0], err
    assert sorted(os.listdir(wd / "checkpoints")) == before
    assert Path(index).read_bytes() == b"not a checkpoint"


def test_tfds_datasets_through_mock_data():
    import tensorflow_datasets as tfds

    with tfds.testing.mock_data(num_examples=70):
        x, y = next(iter(data.cifar10(batch_size=16, seed=1)))
        assert x.shape == (16, 32, 32, 3) and y.shape == (16,)
        assert float(tf.reduce_min(x)) >= -1.0 and float(tf.reduce_max(x)) <= 1.0
        x, _ = next(iter(data.stl10(batch_size=8)))
        assert x.shape == (8, 48, 48, 3)


def test_unprepared_tfds_fails_fast_with_the_fix(tmp_path, monkeypatch):
    monkeypatch.setattr(data, "host_reachable", lambda host, timeout=10.0: False)  # offline, no lookup made
    with pytest.raises(data.DataError, match=r"cifar10 is not prepared in .*tfds build cifar10"):
        data.cifar10(batch_size=8, data_dir=str(tmp_path))
    with pytest.raises(data.DataError, match=r"manual download into .*downloads/manual.*data1024x1024.tar"):
        data.celeb_a_hq(batch_size=8, resolution=128, data_dir=str(tmp_path))
    with pytest.raises(data.DataError, match="resolution must be 128 or 256"):
        data.celeb_a_hq(batch_size=8, resolution=64)


def test_digits_order_is_resumable():
    a = iter(data.digits(batch_size=32, seed=4))
    batches = [next(a) for _ in range(4)]
    b = next(iter(data.digits(batch_size=32, seed=4, start_step=3)))
    np.testing.assert_array_equal(b[0].numpy(), batches[3][0].numpy())
    assert batches[0][0].shape == (32, 32, 32, 3)
    with pytest.raises(data.DataError, match="fewer than one batch"):
        data.digits(batch_size=5000)


@pytest.mark.subprocess
def test_the_console_holds_only_our_lines(tmp_path):
    """No TensorFlow start-up lines, grappler errors or Keras warnings: a header, progress, where things are."""
    env = {k: v for k, v in os.environ.items() if k != "TF_CPP_MIN_LOG_LEVEL"}
    args = ["--gin_file=gin_configs/quickstart.gin", f"--workdir={tmp_path / 'wd'}", "--gin_param=dcgan.generator.width=0.0625",
            "--gin_param=dcgan.critic.width=0.0625", "--gin_param=train_and_evaluate.total_steps=2",
            "--gin_param=train_and_evaluate.log_every=1"]  # fmt: skip
    proc = subprocess.run(
        [sys.executable, "-m", "pgn_tf.train", *args], capture_output=True, text=True, cwd=ROOT, env=env, check=False
    )
    assert proc.returncode == 0 and proc.stderr == "", proc.stderr[-3000:]
    lines = proc.stdout.strip().splitlines()
    assert lines[0].startswith("pgn_tf.train: quickstart.gin (+4 bindings) | workdir ") and lines[0].endswith(
        "strategy default (1 replica) | float32"
    )
    assert [line.split()[1] for line in lines[1:3]] == ["1/2", "2/2"]
    assert lines[3].startswith("done at step 2: ") and f"tensorboard --logdir {tmp_path / 'wd'}" in lines[4]
    assert lines[5].strip() == f"serve G:   python -m pgn_tf.export --workdir={tmp_path / 'wd'}" and len(lines) == 7
    verbose = subprocess.run(
        [sys.executable, "-m", "pgn_tf.train", *args, "--verbose"], capture_output=True, text=True, cwd=ROOT, env=env,
        check=False,
    )  # fmt: skip
    assert verbose.returncode == 0 and "Already trained to step 2" in verbose.stdout


@pytest.mark.parametrize("precision", ["mixed_bfloat16", "mixed_float16"])
def test_mixed_precision_trains_with_float32_variables_and_pgn_math(precision, tmp_path):
    gan = _train(tmp_path / "wd", 2, [f"train_and_evaluate.precision='{precision}'"])
    half = precision.split("_")[1]
    assert gan.generator.compute_dtype == half and gan.discriminator.critic.compute_dtype == half
    assert gan.discriminator.compute_dtype == "float32"  # PGN's gradient, norm and division
    assert {v.dtype for v in gan.generator.weights + gan.discriminator.weights} == {"float32"}
    assert isinstance(gan.d_optimizer, keras.optimizers.LossScaleOptimizer) == (precision == "mixed_float16")
    out = gan.discriminator.normalize(gan.generate(tf.random.normal((4, 128))))
    assert out.f_hat.dtype == tf.float32 and out.grad_norm.dtype == tf.float32
    assert np.isfinite(out.f_hat.numpy()).all()
    ckpt = tf.train.load_checkpoint(str(tmp_path / "wd" / "checkpoints" / "ckpt-2"))
    floats = [n for n, d in ckpt.get_variable_to_dtype_map().items() if d.is_floating and "best_metric" not in n]
    assert floats and all(np.isfinite(ckpt.get_tensor(n)).all() for n in floats)
    # float32 resumes a bfloat16 run (the same variables); a float16 run's loss scale says why it cannot.
    if precision == "mixed_bfloat16":
        assert int(_train(tmp_path / "wd", 4).step.numpy()) == 4
    else:
        before = sorted(os.listdir(tmp_path / "wd" / "checkpoints"))
        with pytest.raises(errors.CheckpointError, match="written by a mixed_float16 run .* loss scale"):
            _train(tmp_path / "wd", 4)
        assert sorted(os.listdir(tmp_path / "wd" / "checkpoints")) == before


def test_a_mixed_bfloat16_critic_gives_pgn_close_to_float32():
    critic32 = models.dcgan.critic(width=0.25)
    keras.config.set_dtype_policy("mixed_bfloat16")
    critic16 = models.dcgan.critic(width=0.25)
    keras.config.set_dtype_policy("float32")
    critic16.set_weights(critic32.get_weights())
    x = tf.random.uniform((8, 32, 32, 3), -1, 1)
    want = PGNDiscriminator(critic32).normalize(x)
    got = PGNDiscriminator(critic16).normalize(x)
    assert got.f_hat.dtype == tf.float32
    np.testing.assert_allclose(got.grad_norm, want.grad_norm, rtol=2e-2)
    np.testing.assert_allclose(got.f_hat, want.f_hat, atol=2e-2 * float(np.abs(want.f_hat).max()))
    assert not np.allclose(got.f, want.f, rtol=1e-6, atol=0)  # the critic did run in bfloat16
