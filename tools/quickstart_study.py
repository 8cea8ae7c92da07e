"""The quickstart over methods and seeds: `python -m pgn_tf.train --gin_file=quickstart.gin` (the embedded 8 x 8
digits at 32 x 32, quarter-width CNNs, BCE, 1,000 steps) for each method (PGN, a baseline or a PGN variant of
issue 32, such as pgn_cunit) and seed, scored as the README's quickstart is: the digits classifier's IS and FID
of G and of EMA-G.

Usage:
  python tools/quickstart_study.py --out=DIR [--methods=pgn,gn,pgn_cunit,pgn_ssqrtd --seeds=0,1,2 --steps=1000
      --eval_every=250 --num_images=2000] [--summary_only]

Each run trains into DIR/runs/<method>_seed<s>/ with quickstart.gin's settings and the method's gin bindings
(`augment_study.method_bindings`), its scores every eval_every steps in its eval.jsonl. A finished run is skipped
and an interrupted one resumes, under the code that began it only (`augment_study.train_runs`). The summary
(DIR/summary.md, DIR/results.jsonl, DIR/fid.png): per method, IS and FID of G and of EMA-G and G's recall at the
end, mean +- std over seeds beside each seed's value, G's FID at every evaluation (mean over seeds), and the
minutes each run trained (from its TensorBoard events); every line names the code version that trained it.
"""

import argparse
import glob
import os
import statistics
import sys
from collections import defaultdict

import augment_study as study  # tools/, the script's own folder

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")

# The summary's columns: (heading, eval.jsonl key, digits).
COLUMNS = (
    ("IS of G", "IS", 2),
    ("FID of G", "FID", 1),
    ("IS of EMA-G", "IS_ema", 2),
    ("FID of EMA-G", "FID_ema", 1),
    ("recall of G", "recall", 3),
)


def run_dir(out, method, seed):
    return os.path.join(out, "runs", f"{method}_seed{seed}")


def command(out, method, seed, args):
    bindings = [
        *study.method_bindings(method),
        f"seed={seed}",
        f"total_steps={args.steps}",
        f"lr_decay_start={args.steps}",
        f"eval_every={args.eval_every}",
        f"num_images={args.num_images}",
    ]
    return [
        sys.executable, "-m", "pgn_tf.train", "--gin_file=quickstart.gin", f"--workdir={run_dir(out, method, seed)}",
        *(f"--gin_param=train_and_evaluate.{b}" for b in bindings),
    ]  # fmt: skip


def tabulate(out, runs, args):
    """The results lines (one per finished run and evaluation) and summary.md's text, from the runs' files."""
    lines, table = [], {}
    for method, seed in runs:
        workdir = run_dir(out, method, seed)
        rows = study.evaluations(workdir)
        if not rows or rows[-1]["step"] < args.steps:
            continue
        code = study.recorded_code(workdir) or "unknown"
        lines += [{"method": method, "seed": seed, "code": code, **row} for row in rows]
        table.setdefault(method, []).append(
            {"seed": seed, "rows": rows, "minutes": study.read_json(workdir, "trained.json", {}).get("minutes")}
        )
    codes = sorted({line["code"] for line in lines})
    minutes = [r["minutes"] for runs_ in table.values() for r in runs_ if r["minutes"] is not None]
    steps = sorted({row["step"] for runs_ in table.values() for r in runs_ for row in r["rows"]})
    md = [
        "# The quickstart over methods and seeds",
        "",
        (
            f"Command: `python tools/quickstart_study.py --out=DIR --methods={args.methods} --seeds={args.seeds} "
            f"--steps={args.steps} --eval_every={args.eval_every} --num_images={args.num_images}`; "
            f"code {', '.join(codes) or '-'}."
        ),
        (
            f"quickstart.gin's settings; IS and FID in the {study.classifiers(lines, 'digits classifier')} "
            "against the embedded digits, "
            f"{args.num_images} samples, at step {args.steps}; mean +- std over seeds (ddof 0), each seed's value "
            "in brackets, in the order of the seeds column."
        ),
        (
            f"Training time (each run's TensorBoard events, first to last write): {min(minutes):.1f}-"
            f"{max(minutes):.1f} minutes a run, {sum(minutes) / 60:.1f} hours for the {len(minutes)} runs."
            if minutes
            else "Training time: not recorded."
        ),
        "",
        "| method | seeds | " + " | ".join(c[0] for c in COLUMNS) + " |",
        "|---|---|" + "---|" * len(COLUMNS),
    ]
    for method, rs in table.items():
        cells = [study.spread([r["rows"][-1].get(key) for r in rs], digits) for _, key, digits in COLUMNS]
        md.append(f"| {method} | {', '.join(str(r['seed']) for r in rs)} | " + " | ".join(cells) + " |")
    md += [
        "",
        "FID of G at each evaluation, mean over seeds:",
        "",
        "| method | " + " | ".join(f"step {s:,}" for s in steps) + " |",
        "|---|" + "---|" * len(steps),
    ]
    for method, rs in table.items():
        by_step = defaultdict(list)
        for row in (row for r in rs for row in r["rows"] if row.get("FID") is not None):
            by_step[row["step"]].append(row["FID"])
        means = [f"{statistics.fmean(by_step[s]):.1f}" if by_step.get(s) else "-" for s in steps]
        md.append(f"| {method} | " + " | ".join(means) + " |")
    return lines, "\n".join(md) + "\n"


def summarise(out, runs, args):
    """Each run's trained.json (from its events, kept where the events are not), then results.jsonl, summary.md
    and fid.png of the finished runs."""
    for method, seed in runs:
        workdir = run_dir(out, method, seed)
        if glob.glob(os.path.join(workdir, "events.out.tfevents.*")):
            study.record_training(workdir)
    lines, md = tabulate(out, runs, args)
    study.write_tables(out, lines, md)
    _plot(out, lines)
    print(md, end="")


def _plot(out, lines):
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    fig, axes = plt.subplots(1, 2, figsize=(10, 3.5), sharey=True)
    methods = list(dict.fromkeys(line["method"] for line in lines))
    for ax, key, title in ((axes[0], "FID", "G"), (axes[1], "FID_ema", "EMA-G")):
        for i, method in enumerate(methods):
            for seed in sorted({x["seed"] for x in lines if x["method"] == method}):
                points = [(x["step"], x[key]) for x in lines if (x["method"], x["seed"]) == (method, seed)]
                points = [p for p in points if p[1] is not None]
                ax.plot(*zip(*points), color=f"C{i}", marker=".", label=method if seed == 0 else None, alpha=0.8)
        ax.set(title=f"FID of {title} (each seed)", xlabel="step", yscale="log")
    axes[0].set_ylabel("digits-classifier FID")
    axes[0].legend(fontsize=8)
    fig.tight_layout()
    fig.savefig(os.path.join(out, "fid.png"), dpi=100)
    plt.close(fig)


def parse_args(argv=None):
    """The study's arguments and its runs, seed-major (a stopped study has whole seeds)."""
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--out", required=True)
    parser.add_argument("--methods", default="pgn,gn,pgn_cunit,pgn_ssqrtd")
    parser.add_argument("--seeds", default="0,1,2")
    parser.add_argument("--steps", type=int, default=1000)
    parser.add_argument("--eval_every", type=int, default=250)
    parser.add_argument("--num_images", type=int, default=2000)
    parser.add_argument("--summary_only", action="store_true", help="summarise the finished runs; train nothing")
    args = parser.parse_args(argv)
    for method in args.methods.split(","):
        try:
            study.method_bindings(method)
        except ValueError as e:
            parser.error(f"--methods: {e}")
    seeds = study.int_list(parser, "--seeds", args.seeds)
    return args, [(method, seed) for seed in seeds for method in args.methods.split(",")]


def main():
    args, runs = parse_args()
    os.makedirs(args.out, exist_ok=True)
    if not args.summary_only:
        jobs = [(f"{m}_seed{s}", run_dir(args.out, m, s), command(args.out, m, s, args)) for m, s in runs]
        study.train_runs(args.out, jobs, args.steps)
    summarise(args.out, runs, args)


if __name__ == "__main__":
    main()
