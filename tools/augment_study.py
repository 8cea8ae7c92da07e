"""Augmentation on small real datasets: PGN, GN and SN on 500 and 2,000 real MNIST digits, each without
augmentation, with DiffAugment's policy at p = 1 and with ADA, trained through `folder:` as a user would.

Usage:
  python tools/augment_study.py --out=DIR [--sizes=500,2000 --methods=pgn,gn,sn --augments=none,fixed,ada
      --seeds=0,1,2 --steps=1500 --eval_every=125 --num_images=2000 --ada_kimg=50] [--summary_only]

1. The data: the first n / 10 of each class of the offline MNIST digits (`data.mnist.offline_arrays`, 5,000 real
   digits), padded to 32 x 32, written as PNG files into DIR/data/digits_<n>/; the reference statistics of all
   5,000 in the MNIST classifier's features (`eval.mnist_classifier`) into DIR/data/mnist_full.npz.
2. Each run: `python -m pgn_tf.train --gin_file=quickstart.gin` with dataset_fn "folder:DIR/data/digits_<n>", the
   MNIST classifier as feature network, fid_stats the full set's, the method's settings (any benchmark method
   given by gin bindings: pgn, gn, sn, a penalty, none, or a PGN variant such as pgn_cunit), the augmentation
   (none; augment="color,translation,cutout" at p = 1; the same policy with augment_p="ada"), and the seed, into
   DIR/runs/<n>_<method>_<augment>_seed<s>/ (its eval.jsonl: FID / precision / recall / ... of G and EMA-G every
   eval_every steps). A finished run is skipped and an interrupted one resumes (the command's own resume), so the
   study can be stopped and restarted at will. Then each finished run's memory.json (`critic_memory`): whether its
   critic tells the digits it trained on from the ones it never saw (also alone: --memory_only).
3. The summary (DIR/summary.md, DIR/results.jsonl, DIR/fid_curves.png, DIR/ada_p.png, DIR/samples.png): per data
   size, method and augmentation, FID at the end and at its best (with the step), precision and recall at the end,
   mean +- std over seeds beside the per-seed values, ADA's p (from each run's TensorBoard events, kept in its
   ada.jsonl); every line names the code version (git commit) that trained it.

The ADA speed: ADA's ada_kimg = 500 lets p cross [0, 1] in 500,000 real images, more than a whole run here
(1,500 steps of 32 reals = 48,000); --ada_kimg=50 lets it cross in about one run (stated in the summary).

The budget: 54 runs (2 sizes x 3 methods x 3 augmentations x 3 seeds) of 1,500 steps are about 9 hours of one
core here (quickstart's networks, which the stacked-digits benchmark trains for 4,000 steps and 8 evaluations in
1,028-1,932 s on one core of two; an evaluation every 125 steps), so about 4.5 hours with two runs side by side
(`--sizes=500` beside `--sizes=2000`, one core each, the same --out; then `--summary_only` with both sizes writes
the whole table). 1,500 steps are 96 passes over 500 images and 24 over 2,000. Measured (2-core AMD EPYC, two
lanes, code 1d7d0b9): 6.1-11.2 minutes a run, 7.6 hours of one core for the 54 (the summary's Training time).
"""

import argparse
import glob
import json
import os
import statistics
import subprocess
import sys

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")

import numpy as np

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
POLICY = "color,translation,cutout"
AUGMENTS = {"none": [], "fixed": [f"augment='{POLICY}'"], "ada": [f"augment='{POLICY}'", "augment_p='ada'"]}
METRICS = ("FID", "precision", "recall", "density", "coverage")


def write_data(out, sizes):
    """DIR/data/digits_<n>/ (PNG, the first n / 10 of each class, padded to 32) and the full set's statistics."""
    import tensorflow as tf

    from pgn_tf.data.mnist import offline_arrays, to_side
    from pgn_tf.eval import mnist_classifier, stats

    x, y = offline_arrays()
    padded = to_side(x, 32)
    for n in sizes:
        folder = os.path.join(out, "data", f"digits_{n}")
        if os.path.isdir(folder) and len(os.listdir(folder)) == n:  # n is a multiple of 10 (main)
            continue
        os.makedirs(folder, exist_ok=True)
        for label in range(10):
            for i in np.flatnonzero(y == label)[: n // 10]:
                tf.io.write_file(os.path.join(folder, f"{i:04d}.png"), tf.io.encode_png(padded[i]))
    path = os.path.join(out, "data", "mnist_full.npz")
    if not os.path.exists(path):
        net = mnist_classifier.load_mnist_classifier()
        _, pool = net.stream([padded.astype(np.float32) / 127.5 - 1.0], len(padded))
        stats.Reference.from_activations(pool, net.name).save(path)
    return path


def method_bindings(method):
    """A benchmark method's gin bindings of train_and_evaluate (`benchmark.run.method_settings`: pgn, gn, sn, a
    penalty, none, or a PGN variant such as pgn_cunit, pgn_c0.1, pgn_ssqrtd).

    Raises:
      ValueError: an unknown method, or one the train command cannot be given as bindings (r3's loss, newg<S>).
    """
    from pgn_tf.benchmark.run import fresh_generator_step, method_settings

    settings = method_settings(method)
    if fresh_generator_step(method) is not None or any(callable(v) for v in settings.values()):
        raise ValueError(f"method {method!r} is the benchmark's alone (a loss or an intervention of its loop)")
    return [f"{name}={value!r}" for name, value in settings.items()]


def run_name(n, method, aug, seed):
    return f"{n}_{method}_{aug}_seed{seed}"


def command(out, stats_path, n, method, aug, seed, args):
    bindings = [
        f"dataset_fn='folder:{os.path.join(out, 'data', f'digits_{n}')}'",
        "feature_fn=@mnist_classifier.load_mnist_classifier",
        f"fid_stats='{stats_path}'",
        *method_bindings(method),
        f"total_steps={args.steps}",
        f"lr_decay_start={args.steps}",
        f"eval_every={args.eval_every}",
        f"save_every={args.eval_every}",
        f"sample_every={args.steps}",
        f"num_images={args.num_images}",
        f"ada_kimg={args.ada_kimg}",
        f"seed={seed}",
        *AUGMENTS[aug],
    ]
    workdir = os.path.join(out, "runs", run_name(n, method, aug, seed))
    return workdir, [
        sys.executable, "-m", "pgn_tf.train", "--gin_file=quickstart.gin", f"--workdir={workdir}",
        *(f"--gin_param=train_and_evaluate.{b}" for b in bindings),
    ]  # fmt: skip


def evaluations(workdir):
    """The run's eval.jsonl lines, the last per step (a step scored again after a resume counts once)."""
    path = os.path.join(workdir, "eval.jsonl")
    if not os.path.exists(path):
        return []
    by_step = {}
    with open(path) as f:
        for line in f:
            row = json.loads(line)
            by_step[row["step"]] = row
    return [by_step[s] for s in sorted(by_step)]


def classifiers(lines, name):
    """Which trained classifier scored the lines, by its weights' fingerprint (each eval line's
    feature_net_fingerprint), as "<name>'s features (fingerprint F)". One table, one classifier: several, or lines
    that did not record it, are said as such."""
    prints = sorted({line.get("feature_net_fingerprint") or "not recorded" for line in lines}) or ["-"]
    if len(prints) > 1:
        return f"{name}'s features (fingerprints {', '.join(prints)}: more than one classifier, not one table)"
    return f"{name}'s features (fingerprint {prints[0]})"


def code_version():
    from pgn_tf.benchmark.run import code_version as version

    return version()


def recorded_code(workdir):
    path = os.path.join(workdir, "code_version")
    if not os.path.exists(path):
        return None
    with open(path) as f:
        return f.read().strip()


def same_code(recorded, current):
    """Whether two code versions train alike: the same, or two clean commits with no change to pgn_tf/ or tools/
    between them (a docs-only commit does not stop a resume)."""
    if recorded == current:
        return True
    if "+dirty" in recorded + current:
        return False
    diff = subprocess.run(["git", "diff", "--quiet", recorded, current, "--", ":/pgn_tf", ":/tools"], cwd=ROOT,
                          capture_output=True, check=False)  # fmt: skip
    return diff.returncode == 0


def train_all(out, stats_path, runs, args):
    """Trains (or resumes) each unfinished run of the study (`train_runs`)."""
    jobs = []
    for n, method, aug, seed in runs:
        workdir, cmd = command(out, stats_path, n, method, aug, seed, args)
        jobs.append((run_name(n, method, aug, seed), workdir, cmd))
    train_runs(out, jobs, args.steps)


def train_runs(out, jobs, steps):
    """Trains (or resumes) each unfinished (name, workdir, train command) to `steps`, its output in out/train.log.
    A run is trained by one code: its version is written before it trains, and a run that has trained (an
    evaluation or a checkpoint) resumes only under the same code."""
    code = code_version()
    for name, workdir, cmd in jobs:
        done = evaluations(workdir)
        if done and done[-1]["step"] >= steps:
            continue
        recorded = recorded_code(workdir)
        trained = bool(done) or os.path.isdir(os.path.join(workdir, "checkpoints"))
        if trained and recorded is None:
            recorded = "unknown"  # trained before versions were written: its code cannot be told
        if trained and not same_code(recorded, code):
            sys.exit(f"error: {workdir} was trained by code {recorded}, not this {code}: resume it from that "
                     f"version, or remove the run to train it anew.")  # fmt: skip
        os.makedirs(workdir, exist_ok=True)
        with open(os.path.join(workdir, "code_version"), "w") as f:
            f.write((recorded if trained else code) + "\n")
        print(f"{name}: training", flush=True)
        with open(os.path.join(out, "train.log"), "a") as log:
            subprocess.run(cmd, cwd=ROOT, stdout=log, stderr=subprocess.STDOUT, check=True)


def from_events(workdir):
    """What a run's TensorBoard events hold for the summary: ADA's p and r_t (train/augment_p, train/ada_rt) as
    [{step, augment_p, ada_rt}], the newest events file's value where a resume wrote a step twice; and the minutes
    it trained, each events file's first to last write summed (the gaps between a stop and its resume left out)."""
    import tensorflow as tf

    by_step, seconds = {}, 0.0
    for path in sorted(glob.glob(os.path.join(workdir, "events.out.tfevents.*"))):  # named by start time
        times = []
        for event in tf.compat.v1.train.summary_iterator(path):
            times.append(event.wall_time)
            for value in event.summary.value:
                if value.tag in ("train/augment_p", "train/ada_rt"):
                    number = tf.make_ndarray(value.tensor) if value.HasField("tensor") else value.simple_value
                    by_step.setdefault(event.step, {})[value.tag.split("/")[1]] = float(number)
        seconds += max(times) - min(times) if times else 0.0
    return [{"step": step, **by_step[step]} for step in sorted(by_step)], seconds / 60


def read_json(workdir, name, default):
    """A run's JSON (name.json) or JSON-lines (name.jsonl) file written by summarise or remember_all; default
    where it has none."""
    path = os.path.join(workdir, name)
    if not os.path.exists(path):
        return default
    with open(path) as f:
        return [json.loads(line) for line in f] if name.endswith(".jsonl") else json.load(f)


def auc(higher, lower):
    """P(a > b) + P(a = b) / 2 for a from `higher` and b from `lower` (the Mann-Whitney statistic over n m)."""
    lower = np.sort(np.asarray(lower, np.float64))
    higher = np.asarray(higher, np.float64)
    below = np.searchsorted(lower, higher, side="left")
    ties = np.searchsorted(lower, higher, side="right") - below
    return float((below + ties / 2).sum() / (len(higher) * len(lower)))


def critic_memory(workdir, n, fakes=2000, batch=500):
    """What a run's critic, at its last checkpoint, makes of the n digits it trained on, of the 5,000 - n digits it
    never saw and of `fakes` samples of G: the output its loss reads (f_hat; SN's raw critic), as the AUC of
    trained-on against unseen digits (0.5: it cannot tell them apart; 1: it has memorised its data), of unseen
    digits against G's samples and of trained-on digits against them. No augmentation (the critic's verdict on the
    images themselves). {step, auc_train_unseen, auc_unseen_fake, auc_train_fake, code}."""
    import gin
    import tensorflow as tf

    from pgn_tf import train_lib
    from pgn_tf.data.mnist import offline_arrays, to_side

    gin.clear_config()
    built, _ = train_lib.from_workdir(workdir)
    gan = built.gan
    x, _ = offline_arrays()
    images = to_side(x, 32).astype(np.float32) / 127.5 - 1.0
    trained = np.zeros(len(images), bool)
    folder = os.path.join(os.path.dirname(os.path.dirname(workdir)), "data", f"digits_{n}")
    trained[[int(name.split(".")[0]) for name in os.listdir(folder)]] = True

    def scores(batches):
        out = [gan.discriminator.normalize(b, training=False).f_hat.numpy().ravel() for b in batches]
        return np.concatenate(out)

    def split(a):
        return [a[i : i + batch] for i in range(0, len(a), batch)]

    z = tf.random.stateless_normal([fakes, gan.z_dim], seed=[n, 7])
    with gan.statistics_kept():
        generated = [gan.generate(part, training=True) for part in split(z)]
    real = scores(split(images))
    fake = scores(generated)
    unseen = (~trained).any()  # none when the run trained on all 5,000
    return {
        "step": int(gan.step.numpy()),
        "auc_train_unseen": auc(real[trained], real[~trained]) if unseen else None,
        "auc_unseen_fake": auc(real[~trained], fake) if unseen else None,
        "auc_train_fake": auc(real[trained], fake),
        "code": code_version(),
    }


def remember_all(out, runs, args):
    """memory.json (`critic_memory`) in each finished run that has none yet and still has its checkpoints."""
    for n, method, aug, seed in runs:
        workdir = os.path.join(out, "runs", run_name(n, method, aug, seed))
        done = evaluations(workdir)
        path = os.path.join(workdir, "memory.json")
        if not done or done[-1]["step"] < args.steps or os.path.exists(path):
            continue
        if not os.path.isdir(os.path.join(workdir, "checkpoints")):
            continue
        memory = critic_memory(workdir, n)
        if memory["step"] != done[-1]["step"]:
            sys.exit(
                f"error: {workdir}'s last checkpoint is step {memory['step']}, its last evaluation {done[-1]['step']}"
            )
        with open(path, "w") as f:
            json.dump(memory, f)
        print(f"{run_name(n, method, aug, seed)}: {memory}", flush=True)


def _score(row, name, ema):
    value = row.get(f"{name}_ema" if ema else name)
    return None if value is None else float(value)


def _fid(row):
    """G's FID, NaN where the evaluation has none."""
    value = _score(row, "FID", False)
    return np.nan if value is None else value


def tabulate(out, runs, args):
    """The results lines (one per finished run and evaluation) and summary.md's text, from the runs' files."""
    from pgn_tf.config import LoopConfig

    lines, table = [], {}
    for n, method, aug, seed in runs:
        workdir = os.path.join(out, "runs", run_name(n, method, aug, seed))
        rows = evaluations(workdir)
        if not rows or rows[-1]["step"] < args.steps:
            continue
        code = recorded_code(workdir) or "unknown"
        for row in rows:
            lines.append({"size": n, "method": method, "augment": aug, "seed": seed, "code": code, **row})
        fids = np.array([_fid(r) for r in rows])
        if np.all(np.isnan(fids)):
            continue  # no FID was computed (--metrics without it): nothing to tabulate
        best = int(np.nanargmin(fids))
        table.setdefault((n, method, aug), []).append(
            {
                "seed": seed,
                "FID": None if np.isnan(fids[-1]) else float(fids[-1]),
                "best_FID": float(fids[best]),
                "best_step": rows[best]["step"],
                "precision": _score(rows[-1], "precision", False),
                "recall": _score(rows[-1], "recall", False),
                "FID_ema": _score(rows[-1], "FID", True),
                "p": [r["augment_p"] for r in read_json(workdir, "ada.jsonl", [])],
                "memory": read_json(workdir, "memory.json", None),
                "minutes": read_json(workdir, "trained.json", {}).get("minutes"),
            }
        )
    codes = sorted({line["code"] for line in lines})
    minutes = [r["minutes"] for rows in table.values() for r in rows if r["minutes"] is not None]
    memory_codes = sorted({r["memory"]["code"] for rows in table.values() for r in rows if r["memory"]})
    md = [
        f"# Augmentation on {' and '.join(f'{n:,}' for n in sorted({k[0] for k in table})) or 'no'} real digits",
        "",
        (
            f"Command: `python tools/augment_study.py --out=DIR --sizes={args.sizes} --methods={args.methods} "
            f"--augments={args.augments} --seeds={args.seeds} --steps={args.steps} --eval_every={args.eval_every} "
            f"--num_images={args.num_images} --ada_kimg={args.ada_kimg:g}`; code {', '.join(codes) or '-'}"
            + (f"; the critics' AUCs by code {', '.join(memory_codes)}." if memory_codes else ".")
        ),
        (
            f'Policy "{POLICY}" (DiffAugment); fixed: p = 1; ADA: target {LoopConfig.ada_target}, '
            f"interval {LoopConfig.ada_interval}, ada_kimg {args.ada_kimg:g}."
        ),
        (
            f"FID / precision / recall of G in the {classifiers(lines, 'MNIST classifier')} "
            "against all 5,000 offline digits, "
            f"{args.num_images} samples; mean +- std (over seeds, ddof 0 as the benchmark's tables), per-seed "
            "values in brackets; the best FID is the lowest of the run's evaluations, at the step named; ADA's p "
            "at the end and its highest (per seed, from TensorBoard's train/augment_p); the critic's AUC at the "
            "last checkpoint, un-augmented images (`critic_memory`): the digits it trained on against the 5,000 - n "
            "it never saw (0.5: it cannot tell them apart), and those unseen digits against G's samples."
        ),
        (
            f"Training time (each run's TensorBoard events, first to last write, a resume's gap left out): "
            f"{min(minutes):.1f}-{max(minutes):.1f} minutes a run, mean {statistics.fmean(minutes):.1f}, "
            f"{sum(minutes) / 60:.1f} hours in all for the {len(minutes)} runs."
            if minutes
            else "Training time: not recorded."
        ),
        "",
        (
            "| images | method | augment | FID at end | best FID (step) | precision | recall | FID EMA-G "
            "| ADA p end (max) | critic AUC trained-on / unseen | critic AUC unseen / G |"
        ),
        "|---|---|---|---|---|---|---|---|---|---|---|",
    ]
    for (n, method, aug), rows in sorted(
        table.items(), key=lambda kv: (kv[0][0], kv[0][1], list(AUGMENTS).index(kv[0][2]))
    ):
        md.append(
            f"| {n} | {method} | {aug} | {spread([r['FID'] for r in rows])} | "
            f"{spread([r['best_FID'] for r in rows])} ({', '.join(str(r['best_step']) for r in rows)}) | "
            f"{spread([r['precision'] for r in rows], 3)} | {spread([r['recall'] for r in rows], 3)} | "
            f"{spread([r['FID_ema'] for r in rows])} | "
            f"{_ada_cell([r['p'] for r in rows])} | {_memory_cell(rows, 'auc_train_unseen')} | "
            f"{_memory_cell(rows, 'auc_unseen_fake')} |"
        )
    return lines, "\n".join(md) + "\n"


def record_training(workdir):
    """The run's trained.json (its minutes, `from_events`), written from its TensorBoard events; returns the ADA
    trace. Only where the events are (the stored runs keep the file without them)."""
    trace, minutes = from_events(workdir)
    with open(os.path.join(workdir, "trained.json"), "w") as f:
        json.dump({"minutes": minutes}, f)
    return trace


def write_tables(out, lines, md):
    """A study's out/results.jsonl (one JSON line each) and out/summary.md."""
    with open(os.path.join(out, "results.jsonl"), "w") as f:
        f.writelines(json.dumps(line) + "\n" for line in lines)
    with open(os.path.join(out, "summary.md"), "w") as f:
        f.write(md)


def summarise(out, runs, args):
    """results.jsonl, summary.md and the pictures (fid_curves.png, ada_p.png, samples.png) of the finished runs;
    first each run's trained.json and each ADA run's ada.jsonl from its events (kept where the events are not, as
    in the stored runs)."""
    for n, method, aug, seed in runs:
        workdir = os.path.join(out, "runs", run_name(n, method, aug, seed))
        if not glob.glob(os.path.join(workdir, "events.out.tfevents.*")):
            continue
        trace = record_training(workdir)
        if aug == "ada":
            with open(os.path.join(workdir, "ada.jsonl"), "w") as f:
                f.writelines(json.dumps(row) + "\n" for row in trace)
    lines, md = tabulate(out, runs, args)
    write_tables(out, lines, md)
    _plot(out, lines)
    _plot_ada(out, runs)
    order = {(n, method, aug): (n, method, list(AUGMENTS).index(aug)) for n, method, aug, _ in runs}
    _samples(out, sorted(order, key=order.get), args.steps)
    print(md, end="")


def _memory_cell(rows, key):
    """A critic AUC over seeds (`spread`), "-" where no run has memory.json."""
    return spread([r["memory"] and r["memory"][key] for r in rows], 3)


def _ada_cell(traces):
    """ADA's p at the end and (its highest) of each seed's run, "-" without ADA."""
    return ", ".join(f"{p[-1]:.2f} ({max(p):.2f})" for p in traces if p) or "-"


def spread(values, digits=1):
    """mean +- std of the values that are there, then every seed's value in order ("-" where it has none)."""
    present = [v for v in values if v is not None]
    if not present:
        return "-"
    each = ", ".join("-" if v is None else f"{v:.{digits}f}" for v in values)
    return f"{statistics.fmean(present):.{digits}f} +- {statistics.pstdev(present):.{digits}f} [{each}]"


def _plot(out, lines):
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    sizes = sorted({line["size"] for line in lines})
    methods = sorted({line["method"] for line in lines})
    if not sizes:
        return
    fig, axes = plt.subplots(len(sizes), len(methods), figsize=(4 * len(methods), 3 * len(sizes)), squeeze=False)
    for i, n in enumerate(sizes):
        for j, method in enumerate(methods):
            ax = axes[i][j]
            for aug in AUGMENTS:
                rows = [r for r in lines if (r["size"], r["method"], r["augment"]) == (n, method, aug)]
                steps = sorted({r["step"] for r in rows})
                if not steps:
                    continue
                fids = [[_fid(r) for r in rows if r["step"] == s] for s in steps]
                mean = [np.nan if np.all(np.isnan(v)) else np.nanmean(v) for v in fids]
                seeds = len({r["seed"] for r in rows})
                ax.plot(steps, mean, label=f"{aug} ({seeds} seed{'s' * (seeds > 1)})")
            ax.set_title(f"{method}, {n} digits")
            ax.set_xlabel("step")
            ax.set_ylabel("FID (mean over seeds)")
            ax.set_yscale("log")  # from ~1,000 at the start to tens: the late turn shows only on a log scale
            ax.legend()
    fig.tight_layout()
    fig.savefig(os.path.join(out, "fid_curves.png"), dpi=80)
    plt.close(fig)


def _plot_ada(out, runs):
    """ada_p.png: ADA's p over the steps of each ADA run, one panel per data size, a colour per method."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    traces = {}
    for n, method, aug, seed in runs:
        trace = (
            read_json(os.path.join(out, "runs", run_name(n, method, aug, seed)), "ada.jsonl", [])
            if aug == "ada"
            else []
        )
        if trace:
            traces.setdefault(n, []).append((method, seed, trace))
    if not traces:
        return
    fig, axes = plt.subplots(1, len(traces), figsize=(5 * len(traces), 3), squeeze=False)
    colours = {}
    for ax, n in zip(axes[0], sorted(traces)):
        labelled = set()
        for method, _, trace in traces[n]:
            colour = colours.setdefault(method, f"C{len(colours)}")
            label = None if method in labelled else method  # one legend entry per method
            labelled.add(method)
            ax.plot([r["step"] for r in trace], [r["augment_p"] for r in trace], color=colour, label=label, lw=1)
        ax.set_title(f"ADA's p, {n} digits (a line per seed)")
        ax.set_xlabel("step")
        ax.set_ylabel("p")
        ax.legend()
    fig.tight_layout()
    fig.savefig(os.path.join(out, "ada_p.png"), dpi=80)
    plt.close(fig)


def _samples(out, configurations, steps):
    """samples.png: G's grid at the last step of seed 0, one panel per data size, method and augmentation."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    grids = []
    for n, method, aug in configurations:
        path = os.path.join(out, "runs", run_name(n, method, aug, 0), "samples", f"sample_{steps:07d}.png")
        if os.path.exists(path):
            grids.append((f"{method}, {aug}, {n}", plt.imread(path)))
    if not grids:
        return
    cols = len(AUGMENTS)
    rows = -(-len(grids) // cols)
    fig, axes = plt.subplots(rows, cols, figsize=(3 * cols, 3.2 * rows), squeeze=False)
    for ax in axes.flat:
        ax.axis("off")
    for ax, (title, grid) in zip(axes.flat, grids):
        ax.imshow(grid)
        ax.set_title(title, fontsize=9)
    fig.tight_layout()
    fig.savefig(os.path.join(out, "samples.png"), dpi=80)
    plt.close(fig)


def int_list(parser, flag, text):
    """`text`'s comma-separated integers, or argparse's one-line usage error (exit 2) naming `flag`."""
    try:
        return [int(value) for value in text.split(",")]
    except ValueError:
        parser.error(f"{flag}: integers separated by commas, got {text!r}")


def parse_args(argv=None):
    """The study's arguments and its runs, seed-major: every configuration's seed 0 first, so that a stopped study
    has whole seeds."""
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--out", required=True)
    parser.add_argument("--sizes", default="500,2000")
    parser.add_argument("--methods", default="pgn,gn,sn")
    parser.add_argument("--augments", default="none,fixed,ada")
    parser.add_argument("--seeds", default="0,1,2")
    parser.add_argument("--steps", type=int, default=1500)
    parser.add_argument("--eval_every", type=int, default=125)
    parser.add_argument("--num_images", type=int, default=2000)
    parser.add_argument("--ada_kimg", type=float, default=50.0)
    parser.add_argument("--summary_only", action="store_true", help="summarise the finished runs; train nothing")
    parser.add_argument(
        "--memory_only", action="store_true", help="the critics' AUCs of finished runs (memory.json), then summarise"
    )
    args = parser.parse_args(argv)
    sizes = int_list(parser, "--sizes", args.sizes)
    if any(n % 10 or not 10 <= n <= 5000 for n in sizes):
        parser.error(f"--sizes: each a multiple of 10 in [10, 5000] (n / 10 digits of each class), got {args.sizes}")
    for method in args.methods.split(","):
        try:
            method_bindings(method)
        except ValueError as e:
            parser.error(f"--methods: {e}")
    augments = args.augments.split(",")
    unknown = [a for a in augments if a not in AUGMENTS]
    if unknown:
        parser.error(f"--augments: unknown {unknown}; choose from {list(AUGMENTS)}")
    runs = [
        (n, method, aug, seed)
        for seed in int_list(parser, "--seeds", args.seeds)
        for n in sizes
        for method in args.methods.split(",")
        for aug in augments
    ]
    return args, runs


def main():
    args, runs = parse_args()
    os.makedirs(args.out, exist_ok=True)
    if not (args.summary_only or args.memory_only):
        stats_path = write_data(args.out, sorted({n for n, *_ in runs}))
        train_all(args.out, stats_path, runs, args)
    if not args.summary_only:
        remember_all(args.out, runs, args)
    summarise(args.out, runs, args)


if __name__ == "__main__":
    main()
