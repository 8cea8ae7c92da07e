"""What moves the critic's raw outputs, one training step at a time: python tools/critic_update.py

  --gin_file=FILE [--gin_file=...] [--gin_param=...] --start=S --end=E --out=JSON [--png=PNG]
  --benchmark=SUITE:METHOD:SEED --start=S --end=E --out=JSON [--png=PNG]   (a benchmark run, as it trains)
  --from_json=JSON [--from_json=JSON2 ...] --png=PNG     (draws earlier results side by side)

Trains the run the gin files describe (as `pgn_tf.train` does, from step 0, in memory: no workdir is written),
or the benchmark's run of a suite, method (PGN's interventions included) and seed,
and, before each outer step from S to E, takes the critic update that step is about to make apart. On the
step's own reals and fakes it computes the critic's loss gradient in three parts:
  - pull_real, pull_fake: each side's loss through f with the normaliser's denominator held (||1 - grad_x f||
    for PGN, ||grad_x f|| for GN); the "pull" diagnostics are this part's per-sample factor;
  - denominator: the rest, the loss's gradient through the denominator (the double-backprop term; zero for
    the raw critic);
and, from the optimizer's state, the update each part makes: Adam's step is linear in the gradient once its
second moment for the step is known, so update = sum of -P (1 - beta_1) g_part - P beta_1 m over the parts,
with the per-weight P = lr / (1 - beta_1^t) / (sqrt(v_t) / sqrt(1 - beta_2^t) + eps) of pgn_tf's Adam, and
the last term the momentum carried over. Each part's update is projected on the gradients of two summaries
of the raw outputs over the step's 2b samples: their mean ("shift", what reals and fakes share) and the mean
over reals minus the mean over fakes ("gap"). To first order the changes of shift and gap are the sums of the
parts' projections; the actual changes, from the critic after the step, are written beside them, as is
"sgd": the shift change plain gradient descent would make with a step of the same length as Adam's.

The picture has three panels against the step: one step's move of the shift in units of the normaliser's
denominator, the denominator part's effect on the shift against the net pull's (-denominator / (pull_real +
pull_fake): 1 when it cancels the pulls' net move, 0 when it does nothing), and |gap| / |shift| (below 1, the
outputs' shared offset exceeds what separates reals from fakes).

Writes {"steps": [one record per step], "checks": {...}, "code": the git commit that ran}. "checks" holds the
largest relative error of the reconstructed update against the update the step made, which says whether the
decomposition is the step's, and the largest difference of the held f_hat from the run's f_hat (their values
must agree).
Only the runs it can take apart exactly: unconditional, in one process (one replica), n_dis = 1, accumulation = 1,
no CR, no penalty, no augmentation, and no benchmark method that renews G (newg<S>).
"""

import argparse
import json
import os
import sys

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")
os.environ.setdefault("TF_ENABLE_ONEDNN_OPTS", "1")  # as pgn_tf's commands set it

PARTS = ("pull_real", "pull_fake", "denominator", "momentum")


def unsupported(loop):
    """Why the run's critic step cannot be taken apart exactly here, or None."""
    for name, value, want in (("n_dis", loop.n_dis, 1), ("accumulation", loop.accumulation, 1), ("cr", loop.cr, 0)):
        if value != want:
            return f"train_and_evaluate.{name} = {value}; this tool takes apart runs with {name} = {want} only."
    if loop.penalty:
        return f"train_and_evaluate.penalty = {loop.penalty!r}; this tool takes apart runs without a penalty only."
    if loop.conditional:
        return "train_and_evaluate.num_classes is set; this tool takes apart unconditional runs only."
    if loop.augment:
        return f"train_and_evaluate.augment = {loop.augment!r}; this tool takes apart runs without augmentation only."
    return None


def _held(out, disc, d):
    """f_hat with the denominator's norm held (the same value as out.f_hat), with PGN's interventions if any;
    d: the input size (for pgn_scale "sqrt_d")."""
    import tensorflow as tf

    from pgn_tf.normalization import ratio, scale_value

    if disc.mode == "none":
        return out.f
    g = tf.reshape(tf.stop_gradient(out.grad_norm), [-1, 1])
    return ratio(out.f, g, disc.mode, scale_value(disc.scale, d, out.f.dtype), disc.center)[0]


def _dot(a, b):
    import tensorflow as tf

    return tf.add_n([tf.reduce_sum(x * y) for x, y in zip(a, b)])


def make_probe(gan):
    """A tf.function real -> (the step's reals and fakes, the rebuilt update, the record) for gan's next step."""
    import numpy as np
    import tensorflow as tf

    loop, disc, opt = gan.loop, gan.discriminator, gan.d_optimizer
    d_vars = disc.trainable_variables
    b = loop.batch_size_D

    @tf.function
    def probe(real):
        gan.step.assign_add(1)  # the step's draws are keyed by the step it counts to (train_step adds 1 first)
        z, fake_y = gan.latents(b, 0)
        fake = tf.stop_gradient(gan.generate(z, fake_y))
        gan.step.assign_sub(1)
        both = tf.concat([real, fake], axis=0)
        with tf.GradientTape(persistent=True) as tape:
            out = disc.normalize(both, training=True)
            loss, _, _ = gan.loss_fn.critic(out.f_hat[:b], out.f_hat[b:])
            held = _held(out, disc, int(np.prod(both.shape[1:])))
            _, held_real, held_fake = gan.loss_fn.critic(held[:b], held[b:])
            shift = tf.reduce_mean(out.f)
            gap = tf.reduce_mean(out.f[:b]) - tf.reduce_mean(out.f[b:])
        grads = {k: tape.gradient(t, d_vars) for k, t in
                 (("full", loss), ("pull_real", held_real), ("pull_fake", held_fake), ("shift", shift), ("gap", gap))}  # fmt: skip
        grads = {k: [tf.zeros_like(v) if g is None else g for g, v in zip(gs, d_vars)] for k, gs in grads.items()}
        grads["denominator"] = [f - r - k for f, r, k in zip(grads["full"], grads["pull_real"], grads["pull_fake"])]
        # pgn_tf.optimizers.Adam's step, linear in the gradient once v_t is known.
        dtype = d_vars[0].dtype
        t = tf.cast(opt.iterations + 1, dtype)
        beta_1, beta_2, lr = float(opt.beta_1), float(opt.beta_2), tf.cast(opt.learning_rate, dtype)
        updates = {k: [] for k in (*PARTS, "full")}
        for i, var in enumerate(d_vars):
            (m, v), g = opt.moments(var), grads["full"][i]
            v_t = v + (tf.square(g) - v) * (1.0 - beta_2)
            p = lr / (1.0 - beta_1**t) / (tf.sqrt(v_t) / tf.sqrt(1.0 - beta_2**t) + opt.epsilon)
            for k in PARTS:
                updates[k].append(-p * beta_1 * m if k == "momentum" else -p * (1.0 - beta_1) * grads[k][i])
            updates["full"].append(tf.add_n([updates[k][i] for k in PARTS]))
        sgd = [-g for g in grads["full"]]
        sgd_scale = tf.sqrt(_dot(updates["full"], updates["full"]) / _dot(sgd, sgd))
        record = {
            "shift": shift,
            "gap": gap,
            "d_loss": loss,
            "denominator_mean": tf.reduce_mean(out.grad_norm),
            "held_error": tf.reduce_max(tf.abs(held - out.f_hat)),  # the held f_hat's value is f_hat's
            "shift_by": {k: _dot(u, grads["shift"]) for k, u in updates.items()},
            "gap_by": {k: _dot(u, grads["gap"]) for k, u in updates.items()},
            "shift_sgd": sgd_scale * _dot(sgd, grads["shift"]),
            "cos_adam_sgd": _dot(updates["full"], sgd) / tf.sqrt(_dot(updates["full"], updates["full"]) * _dot(sgd, sgd)),
        }  # fmt: skip
        return both, updates["full"], record

    return probe


def _floats(tree):
    if isinstance(tree, dict):
        return {k: _floats(v) for k, v in tree.items()}
    return float(f"{float(tree):.7g}")  # seven significant digits, float32's


def gin_config(gin_files, gin_params):
    """The RunConfig of the user's gin files and bindings."""
    from pgn_tf import train_lib
    from pgn_tf.cli import parse_gin

    parse_gin(gin_files, gin_params)
    return train_lib.settings()


def benchmark_config(spec, end):
    """The RunConfig the benchmark trains for "SUITE:METHOD:SEED" (e.g. stacked_digits:pgn_center:0), to `end`.

    Raises:
      ValueError: a spec not of that form, an unknown suite or method, or a method this tool cannot replay
        (newg<S>: its new generator comes from a callback the tool does not run).
    """
    from pgn_tf.benchmark import run, suites

    parts = spec.split(":")
    if len(parts) != 3 or not parts[2].isdigit():
        raise ValueError(f"--benchmark must be SUITE:METHOD:SEED (e.g. stacked_digits:pgn:0), got {spec!r}.")
    if run.fresh_generator_step(parts[1]) is not None:
        raise ValueError(f"--benchmark: {parts[1]!r} renews G during the run; this tool does not replay that.")
    return run.run_config(suites.get(parts[0]), parts[1], int(parts[2]), end)


def analyse(config, start, end):
    """Trains from step 0 to `end`, taking apart the critic updates of steps start..end: the JSON's contents."""
    import numpy as np
    import tensorflow as tf

    from pgn_tf import normalization, train_lib
    from pgn_tf.errors import ConfigError

    problem = unsupported(config.loop)
    if problem:
        raise ConfigError(problem)
    gan, loop = train_lib.build_gan(config), config.loop
    dataset_fn = train_lib.dataset_fn(config, gan)  # "folder:PATH" / "tfds:NAME" at the critic's side
    critic, d_vars = gan.discriminator.critic, gan.discriminator.trainable_variables
    # G's BatchNorm statistics and an SN critic's u: the probe's calls in training mode move them.
    state = gan.generator.non_trainable_variables + critic.non_trainable_variables
    batches = iter(dataset_fn(batch_size=loop.batch_size_D, seed=loop.seed, start_step=0))
    train_step, probe = tf.function(gan.train_step), make_probe(gan)
    raw = tf.function(lambda x: tf.reduce_mean(normalization.call_critic(critic, x, None, False), axis=1))
    steps, worst = [], 0.0
    for step in range(1, end + 1):
        batch = next(batches)
        real = tf.cast(batch[0] if isinstance(batch, (tuple, list)) else batch, gan.dtype)
        if step >= start:
            kept = [v.numpy() for v in state]
            both, predicted, record = probe(real)
            for v, value in zip(state, kept):
                v.assign(value)
            before, f0 = [v.numpy() for v in d_vars], raw(both).numpy()
        train_step(batch)
        if step >= start:
            made = [v.numpy() - b for v, b in zip(d_vars, before)]
            scale = max(float(np.abs(u).max()) for u in made)
            worst = max(worst, max(float(np.abs(u - p.numpy()).max()) for u, p in zip(made, predicted)) / scale)
            f1, b = raw(both).numpy(), loop.batch_size_D
            record = _floats(record)
            record.update(step=step, d_shift=float(f1.mean() - f0.mean()),
                          d_gap=float((f1[:b].mean() - f1[b:].mean()) - (f0[:b].mean() - f0[b:].mean())))  # fmt: skip
            steps.append(record)
    held = max(r["held_error"] for r in steps)
    return {"steps": steps, "checks": {"update_max_relative_error": worst, "held_max_error": held}}


def _rolling_median(values, width=9):
    import numpy as np

    half = width // 2
    return [float(np.median(values[max(0, i - half) : i + half + 1])) for i in range(len(values))]


def series(result):
    """Per step: (steps, one step's |change of shift| in denominators, the denominator part's share against
    the net pull on the shift, |gap| / |shift|), the three quantities `plot` draws."""
    rows = result["steps"]
    steps = [r["step"] for r in rows]
    moved = [abs(r["d_shift"]) / r["denominator_mean"] if r["denominator_mean"] else float("nan") for r in rows]
    share = []
    for r in rows:
        net = r["shift_by"]["pull_real"] + r["shift_by"]["pull_fake"]
        share.append(-r["shift_by"]["denominator"] / net if net else float("nan"))
    ratio = [abs(r["gap"]) / abs(r["shift"]) if r["shift"] else float("nan") for r in rows]
    return steps, moved, share, ratio


def plot(results, path):
    """results: {label: analyse()'s result}, one colour each, drawn against the step in three panels."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    fig, axes = plt.subplots(1, 3, figsize=(15, 4.2), dpi=80)
    titles = (
        "one step's move of the outputs' mean, in denominators",
        "the denominator's gradient against the loss's pull through f,\n"
        + "on the outputs' mean: -denominator / (pull_real + pull_fake)",
        "|mean over reals - mean over fakes| / |their mean|",
    )
    for i, (label, result) in enumerate(results.items()):
        steps, *values = series(result)
        for ax, v in zip(axes, values):
            ax.plot(steps, v, ".", ms=2, color=f"C{i}", alpha=0.35)
            ax.plot(steps, _rolling_median(v), "-", color=f"C{i}", label=f"{label} (median of 9 steps)")
    for ax, title, scale in zip(axes, titles, ("log", "linear", "log")):
        ax.set_yscale(scale)
        ax.set(xlabel="step", title=title)
        ax.title.set_fontsize(9)
        ax.legend(fontsize=7)
    axes[1].set_ylim(-1, 2.5)
    axes[1].axhline(0, color="grey", lw=0.5)
    axes[1].axhline(1, color="grey", lw=0.5, ls="--")
    axes[2].axhline(1, color="grey", lw=0.5, ls="--")
    fig.tight_layout()
    fig.savefig(path + ".tmp.png")
    os.replace(path + ".tmp.png", path)


def main():
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--gin_file", action="append", default=[], help="gin config files, applied in order")
    parser.add_argument("--gin_param", action="append", default=[], help="gin bindings")
    parser.add_argument("--benchmark", default=None, help="instead of gin: a benchmark run, SUITE:METHOD:SEED "
                        "(e.g. stacked_digits:pgn_center:0), its settings as the benchmark trains it")  # fmt: skip
    parser.add_argument("--start", type=int, default=None, help="the first step taken apart")
    parser.add_argument("--end", type=int, default=None, help="the last step taken apart (and trained to)")
    parser.add_argument("--out", default=None, help="the JSON to write")
    parser.add_argument("--png", default=None, help="also draw the run here")
    parser.add_argument("--from_json", action="append", default=[], help="draw these earlier --out files "
                        "(repeat to compare; named by file name) instead of training")  # fmt: skip
    args = parser.parse_args()
    if args.from_json:
        if not args.png or args.gin_file or args.benchmark:
            print("error: --from_json takes --png and no --gin_file or --benchmark.", file=sys.stderr)
            return 2
        results = {}
        for path in args.from_json:
            if not os.path.isfile(path):
                print(f"error: --from_json {path} does not exist.", file=sys.stderr)
                return 2
            try:
                with open(path) as f:
                    result = json.load(f)
            except ValueError:
                result = None
            if not isinstance(result, dict) or "steps" not in result:
                print(f'error: --from_json {path} is not this tool\'s --out (JSON with "steps").', file=sys.stderr)
                return 2
            results[os.path.splitext(os.path.basename(path))[0]] = result
        if not os.path.isdir(os.path.dirname(os.path.abspath(args.png))):
            print(f"error: {args.png}: its folder does not exist.", file=sys.stderr)
            return 2
        plot(results, args.png)
        print(f"wrote {args.png}")
        return 0
    if not ((args.gin_file or args.benchmark) and args.out and args.start is not None and args.end is not None):
        print("error: training needs --gin_file (or --benchmark), --start, --end and --out.", file=sys.stderr)
        return 2
    if args.gin_file and args.benchmark:
        print("error: give --gin_file or --benchmark, not both.", file=sys.stderr)
        return 2
    if not 1 <= args.start <= args.end:
        print(f"error: need 1 <= --start <= --end, got {args.start} and {args.end}.", file=sys.stderr)
        return 2
    for path in (args.out, args.png):
        if path and not os.path.isdir(os.path.dirname(os.path.abspath(path))):
            print(f"error: {path}: its folder does not exist.", file=sys.stderr)
            return 2
    from pgn_tf.cli import user_errors
    from pgn_tf.errors import first_line

    try:
        if args.benchmark:
            config, source = benchmark_config(args.benchmark, args.end), {"benchmark": args.benchmark}
        else:
            config, source = gin_config(args.gin_file, args.gin_param), {"gin_files": args.gin_file}
            source["gin_params"] = args.gin_param
        from pgn_tf.benchmark.run import code_version

        result = {**analyse(config, args.start, args.end), **source, "code": code_version()}
    except (*user_errors(), ValueError) as e:
        print(f"error: {first_line(e)}", file=sys.stderr)
        return 2
    with open(args.out, "w") as f:
        json.dump(result, f, indent=1)
    if args.png:
        plot({os.path.splitext(os.path.basename(args.out))[0]: result}, args.png)
    print(f"wrote {args.out}; update reconstructed to {result['checks']['update_max_relative_error']:.1e} (relative)")
    return 0


if __name__ == "__main__":
    sys.exit(main())
