"""The critic of a training run against steps, from its TensorBoard events: python tools/plot_critic.py

  --workdir=DIR --out=PNG [--json=FILE]

Reads DIR's event files (what `train_and_evaluate` logs every log_every steps) and draws, against the
step: the normaliser's denominator (pgn/grad_norm_mean: ||1 - grad_x f|| for PGN) beside sqrt(d) for the
critic's input size d, the raw ||grad_x f|| (critic/input_grad_norm_mean), the raw critic output f on
reals and fakes, f_hat's largest value, the critic's accuracy and d_loss beside 2 ln 2 (a BCE critic at
chance). --json also writes the scalars, {tag: {step: value}}, for tables.
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
    "pgn/f_hat_max",
    "critic/accuracy",
    "train/d_loss",
    "train/g_loss",
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
    """d, the critic's input size H x W x 3, from the run's operative config (its critic's `size` binding)."""
    bindings = {}
    with open(os.path.join(workdir, "operative_config.gin")) as f:
        for line in f:
            key, sep, value = line.partition("=")
            if sep:
                bindings[key.strip()] = value.strip()
    for key, value in bindings.items():
        if key.endswith("critic.size"):
            value = bindings.get(value[1:], value) if value.startswith("%") else value  # a macro: SIZE = 32
            return int(value) ** 2 * 3 if value.isdigit() else None
    return None


def plot(scalars, d, path, title):
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    def curve(ax, tag, label=None):
        steps = sorted(scalars.get(tag, {}))
        ax.plot(steps, [scalars[tag][s] for s in steps], marker="o", ms=2, label=label or tag)

    fig, axes = plt.subplots(1, 4, figsize=(16, 3.4), dpi=80)
    curve(axes[0], "pgn/grad_norm_mean", "||1 - grad f|| (denominator)")
    curve(axes[0], "critic/input_grad_norm_mean", "||grad f|| (raw)")
    if d:
        axes[0].axhline(math.sqrt(d), color="grey", lw=0.8, ls="--", label=f"sqrt(d) = {math.sqrt(d):.1f}")
    axes[0].set(yscale="log", title="norms of the critic's input gradient")
    curve(axes[1], "critic/f_real_mean", "f on reals")
    curve(axes[1], "critic/f_fake_mean", "f on fakes")
    axes[1].set(yscale="symlog", title="raw critic output f (mean)")
    curve(axes[2], "pgn/f_hat_max", "max f_hat")
    curve(axes[2], "critic/accuracy", "accuracy")
    axes[2].set(ylim=(0, 1.02), title="f_hat and the critic's accuracy")
    curve(axes[3], "train/d_loss", "d_loss")
    curve(axes[3], "train/g_loss", "g_loss")
    axes[3].axhline(2 * math.log(2), color="grey", lw=0.8, ls="--", label="2 ln 2")
    axes[3].set(title="losses")
    for ax in axes:
        ax.set_xlabel("step")
        ax.legend(fontsize=7)
        ax.title.set_fontsize(9)
    fig.suptitle(title, fontsize=10)
    fig.tight_layout()
    fig.savefig(path + ".tmp.png")
    os.replace(path + ".tmp.png", path)


def main():
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--workdir", required=True)
    parser.add_argument("--out", required=True, help="the PNG to write")
    parser.add_argument("--json", default=None, help="also write the scalars here")
    args = parser.parse_args()
    if not os.path.isdir(args.workdir):
        print(f"error: --workdir {args.workdir} is not a folder.", file=sys.stderr)
        return 2
    scalars = read_scalars(args.workdir)
    d = input_dim(args.workdir)
    plot(scalars, d, args.out, f"{os.path.basename(os.path.normpath(args.workdir))}: the critic (d = {d})")
    if args.json:
        with open(args.json, "w") as f:
            json.dump({tag: {str(s): v for s, v in sorted(values.items())} for tag, values in scalars.items()}, f)
    print(f"wrote {args.out}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
