"""A run's workdir: checked writable, then held by one run for its whole life (an OS file lock on DIR/.lock)."""

import contextlib
import datetime
import errno
import fcntl
import json
import os
import socket
import sys
import time

from pgn_tf import distribute
from pgn_tf.errors import ConfigError, UsageError

LOCK_FILE = ".lock"
# What flock answers where the filesystem has no locks: NFSv3 without a reachable lockd / rpc.statd (ENOLCK),
# Lustre mounted with noflock (ENOSYS), some FUSE and SMB filesystems.
NO_LOCKS = frozenset({errno.ENOLCK, errno.EOPNOTSUPP, errno.ENOTSUP, errno.ENOSYS})


class WorkdirInUse(UsageError):
    """Another live process holds the workdir's lock: one `error:` line, exit code 2, nothing changed."""


def check_writable(workdir):
    """Creates workdir if needed; ConfigError unless this process can write there."""
    try:
        os.makedirs(workdir, exist_ok=True)
        probe = os.path.join(workdir, f".write_test.{os.getpid()}")  # per process: workers share the workdir
        with open(probe, "w") as f:
            f.write("ok")
        os.remove(probe)
    except OSError as e:
        raise ConfigError(f"workdir {workdir} is not writable ({e.strerror}); pass another --workdir.") from None


@contextlib.contextmanager
def claimed(config, workdir, strategy):
    """Checks that the run fits the strategy and can write to workdir, then holds workdir for the block.

    Only the chief holds the workdir's lock: the other workers of a
    multi-worker run share the chief's folder.

    Raises:
      ConfigError: a batch that does not split over the replicas, or a workdir that cannot be written.
      WorkdirInUse: another run holds the workdir (nothing changed).
    """
    config.loop.check_replicas(strategy.num_replicas_in_sync)
    check_writable(workdir)
    with hold(workdir) if distribute.is_chief(strategy) else contextlib.nullcontext():
        yield


@contextlib.contextmanager
def hold(workdir):
    """Holds DIR/.lock exclusively while the block runs; the file names the holder (host, pid, start time).

    The lock is flock's, so the OS drops it when the process ends however it
    ends (kill -9 too): a file left by a killed run is not locked, and the
    next run takes it over. It is removed on the way out, so a finished (or
    refused) run leaves the workdir as it found it. Where the filesystem has
    no locks, one warning goes to stderr and the block runs unlocked.

    Args:
      workdir: an existing, writable folder.

    Raises:
      WorkdirInUse: another process holds it (nothing is written).
      UsageError: DIR/.lock cannot be opened (e.g. it belongs to another user).
    """
    path = os.path.join(workdir, LOCK_FILE)
    fd = _acquire(workdir, path)
    try:
        yield
    finally:
        _release(fd, path)


def holder(path):
    """{"host", "pid", "since" (ISO 8601), "command"} written in a lock file, or None if unreadable or empty."""
    try:
        with open(path) as f:
            info = json.loads(f.read())
        return info if isinstance(info, dict) and {"host", "pid", "since"} <= set(info) else None
    except (OSError, ValueError):
        return None


def _acquire(workdir, path):
    unlocked = None  # why flock failed on a filesystem without locks
    while True:
        try:
            # No O_TRUNC: the file may be another run's, which must keep naming it.
            fd = os.open(path, os.O_RDWR | os.O_CREAT | os.O_CLOEXEC, 0o644)
        except OSError as e:
            raise UsageError(f"cannot open the lock file {path} ({e.strerror}); pass another --workdir.") from None
        try:
            fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            os.close(fd)
            raise WorkdirInUse(_in_use_message(workdir, path)) from None
        except OSError as e:
            if e.errno not in NO_LOCKS:
                os.close(fd)
                raise UsageError(f"cannot lock {path} ({e.strerror}); pass another --workdir.") from None
            unlocked = e.strerror
        # A holder that just finished removed the file this fd opened; the lock that counts is on the new one.
        if _is_file_at(fd, path):
            break
        os.close(fd)
    if unlocked:
        print(
            f"warning: cannot lock {path} ({unlocked}): this filesystem has no file locks, so nothing stops a "
            f"second run on {workdir}; make sure none is started.",
            file=sys.stderr,
            flush=True,
        )
    since = datetime.datetime.now().astimezone().isoformat(timespec="seconds")
    info = {"host": socket.gethostname(), "pid": os.getpid(), "since": since, "command": " ".join(sys.argv)}
    try:
        os.ftruncate(fd, 0)
        os.pwrite(fd, (json.dumps(info) + "\n").encode(), 0)
    except BaseException:  # e.g. a full disk: leave no lock file behind
        _release(fd, path)
        raise
    return fd


def _release(fd, path):
    # Removed before it is unlocked: a run that opened this file meanwhile finds it gone and starts over.
    if _is_file_at(fd, path):
        with contextlib.suppress(FileNotFoundError):
            os.unlink(path)
    os.close(fd)


def _is_file_at(fd, path):
    try:
        at = os.stat(path)
    except FileNotFoundError:
        return False
    mine = os.fstat(fd)
    return (mine.st_dev, mine.st_ino) == (at.st_dev, at.st_ino)


def _in_use_message(workdir, path):
    info = None
    for _ in range(20):  # the holder writes its details just after it takes the lock
        info = holder(path)
        if info:
            break
        time.sleep(0.05)
    who = f"pid {info['pid']} on {info['host']} since {_clock(info['since'])}" if info else f"another run ({path})"
    return (
        f"{workdir} is in use by {who}; one run per workdir: wait for it to end or stop it, or pass another --workdir."
    )


def _clock(since):
    """12:03 today, else 2025-01-31 12:03, in this machine's time zone."""
    try:
        then = datetime.datetime.fromisoformat(since).astimezone()
    except (TypeError, ValueError):
        return str(since)
    return then.strftime("%H:%M" if then.date() == datetime.date.today() else "%Y-%m-%d %H:%M")
