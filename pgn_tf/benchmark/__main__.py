"""python -m pgn_tf.benchmark --suite=ring8|grid25|stacked_digits|stacked_mnist|stacked_mnist_tfds[,...] --methods=... --seeds=0,1,2 --out=DIR [--steps=N].

Trains every (suite, method, seed) through PGNGAN, appends each evaluation to
DIR/results.jsonl, then writes DIR/summary.md and the pictures. Running the
same command again resumes: complete runs are kept, the others start again.
"""

from pgn_tf import console

console.setup_process(__name__)  # before anything imports TensorFlow

import os
import shlex
import sys

from absl import flags

from pgn_tf.cli import UsageError, report_failure, start


def _list(name, text):
    items = [t.strip() for t in (text or "").split(",") if t.strip()]
    if not items:
        raise UsageError(f"--{name} is empty; give a comma-separated list.")
    return items


def parse(suite, methods, seeds, out, steps, dim=2, g_out="linear", loss="bce"):
    """Checks the arguments; returns (suites, methods, seeds), the suites with the knobs. Raises UsageError."""
    from pgn_tf.benchmark import run, suites

    suite_names = _list("suite", suite)
    unknown = [s for s in suite_names if s not in suites.SUITES]
    if unknown:
        raise UsageError(f"unknown suite {unknown[0]!r}; choose from {', '.join(suites.SUITES)}.")
    method_names = _list("methods", methods)
    seed_texts = _list("seeds", seeds)
    try:
        seed_values = [int(s) for s in seed_texts]
    except ValueError:
        raise UsageError(f"--seeds must be comma-separated integers, got {seeds!r}.") from None
    if not out:
        raise UsageError("no --out folder given.")
    if steps is not None and steps <= 0:
        raise UsageError(f"--steps must be positive, got {steps}.")
    if dim < 2:
        raise UsageError(f"--dim must be at least 2, got {dim}.")
    try:
        varied = [suites.get(name, dim, g_out, loss) for name in suite_names]
        for s in varied:  # each method's settings (an unknown one, newg<S> past the run's end: one error line)
            for m in method_names:
                run.run_config(s, m, 0, steps or s.steps)
    except ValueError as e:
        raise UsageError(str(e)) from None
    return varied, method_names, seed_values


def main(suite, methods, seeds, out, steps=None, dim=2, g_out="linear", loss="bce", save_samples=False, argv=()):
    try:
        chosen, method_names, seed_values = parse(suite, methods, seeds, out, steps, dim, g_out, loss)
        try:
            os.makedirs(out, exist_ok=True)
        except OSError as e:
            raise UsageError(f"cannot create --out {out} ({e.strerror}).") from None
    except UsageError as e:
        print(f"error: {e}", file=sys.stderr, flush=True)
        return 2
    from pgn_tf.benchmark import report, run

    try:
        rows = run.run(chosen, method_names, seed_values, out, steps, save_samples_npz=save_samples)
    except KeyboardInterrupt:  # before a run's training began (it catches the signal itself)
        print("stopped by SIGINT; every complete evaluation is in results.jsonl", file=sys.stderr, flush=True)
        return 130
    except Exception as e:
        code = report_failure(e)  # stopped by a signal, bad data, a busy run folder, a full disk: one line
        if code is None:
            raise
        return code
    command = "python -m pgn_tf.benchmark " + " ".join(shlex.quote(a) for a in argv) if argv else None
    report.write(out, rows, chosen, seed_values, steps, command)
    return 0


def define_flags():
    """The command's flags (defined only when it runs: tests import main() beside other tools' flags)."""
    return (
        flags.DEFINE_string(
            "suite",
            None,
            "ring8, grid25, stacked_digits, stacked_mnist or stacked_mnist_tfds (comma-separated for several).",
        ),
        flags.DEFINE_string("methods", "pgn,gn,sn,gp1,gp0,r1,none", "Critic constraints (gin_configs/baselines)."),
        flags.DEFINE_string("seeds", "0,1,2", "Comma-separated integer seeds."),
        flags.DEFINE_string("out", None, "Folder for results.jsonl, summary.md, the pictures and samples/."),
        flags.DEFINE_integer(
            "steps", None, "Training steps per run (default: the suite's; evaluations stay on its schedule)."
        ),
        flags.DEFINE_integer("dim", 2, "Embed the 2D mixtures in this many dimensions (a fixed orthonormal map)."),
        flags.DEFINE_enum("g_out", "linear", ["linear", "tanh"], "The mixtures' G output: linear, or bounded by tanh."),
        flags.DEFINE_enum("loss", "bce", ["bce", "hinge"], "The GAN loss of every method."),
        flags.DEFINE_bool(
            "save_samples",
            False,
            "Stacked suites: each evaluation's samples as uint8 DIR/runs/<run>/samples_<step>.npz.",
        ),
    )


def cli_main():
    """The program (python -m and the console script)."""
    values = define_flags()
    start(lambda: main(*(v.value for v in values), argv=sys.argv[1:]))


if __name__ == "__main__":
    cli_main()
