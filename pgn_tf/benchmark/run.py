"""Runs the mode-collapse benchmark: every (suite, method, seed) trained by train_lib.run, results to DIR/results.jsonl.

The benchmark is not a training driver of its own: each run is a
`train_lib.Run` in DIR/runs/<run>, trained by `train_lib.run` with the
suite's scoring as its reporting callback (a results line, then the run's
checkpoint, at every evaluation).
"""

import functools
import json
import os
import sys
import time

import keras
import numpy as np
import tensorflow as tf

from pgn_tf import callbacks, faults, losses, optimizers, train_lib
from pgn_tf.benchmark import metrics, suites
from pgn_tf.config import RunConfig
from pgn_tf.diagnostics import DIAGNOSTICS
from pgn_tf.errors import CheckpointError, ConfigError, first_line
from pgn_tf.eval import diversity
from pgn_tf.normalization import SQRT_D, UNIT, check_constant, check_scale
from pgn_tf.workdir import claimed

# Each method's constraint: the settings of its gin overlay, gin_configs/baselines/<method>.gin (a test checks).
METHOD_SETTINGS = {
    "pgn": {"normalization": "pgn"},
    "gn": {"normalization": "gn"},
    "sn": {"normalization": "sn"},
    "gp1": {"normalization": "none", "penalty": "gp1", "penalty_weight": 10.0},
    "gp0": {"normalization": "none", "penalty": "gp0", "penalty_weight": 10.0},
    "r1": {"normalization": "none", "penalty": "r1", "penalty_weight": 10.0},
    "r3": {"normalization": "none", "penalty": "r1r2", "penalty_weight": 0.05, "loss_fn": lambda: losses.rpgan},
    "none": {"normalization": "none"},
}
METHODS = tuple(METHOD_SETTINGS)
# PGN variants and interventions beyond the paper (normalization.normalize's constant, scale and center), named
# "pgn_<parts>" (method_settings): e.g. pgn_cunit (c = 1 / sqrt(d)), pgn_c0 (GN applied to 1 - f), pgn_center.
PGN_VARIANT = "pgn_"


FRESH_GENERATOR = "newg"  # a method part: newg<S>, a new generator at step S (FreshGenerator)


def _pgn_parts(method):
    """A "pgn_<parts>" method's parts as {setting or FRESH_GENERATOR: value}, each part at most once.

    Raises:
      ValueError: not such a method, an unknown or repeated part, or a value out of its range.
    """
    usage = f"choose from {', '.join(METHODS)} or pgn_<parts> (parts: c<constant>, s<scale>, center, newg<step>)"
    if not method.startswith(PGN_VARIANT) or method == PGN_VARIANT:
        raise ValueError(f"unknown method {method!r}; {usage}.")
    parts = {}
    for part in method[len(PGN_VARIANT) :].split("_"):
        try:
            if part == "center":
                name, value = "pgn_center", True
            elif part.startswith(FRESH_GENERATOR):
                name, value = FRESH_GENERATOR, int(part[len(FRESH_GENERATOR) :])
                if value < 1:
                    raise ValueError
            elif part.startswith("c"):
                name, value = "pgn_constant", part[1:] if part[1:] == UNIT else float(part[1:])
                check_constant(value)
            elif part.startswith("s"):
                name, value = "pgn_scale", SQRT_D if part == "ssqrtd" else float(part[1:])
                check_scale(value)
            else:
                raise ValueError
        except ValueError:
            raise ValueError(f"method {method!r}: cannot read its part {part!r}; {usage}.") from None
        if name in parts:
            raise ValueError(f"method {method!r}: its part {part!r} sets {name} a second time; {usage}.")
        parts[name] = value
    return parts


def method_settings(method):
    """A method's settings: METHOD_SETTINGS, or PGN with variants and interventions named by "_"-joined parts
    after "pgn": c<c> (pgn_constant: a number >= 0 or unit), s<s> (pgn_scale: a number > 0, or sqrtd for
    sqrt(d)), center (pgn_center) and newg<S> (the benchmark's own: `fresh_generator_step`); e.g. pgn_c0.1,
    pgn_center, pgn_ssqrtd, pgn_c0.1_center, pgn_newg1500.

    Raises:
      ValueError: an unknown method, an unknown or repeated part, or a value out of its range.
    """
    if method in METHOD_SETTINGS:
        return METHOD_SETTINGS[method]
    parts = _pgn_parts(method)
    parts.pop(FRESH_GENERATOR, None)
    return {"normalization": "pgn", **parts}


def fresh_generator_step(method):
    """S of a method's newg<S> part, else None."""
    return None if method in METHOD_SETTINGS else _pgn_parts(method).get(FRESH_GENERATOR)


class FreshGenerator(keras.callbacks.Callback):
    """An intervention: at the end of outer step S, G and EMA-G become the step-0 generator again (the seed's
    initial weights, `train_lib.initial_generator_weights`) and G's optimizer starts afresh (moments and count
    zeroed: `optimizers.reset_state`), while the critic keeps its state. Modes at S + k against the method's own
    at k then say what the critic's state at S does to a new G. Before the step's scoring, so the evaluation at S
    scores the new G and its checkpoint holds it (a resumed run restarts past S, or reaches S again and resets
    there)."""

    def __init__(self, config, step):
        super().__init__()
        self.config, self.at = config, step

    def on_train_batch_end(self, batch, logs=None):
        if int(self.model.step.numpy()) != self.at:
            return
        fresh = train_lib.initial_generator_weights(self.config)
        for g in (self.model.generator, self.model.ema_generator):
            g.set_weights(fresh)
        optimizers.reset_state(self.model.g_optimizer)


SAMPLE_BATCH = 1000  # generated images per call when scoring stacked digits
REAL_SEED = 10_000  # + the run's seed: the real stacked digits recall / coverage are measured against
# Each row's "critic": the DIAGNOSTICS, PGN / GN's denominator norm (||1 - grad f|| / ||grad f||; None for the
# others) and the losses (2 ln 2 and ln 2 for a BCE critic at chance), each averaged over the chunk's steps.
CRITIC_LOGS = (*DIAGNOSTICS, "grad_norm_mean", "d_loss", "g_loss")
UNCOMPUTED_WITHOUT_NORMALIZER = (
    "input_grad_norm_mean",
    "grad_norm_mean",
    "ones_cos_mean",
)  # zeros in the logs of mode "none"
PROBE_SIZE = 256  # samples of each kind in an evaluation's Lipschitz probe


def critic_logs(step_logs, mode):
    """The chunk's CRITIC_LOGS from a step's logs (means over the epoch so far); a raw critic's step takes no
    input gradient, so its norms are None, not 0."""
    logs = {k: round(float(np.mean(step_logs[k])), 6) for k in CRITIC_LOGS}
    if mode == "none":
        logs.update(dict.fromkeys(UNCOMPUTED_WITHOUT_NORMALIZER))
    return logs


def lipschitz_probe(gan, suite, seed):
    """||grad_x|| of the raw critic f and of what the loss sees (f_hat; f itself for SN / none / penalties).

    On PROBE_SIZE held-out reals (the data stream far past any training
    step), as many fakes of fixed latents and interpolates between them: the
    raw input-gradient norm for every method, which the training step has
    only for PGN and GN.
    """
    from pgn_tf import penalties

    real = []
    for x, _ in suite.dataset(REAL_SEED + seed, start_step=2**40):
        real.append(x.numpy())
        if sum(len(r) for r in real) >= PROBE_SIZE:
            break
    real = tf.constant(np.concatenate(real)[:PROBE_SIZE])
    rng = np.random.default_rng([seed, 11])
    z = tf.constant(rng.standard_normal((PROBE_SIZE, suite.z_dim)), gan.dtype)
    alpha = tf.constant(rng.uniform(size=PROBE_SIZE), gan.dtype)
    with gan.statistics_kept():
        seen = gan.lipschitz(real, z, alpha)
        fake = gan.generate(z)
    out = {f"loss_side_{k}": round(float(v), 6) for k, v in seen.items() if k.endswith("_mean")}
    for name, x in (("real", real), ("fake", fake)):
        norm = penalties.input_gradient_norm(gan.discriminator.critic, tf.cast(x, gan.dtype), None, training=False)
        out[f"raw_{name}_mean"] = round(float(tf.reduce_mean(norm)), 6)
    return out


def run_config(suite, method, seed, steps):
    """The suite's settings with the method's constraint (`METHOD_SETTINGS`): a RunConfig, no gin involved.

    BCE (or the suite's loss; r3 takes RpGAN, its own) and torch's Adam with the suite's betas; the
    learning rate is constant (its decay starts at the last step). Checkpoints
    and TensorBoard scalars come at every evaluation.

    Raises:
      ValueError: an unknown method, or newg<S> with S not before the last step.
    """
    fresh_at = fresh_generator_step(method)
    if fresh_at is not None and fresh_at >= steps:
        raise ValueError(f"method {method!r} renews G at step {fresh_at}, not before the run's last, {steps}.")
    adam = functools.partial(optimizers.Adam, beta_1=suite.betas[0], beta_2=suite.betas[1], epsilon=1e-8)
    settings = {"loss_fn": lambda: losses.get(suite.loss), **method_settings(method)}  # r3 brings its own loss
    return RunConfig.make(
        dataset_fn=lambda batch_size, seed, start_step: suite.dataset(seed, start_step),
        generator_fn=lambda z_dim: suite.generator(),
        critic_fn=lambda spectral_norm=False: suite.critic(spectral_norm),
        d_optimizer=adam, g_optimizer=adam, total_steps=steps, lr_D=suite.lr,
        lr_G=suite.lr, lr_decay_start=steps, eval_every=suite.eval_every, save_every=suite.eval_every,
        log_every=suite.eval_every, z_dim=suite.z_dim, batch_size_D=suite.batch_size_D,
        batch_size_G=suite.batch_size_G, ema_decay=suite.ema_decay, seed=seed, **settings,
    )  # fmt: skip


class Scorer:
    """Draws the suite's evaluation samples of G (fixed latents per seed) and scores them."""

    def __init__(self, suite, seed):
        self.suite = suite
        self.z = np.random.default_rng([seed, 7]).standard_normal((suite.num_samples, suite.z_dim)).astype(np.float32)
        self.classifier = suite.classifier() if suite.classifier else None
        if self.classifier is not None:
            # The real side of recall / coverage: as many real images as samples, drawn once (seeded).
            self.real = self.classify(suite.real_images(suite.num_samples, REAL_SEED + seed))[1]
            self.radii = {
                k: diversity.knn_radii(self.real, k)
                for k in (diversity.K_PRECISION_RECALL, diversity.K_DENSITY_COVERAGE)
            }

    def identity(self):
        """{"classifier": its weights' fingerprint} for a stacked suite's lines (which classifier counted), else {}."""
        return {} if self.classifier is None else {"classifier": self.classifier.fingerprint}

    def samples(self, gan):
        """G's samples for the fixed latents (batch statistics, as all sampling here; BN statistics kept)."""
        with gan.statistics_kept():
            out = [gan.generate(self.z[i : i + SAMPLE_BATCH]).numpy() for i in range(0, len(self.z), SAMPLE_BATCH)]
        return np.concatenate(out)

    def __call__(self, gan):
        """(metrics dict, samples)."""
        x = self.samples(gan)
        if self.classifier is None:
            means, std = suites.MIXTURES[suites.base(self.suite.name)]
            q = self.suite.embedding
            if q is None:
                return metrics.mixture_metrics(x, means, std), x
            return metrics.embedded_metrics(x, means, std, q), x @ q.T  # the samples as seen in the plane
        triples, features = self.classify(x)
        radii = [self.radii[diversity.K_PRECISION_RECALL], self.radii[diversity.K_DENSITY_COVERAGE]]
        return {**metrics.stacked_metrics(triples), "hq": None, **diversity.scores(self.real, features, *radii)}, x

    def classify(self, images):
        """Each channel through the suite's classifier: [N, 32, 32, 3] -> (triples [N], features [N, 3 F]).

        triples: ints 100 * d_r + 10 * d_g + d_b; features: the three
        channels' pool features side by side (what recall / coverage compare).
        """
        digits, features = [], []
        for c in range(3):
            channel = np.repeat(images[..., c : c + 1], 3, axis=-1)  # the classifier's grey-over-RGB format
            logits, pool = self.classifier(channel)
            digits.append(np.argmax(logits, axis=1))
            features.append(np.asarray(pool, np.float32))
        return digits[0] * 100 + digits[1] * 10 + digits[2], np.concatenate(features, axis=1)


def read_results(path):
    if not os.path.isfile(path):
        return []
    with open(path) as f:
        return [json.loads(line) for line in f if line.strip()]


def _key(row):
    return row["suite"], row["method"], row["seed"]


def run(suite_names, methods, seeds, out, steps=None, stream=None, save_samples_npz=False):
    """Trains and scores every (suite, method, seed) not already complete in out/results.jsonl.

    suite_names: names (or `suites.Suite`s); methods: names in METHODS; steps: None for each suite's own.

    A run is complete when its last evaluation step is in the file. Each
    evaluation writes its line, then saves the run's checkpoint
    (DIR/runs/<run>/checkpoints, the three newest kept), so a run that was
    stopped, or one asked for more --steps than it ran, goes on from its
    newest checkpoint that has a line: the stream is stateless in (seed,
    step) and the learning rate constant, so the continued run is the
    uninterrupted one. A run without a usable checkpoint starts again, its
    lines dropped. Lines of runs not asked for are kept. save_samples_npz: every evaluation's image samples
    also go to DIR/runs/<run>/samples_<step>.npz (uint8 [N, 32, 32, 3], key "images"), for other classifiers.
    """
    stream = stream or sys.stdout
    os.makedirs(os.path.join(out, "samples"), exist_ok=True)
    path = os.path.join(out, "results.jsonl")
    plan = [
        (suites.get(s) if isinstance(s, str) else s, m, seed) for s in suite_names for m in methods for seed in seeds
    ]
    total_steps = {s.name: steps or s.steps for s, _, _ in plan}
    rows = read_results(path)
    done = {_key(r) for r in rows if r["step"] == total_steps.get(r["suite"], -1)}
    todo = [p for p in plan if (p[0].name, p[1], p[2]) not in done]
    for suite in {s.name: s for s, _, _ in todo if s.classifier}.values():  # before any training
        _same_classifier(rows, suite.name, {"classifier": suite.classifier().fingerprint}, path)
    progress = _Progress(sum(total_steps[s.name] for s, _, _ in todo))
    for suite, method, seed in todo:
        n_steps = total_steps[suite.name]
        key = (suite.name, method, seed)
        workdir = os.path.join(out, "runs", f"{suite.name}_{method}_seed{seed}")
        config = run_config(suite, method, seed, n_steps)
        with claimed(config, workdir, tf.distribute.get_strategy()):
            rows = read_results(path)
            build = functools.partial(train_lib.build, config, workdir)
            built, step, seconds_before = _resume(build, workdir, [r for r in rows if _key(r) == key], n_steps, stream)
            rows = [r for r in rows if _key(r) != key or r["step"] <= step]
            with open(path + ".tmp", "w") as f:
                f.writelines(json.dumps(r) + "\n" for r in rows)
            os.replace(path + ".tmp", path)
            progress.work -= step  # trained before this process: not in its rate
            npz_dir = workdir if save_samples_npz else None
            scoring = Scoring(suite, method, seed, n_steps, path, seconds_before, progress, stream, npz_dir)
            fresh_at = fresh_generator_step(method)
            interventions = [] if fresh_at is None else [FreshGenerator(config, fresh_at)]
            # TensorBoard scalars (losses, diagnostics) at each evaluation, then the scoring; _resume has restored
            # the newest checkpoint that has a line.
            try:
                reporting = _reporting(scoring, n_steps, suite.eval_every, interventions)
                train_lib.run(built, reporting=reporting, checkpoint=None)
            except faults.Diverged as e:  # this run ends; its lines so far stay, and the others go on
                print(f"warning: {suite.name} {method} seed {seed}: {first_line(e)}", file=stream, flush=True)
        if scoring.samples is not None:
            save_samples(out, suite.name, method, seed, scoring.samples)
    return read_results(path)


def code_version():
    """The code that trained a line: the package's git commit (with "+dirty" for uncommitted changes to the package
    or to tools/, which trains and reports studies too), or pgn_tf's version where it is not a git checkout."""
    import subprocess

    import pgn_tf

    def git(*args):
        where = os.path.dirname(os.path.abspath(pgn_tf.__file__))
        return subprocess.run(["git", *args], cwd=where, capture_output=True, text=True, check=True, timeout=30)

    try:
        commit = git("rev-parse", "--short=12", "HEAD").stdout.strip()
        dirty = git("status", "--porcelain", "--", ":/pgn_tf", ":/tools").stdout.strip()
    except (OSError, subprocess.SubprocessError):
        return f"pgn_tf {pgn_tf.__version__}"
    return commit + ("+dirty" if dirty else "")


def _reporting(scoring, n_steps, every, interventions=()):
    """The runs' reporting callbacks (train_lib.run): TensorBoard scalars without a progress line, the
    interventions, and scoring."""
    return lambda writer: [callbacks.StepLogger(writer, n_steps, every, stream=None), *interventions, scoring]


class _Progress:
    """Steps to train in this process, steps trained, since when: the ETA over every run of the call."""

    def __init__(self, work):
        self.work, self.finished, self.t0 = work, 0, time.perf_counter()

    def eta(self, steps):
        self.finished += steps
        rate = self.finished / (time.perf_counter() - self.t0)
        return time.strftime("%H:%M:%S", time.gmtime((self.work - self.finished) / max(rate, 1e-9)))


class Scoring(keras.callbacks.Callback):
    """The benchmark's evaluation as a training callback: every eval_every steps (and at the last), scores G and
    appends the results line; the run's Checkpointer, after it, saves the step (so a line's step may lack its
    checkpoint, never the other way round: resuming starts from the newest checkpoint with a line).

    The line's "critic" holds the chunk's CRITIC_LOGS: the step's logs are the trackers' means since the last
    evaluation (they are reset after each, and the run's epochs, eval_every steps long, start at one). Its
    "gan_loss" is the loss the method trained with (r3 brings its own; "loss" is the suite's knob).
    """

    def __init__(self, suite, method, seed, n_steps, path, seconds_before, progress, stream, npz_dir=None):
        super().__init__()
        self.suite, self.method, self.seed, self.n_steps, self.path = suite, method, seed, n_steps, path
        self.scorer = Scorer(suite, seed)
        self.t0 = time.perf_counter() - seconds_before
        self.progress, self.stream = progress, stream
        self.samples, self.last, self.npz_dir = None, None, npz_dir
        self.code = code_version()

    def on_train_begin(self, logs=None):
        self.last = int(self.model.step.numpy())

    def on_train_batch_end(self, batch, logs=None):
        step, n_steps = int(self.model.step.numpy()), self.n_steps
        if step % self.suite.eval_every and step != n_steps:
            return
        gan, suite = self.model, self.suite
        critic = critic_logs(logs, gan.discriminator.mode)
        seconds = time.perf_counter() - self.t0
        result, self.samples = self.scorer(gan)
        row = {"suite": suite.name, "method": self.method, "seed": self.seed, "step": step, **dict(suite.variant),
               **result, "critic": critic, "probe": lipschitz_probe(gan, suite, self.seed),
               "gan_loss": gan.loss_fn.name, "seconds": round(seconds, 1), "code": self.code,
               **self.scorer.identity()}  # fmt: skip
        if self.npz_dir and self.samples.ndim == 4:
            save_npz(os.path.join(self.npz_dir, f"samples_{step}.npz"), self.samples)
        with open(self.path, "a") as f:
            f.write(json.dumps(row) + "\n")
        eta = self.progress.eta(step - self.last)
        self.last = step
        hq = "" if result["hq"] is None else f" hq {result['hq']:.3f}"
        kl = "null" if result["kl"] is None else f"{result['kl']:.3f}"
        modes = f"{result['modes']}/{suites.num_modes(suite.name)}"
        print(f"{suite.name} {self.method} seed {self.seed} step {step}/{n_steps} modes {modes}{hq} "
              f"kl {kl} | {seconds:.0f} s, ETA {eta}", file=self.stream, flush=True)  # fmt: skip
        gan.reset_metrics()  # the next line's critic means start here, wherever the run resumed


def _same_classifier(rows, suite, identity, path):
    """Raises ConfigError (one error line) when path's lines of suite were counted by another classifier: one
    table, one classifier (a cache lost between sessions retrains it, and retraining can give other weights)."""
    theirs = {r["classifier"] for r in rows if r["suite"] == suite and "classifier" in r}
    mine = identity.get("classifier")
    if mine and theirs - {mine}:
        raise ConfigError(
            f"{path} holds {suite} lines scored by classifier {', '.join(sorted(theirs))}, the cached one is {mine}: "
            "restore those weights in $PGN_TF_CACHE, or give a new --out (one table, one classifier)."
        )


def _resume(build, workdir, rows, n_steps, stream):
    """(Run, step, seconds) to go on from: build()'s run restored from its newest checkpoint up to
    n_steps that has a results line, else a fresh run at (0, 0). A checkpoint that does not restore is
    skipped with one warning line (the next older one is tried); a damaged checkpoint list is moved aside.
    """
    steps = {r["step"]: r["seconds"] for r in rows}
    try:
        built = build()
    except CheckpointError as e:  # its list (checkpoints/checkpoint) does not parse
        folder = os.path.join(workdir, "checkpoints")
        os.replace(folder, f"{folder}.damaged-{time.strftime('%Y%m%d-%H%M%S')}")
        print(f"warning: {e} Moved aside; the run starts again.", file=stream, flush=True)
        return build(), 0, 0.0
    failed = False
    for ckpt in built.checkpoints.latest():
        step = int(ckpt.rsplit("-", 1)[1])
        if step in steps and step <= n_steps:
            try:
                built.checkpoints.restore(ckpt)
                return built, step, steps[step]
            except CheckpointError as e:
                print(f"warning: {e} Trying an older one.", file=stream, flush=True)
                failed = True
    return (build(), 0, 0.0) if failed else (built, 0, 0.0)  # a failed restore may have set some variables


def save_npz(path, images):
    """Images [N, H, W, 3] in [-1, 1] as uint8 in a compressed .npz (key "images"), written atomically."""
    pixels = np.clip(np.round((images + 1.0) * 127.5), 0, 255).astype(np.uint8)
    np.savez_compressed(path + ".tmp.npz", images=pixels)
    os.replace(path + ".tmp.npz", path)


def real_scores(suite, seed):
    """A stacked suite's real data scored by its own protocol (the table's ceiling): num_samples real images
    drawn apart from the scorer's real side, as G's samples are."""
    scorer = Scorer(suite, seed)
    triples, features = scorer.classify(suite.real_images(suite.num_samples, 2 * REAL_SEED + seed))
    radii = [scorer.radii[diversity.K_PRECISION_RECALL], scorer.radii[diversity.K_DENSITY_COVERAGE]]
    return {**metrics.stacked_metrics(triples), **diversity.scores(scorer.real, features, *radii), **scorer.identity()}


def real_rows(suite, seeds, step):
    """The summary's "real data" rows of a stacked suite: `real_scores` per seed, at the table's step."""
    return [
        {"suite": suite.name, "method": "real data", "seed": seed, "step": step, **dict(suite.variant),
         **real_scores(suite, seed), "hq": None, "seconds": 0.0}
        for seed in seeds
    ]  # fmt: skip


def save_samples(out, suite, method, seed, samples):
    """The last evaluation's samples: [N, 2] as .npy (mixtures), a 64-image grid as .png (stacked digits)."""
    base = os.path.join(out, "samples", f"{suite}_{method}_seed{seed}")
    if samples.ndim == 2:
        np.save(base + ".npy.tmp.npy", samples.astype(np.float32))
        os.replace(base + ".npy.tmp.npy", base + ".npy")
    else:
        from pgn_tf.callbacks import image_grid

        tf.io.write_file(base + ".png.tmp", tf.io.encode_png(image_grid(samples[:64])))
        os.replace(base + ".png.tmp", base + ".png")
