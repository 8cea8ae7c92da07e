"""What the command-line tools share: gin parsing (`gin_files`), one-line errors and their exit codes."""

import sys

from absl import app, flags, logging

from pgn_tf.errors import UsageError, UserError, first_line  # noqa: F401  (UsageError: the commands raise it)
from pgn_tf.gin_files import CONFIG_DIR, operative_config, parse_gin  # noqa: F401  (the commands' gin parsing)


def user_errors():
    """The exceptions reported as one `error:` line with exit code 2 (`errors.UserError` and its kinds)."""
    return (UserError,)


def report_failure(e):
    """Prints the one line for an exception a run can end with and returns its exit code; None for any other.

    Preempted: its line, 143 / 130; Diverged: 3; a user error (bad input, a busy workdir): 2; a full disk: 4.
    """
    from pgn_tf import faults

    if isinstance(e, faults.Preempted):
        print(first_line(e), file=sys.stderr, flush=True)
        return e.exit_code
    if isinstance(e, faults.Diverged):
        code, line = faults.EXIT_DIVERGED, first_line(e)
    elif isinstance(e, user_errors()):
        code, line = 2, first_line(e)
    elif faults.is_disk_full(e):  # a checkpoint (faults.DiskFull), or events, samples, eval.jsonl
        code = faults.EXIT_DISK_FULL
        line = (
            first_line(e)
            if isinstance(e, faults.DiskFull)
            else f"no space left on the device ({first_line(e)[:160]}); the saved checkpoints are intact. "
            "Free some space and run the same command to resume"
        )
        line += "."
    else:
        return None
    print(f"error: {line}", file=sys.stderr, flush=True)
    return code


def start(run_fn):
    """Runs a tool as a program: flags parsed by absl, positional arguments refused, exit code from run_fn()."""

    if "verbose" not in flags.FLAGS:  # read from sys.argv before TensorFlow loads (pgn_tf.console)
        flags.DEFINE_bool("verbose", False, "Also show TensorFlow's own log lines and warnings.")

    def main(argv):
        if len(argv) > 1:
            print(f"error: unexpected arguments {argv[1:]}; every option is a --flag.", file=sys.stderr)
            return 2
        logging.set_verbosity(logging.WARNING)
        return run_fn()

    app.run(lambda argv: sys.exit(main(argv)))
