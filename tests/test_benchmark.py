"""The mode-collapse benchmark: protocol data and models, metrics by hand, the run loop, report and CLI."""

import io
import json
import os
import re
import subprocess
import sys

import gin
import numpy as np
import pytest
import tensorflow as tf
from conftest import ROOT, load_tool

from pgn_tf import train
from pgn_tf.benchmark import __main__ as bench_cli
from pgn_tf.benchmark import metrics, report, run, suites
from pgn_tf.eval import diversity


def test_mixture_means_are_the_protocol():
    ring = suites.ring_means()
    np.testing.assert_allclose(ring[2], [0.0, 2.0], atol=1e-12)
    np.testing.assert_allclose(np.linalg.norm(ring, axis=1), 2.0)
    assert len(ring) == 8 and suites.MIXTURES["ring8"][1] == 0.02
    grid = suites.grid_means()
    assert len(grid) == 25 and set(grid[:, 0]) == {-4.0, -2.0, 0.0, 2.0, 4.0}
    assert suites.MIXTURES["grid25"][1] == 0.05


def test_mixture_metrics_by_hand():
    means = suites.ring_means()
    std = 0.02
    # 6 samples on mode 0, 2 on mode 3 (within 3 std), 2 far from every mean.
    x = np.concatenate([np.tile(means[0] + [0.03, -0.04], (6, 1)), np.tile(means[3] - 0.01, (2, 1)), [[0, 0], [5, 5]]])
    m = metrics.mixture_metrics(x, means, std)
    assert m["modes"] == 2 and m["hq"] == pytest.approx(0.8)
    p = np.array([6, 2]) / 8
    assert m["kl"] == pytest.approx(np.sum(p * np.log(p * 8)))
    assert metrics.mixture_metrics(np.full((3, 2), 9.0), means, std) == {"modes": 0, "hq": 0.0, "kl": None}


def test_kl_and_stacked_metrics_by_hand():
    assert metrics.kl_to_uniform([5, 5, 5, 5]) == pytest.approx(0.0)
    assert metrics.kl_to_uniform([0, 7, 0, 0]) == pytest.approx(np.log(4))
    m = metrics.stacked_metrics([123, 123, 7, 999])
    assert m["modes"] == 3
    p = np.array([2, 1, 1]) / 4
    assert m["kl"] == pytest.approx(np.sum(p * np.log(p * 1000)))


def test_mixture_stream_is_fresh_stateless_and_on_the_modes():
    means, std = suites.MIXTURES["grid25"]
    it = iter(suites.mixture_dataset(means, std, 256, seed=3))
    a, b = next(it), next(it)
    assert not np.array_equal(a[0].numpy(), b[0].numpy())  # fresh samples every step
    resumed = next(iter(suites.mixture_dataset(means, std, 256, seed=3, start_step=1)))
    np.testing.assert_array_equal(resumed[0].numpy(), b[0].numpy())
    x, mode = a[0].numpy(), a[1].numpy()
    assert np.abs(x - means[mode]).max() < 6 * std
    assert len(set(mode)) > 20  # uniform over the 25 modes


def test_stacked_digits_stack_three_independent_digits():
    from pgn_tf import data

    images, labels = data.digits_arrays(32)
    grey = images[..., 0].astype(np.float32) / 127.5 - 1.0
    x, triple = (t.numpy() for t in next(iter(suites.stacked_digits_dataset(16, seed=0))))
    assert x.shape == (16, 32, 32, 3) and x.min() >= -1.0 and x.max() <= 1.0
    for img, t in zip(x, triple):
        for c, digit in enumerate((t // 100, t // 10 % 10, t % 10)):
            match = np.flatnonzero(np.all(np.abs(grey - img[..., c]) < 1e-6, axis=(1, 2)))
            assert len(match) and labels[match[0]] == digit
    assert len(set(triple)) > 10


def test_mlp_models_have_torch_default_init():
    g = suites.mlp_generator()
    for layer in g.layers[1:]:
        bound = 1.0 / np.sqrt(layer.kernel.shape[0])
        for v in (layer.kernel, layer.bias):
            values = v.numpy()
            assert np.abs(values).max() <= bound
            assert values.size < 200 or np.abs(values).max() > 0.9 * bound  # uniform over the whole range
    assert g.output_shape == (None, 2)
    sn = suites.mlp_critic(spectral_norm=True)
    sn_layers = [layer for layer in sn.layers if "SN" in type(layer).__name__]
    assert len(sn_layers) == 4 and np.abs(sn_layers[0].bias.numpy()).max() > 0  # torch's bias init, not zeros
    assert np.abs(sn_layers[1].kernel.numpy()).max() <= 1.0 / 16


@pytest.mark.parametrize("method", run.METHODS)
def test_each_methods_run_config_is_what_gin_reads_from_its_overlay(method):
    gin.clear_config()
    try:
        train.parse_gin([os.path.join("baselines", f"{method}.gin")], [])
        names = ("normalization", "penalty", "penalty_weight")
        want = {name: gin.query_parameter(f"train_and_evaluate.{name}") for name in names if name in gin.config_str()}
        bound = "train_and_evaluate.loss_fn" in gin.config_str()
        loss = gin.query_parameter("train_and_evaluate.loss_fn").selector.split(".")[-1] if bound else "bce"
    finally:
        gin.clear_config()
    config = run.run_config(suites.get("ring8"), method, seed=3, steps=7)
    loop = config.loop
    assert {name: getattr(loop, name) for name in want} == want and config.loss_fn().name == loss
    assert (loop.seed, loop.z_dim, loop.batch_size_D) == (
        3,
        suites.get("ring8").z_dim,
        suites.get("ring8").batch_size_D,
    )
    assert gin.config_str() == ""  # the overlay is gone again


def test_run_writes_results_summary_and_plots_and_resumes(tmp_path, capsys):
    out = str(tmp_path / "bench")
    small = suites.get("ring8")._replace(eval_every=3, num_samples=300)
    rows = run.run([small], ["pgn", "sn", "gp1"], [0, 1], out, steps=6)
    assert len(rows) == 3 * 2 * 2  # two evaluations per run
    assert {(r["method"], r["seed"], r["step"]) for r in rows} >= {("sn", 1, 3), ("gp1", 0, 6)}
    for r in rows:
        assert 0 <= r["modes"] <= 8 and 0.0 <= r["hq"] <= 1.0 and r["seconds"] >= 0
        assert 0.0 <= r["critic"]["accuracy"] <= 1.0 and r["critic"]["f_real_std"] >= 0
        # its commit (12 hex digits, "+dirty" with uncommitted changes), or pgn_tf's version outside a git checkout
        assert re.fullmatch(r"[0-9a-f]{12}(\+dirty)?|pgn_tf \d+\.\d+\.\d+", r["code"]), r["code"]
    # PGN's step has the raw input gradient (its denominator's); the raw critics' (sn, gp1) step has none: None, not 0.
    for r in rows:
        pgn = r["method"] == "pgn"
        assert (r["critic"]["input_grad_norm_mean"] is None, r["critic"]["grad_norm_mean"] is None) == (not pgn,) * 2
        # The probe measures ||grad_x f|| for every method; for a raw critic the loss sees f itself.
        assert r["probe"]["raw_real_mean"] > 0 and r["probe"]["raw_fake_mean"] > 0
        same = np.isclose(r["probe"]["loss_side_real_mean"], r["probe"]["raw_real_mean"], rtol=1e-5)
        assert same == (not pgn), r["probe"]
    assert all(np.isclose(r["critic"]["grad_norm_mean"], np.sqrt(2), rtol=0.05) for r in rows if r["method"] == "pgn")
    printed = capsys.readouterr().out
    assert "ring8 gp1 seed 1 step 6/6 modes" in printed and "ETA" in printed
    assert np.load(os.path.join(out, "samples", "ring8_pgn_seed1.npy")).shape == (300, 2)
    # The same command again: nothing to redo. A run whose last line was lost goes on from its step-3 checkpoint.
    with open(os.path.join(out, "results.jsonl")) as f:
        lines = f.read().splitlines()
    with open(os.path.join(out, "results.jsonl"), "w") as f:
        f.write("\n".join(lines[:-1]) + "\n")
    again = run.run([small], ["pgn", "sn", "gp1"], [0, 1], out, steps=6)
    printed = capsys.readouterr().out
    assert printed.count("step 6/6") == 1 and "step 3/6" not in printed and len(again) == len(rows)
    text = report.summary(again, "python -m pgn_tf.benchmark --suite=ring8")
    assert "## ring8 (8 modes)" in text and "| sn | 2 | 6 |" in text and "±" in text
    paths = report.plots(out, again)
    assert sorted(os.path.basename(p) for p in paths) == ["ring8_critic.png", "ring8_modes.png", "ring8_samples.png"]
    assert all(tf.io.decode_png(tf.io.read_file(p)).shape[0] > 100 for p in paths)


def test_stacked_digits_scores_channels_with_the_digits_classifier(tmp_path):
    small = suites.stacked_digits_suite()._replace(eval_every=2, num_samples=50)
    scorer = run.Scorer(small, seed=0)
    x, triple = (t.numpy() for t in next(iter(suites.stacked_digits_dataset(64, seed=5))))
    triples, features = scorer.classify(x)
    assert np.mean(triples == triple) > 0.8  # real stacks are read back (3 digits at ~97% each)
    assert features.shape[0] == 64 and features.shape[1] % 3 == 0  # three channels' features side by side
    rows = run.run([small], ["pgn"], [0], str(tmp_path), steps=2)
    assert rows[-1]["hq"] is None and 1 <= rows[-1]["modes"] <= 50
    assert all(0.0 <= rows[-1][k] <= 1.0 for k in ("precision", "recall", "coverage")) and rows[-1]["density"] >= 0
    # Real stacks against other real stacks: recall and coverage near 1, far above an untrained G's.
    real = scorer.classify(next(iter(suites.stacked_digits_dataset(50, seed=9)))[0].numpy())[1]
    assert diversity.scores(scorer.real, real)["coverage"] > rows[-1]["coverage"]
    assert "| recall | coverage |" in report.summary(rows)
    assert os.path.isfile(tmp_path / "samples" / "stacked_digits_pgn_seed0.png")
    assert report.plots(str(tmp_path), rows)[0].endswith("stacked_digits_samples.png")
    # Each line names the classifier that counted it; a table is not continued under another one.
    fingerprint = scorer.classifier.fingerprint
    assert len(fingerprint) == 12 and {r["classifier"] for r in rows} == {fingerprint}
    path = tmp_path / "results.jsonl"
    path.write_text("".join(json.dumps({**r, "classifier": "0123456789ab"}) + "\n" for r in rows))
    with pytest.raises(ValueError, match="scored by classifier 0123456789ab, the cached one is " + fingerprint):
        run.run([small], ["gn"], [0], str(tmp_path), steps=2)
    assert not (tmp_path / "runs" / "stacked_digits_gn_seed0").exists()  # refused before any training
    tool = load_tool("merge_benchmark")
    assert tool.classifier_problem(rows, [small]) is None
    assert "the cached one is" in tool.classifier_problem(run.read_results(str(path)), [small])
    mixed = [rows[-1], {**rows[-1], "classifier": "0123456789ab"}]
    assert "several classifiers" in tool.classifier_problem(mixed, [small])


BAD = {
    "unknown suite": ({"suite": "ring9"}, "unknown suite 'ring9'"),
    "unknown method": ({"methods": "pgn,wgan"}, "unknown method 'wgan'"),
    "bad pgn variant": ({"methods": "pgn_chalf"}, "method 'pgn_chalf': cannot read its part 'chalf'"),
    "bad pgn part": ({"methods": "pgn_c0.1_flat"}, "cannot read its part 'flat'; choose from pgn, gn"),
    "no seeds": ({"seeds": ""}, "--seeds is empty"),
    "bad seeds": ({"seeds": "0,one"}, "--seeds must be comma-separated integers"),
    "no suite": ({"suite": None}, "--suite is empty"),
    "zero steps": ({"steps": 0}, "--steps must be positive"),
    "dim 1": ({"dim": 1}, "--dim must be at least 2"),
    "knobs on stacked digits": ({"suite": "stacked_digits", "dim": 8}, "--dim and --g_out apply to the 2D mixtures"),
}


@pytest.mark.parametrize("case", sorted(BAD))
def test_bad_arguments_are_one_line_and_exit_2(case, tmp_path, capsys):
    args = {"suite": "ring8", "methods": "pgn", "seeds": "0", "out": str(tmp_path / "o"), "steps": None}
    changes, message = BAD[case]
    args.update(changes)
    assert bench_cli.main(**args) == 2
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 1 and err[0].startswith("error: ") and message in err[0], err
    assert not os.path.exists(tmp_path / "o")


@pytest.mark.subprocess
def test_cli_end_to_end(tmp_path):
    env = {**os.environ, "TF_CPP_MIN_LOG_LEVEL": "3"}
    cmd = [sys.executable, "-m", "pgn_tf.benchmark", "--suite=grid25", "--methods=r1", "--seeds=0", "--steps=2",
           f"--out={tmp_path}"]  # fmt: skip
    proc = subprocess.run(cmd, capture_output=True, text=True, cwd=ROOT, env=env, check=False)
    assert proc.returncode == 0, proc.stderr[-2000:]
    assert "grid25 r1 seed 0 step 2/2 modes" in proc.stdout
    row = json.loads((tmp_path / "results.jsonl").read_text())
    assert row["suite"] == "grid25" and row["step"] == 2 and set(row) >= {"modes", "hq", "kl", "seconds"}
    assert "Command: `python -m pgn_tf.benchmark --suite=grid25" in (tmp_path / "summary.md").read_text()
    bad = subprocess.run([*cmd[:3], "--suite=nope", f"--out={tmp_path}"], capture_output=True, text=True, cwd=ROOT,
                         env=env, check=False)  # fmt: skip
    assert bad.returncode == 2 and bad.stderr.strip().splitlines()[-1].startswith("error: unknown suite 'nope'")


def test_an_embedded_mixture_is_scored_in_the_plane_and_in_all_dimensions():
    means, std = suites.MIXTURES["grid25"]
    q = suites.embedding(8)
    np.testing.assert_allclose(q @ q.T, np.eye(2), atol=1e-12)  # orthonormal rows
    on = np.repeat(means, 4, axis=0) @ q
    m = metrics.embedded_metrics(on, means, std, q)
    assert (m["modes"], m["modes_full"], m["hq_full"]) == (25, 25, 1.0) and m["off_plane"] < 1e-12
    normal = np.linalg.svd(q)[2][2]  # a unit direction off the plane
    off = metrics.embedded_metrics(on + 1.0 * normal, means, std, q)
    assert (off["modes"], off["hq"], off["modes_full"], off["hq_full"]) == (25, 1.0, 0, 0.0)
    np.testing.assert_allclose(off["off_plane"], 1.0)


def test_benchmark_knobs_change_the_models_the_data_and_the_results_lines(tmp_path):
    varied = suites.get("grid25", dim=8, g_out="tanh", loss="hinge")._replace(eval_every=2, num_samples=200)
    assert varied.name == "grid25+d8+tanh+hinge"
    x, _ = next(iter(varied.dataset(0)))
    assert x.shape == (256, 8)
    g = varied.generator()
    assert g.output_shape == (None, 8) and float(np.abs(g(np.random.normal(size=(64, 16)) * 50)).max()) <= 5.0
    config = run.run_config(varied, "pgn", seed=0, steps=2)
    assert config.loss_fn().name == "hinge"
    rows = run.run([varied], ["pgn"], [0], str(tmp_path), steps=2)
    assert {(r["dim"], r["g_out"], r["loss"]) for r in rows} == {(8, "tanh", "hinge")}
    assert {"modes_full", "hq_full", "off_plane"} <= set(rows[-1])
    assert np.load(tmp_path / "samples" / "grid25+d8+tanh+hinge_pgn_seed0.npy").shape == (200, 2)  # in the plane
    text = report.summary(rows)
    assert "## grid25+d8+tanh+hinge (25 modes)" in text and "dim 8, G output tanh, loss hinge." in text
    assert "off_plane" in text


def test_a_mixture_run_at_several_dims_is_plotted_against_d(tmp_path):
    rows = [
        {"suite": suites._label("ring8", d), "method": m, "seed": seed, "step": 10, "dim": d, "g_out": "linear",
         "loss": "bce", "modes": 8 - seed, "hq": 0.5, "kl": 0.1, "seconds": 1.0,
         "critic": {"accuracy": 0.5, "grad_norm_mean": None if m == "none" else float(np.sqrt(d))}}
        for d in (2, 32) for m in ("pgn", "none") for seed in (0, 1)
    ]  # fmt: skip
    paths = [os.path.basename(p) for p in report.plots(str(tmp_path), rows)]
    assert "ring8_dims.png" in paths and "ring8+d32_critic.png" in paths
    text = report.summary(rows)
    assert "| accuracy | denominator |" in text and "| none | 2 | 10 | 7.5 ± 0.5 |" in text


def test_a_stopped_or_extended_run_goes_on_from_its_checkpoint_as_if_uninterrupted(tmp_path):
    small = suites.get("grid25")._replace(eval_every=3, num_samples=300)
    whole = run.run([small], ["gn"], [0], str(tmp_path / "whole"), steps=6)
    run.run([small], ["gn"], [0], str(tmp_path / "extended"), steps=3)
    printed = io.StringIO()
    extended = run.run([small], ["gn"], [0], str(tmp_path / "extended"), steps=6, stream=printed)
    assert "step 3/6" not in printed.getvalue() and "step 6/6" in printed.getvalue()  # steps 1-3 not trained again
    assert [r["step"] for r in extended] == [3, 6]
    for a, b in zip(whole, extended):
        assert (a["modes"], a["hq"]) == (b["modes"], b["hq"])
        np.testing.assert_allclose([a["critic"][k] for k in run.CRITIC_LOGS], [b["critic"][k] for k in run.CRITIC_LOGS],
                                   rtol=1e-5, atol=1e-7)  # fmt: skip
    # The last line lost: ckpt-6 has no line, so the run goes on from ckpt-3.
    results = tmp_path / "extended" / "results.jsonl"
    first_line = results.read_text().splitlines()[0] + "\n"
    results.write_text(first_line)
    printed = io.StringIO()
    again = run.run([small], ["gn"], [0], str(tmp_path / "extended"), steps=6, stream=printed)
    assert [r["step"] for r in again] == [3, 6] and "step 3/6" not in printed.getvalue()
    # That checkpoint damaged as well: one warning line, and the run starts again from step 0.
    for data_file in (tmp_path / "extended" / "runs" / "grid25_gn_seed0" / "checkpoints").glob("ckpt-3.data-*"):
        data_file.write_bytes(b"broken")
    results.write_text(first_line)
    printed = io.StringIO()
    again = run.run([small], ["gn"], [0], str(tmp_path / "extended"), steps=6, stream=printed)
    warnings = [line for line in printed.getvalue().splitlines() if line.startswith("warning: ")]
    assert len(warnings) == 1 and "ckpt-3" in warnings[0] and "step 3/6" in printed.getvalue()
    assert [r["step"] for r in again] == [3, 6]
    np.testing.assert_allclose([again[-1]["critic"][k] for k in run.CRITIC_LOGS],
                               [whole[-1]["critic"][k] for k in run.CRITIC_LOGS], rtol=1e-5, atol=1e-7)  # fmt: skip
    # A damaged checkpoint list: moved aside with one warning line, and the run starts again.
    ckpt_dir = tmp_path / "extended" / "runs" / "grid25_gn_seed0" / "checkpoints"
    (ckpt_dir / "checkpoint").write_bytes(b"\x00\xffnot a list")
    results.write_text(first_line)
    printed = io.StringIO()
    again = run.run([small], ["gn"], [0], str(tmp_path / "extended"), steps=6, stream=printed)
    warnings = [line for line in printed.getvalue().splitlines() if line.startswith("warning: ")]
    assert len(warnings) == 1 and "Moved aside" in warnings[0] and [r["step"] for r in again] == [3, 6]
    assert len(list(ckpt_dir.parent.glob("checkpoints.damaged-*"))) == 1


def test_stacked_mnist_reads_real_digits_per_channel_and_saves_its_samples(tmp_path):
    """Real MNIST triples, the MNIST classifier on each channel, 26,000 samples by default, .npz samples on demand."""
    suite = suites.get("stacked_mnist")
    assert (suite.num_samples, suite.steps, suites.num_modes(suite.name)) == (26_000, 4_000, 1_000)
    x, triple = (t.numpy() for t in next(iter(suites.stacked_mnist_dataset(64, seed=5))))
    assert x.shape == (64, 32, 32, 3) and x[:, :2].max() == -1.0  # padded 28 -> 32 with black
    small = suite._replace(eval_every=2, num_samples=50)
    scorer = run.Scorer(small, seed=0)
    assert np.mean(scorer.classify(x)[0] == triple) > 0.85  # real stacks read back (3 digits at ~98% each)
    rows = run.run([small], ["gn"], [0], str(tmp_path), steps=2, save_samples_npz=True)
    assert rows[-1]["suite"] == "stacked_mnist" and 1 <= rows[-1]["modes"] <= 50 and rows[-1]["kl"] > 0
    saved = np.load(tmp_path / "runs" / "stacked_mnist_gn_seed0" / "samples_2.npz")["images"]
    assert saved.shape == (50, 32, 32, 3) and saved.dtype == np.uint8
    real = run.real_rows(small, [0], 2)  # the ceiling: real against real, a row of the table
    assert real[0]["classifier"] == rows[-1]["classifier"] == scorer.classifier.fingerprint
    assert real[0]["method"] == "real data" and real[0]["modes"] >= 45 and real[0]["coverage"] > rows[-1]["coverage"]
    assert "| real data | 1 | 2 |" in report.summary(rows + real)


def test_stacked_mnist_tfds_stacks_tfds_digits_and_is_one_line_where_there_are_none(tmp_path, monkeypatch):
    """The online protocol: TFDS's mnist (its real builder, mocked) stacked the same way, under a name of its own."""
    import tensorflow_datasets as tfds

    from pgn_tf import data

    suite = suites.get("stacked_mnist_tfds")
    assert suite.name == "stacked_mnist_tfds" and suites.num_modes(suite.name) == 1_000
    with tfds.testing.mock_data(num_examples=20):
        grey, labels, _ = data.mnist_arrays("tfds")
        x, triple = (t.numpy() for t in next(iter(suite.dataset(seed=3))))
    assert x.shape == (32, 32, 32, 3) and x[:, :2].max() == -1.0
    # Each channel is one of the 20 mocked digits (padded), and the label its triple.
    padded = np.pad(grey, ((0, 0), (2, 2), (2, 2))).astype(np.float32) / 127.5 - 1.0
    for image, t in zip(x[:4], triple[:4]):
        found = [int(np.flatnonzero([np.array_equal(image[..., c], d) for d in padded])[0]) for c in range(3)]
        assert t == 100 * labels[found[0]] + 10 * labels[found[1]] + labels[found[2]]
    monkeypatch.setattr(data, "host_reachable", lambda host, timeout=10.0: False)
    monkeypatch.setenv("TFDS_DATA_DIR", str(tmp_path))
    with pytest.raises(data.DataError, match="mnist is not prepared"):
        next(iter(suite.dataset(seed=0)))


def test_pgn_variants_are_methods_named_by_their_parts():
    """pgn_<parts>: PGN with constant c<c>, scale s<s>, center (docs/models.md), every other setting the suite's."""
    for method, want in (
        ("pgn_cunit", ("unit", 1.0, False)), ("pgn_c0.1", (0.1, 1.0, False)), ("pgn_c0", (0.0, 1.0, False)),
        ("pgn_center", (1.0, 1.0, True)), ("pgn_ssqrtd", (1.0, "sqrt_d", False)), ("pgn_s8", (1.0, 8.0, False)),
        ("pgn_c0.1_center", (0.1, 1.0, True)),
    ):  # fmt: skip
        loop = run.run_config(suites.get("ring8"), method, seed=0, steps=5).loop
        assert (loop.normalization, loop.pgn_constant, loop.pgn_scale, loop.pgn_center) == ("pgn", *want)
    loop = run.run_config(suites.get("ring8"), "pgn", seed=0, steps=5).loop
    assert (loop.pgn_constant, loop.pgn_scale, loop.pgn_center) == (1.0, 1.0, False)
    with pytest.raises(ValueError, match="unknown method 'wgan'"):
        run.method_settings("wgan")


def test_a_fresh_generator_at_step_s_is_the_seeds_initial_one_with_its_optimizer_reset(tmp_path):
    """pgn_newg<S>: at step S, G and EMA-G are the step-0 G again and G's Adam starts afresh; the critic goes on."""
    import keras

    from pgn_tf import train_lib

    small = suites.get("ring8")._replace(eval_every=2)
    config = run.run_config(small, "pgn_newg3", seed=1, steps=4)
    assert run.fresh_generator_step("pgn_newg3") == 3 and run.fresh_generator_step("pgn_c0.1") is None
    initial = [w.copy() for w in train_lib.build_gan(config).generator.get_weights()]
    gan = train_lib.build_gan(config)
    critic_before = [w.copy() for w in gan.discriminator.get_weights()]
    fresh = run.FreshGenerator(config, 3)
    fresh.set_model(gan)
    data = config.dataset_fn(batch_size=small.batch_size_D, seed=1, start_step=0)
    gan.fit(data, epochs=1, steps_per_epoch=2, verbose=0, callbacks=[fresh])  # steps 1, 2: nothing happens
    assert not np.allclose(gan.generator.get_weights()[0], initial[0])
    gan.fit(data, epochs=1, steps_per_epoch=1, verbose=0, callbacks=[fresh])  # step 3: the reset
    for g in (gan.generator, gan.ema_generator):
        for got, want in zip(g.get_weights(), initial):
            np.testing.assert_array_equal(got, want)
    assert all(not np.any(v.numpy()) for v in gan.g_optimizer.variables)
    assert not np.allclose(gan.discriminator.get_weights()[0], critic_before[0])  # the critic kept its training
    gan.fit(data, epochs=1, steps_per_epoch=1, verbose=0, callbacks=[fresh])  # step 4: the new G trains
    assert int(gan.g_optimizer.iterations.numpy()) == 1
    assert not np.allclose(gan.generator.get_weights()[0], initial[0])
    keras.utils.set_random_seed(0)
    rows = run.run([small], ["pgn_newg2"], [0], str(tmp_path), steps=4)
    assert [(r["method"], r["step"]) for r in rows] == [("pgn_newg2", 2), ("pgn_newg2", 4)]
    with pytest.raises(ValueError, match="cannot read its part 'newg0'"):
        run.method_settings("pgn_newg0")
    with pytest.raises(ValueError, match="its part 'c0' sets pgn_constant a second time"):
        run.method_settings("pgn_c0.1_c0")
    with pytest.raises(ValueError, match="renews G at step 4, not before the run's last, 4"):
        run.run_config(small, "pgn_newg4", 0, 4)


def test_folders_trained_side_by_side_merge_into_one_table_of_one_code_version(tmp_path, capsys):
    """tools/merge_benchmark.py: complete runs of every folder, the incomplete left out and named, one code."""
    tool = load_tool("merge_benchmark")
    small = suites.get("ring8")._replace(eval_every=2)
    run.run([small], ["gn"], [0], str(tmp_path / "a"), steps=4)
    run.run([small], ["none"], [0], str(tmp_path / "b"), steps=4)
    run.run([small], ["pgn"], [0], str(tmp_path / "b"), steps=2)  # stopped midway, as far as a 4-step table goes
    assert tool.main([str(tmp_path / "a"), str(tmp_path / "b"), f"--out={tmp_path / 'm'}", "--steps=4"]) == 0
    merged = run.read_results(str(tmp_path / "m" / "results.jsonl"))
    assert sorted({(r["method"], r["step"]) for r in merged}) == [("gn", 2), ("gn", 4), ("none", 2), ("none", 4)]
    assert "left out: ring8 pgn seed 0 (stopped at step 2)" in capsys.readouterr().out
    table = (tmp_path / "m" / "summary.md").read_text()
    assert "| gn | 1 | 4 |" in table and "| none | 1 | 4 |" in table and "Merged from 2 folders" in table
    # Another code version, or the same run twice: refused, one line.
    lines = (tmp_path / "b" / "results.jsonl").read_text().splitlines()
    other = [json.dumps({**json.loads(line), "code": "0123456789ab"}) for line in lines]
    (tmp_path / "b" / "results.jsonl").write_text("\n".join(other) + "\n")
    assert tool.main([str(tmp_path / "a"), str(tmp_path / "b"), f"--out={tmp_path / 'n'}", "--steps=4"]) == 2
    assert "several code versions" in capsys.readouterr().err
    assert tool.main([str(tmp_path / "a"), str(tmp_path / "a"), f"--out={tmp_path / 'n'}"]) == 2
    assert "is in both" in capsys.readouterr().err


def test_the_bootstrap_interval_of_the_mean_over_seeds():
    assert report.bootstrap_interval([5.0]) is None
    low, high = report.bootstrap_interval([1.0, 2.0, 3.0, 4.0, 5.0])
    assert 1.0 < low < 3.0 < high < 5.0 and report.bootstrap_interval([1.0, 2.0, 3.0, 4.0, 5.0]) == (low, high)
    assert report.bootstrap_interval([7.0, 7.0, 7.0]) == (7.0, 7.0)


def test_the_summary_gives_the_modes_at_each_step_with_their_interval_over_the_seeds_evaluated_there():
    # pgn: seeds 0-2 at steps 1-2, seed 2 stopped before step 3; gn: one seed.
    modes = {("pgn", 0): (1, 4, 7), ("pgn", 1): (2, 5, 8), ("pgn", 2): (3, 6), ("gn", 0): (8, 8, 8)}
    rows = [
        {"suite": "ring8", "method": m, "seed": seed, "step": step, "modes": n, "hq": 0.5, "kl": 0.1, "seconds": 1.0}
        for (m, seed), ns in modes.items() for step, n in zip((10, 20, 30), ns)
    ]  # fmt: skip
    rows.append({**rows[-1], "method": "real data", "modes": 8})  # the ceiling row: not a method's curve
    text = report.summary(rows)
    low, high = report.bootstrap_interval([1, 2, 3])
    assert "| method | 10 | 20 | 30 |" in text
    assert (
        f"| pgn | 2.0 [{low:.1f}, {high:.1f}] (3) | 5.0 [{low + 3:.1f}, {high + 3:.1f}] (3) | 7.5 [7.0, 8.0] (2) |"
        in text
    )
    assert "| gn | 8.0 n/a (1) | 8.0 n/a (1) | 8.0 n/a (1) |" in text and "| real data | 8.0" not in text
    assert report._steps_shown(list(range(500, 10_001, 500))) == [1000, 2500, 4000, 5500, 7000, 8500, 10000]


def test_every_method_and_variant_of_a_picture_has_its_own_colour():
    methods = [*run.METHODS, "pgn_cunit", "pgn_c0", "pgn_c0.1", "pgn_center", "pgn_ssqrtd", "pgn_s8"]
    colours = [report._color(m) for m in methods]
    assert len(set(map(str, colours))) == len(methods)
    assert report._color("pgn_c0") == colours[methods.index("pgn_c0")]  # the same in every picture
