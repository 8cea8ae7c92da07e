"""Trains a PGN-GAN: python -m pgn_tf.train --gin_file=gin_configs/cifar_cnn.gin [--gin_param=...] [--workdir=DIR].

[--strategy=default|mirrored|multi_worker] [--cpu_replicas=N] spread each
step over GPUs, logical CPUs or hosts (TF_CONFIG); see docs/distribution.md.
"""

from pgn_tf import console

console.setup_process(__name__)  # before anything imports TensorFlow

import os
import sys

from absl import flags

from pgn_tf.cli import UsageError, first_line, parse_gin, report_failure, start

GIN_FILES = flags.DEFINE_multi_string("gin_file", [], "Gin config files, applied in order.")
GIN_PARAMS = flags.DEFINE_multi_string("gin_param", [], "Gin bindings, e.g. 'train_and_evaluate.total_steps=100'.")
WORKDIR = flags.DEFINE_string("workdir", "workdir", "Where checkpoints, samples and TensorBoard events go.")
STRATEGY = flags.DEFINE_enum(
    "strategy",
    "default",
    ["default", "mirrored", "multi_worker"],
    "default: one device; mirrored: all GPUs of this host (or --cpu_replicas logical CPUs); "
    "multi_worker: the hosts in TF_CONFIG.",
)
CPU_REPLICAS = flags.DEFINE_integer(
    "cpu_replicas", None, "Split the CPU into this many logical devices (data parallelism without GPUs)."
)


def run(gin_files, gin_params, workdir, strategy="default", cpu_replicas=None):
    """Parses the config and trains; returns the exit code, with one line on stderr unless 0.

    0 done; 2 bad input; 3 diverged; 4 disk full; 143 / 130 stopped by
    SIGTERM / SIGINT after saving the step reached.
    """
    try:
        if not gin_files:
            raise UsageError("no --gin_file given (e.g. --gin_file=gin_configs/quickstart.gin).")
        from pgn_tf import distribute

        try:
            # Before anything runs on a device: splitting the CPU must come first.
            dist = distribute.make_strategy(strategy, cpu_replicas)
        except distribute.StrategyError as e:
            raise UsageError(first_line(e)) from None
        parse_gin(gin_files, gin_params)
        from pgn_tf import train_lib
        from pgn_tf.workdir import claimed

        try:
            config = train_lib.settings()  # every binding checked: a bad one prints only its error line
            with claimed(config, workdir, dist):  # the workdir checked and held before anything is written
                if distribute.is_chief(dist):
                    print(_header(gin_files, gin_params, workdir, strategy, dist, config.precision), flush=True)
                built = train_lib.run(train_lib.build(config, workdir, dist))
        except Exception as e:
            code = report_failure(e)  # preempted, diverged, bad input, a full disk: one line, its exit code
            if code is not None:
                return code
            # Unbound REQUIRED parameters and mistyped values surface when gin calls the function.
            if isinstance(e, (ValueError, TypeError)) and ("gin" in str(e) or "REQUIRED" in str(e)):
                raise UsageError(f"bad gin config: {first_line(e)}") from None
            raise
    except UsageError as e:
        print(f"error: {e}", file=sys.stderr, flush=True)
        return 2
    except KeyboardInterrupt:  # before training began (it catches the signal itself): nothing to save yet
        print("stopped by SIGINT before training began; nothing was saved", file=sys.stderr, flush=True)
        return 130
    if distribute.is_chief(dist):
        print(_footer(built, workdir), flush=True)
    return 0


def _header(gin_files, gin_params, workdir, strategy, dist, precision):
    import tensorflow as tf

    gpus = tf.config.list_physical_devices("GPU")
    devices = f"{len(gpus)} GPU" if gpus else "CPU"
    config = " + ".join(os.path.basename(f) for f in gin_files)
    if gin_params:
        config += f" (+{len(gin_params)} binding{'s' * (len(gin_params) > 1)})"
    return (
        f"pgn_tf.train: {config} | workdir {os.path.abspath(workdir)} | {devices}, strategy {strategy} "
        f"({dist.num_replicas_in_sync} replica{'s' * (dist.num_replicas_in_sync > 1)}) | {precision}"
    )


def _tool(name):
    """How to run our tool `name` the way this run was started: `pgn-export` or `python -m pgn_tf.export`."""
    if os.path.basename(sys.argv[0]).startswith("pgn-"):
        return f"pgn-{name}"
    return f"python -m pgn_tf.{name}"


def _footer(built, workdir):
    step = int(built.gan.step.numpy())
    path = os.path.abspath(workdir)
    made = ", ".join(
        f"{path}/{name}" for name in ("samples", "checkpoints", "eval.jsonl") if os.path.exists(f"{path}/{name}")
    )
    return (
        f"done at step {step}: {made}\n"
        f"  see it:    tensorboard --logdir {path}\n"
        f"  serve G:   {_tool('export')} --workdir={path}\n"
        f"  score it:  {_tool('evaluate')} --workdir={path}"
    )


def cli_main():
    """The program (python -m and the console script)."""
    start(lambda: run(GIN_FILES.value, GIN_PARAMS.value, WORKDIR.value, STRATEGY.value, CPU_REPLICAS.value))


if __name__ == "__main__":
    cli_main()
