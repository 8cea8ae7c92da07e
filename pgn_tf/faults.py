"""What a long run meets and how it ends: preemption signals, divergence, a full disk (exit codes 143/130, 3, 4)."""

import contextlib
import errno
import signal
import threading

import numpy as np

EXIT_DIVERGED = 3
EXIT_DISK_FULL = 4


class Diverged(RuntimeError):
    """A non-finite loss or weight: the run stops before anything non-finite is saved."""


class DiskFull(Exception):
    """A write failed for lack of space; what was saved before is intact."""


class Preempted(Exception):
    """Stopped by a signal after saving the step it reached; exit code 128 + the signal (143 for SIGTERM).

    signum None: another worker of a multi-worker run got the signal, and
    this one saved the same step with it.
    """

    def __init__(self, signum, step, path):
        self.signum, self.step, self.path = signum, step, path
        why = f"by {signal.Signals(signum).name}" if signum else "with a preempted worker"
        super().__init__(f"stopped {why} at step {step}; saved {path}; run the same command to resume")

    @property
    def exit_code(self):
        return 128 + (self.signum or signal.SIGTERM)


class StopSignals:
    """Catches SIGTERM and SIGINT while training: they are recorded, and the loop saves and stops at its next step.

    A second signal while saving is recorded too and changes nothing (saves
    are atomic). Outside the main thread (where Python cannot catch signals)
    nothing is installed and signals keep their default effect.
    """

    SIGNALS = (signal.SIGTERM, signal.SIGINT)

    def __init__(self):
        self.received = None  # the first signal's number
        self.event = threading.Event()

    def _handle(self, signum, frame):
        del frame
        if self.received is None:
            self.received = signum
        self.event.set()

    @contextlib.contextmanager
    def installed(self):
        if threading.current_thread() is not threading.main_thread():
            yield self
            return
        previous = {s: signal.signal(s, self._handle) for s in self.SIGNALS}
        try:
            yield self
        finally:
            for s, handler in previous.items():
                signal.signal(s, handler)


def is_disk_full(e):
    """Whether an exception (OSError or TensorFlow's) is a write that found no space left."""
    return isinstance(e, DiskFull) or getattr(e, "errno", None) == errno.ENOSPC or "No space left on device" in str(e)


def nonfinite(named_variables):
    """[(name, count of non-finite values)] of the floating variables that hold any."""
    bad = []
    for name, v in named_variables:
        value = np.asarray(v.numpy())
        if np.issubdtype(value.dtype, np.floating):
            count = int(value.size - np.count_nonzero(np.isfinite(value)))
            if count:
                bad.append((name, count))
    return bad


def nonfinite_logs(logs):
    """{name: value} of the logged scalars that are not finite (mean over replicas)."""
    values = {k: float(np.mean(v)) for k, v in (logs or {}).items()}
    return {k: v for k, v in values.items() if not np.isfinite(v)}
