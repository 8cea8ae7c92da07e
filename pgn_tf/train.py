"""Trains a PGN-GAN: python -m pgn_tf.train --gin_file=gin_configs/cifar_cnn.gin [--gin_param=...] [--workdir=DIR]."""

import os
import sys

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")

from absl import app, flags, logging

GIN_FILES = flags.DEFINE_multi_string("gin_file", [], "Gin config files, applied in order.")
GIN_PARAMS = flags.DEFINE_multi_string("gin_param", [], "Gin bindings, e.g. 'train_and_evaluate.total_steps=100'.")
WORKDIR = flags.DEFINE_string("workdir", "workdir", "Where checkpoints, samples and TensorBoard events go.")

CONFIG_DIR = os.path.join(os.path.dirname(os.path.dirname(os.path.abspath(__file__))), "gin_configs")


class UsageError(Exception):
    """Bad input from the user: reported as one line, exit code 2."""


def _first_line(e):
    lines = [line.strip() for line in str(e).splitlines() if line.strip()]
    return lines[0] if lines else type(e).__name__


def parse_gin(files, params):
    """Parses gin files (paths, or names in gin_configs/) and bindings.

    Raises:
      UsageError: a missing file or a binding gin cannot parse or place.
    """
    import gin

    from pgn_tf import train_lib  # noqa: F401  (registers the configurables)

    gin.add_config_file_search_path(CONFIG_DIR)
    resolved = []
    for path in files:
        if not os.path.isfile(path):
            if not os.path.isfile(os.path.join(CONFIG_DIR, path)):
                raise UsageError(f"gin file {path} does not exist (the shipped configs are in {CONFIG_DIR}).")
            path = os.path.join(CONFIG_DIR, path)
        resolved.append(path)
    # gin logs every place it looks for an included file; keep that out of the run's output.
    verbosity = logging.get_verbosity()
    logging.set_verbosity(logging.FATAL)
    try:
        gin.parse_config_files_and_bindings(resolved, params)
    except (ValueError, KeyError, SyntaxError, TypeError, OSError) as e:
        raise UsageError(f"bad gin config: {_first_line(e)}") from None
    finally:
        logging.set_verbosity(verbosity)


def run(gin_files, gin_params, workdir):
    """Parses the config and trains; returns the exit code (2 with one line on stderr for bad input)."""
    try:
        if not gin_files:
            raise UsageError("no --gin_file given (e.g. --gin_file=gin_configs/quickstart.gin).")
        parse_gin(gin_files, gin_params)
        from pgn_tf import data, train_lib

        try:
            train_lib.train_and_evaluate(workdir)
        except (train_lib.ConfigError, train_lib.CheckpointError, data.DataError) as e:
            raise UsageError(_first_line(e)) from None
        except (ValueError, TypeError) as e:
            # Unbound REQUIRED parameters and mistyped values surface when gin calls the function.
            if "gin" in str(e) or "REQUIRED" in str(e):
                raise UsageError(f"bad gin config: {_first_line(e)}") from None
            raise
    except UsageError as e:
        print(f"error: {e}", file=sys.stderr, flush=True)
        return 2
    return 0


def main(argv):
    if len(argv) > 1:
        print(f"error: unexpected arguments {argv[1:]}; use --gin_file / --gin_param.", file=sys.stderr)
        return 2
    logging.set_verbosity(logging.WARNING)
    return run(GIN_FILES.value, GIN_PARAMS.value, WORKDIR.value)


if __name__ == "__main__":
    app.run(lambda argv: sys.exit(main(argv)))
