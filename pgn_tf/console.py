"""A command's process set-up: oneDNN on, a quiet console (our lines only, unless --verbose or TF_CPP_MIN_LOG_LEVEL).

TensorFlow writes its start-up lines (oneDNN, CUDA drivers, CPU features,
"All log messages before absl::InitializeLog()") from C++ while it loads,
before any logging setting applies; TF_CPP_MIN_LOG_LEVEL does not reach
them. A tool run therefore loads TensorFlow with the process's stderr (file
descriptor 2) pointed at /dev/null, puts it back at once, and sets
TF_CPP_MIN_LOG_LEVEL=3 for what TensorFlow would log later. An import error
is re-raised after stderr is back, so it is seen. Each command's module
calls `setup_process(__name__)` before anything imports TensorFlow;
importing pgn_tf, or a command's module, as a library changes nothing.
"""

import os
import sys


def setup_process(module_name):
    """Sets up a command's process; the command's module calls it with its __name__ before importing TensorFlow.

    Turns oneDNN's CPU kernels on unless TF_ENABLE_ONEDNN_OPTS is set (2-3x
    faster convolutions and their gradients on the 2-core development CPU,
    docs/performance.md; TensorFlow turns them on by itself only on some
    CPUs; TF_ENABLE_ONEDNN_OPTS=0 opts out), then loads TensorFlow quietly
    (`quiet_startup`). Does nothing when the module is imported as a library.
    """
    if not tool_run(module_name):
        return
    os.environ.setdefault("TF_ENABLE_ONEDNN_OPTS", "1")
    quiet_startup()


def tool_run(module_name):
    """Whether the module named module_name runs as a command: `python -m pgn_tf.<tool>` (the module is
    __main__) or a `pgn-<tool>` console script."""
    return module_name == "__main__" or (bool(sys.argv) and os.path.basename(sys.argv[0]).startswith("pgn-"))


def verbose():
    return any(a in ("--verbose", "--verbose=true", "--verbose=1") for a in sys.argv[1:])


def _sets_up_devices():
    """Whether the command configures devices itself (--cpu_replicas, --strategy): no op may run before that.

    A first op initialises TensorFlow's devices and collectives, after which
    the CPU can no longer be split and a multi-worker cluster not be joined;
    such a run shows TensorFlow's second round of start-up lines.
    """
    args = sys.argv[1:]
    return any(a.startswith(("--cpu_replicas", "--strategy")) and not a.endswith("=default") for a in args)


def quiet_startup():
    """Loads TensorFlow and Keras without their C++ start-up lines (see the module's docstring)."""
    if verbose() or "TF_CPP_MIN_LOG_LEVEL" in os.environ:
        return
    os.environ["TF_CPP_MIN_LOG_LEVEL"] = "3"
    sys.stderr.flush()
    saved, devnull = os.dup(2), os.open(os.devnull, os.O_WRONLY)
    os.dup2(devnull, 2)
    try:
        import keras  # noqa: F401
        import tensorflow as tf

        if not _sets_up_devices():
            tf.zeros(()) + 1  # the first op loads the rest (a second round of start-up lines)
    finally:
        os.dup2(saved, 2)
        os.close(saved)
        os.close(devnull)
    tf.get_logger().setLevel("ERROR")
