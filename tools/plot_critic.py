"""The critic of training runs against steps, from their TensorBoard events: python tools/plot_critic.py

  --workdir=DIR [--workdir=DIR2 ...] --out=PNG [--json=FILE]

Reads each DIR's event files (what `train_and_evaluate` logs every log_every steps) and draws, against the
step, one curve per run: the normaliser's denominator (pgn/grad_norm_mean: ||1 - grad_x f|| for PGN,
||grad_x f|| for GN) beside sqrt(d) for the critic's input size d, the raw ||grad_x f||
(critic/input_grad_norm_mean), the raw critic output f on reals and fakes, the loss's pull on f of each
side, cos(grad_x f, 1), f_hat's largest value and the critic's accuracy, and d_loss beside 2 ln 2 (a BCE
critic at chance). Each logged value is the mean over the log_every steps ending at its step. A run is named
by its folder's name (its path where two names clash); d is read from the first run. --json also writes the
scalars, {run: {tag: {step: value}}}, for tables.
"""

import argparse
import glob
import json
import math
import os
import sys
from collections import defaultdict

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")

TAGS = (
    "pgn/grad_norm_mean",
    "critic/input_grad_norm_mean",
    "critic/f_real_mean",
    "critic/f_fake_mean",
    "critic/f_real_std",
    "critic/f_fake_std",
    "pgn/f_hat_max",
    "critic/accuracy",
    "train/d_loss",
    "train/g_loss",
    "critic/pull_real_mean",
    "critic/pull_fake_mean",
    "critic/ones_cos_mean",
)


def read_scalars(workdir, tags=TAGS):
    """{tag: {step: value}} of the scalars `tags` in workdir's event files (tf.summary writes them as tensors)."""
    import tensorflow as tf

    out = defaultdict(dict)
    files = sorted(glob.glob(os.path.join(workdir, "events.out.tfevents.*")))
    if not files:
        raise SystemExit(f"error: no TensorBoard event files in {workdir}.")
    for path in files:
        for event in tf.compat.v1.train.summary_iterator(path):
            for v in event.summary.value:
                if v.tag in tags:
                    value = float(tf.make_ndarray(v.tensor)) if v.HasField("tensor") else v.simple_value
                    out[v.tag][event.step] = value
    return out


def input_dim(workdir):
    """d, the critic's input size H x W x 3, from the run's operative config (its critic's `size` binding);
    None where the run has no operative config or no such binding."""
    bindings = {}
    path = os.path.join(workdir, "operative_config.gin")
    if not os.path.isfile(path):
        return None
    with open(path) as f:
        for line in f:
            key, sep, value = line.partition("=")
            if sep:
                bindings[key.strip()] = value.strip()
    for key, value in bindings.items():
        if key.endswith("critic.size"):
            value = bindings.get(value[1:], value) if value.startswith("%") else value  # a macro: SIZE = 32
            return int(value) ** 2 * 3 if value.isdigit() else None
    return None


def plot(runs, d, path, title):
    """runs: {label: scalars} (read_scalars' form), drawn one colour each; d: the input size, or None."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    fig, axes = plt.subplots(2, 3, figsize=(15, 6.4), dpi=80)
    # (title, y scale, ((tag, label, line style), ...)); symlog is linear within its threshold (GN's f ~ 1e-3).
    panels = (
        ("norms of the critic's input gradient", "log",
         (("pgn/grad_norm_mean", "denominator", "-"), ("critic/input_grad_norm_mean", "raw ||grad f||", ":"))),
        ("raw critic output f (mean)", ("symlog", 1e-3),
         (("critic/f_real_mean", "reals", "-"), ("critic/f_fake_mean", "fakes", ":"))),
        ("the loss's pull on f (-d loss / d f, mean)", ("symlog", 1e-4),
         (("critic/pull_real_mean", "reals", "-"), ("critic/pull_fake_mean", "fakes", ":"))),
        ("cos(grad f, 1)", "linear", (("critic/ones_cos_mean", "", "-"),)),
        ("accuracy and max f_hat", "linear",
         (("critic/accuracy", "accuracy", "-"), ("pgn/f_hat_max", "max f_hat", ":"))),
        ("losses", "linear", (("train/d_loss", "d_loss", "-"), ("train/g_loss", "g_loss", ":"))),
    )  # fmt: skip
    for ax, (panel, scale, tags) in zip(axes.flat, panels):
        for i, (label, scalars) in enumerate(runs.items()):
            for tag, name, style in tags:
                steps = sorted(scalars.get(tag, {}))
                if steps:
                    ax.plot(steps, [scalars[tag][s] for s in steps], style, marker="o", ms=2, color=f"C{i}",
                            label=" ".join(x for x in (label, name) if x))  # fmt: skip
        if not ax.lines:  # runs from before the diagnostic existed
            ax.text(0.5, 0.5, "not in these runs' logs", ha="center", va="center", transform=ax.transAxes)
        elif isinstance(scale, tuple):
            ax.set_yscale(scale[0], linthresh=scale[1])
        else:
            ax.set_yscale(scale)
        ax.set(xlabel="step", title=panel)
        ax.title.set_fontsize(9)
    if d:
        axes[0, 0].axhline(math.sqrt(d), color="grey", lw=0.8, ls="--", label=f"sqrt(d) = {math.sqrt(d):.1f}")
    axes[1, 1].set_ylim(-1.02, 1.02)
    axes[1, 2].axhline(2 * math.log(2), color="grey", lw=0.8, ls="--", label="2 ln 2")
    for ax in axes.flat:
        if ax.get_legend_handles_labels()[0]:
            ax.legend(fontsize=7)
    fig.suptitle(title, fontsize=10)
    fig.tight_layout()
    fig.savefig(path + ".tmp.png")
    os.replace(path + ".tmp.png", path)


def _plain(scalars):
    """JSON's form of read_scalars' answer: the steps as strings, in order."""
    return {tag: {str(s): v for s, v in sorted(values.items())} for tag, values in scalars.items()}


def main():
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--workdir", required=True, action="append", help="a run's folder (repeat to compare)")
    parser.add_argument("--out", required=True, help="the PNG to write")
    parser.add_argument("--json", default=None, help="also write the scalars here")
    args = parser.parse_args()
    for workdir in args.workdir:
        if not os.path.isdir(workdir):
            print(f"error: --workdir {workdir} is not a folder.", file=sys.stderr)
            return 2
    if not os.path.isdir(os.path.dirname(os.path.abspath(args.out))):
        print(f"error: --out {args.out}: its folder does not exist.", file=sys.stderr)
        return 2
    names = [os.path.basename(os.path.normpath(w)) for w in args.workdir]
    names = [n if names.count(n) == 1 else w for n, w in zip(names, args.workdir)]
    runs = {n: read_scalars(w) for n, w in zip(names, args.workdir)}
    d = input_dim(args.workdir[0])
    plot(runs, d, args.out, f"{', '.join(runs)}: the critic (d = {d})")
    if args.json:
        with open(args.json, "w") as f:
            json.dump({name: _plain(scalars) for name, scalars in runs.items()}, f)
    print(f"wrote {args.out}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
