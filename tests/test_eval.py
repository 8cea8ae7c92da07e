"""Evaluation: TF-GAN metrics against numpy/scipy, Inception loading (fake SavedModel), digits classifier, CLI."""

import json
import os
import subprocess
import sys
import time

import numpy as np
import pytest
import scipy.linalg
from conftest import ROOT, load_tool, make_fake_inception

from pgn_tf import data
from pgn_tf.eval import digits_classifier, features, inception, metrics, stats


def _softmax(x):
    e = np.exp(x - x.max(axis=1, keepdims=True))
    return e / e.sum(axis=1, keepdims=True)


def test_tfgan_math_imports_without_the_tensorflow_gan_package():
    from pgn_tf.eval.tfgan import classifier_metrics

    assert callable(classifier_metrics.kernel_classifier_distance_and_std_from_activations)
    assert "tensorflow_gan.python.eval.inception_metrics" not in sys.modules  # the part that needs tf.estimator / hub


def test_inception_score_matches_numpy():
    logits = np.random.default_rng(0).normal(size=(1000, 20)) * 3
    splits = []
    for part in np.array_split(logits, 10):
        p = _softmax(part)
        q = p.mean(axis=0)
        splits.append(np.exp(np.mean(np.sum(p * (np.log(p) - np.log(q)), axis=1))))
    mean, std = metrics.inception_score_from_logits(logits)
    np.testing.assert_allclose([mean, std], [np.mean(splits), np.std(splits)], rtol=1e-10)
    # One-hot confident and uniform over classes: IS = number of classes.
    confident = np.eye(20)[np.arange(1000) % 20] * 50
    assert metrics.inception_score_from_logits(confident)[0] == pytest.approx(20, rel=1e-6)
    with pytest.raises(ValueError):
        metrics.inception_score_from_logits(logits[:5])


def test_fid_matches_scipy_and_stats_route():
    rng = np.random.default_rng(1)
    real = rng.normal(size=(500, 16))
    fake = rng.normal(size=(400, 16)) @ rng.normal(size=(16, 16)) * 0.5 + 0.3
    mu1, s1 = real.mean(0), np.cov(real, rowvar=False)
    mu2, s2 = fake.mean(0), np.cov(fake, rowvar=False)
    covmean = scipy.linalg.sqrtm(s1 @ s2).real
    expected = np.sum((mu1 - mu2) ** 2) + np.trace(s1 + s2 - 2 * covmean)
    assert metrics.fid_from_activations(real, fake) == pytest.approx(expected, rel=1e-6)
    assert metrics.fid_from_stats(mu1, s1, mu2, s2) == pytest.approx(expected, rel=1e-6)
    assert metrics.fid_from_activations(real, real) == pytest.approx(0.0, abs=1e-6)
    with pytest.raises(ValueError):
        metrics.fid_from_stats(mu1, s1, mu2[:3], s2[:3, :3])


def test_kid_matches_numpy_unbiased_mmd():
    rng = np.random.default_rng(2)
    real, fake = rng.normal(size=(300, 8)), rng.normal(size=(200, 8)) + 0.5
    k = lambda a, b: (a @ b.T / 8 + 1) ** 3
    m, n = len(real), len(fake)
    krr, kgg, krg = k(real, real), k(fake, fake), k(real, fake)
    expected = (
        (krr.sum() - np.trace(krr)) / (m * (m - 1)) + (kgg.sum() - np.trace(kgg)) / (n * (n - 1)) - 2 * krg.mean()
    )
    kid, std = metrics.kid_from_activations(real, fake)
    assert kid == pytest.approx(expected, rel=1e-8) and np.isnan(std)  # one block: no standard error
    kid_blocks, std = metrics.kid_from_activations(real, fake, max_block_size=50)
    assert 0 < std < abs(kid_blocks) and kid_blocks == pytest.approx(expected, rel=0.5)
    assert metrics.kid_from_activations(real, fake[:100] - 0.5)[0] < kid


def test_fake_inception_loads_resizes_and_streams(fake_inception):
    net = inception.load_inception(path=fake_inception, batch_size=7)
    images = np.random.default_rng(3).uniform(-1, 1, (20, 32, 32, 3)).astype(np.float32)
    logits, pool = net(images)
    assert logits.shape == (20, 1008) and pool.shape == (20, 2048) and logits.dtype == np.float32
    # Batching does not change results; the stream stops at num_images.
    np.testing.assert_allclose(net(images[:7])[1], pool[:7], rtol=1e-5, atol=1e-5)
    _, streamed = net.stream(iter([images[:8], images[8:16], images[16:]]), 12)
    np.testing.assert_allclose(streamed, pool[:12], rtol=1e-5, atol=1e-5)


def test_inception_from_the_tfhub_cache(fake_inception, tmp_path, monkeypatch):
    monkeypatch.setenv("TFHUB_CACHE_DIR", str(tmp_path))
    make_fake_inception(inception.cache_dir())
    monkeypatch.setattr(data, "host_reachable", lambda host, timeout=10.0: pytest.fail("looked up the network"))
    assert inception.load_inception().name == "inception"


def test_missing_inception_offline_fails_at_once(tmp_path, monkeypatch):
    monkeypatch.setenv("TFHUB_CACHE_DIR", str(tmp_path))
    monkeypatch.setattr(inception, "host_reachable", lambda host, timeout=10.0: False)
    t0 = time.perf_counter()
    with pytest.raises(inception.InceptionError) as e:
        inception.load_inception()
    assert time.perf_counter() - t0 < 5
    msg = str(e.value)
    assert (
        "\n" not in msg and inception.INCEPTION_TFHUB in msg and "TFHUB_CACHE_DIR" in msg and "--inception_path" in msg
    )
    with pytest.raises(inception.InceptionError, match="no SavedModel"):
        inception.load_inception(path=str(tmp_path))


def test_reference_roundtrip_and_official_layout(tmp_path):
    pool = np.random.default_rng(4).normal(size=(50, 6)).astype(np.float32)
    ref = stats.Reference.from_activations(pool, "inception", kid_images=20)
    ref.save(str(tmp_path / "r.npz"))
    back = stats.Reference.load(str(tmp_path / "r.npz"))
    np.testing.assert_array_equal(back.mu, ref.mu)
    assert back.activations.shape == (20, 6) and back.feature_net == "inception"
    np.savez(tmp_path / "official.npz", mu=ref.mu, sigma=ref.sigma)  # pytorch_gan_metrics' layout
    official = stats.Reference.load(str(tmp_path / "official.npz"))
    assert official.activations is None and official.feature_net is None
    scores = official.scores(np.random.default_rng(5).normal(size=(50, 10)), pool)
    assert scores["FID"] == pytest.approx(0.0, abs=1e-6) and "KID" not in scores
    (tmp_path / "bad.npz").write_text("not an npz")
    with pytest.raises(stats.StatsError):
        stats.Reference.load(str(tmp_path / "bad.npz"))


def test_digits_classifier_is_accurate_cached_and_separates():
    net = digits_classifier.load_digits_classifier()
    images, labels = data.digits_arrays(32)
    x = images.astype(np.float32) / 127.5 - 1.0
    held = slice(-digits_classifier.HOLDOUT, None)
    assert digits_classifier.accuracy(net.model, x[held], labels[held]) > 0.9
    again = digits_classifier.load_digits_classifier()  # from the cache: the same network
    np.testing.assert_array_equal(again(x[:50])[1], net(x[:50])[1])
    logits, pool = net(x)
    ref = stats.Reference.from_activations(pool[:900], net.name)
    real = ref.scores(logits[900:], pool[900:])
    noise = ref.scores(*net(np.random.default_rng(6).uniform(-1, 1, x[:897].shape).astype(np.float32)))
    assert real["IS"] > 8 and noise["IS"] < 3
    assert real["FID"] * 10 < noise["FID"] and real["KID"] < noise["KID"]


def test_feature_net_mismatch_is_refused():
    from pgn_tf.eval.evaluator import Evaluator

    net = features.FeatureNet("inception", lambda x: {"logits": x[:, 0, 0], "pool_3": x[:, 0, 0]}, 4)
    ref = stats.Reference(np.zeros(3), np.eye(3), feature_net="digits_classifier")
    with pytest.raises(stats.StatsError, match="digits_classifier"):
        Evaluator(net, ref, 10, 5)


def _cli(module, *args):
    return subprocess.run(
        [sys.executable, "-m", module, *args],
        check=False,
        capture_output=True,
        text=True,
        cwd=ROOT,
        env={**os.environ},
        timeout=900,
    )


def test_training_evaluates_keeps_best_and_evaluate_cli(tmp_path, fake_inception):
    wd = str(tmp_path / "run")
    params = [
        "train_and_evaluate.total_steps=4", "train_and_evaluate.eval_every=2", "train_and_evaluate.num_images=20",
        "train_and_evaluate.log_every=2", "train_and_evaluate.batch_size_D=8", "train_and_evaluate.batch_size_G=8",
        "dcgan.generator.width=0.0625", "dcgan.critic.width=0.0625",
        "train_and_evaluate.feature_fn=@inception.load_inception", f"inception.load_inception.path='{fake_inception}'",
    ]  # fmt: skip
    r = _cli(
        "pgn_tf.train",
        "--gin_file=gin_configs/quickstart.gin",
        f"--workdir={wd}",
        *[f"--gin_param={p}" for p in params],
    )
    assert r.returncode == 0, r.stderr
    with open(os.path.join(wd, "eval.jsonl")) as f:
        lines = [json.loads(line) for line in f]
    assert [e["step"] for e in lines] == [2, 4]
    for e in lines:
        assert e["feature_net"] == "inception" and e["num_images"] == 20
        assert all(np.isfinite(e[k]) for k in ("IS", "IS_std", "FID", "KID", "IS_ema", "FID_ema", "KID_ema"))
    assert os.path.isfile(os.path.join(wd, "fid_stats.inception.npz"))
    best_step = min(lines, key=lambda e: e["FID"])["step"]
    assert os.path.isfile(os.path.join(wd, "checkpoints", "best", f"ckpt-{best_step}.index"))
    assert "eval step 2 (inception, 20 images)" in r.stdout

    r = _cli("pgn_tf.evaluate", f"--workdir={wd}", "--checkpoint=best", "--num_images=20")
    assert r.returncode == 0, r.stderr
    out = json.loads(r.stdout.strip().splitlines()[-1])
    assert out["step"] == best_step and out["num_images"] == 20 and out["feature_net"] == "inception"
    assert out["FID"] == pytest.approx(min(e["FID"] for e in lines), rel=1e-4)  # same latents, same weights
    r = _cli("pgn_tf.evaluate", f"--workdir={wd}", "--ema", "--num_images=20")
    assert r.returncode == 0, r.stderr
    assert json.loads(r.stdout.strip().splitlines()[-1])["FID"] == pytest.approx(lines[-1]["FID_ema"], rel=1e-4)
    for bad, needle in (
        (["--checkpoint=nope"], "checkpoint nope does not exist"),
        ([f"--workdir={tmp_path}/missing"], "does not exist"),
        (["--fid_stats=/nonexistent.npz"], "cannot read FID statistics"),
        (["--inception_path=/nonexistent"], "no SavedModel"),
    ):
        args = [f"--workdir={wd}", "--num_images=20", *bad]
        r = _cli("pgn_tf.evaluate", *args)
        errors = [line for line in r.stderr.splitlines() if line.startswith("error:")]
        assert r.returncode == 2 and len(errors) == 1 and needle in errors[0] and "Traceback" not in r.stderr, r.stderr


def test_compute_fid_stats_tool(tmp_path, fake_inception):
    import tensorflow_datasets as tfds

    tool = load_tool("compute_fid_stats")
    with tfds.testing.mock_data(num_examples=30):
        images = data.arrays("cifar10", "test")
        ref = tool.compute("cifar10", "test", str(tmp_path / "c.npz"), inception_path=fake_inception, batch_size=8)
    _, pool = inception.load_inception(path=fake_inception)(images.astype(np.float32) / 127.5 - 1.0)
    back = stats.Reference.load(str(tmp_path / "c.npz"))
    np.testing.assert_allclose(back.mu, pool.mean(0), rtol=1e-4, atol=1e-5)
    np.testing.assert_allclose(back.sigma, ref.sigma)
    assert back.feature_net == "inception" and back.activations.shape == (30, 2048)
    digits_ref = tool.compute("digits", None, str(tmp_path / "d.npz"), kid_images=0)
    assert digits_ref.mu.shape == (64,) and stats.Reference.load(str(tmp_path / "d.npz")).activations is None
    r = subprocess.run(
        [sys.executable, os.path.join(ROOT, "tools", "compute_fid_stats.py"), "--dataset=mnist"],
        check=False, capture_output=True, text=True, cwd=str(tmp_path),
    )  # fmt: skip
    assert r.returncode == 2 and "unknown dataset 'mnist'" in r.stderr
