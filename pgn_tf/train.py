"""Trains a PGN-GAN: python -m pgn_tf.train --gin_file=gin_configs/cifar_cnn.gin [--gin_param=...] [--workdir=DIR]."""

import os
import sys

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")

from absl import flags

from pgn_tf.cli import UsageError, first_line, parse_gin, start, user_errors

GIN_FILES = flags.DEFINE_multi_string("gin_file", [], "Gin config files, applied in order.")
GIN_PARAMS = flags.DEFINE_multi_string("gin_param", [], "Gin bindings, e.g. 'train_and_evaluate.total_steps=100'.")
WORKDIR = flags.DEFINE_string("workdir", "workdir", "Where checkpoints, samples and TensorBoard events go.")


def run(gin_files, gin_params, workdir):
    """Parses the config and trains; returns the exit code (2 with one line on stderr for bad input)."""
    try:
        if not gin_files:
            raise UsageError("no --gin_file given (e.g. --gin_file=gin_configs/quickstart.gin).")
        parse_gin(gin_files, gin_params)
        from pgn_tf import train_lib

        try:
            train_lib.train_and_evaluate(workdir)
        except user_errors() as e:
            raise UsageError(first_line(e)) from None
        except (ValueError, TypeError) as e:
            # Unbound REQUIRED parameters and mistyped values surface when gin calls the function.
            if "gin" in str(e) or "REQUIRED" in str(e):
                raise UsageError(f"bad gin config: {first_line(e)}") from None
            raise
    except UsageError as e:
        print(f"error: {e}", file=sys.stderr, flush=True)
        return 2
    return 0


if __name__ == "__main__":
    start(lambda: run(GIN_FILES.value, GIN_PARAMS.value, WORKDIR.value))
