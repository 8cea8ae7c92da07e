"""Merges benchmark folders trained side by side (one process per core or per machine) into one table.

Usage:
  python tools/merge_benchmark.py --out=DEST SRC [SRC ...] [--steps=N] [--command="..."] [--allow_mixed_code]

Each SRC is an --out folder of `python -m pgn_tf.benchmark` (e.g. two queues of methods, one per core). DEST gets
results.jsonl with the lines of every complete run (its last evaluation at the suite's step, or --steps; runs
stopped midway are left out and listed), the samples pictures and .npy files of SRC/samples, and the summary and
pictures that the benchmark itself writes (`report.write`: the stacked suites' real-data rows and classifier
accuracy included). A table comes from one code version: lines of several (their "code" field) are refused
unless --allow_mixed_code, and the summary names the versions. A run found in two folders is refused, as are a
stacked suite's lines counted by several classifiers (their "classifier" fingerprint) or by another classifier
than the cached one that scores the real-data rows.
"""

import argparse
import json
import os
import shutil
import sys

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")


def merge(sources, steps=None):
    """(complete rows, [(suite, method, seed, last step) of incomplete runs]) of the folders' results.jsonl.

    Raises:
      ValueError: a run in two folders.
    """
    from pgn_tf.benchmark import run, suites

    rows, origin = [], {}
    for i, src in enumerate(sources):
        for r in run.read_results(os.path.join(src, "results.jsonl")):
            key = (r["suite"], r["method"], r["seed"])
            if origin.setdefault(key, i) != i:
                first = sources[origin[key]]
                raise ValueError(f"run {key} is in both {first} and {src}; merge folders of different runs.")
            rows.append(r)
    last = {}
    for r in rows:
        key = (r["suite"], r["method"], r["seed"])
        last[key] = max(last.get(key, 0), r["step"])

    def target(suite):
        return steps or suites.get(suites.base(suite), **_knobs(rows, suite)).steps

    complete = {key for key, step in last.items() if step >= target(key[0])}
    incomplete = sorted((*key, step) for key, step in last.items() if key not in complete)
    return [r for r in rows if (r["suite"], r["method"], r["seed"]) in complete], incomplete


def classifier_problem(rows, chosen):
    """What is wrong with the classifiers of a stacked suite's lines (their "classifier" fingerprints), or None:
    several of them, or not the cached one, which scores the real-data rows and the held-out accuracy."""
    for suite in chosen:
        scored = sorted({r["classifier"] for r in rows if r["suite"] == suite.name and "classifier" in r})
        if len(scored) > 1:
            return f"{suite.name}'s lines were scored by several classifiers {scored}; one table, one classifier."
        cached = suite.classifier().fingerprint if scored else None
        if cached != (scored[0] if scored else None):
            return (f"{suite.name}'s lines were scored by classifier {scored[0]}, the cached one is {cached}: "
                    "restore those weights in $PGN_TF_CACHE.")  # fmt: skip
    return None


def _knobs(rows, suite):
    """The benchmark knobs a suite's lines were run with, as suites.get takes them: loss, and for a 2D mixture
    dim and g_out (a stacked suite's lines say "tanh", its fixed output, which get() does not take)."""
    from pgn_tf.benchmark import suites

    row = next(r for r in rows if r["suite"] == suite)
    names = ("dim", "g_out", "loss") if suites.base(suite) in suites.MIXTURES else ("loss",)
    return {k: row[k] for k in names if k in row}


def main(argv=None):
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("sources", nargs="+", help="benchmark --out folders")
    parser.add_argument("--out", required=True)
    parser.add_argument("--steps", type=int, default=None, help="the runs' step budget (default: each suite's)")
    parser.add_argument("--command", default=None, help="the benchmark command the table stands for")
    parser.add_argument("--allow_mixed_code", action="store_true")
    args = parser.parse_args(argv)
    from pgn_tf.benchmark import report, suites

    try:
        rows, incomplete = merge(args.sources, args.steps)
    except ValueError as e:
        print(f"error: {e}", file=sys.stderr)
        return 2
    codes = sorted({r.get("code", "unknown") for r in rows})
    if len(codes) > 1 and not args.allow_mixed_code:
        print(f"error: the lines come from several code versions {codes}; one table, one code version "
              "(--allow_mixed_code to merge them anyway).", file=sys.stderr)  # fmt: skip
        return 2
    names = sorted({r["suite"] for r in rows})
    chosen = [suites.get(suites.base(name), **_knobs(rows, name)) for name in names]
    problem = classifier_problem(rows, chosen)
    if problem:
        print(f"error: {problem}", file=sys.stderr)
        return 2
    os.makedirs(os.path.join(args.out, "samples"), exist_ok=True)
    for src in args.sources:
        folder = os.path.join(src, "samples")
        for name in sorted(os.listdir(folder)) if os.path.isdir(folder) else []:
            shutil.copy(os.path.join(folder, name), os.path.join(args.out, "samples", name))
    with open(os.path.join(args.out, "results.jsonl"), "w") as f:
        f.writelines(json.dumps(r) + "\n" for r in rows)
    for suite, method, seed, step in incomplete:
        print(f"left out: {suite} {method} seed {seed} (stopped at step {step})")
    seeds = sorted({r["seed"] for r in rows})
    notes = [f"Merged from {len(args.sources)} folders by tools/merge_benchmark.py; code {', '.join(codes)}."]
    report.write(args.out, rows, chosen, seeds, args.steps, args.command, notes)
    return 0


if __name__ == "__main__":
    sys.exit(main())
