"""Evaluation: TF-GAN metrics against numpy/scipy, Inception loading (fake SavedModel), digits classifier, CLI."""

import contextlib
import glob
import json
import os
import subprocess
import sys
import time

import gin
import numpy as np
import pytest
import scipy.linalg
import tensorflow as tf
from conftest import ROOT, TINY_QUICKSTART, load_tool, make_fake_inception

from pgn_tf import callbacks, data, evaluate
from pgn_tf.config import LoopConfig
from pgn_tf.eval import digits_classifier, diversity, evaluator, features, inception, metrics, stats


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


_radii = diversity.knn_radii  # the real one, for the fakes while it is patched


def test_reference_caches_the_real_radii_and_old_files_still_load(tmp_path, monkeypatch):
    rng = np.random.default_rng(7)
    pool = rng.normal(size=(300, 6)).astype(np.float32)
    ref = stats.Reference.from_activations(pool, "inception", kid_images=120)
    assert sorted(ref.radii) == [3, 5]
    ref.save(str(tmp_path / "r.npz"))
    back = stats.Reference.load(str(tmp_path / "r.npz"))
    for k in (3, 5):  # the cached radii are the radii of the kept activations
        np.testing.assert_array_equal(back.radii[k], diversity.knn_radii(back.activations, k))
    fake_logits, fake_pool = rng.normal(size=(200, 10)), rng.normal(size=(200, 6)).astype(np.float32) + 0.5
    with monkeypatch.context() as m:  # an evaluation against a new reference never measures the real radii again
        m.setattr(
            diversity, "knn_radii", lambda x, k, c=0: pytest.fail("recomputed") if len(x) == 120 else _radii(x, k)
        )
        cached = back.scores(fake_logits, fake_pool)
    assert set(stats.DIVERSITY) <= cached.keys() and "omitted" not in cached
    assert cached["recall"] == diversity.scores(back.activations, fake_pool)["recall"]
    # Made before radii were stored: computed once from its activations, the same numbers.
    np.savez(tmp_path / "old.npz", mu=ref.mu, sigma=ref.sigma, activations=ref.activations)
    old = stats.Reference.load(str(tmp_path / "old.npz"))
    assert old.radii == {}
    assert {k: v for k, v in old.scores(fake_logits, fake_pool).items() if k in stats.DIVERSITY} == {
        k: cached[k] for k in stats.DIVERSITY
    }
    np.testing.assert_array_equal(old.radii[5], back.radii[5])
    # The official layout (mu, sigma only): the k-NN metrics and KID are omitted, each with its reason.
    official = stats.Reference(ref.mu, ref.sigma).scores(fake_logits, fake_pool)
    assert not set(stats.DIVERSITY) & official.keys() and "KID" not in official
    assert sorted(official["omitted"]) == ["KID", *sorted(stats.DIVERSITY)]
    assert "compute_fid_stats" in official["omitted"]["recall"]
    few = stats.Reference.from_activations(pool[:5], kid_images=5)  # too few reals for k = 5, enough for k = 3
    assert sorted(few.radii) == [3] and sorted(few.omitted()) == ["coverage", "density"]
    np.savez(tmp_path / "bad_radii.npz", mu=ref.mu, sigma=ref.sigma, activations=ref.activations, knn_radii_k3=[1.0])
    with pytest.raises(stats.StatsError, match="k-NN radii"):
        stats.Reference.load(str(tmp_path / "bad_radii.npz"))


class _FakeGAN:
    z_dim, num_classes, conditional = 48, 1, False

    def generate(self, z, y, ema):
        return tf.reshape(tf.tanh(tf.constant(z) + (0.5 if ema else 0.0)), (-1, 4, 4, 3))


def _net():
    return features.FeatureNet("fake_net", lambda x: {"logits": tf.reshape(x, (-1, 48))[:, :10], "pool_3": x}, 4)


def test_evaluator_selects_metrics_and_scores_diversity():
    real = np.tanh(np.random.default_rng(8).normal(size=(80, 4, 4, 3))).astype(np.float32)
    ref = evaluator.reference_from_dataset(
        _net(), tf.data.Dataset.from_tensor_slices((real, np.zeros(80))).batch(16), 80
    )
    assert sorted(ref.radii) == [3, 5]  # what train_lib and tools/compute_fid_stats.py save
    full = evaluator.Evaluator(_net(), ref, 60, 16, diversity_images=50)(_FakeGAN(), ema=False)
    assert set(stats.METRICS) <= full.keys() and full["diversity_images"] == 50 and "omitted" not in full
    assert all(0 <= full[m] <= 1 for m in ("precision", "recall", "coverage"))
    some = evaluator.Evaluator(_net(), ref, 60, 16, metrics=("FID", "recall"))
    assert some.available() == ("FID", "recall")
    got = some(_FakeGAN(), ema=False)
    assert sorted(k for k, v in got.items() if isinstance(v, float)) == ["FID", "recall"]
    assert got["FID"] == full["FID"] and got["recall"] != full["recall"]  # 60 fakes instead of 50
    assert "IS" not in evaluator.Evaluator(_net(), ref, 60, 16, metrics="FID")(_FakeGAN(), True)
    with pytest.raises(ValueError, match="metrics must be"):
        evaluator.Evaluator(_net(), ref, 60, 16, metrics=("FID", "fid"))
    official = evaluator.Evaluator(_net(), stats.Reference(ref.mu, ref.sigma), 60, 16)
    assert official.available() == ("IS", "FID") and "compute_fid_stats" in official.omitted()["coverage"]


def test_best_by_names_and_directions():
    assert set(stats.METRICS) < set(evaluator.BEST_BY) and "recall_ema" in evaluator.BEST_BY
    assert [evaluator.direction(n) for n in ("FID", "KID_ema", "IS", "precision", "recall_ema", "density")] == [
        "min", "min", "max", "max", "max", "max",
    ]  # fmt: skip
    for bad in ("fid", "IS_std", "recall_ema_ema"):
        with pytest.raises(ValueError, match="best_by must be one of"):
            evaluator.direction(bad)


def test_described_names_the_trained_classifier_by_its_fingerprint():
    """An evaluation line says which weights scored it when the feature net is a trained classifier, and only then."""
    trained = type("Net", (), {"name": "digits_classifier", "fingerprint": "47cc6542ac7c"})
    inception = type("Net", (), {"name": "inception"})
    scorer = type("Scorer", (), {"num_images": 8, "described": evaluator.Evaluator.described})
    scorer.feature_net = trained
    assert scorer().described() == {
        "num_images": 8,
        "feature_net": "digits_classifier",
        "feature_net_fingerprint": "47cc6542ac7c",
    }
    scorer.feature_net = inception
    assert scorer().described() == {"num_images": 8, "feature_net": "inception"}


class _ScriptedScorer:
    """An evaluator whose scores are given per step: {step: {name: value}} (EMA-G's are G's + 0.01)."""

    num_images = 10
    feature_net = type("Net", (), {"name": "fake_net"})
    described = evaluator.Evaluator.described

    def __init__(self, script, available=stats.METRICS):
        self.script, self._available, self.step = script, available, None

    def available(self):
        return self._available

    def omitted(self):
        return {m: "the reference keeps no real activations" for m in stats.METRICS if m not in self._available}

    def __call__(self, gan, ema):
        return {k: v + 0.01 * ema for k, v in self.script[int(gan.step.numpy())].items()}


class _FakeModel:
    def __init__(self):
        self.step = tf.Variable(0, dtype=tf.int64)

    @contextlib.contextmanager
    def statistics_kept(self):
        yield


@pytest.mark.parametrize("best_by, kept", [("recall", [1, 3]), ("FID", [1, 2]), ("coverage_ema", [1, 4])])
def test_evaluate_callback_keeps_the_best_checkpoint_in_each_direction(best_by, kept, tmp_path):
    script = {
        1: {"FID": 30.0, "recall": 0.2, "coverage": 0.1},
        2: {"FID": 20.0, "recall": 0.1, "coverage": 0.1},
        3: {"FID": 25.0, "recall": 0.6, "coverage": 0.05},
        4: {"FID": 40.0, "recall": 0.5, "coverage": 0.7},
    }
    saved, best = [], tf.Variable(np.inf, dtype=tf.float64)
    writer = tf.summary.create_file_writer(str(tmp_path))
    cb = callbacks.Evaluate(
        _ScriptedScorer(script), 1, writer, str(tmp_path), lambda m, s: saved.append(s), "best", best, best_by
    )
    model = _FakeModel()
    cb.set_model(model)
    for step in script:
        model.step.assign(step)
        cb.on_train_batch_end(0)
    assert saved == kept
    value = script[kept[-1]][best_by.removesuffix("_ema")] + 0.01 * best_by.endswith("_ema")
    assert float(best.numpy()) == pytest.approx(value if best_by == "FID" else -value)  # oriented: lower is better
    lines = [json.loads(line) for line in (tmp_path / "eval.jsonl").read_text().splitlines()]
    assert [e["recall"] for e in lines] == [0.2, 0.1, 0.6, 0.5] and lines[0]["coverage_ema"] == pytest.approx(0.11)
    tags = set()
    for event_file in glob.glob(str(tmp_path / "events.out.tfevents.*")):
        for event in tf.compat.v1.train.summary_iterator(event_file):
            tags |= {v.tag for v in event.summary.value}
    assert {"eval_fake_net/recall", "eval_fake_net/coverage_ema", "eval_fake_net/FID"} <= tags


def test_evaluate_callback_refuses_a_best_by_it_cannot_keep(tmp_path):
    writer = tf.summary.create_file_writer(str(tmp_path))
    args = (1, writer, str(tmp_path), None, "best", tf.Variable(np.inf, dtype=tf.float64))
    with pytest.raises(ValueError, match="best_by must be one of"):
        callbacks.Evaluate(_ScriptedScorer({}), *args, best_by="Recall")
    with pytest.raises(stats.StatsError, match="recall is not computed .the reference keeps no real activations"):
        callbacks.Evaluate(_ScriptedScorer({}, available=("IS", "FID")), *args, best_by="recall_ema")


def test_digits_classifier_is_accurate_cached_and_separates(tmp_path):
    net = digits_classifier.load_digits_classifier(str(tmp_path))  # trained here: the tests' cache has the shipped one
    assert os.listdir(tmp_path) == [f"digits_classifier_v{digits_classifier.VERSION}_seed0.weights.h5"]
    images, labels = data.digits_arrays(32)
    x = images.astype(np.float32) / 127.5 - 1.0
    held = slice(-digits_classifier.HOLDOUT, None)
    assert digits_classifier.accuracy(net.model, x[held], labels[held]) > 0.9
    again = digits_classifier.load_digits_classifier(str(tmp_path))  # from the cache: the same network
    np.testing.assert_array_equal(again(x[:50])[1], net(x[:50])[1])
    assert digits_classifier.load_digits_classifier().fingerprint == "47cc6542ac7c"  # the tests score with E3's
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


@pytest.mark.subprocess
def test_training_evaluates_keeps_best_and_evaluate_cli(tmp_path, fake_inception, capsys):
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
        assert all(0 <= e[f"{m}{s}"] <= 1 for m in ("precision", "recall", "coverage") for s in ("", "_ema"))
        assert e["density"] >= 0 and e["diversity_images"] == 20 and "omitted" not in e
    assert sorted(stats.Reference.load(os.path.join(wd, "fid_stats.inception.npz")).radii) == [3, 5]
    best_step = min(lines, key=lambda e: e["FID"])["step"]
    assert os.path.isfile(os.path.join(wd, "checkpoints", "best", f"ckpt-{best_step}.index"))
    assert "eval step 2 (inception, 20 images)" in r.stdout

    # The best checkpoint's EMA-G, its samples saved: one evaluate run (a process each costs ~20 s here).
    saved = tmp_path / "samples_ema"
    r = _cli("pgn_tf.evaluate", f"--workdir={wd}", "--checkpoint=best", "--ema", "--num_images=20",
             f"--save_images={saved}")  # fmt: skip
    assert r.returncode == 0, r.stderr
    out = json.loads(r.stdout.strip().splitlines()[-1])
    assert out["step"] == best_step and out["num_images"] == 20 and out["feature_net"] == "inception"
    best = next(e for e in lines if e["step"] == best_step)
    assert out["FID"] == pytest.approx(best["FID_ema"], rel=1e-4) and out["images"] == str(saved)  # same latents
    for m in stats.DIVERSITY:  # rounding may move at most one of the 20 samples across a ball's edge
        assert out[m] == pytest.approx(best[f"{m}_ema"], abs=1 / 20 + 1e-9), m
    pngs = sorted(os.listdir(saved))  # the scored samples, for other tools
    assert pngs[0] == "000000.png" and len(pngs) == 20
    assert tf.io.decode_png(tf.io.read_file(str(saved / pngs[-1]))).shape == (32, 32, 3)
    # Bad input: one error line and exit 2; the program once, the rest through evaluate.run (what it calls).
    r = _cli("pgn_tf.evaluate", f"--workdir={wd}", "--num_images=20", "--checkpoint=nope")
    errors = [line for line in r.stderr.splitlines() if line.startswith("error:")]
    assert r.returncode == 2 and len(errors) == 1 and "checkpoint nope does not exist" in errors[0], r.stderr
    assert "Traceback" not in r.stderr
    for bad, needle in (
        ({"save_images": str(saved)}, "exists already"),
        ({"save_images": "/nonexistent/samples"}, "parent folder does not exist or is not writable"),
        ({"workdir": f"{tmp_path}/missing"}, "does not exist"),
        ({"fid_stats": "/nonexistent.npz"}, "cannot read FID statistics"),
    ):  # a missing --inception_path: test_train and the inception tests above
        gin.clear_config()
        assert evaluate.run(**{"workdir": wd, "num_images": 20, **bad}) == 2, bad
        out, err = capsys.readouterr()
        errors = err.strip().splitlines()
        assert len(errors) == 1 and errors[0].startswith("error: ") and needle in errors[0] and out == "", err
    gin.clear_config()


def _coarse_features():
    """3x3 area-pooled grey levels, centred and scaled per image: a space where digits and a new G's samples overlap."""

    def fn(images):
        pool = tf.reshape(tf.reduce_mean(tf.image.resize(images, (3, 3), method="area"), axis=-1), (-1, 9))
        pool -= tf.reduce_mean(pool, axis=1, keepdims=True)
        pool /= tf.sqrt(tf.reduce_sum(tf.square(pool), axis=1, keepdims=True) + 1e-12)
        return {"logits": 3.0 * pool, "pool_3": pool}

    return features.FeatureNet("coarse", fn, 9)


def test_training_keeps_the_checkpoint_with_the_highest_recall(tmp_path):
    from pgn_tf import train, train_lib

    wd = str(tmp_path / "run")
    params = [
        "train_and_evaluate.total_steps=10", "train_and_evaluate.eval_every=2", "train_and_evaluate.num_images=100",
        "train_and_evaluate.log_every=10", "train_and_evaluate.sample_every=10", "train_and_evaluate.save_every=10",
        "train_and_evaluate.batch_size_D=8", "train_and_evaluate.batch_size_G=20", "train_and_evaluate.best_by='recall'",
        "dcgan.generator.width=0.0625", "dcgan.critic.width=0.0625",
        "train_and_evaluate.lr_D=0.01", "train_and_evaluate.lr_G=0.01",  # G's samples change between evaluations
    ]  # fmt: skip
    gin.clear_config()
    try:
        train.parse_gin(["quickstart.gin"], params)
        with gin.unlock_config():
            gin.bind_parameter("train_and_evaluate.feature_fn", _coarse_features)
        train_lib.train_and_evaluate(wd)
    finally:
        gin.clear_config()
    with open(os.path.join(wd, "eval.jsonl")) as f:
        lines = [json.loads(line) for line in f]
    shown = [(e["step"], e["recall"], e["FID"]) for e in lines]
    assert [e["step"] for e in lines] == [2, 4, 6, 8, 10] and len({e["recall"] for e in lines}) > 2, shown
    best = max(lines, key=lambda e: e["recall"])  # the first of equal recalls: only a rise replaces it
    assert best["step"] != min(lines, key=lambda e: e["FID"])["step"], shown  # so best_by="FID" would keep another
    path = tf.train.latest_checkpoint(os.path.join(wd, "checkpoints", "best"))
    assert path.endswith(f"ckpt-{best['step']}"), shown
    # The checkpoint's best_metric is the score oriented so lower is better: minus the recall.
    assert tf.train.load_checkpoint(path).get_tensor("best_metric/.ATTRIBUTES/VARIABLE_VALUE") == -best["recall"]


@pytest.mark.subprocess
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


@pytest.mark.subprocess
def test_plot_critic_reads_a_runs_events_and_its_input_size(tmp_path):
    tool = load_tool("plot_critic")
    writer = tf.summary.create_file_writer(str(tmp_path))
    with writer.as_default():
        for step in (10, 20):
            tf.summary.scalar("pgn/grad_norm_mean", 55.0 + step, step=step)
            tf.summary.scalar("critic/accuracy", 0.5, step=step)
            tf.summary.scalar("train/unrelated", 1.0, step=step)
    writer.close()
    (tmp_path / "operative_config.gin").write_text("SIZE = 32\ndcgan.critic.size = %SIZE\n")
    scalars = tool.read_scalars(str(tmp_path))
    assert scalars["pgn/grad_norm_mean"] == {10: 65.0, 20: 75.0} and "train/unrelated" not in scalars
    assert tool.input_dim(str(tmp_path)) == 32 * 32 * 3
    tool.plot({"a": scalars, "b": scalars}, 3072, str(tmp_path / "critic.png"), "t")
    assert tf.io.decode_png(tf.io.read_file(str(tmp_path / "critic.png"))).shape[1] > 500
    assert tool.input_dim(str(tmp_path / "no_run")) is None  # no operative config: d unknown, not a traceback
    script = os.path.join(ROOT, "tools", "plot_critic.py")
    r = subprocess.run([sys.executable, script, f"--workdir={tmp_path}", "--out=/nonexistent/critic.png"],
                       check=False, capture_output=True, text=True)  # fmt: skip
    assert r.returncode == 2 and r.stderr.startswith("error: --out") and "Traceback" not in r.stderr, r.stderr


@pytest.mark.subprocess
def test_critic_update_takes_the_steps_critic_update_apart(tmp_path):
    """tools/critic_update.py: its parts rebuild the update the step made, and their sum predicts the change."""
    tool = load_tool("critic_update")
    params = [a.split("=", 1)[1] for a in TINY_QUICKSTART if a.startswith("--gin_param")]
    gin.clear_config()
    try:  # beta_1 = 0.5, not the quickstart's 0: steps 2 and 3 carry momentum over
        config = tool.gin_config([os.path.join(ROOT, "gin_configs", "quickstart.gin")],
                                 [*params, "d/optimizers.Adam.beta_1 = 0.5"])  # fmt: skip
        result = tool.analyse(config, start=1, end=3)
    finally:
        gin.clear_config()
    assert [r["step"] for r in result["steps"]] == [1, 2, 3]
    assert result["checks"]["update_max_relative_error"] < 1e-4  # the rebuilt Adam step is the one applied
    assert result["checks"]["held_max_error"] < 1e-6
    # A benchmark run, interventions included: the held f_hat is the run's f_hat (centred, rescaled).
    # Adam's first step is lr * g / (|g| + 1e-8): an element whose gradient is near 1e-8 (ring8's hidden kernels
    # have some) carries its float32 rounding into the update, 7.5e-4 of the largest seen for pgn_center.
    for method in ("pgn_center", "pgn_ssqrtd", "gn"):
        got = tool.analyse(tool.benchmark_config(f"ring8:{method}:0", 2), start=1, end=2)["checks"]
        assert got["held_max_error"] < 1e-5 and got["update_max_relative_error"] < 5e-3, (method, got)
    with pytest.raises(ValueError, match="SUITE:METHOD:SEED"):
        tool.benchmark_config("ring8:pgn", 2)
    with pytest.raises(ValueError, match="renews G during the run"):
        tool.benchmark_config("ring8:pgn_newg100:0", 2)
    assert tool.unsupported(LoopConfig(augment="translation")).startswith("train_and_evaluate.augment = 'translation';")
    for r in result["steps"]:
        # The largest first-order term of the step: the tiny critic barely tells reals from fakes, so its gap
        # moves by 1e-7 where its shift moves by 1e-4, and the shift's second-order terms are of that size.
        size = max(abs(r[f"{key}_by"][k]) for key in ("shift", "gap") for k in tool.PARTS)
        for key in ("shift", "gap"):
            by = r[f"{key}_by"]
            assert abs(sum(by[k] for k in tool.PARTS) - by["full"]) <= 1e-4 * size
            assert abs(r[f"d_{key}"] - by["full"]) < 0.05 * size, (key, r)  # first order, against the critic after it
        assert abs(by["denominator"]) > 0 and (by["momentum"] == 0) == (r["step"] == 1)
        assert -1 <= r["cos_adam_sgd"] <= 1
    # The probe leaves the run as it was (G's BatchNorm statistics, an SN critic's u): taking steps 1-2 apart
    # does not change what step 3 starts from.
    sn = [os.path.join(ROOT, "gin_configs", f) for f in ("quickstart.gin", "baselines/sn.gin")]
    runs = []
    for start in (1, 3):
        gin.clear_config()
        try:
            runs.append(tool.analyse(tool.gin_config(sn, params), start=start, end=3)["steps"][-1])
        finally:
            gin.clear_config()
    every, last = runs
    assert every["step"] == last["step"] == 3 and every["shift"] == last["shift"] and every["gap"] == last["gap"]
    tool.plot({"a": result, "b": result}, str(tmp_path / "parts.png"))
    assert tf.io.decode_png(tf.io.read_file(str(tmp_path / "parts.png"))).shape[1] > 500
    script = os.path.join(ROOT, "tools", "critic_update.py")
    r = subprocess.run(
        [sys.executable, script, "--gin_file=quickstart.gin", "--gin_param=train_and_evaluate.n_dis=2",
         "--start=1", "--end=2", f"--out={tmp_path / 'u.json'}"],
        check=False, capture_output=True, text=True,
    )  # fmt: skip
    (tmp_path / "bad.json").write_text("not json")
    bad = subprocess.run([sys.executable, script, f"--from_json={tmp_path / 'bad.json'}", f"--png={tmp_path / 'b.png'}"],
                         check=False, capture_output=True, text=True)  # fmt: skip
    assert bad.returncode == 2 and bad.stderr.strip().splitlines()[-1].startswith("error: --from_json"), bad.stderr
    last = r.stderr.strip().splitlines()[-1]  # TensorFlow's own start-up lines come first
    assert r.returncode == 2 and last.startswith("error: train_and_evaluate.n_dis = 2;"), r.stderr
    assert "Traceback" not in r.stderr and not (tmp_path / "u.json").exists()
