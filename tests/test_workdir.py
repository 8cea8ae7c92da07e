"""One run per workdir: a second run is refused in one line and changes nothing, kill -9 leaves no stale lock."""

import datetime
import errno
import json
import os
import re
import signal
import socket
import subprocess
import sys
import time

import pytest
from conftest import ROOT, TINY_QUICKSTART, assert_same_checkpoints

from pgn_tf import workdir as workdir_lib

TOTAL = 6
ARGS = [*TINY_QUICKSTART, f"--gin_param=train_and_evaluate.total_steps={TOTAL}",
        "--gin_param=train_and_evaluate.save_every=2"]  # fmt: skip
# As a user runs it: the tools then quiet TensorFlow's start-up lines themselves (pgn_tf.console).
ENV = {k: v for k, v in os.environ.items() if k != "TF_CPP_MIN_LOG_LEVEL"}


def _start(workdir, *extra, env=None):
    return subprocess.Popen(
        [sys.executable, "-m", "pgn_tf.train", *ARGS, f"--workdir={workdir}", *extra],
        cwd=ROOT,
        env=env or ENV,
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
    )


def _train(workdir, *extra):
    return subprocess.run(
        [sys.executable, "-m", "pgn_tf.train", *ARGS, f"--workdir={workdir}", *extra],
        cwd=ROOT, env=ENV, capture_output=True, text=True, check=False, timeout=600,
    )  # fmt: skip


def _wait_for_lock(workdir, proc, timeout=300):
    """What DIR/.lock says once `proc` holds it (it writes its details just after locking)."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        info = workdir_lib.holder(os.path.join(workdir, ".lock"))
        if info and info["pid"] == proc.pid:
            return info
        assert proc.poll() is None, proc.communicate()[1][-3000:]
        time.sleep(0.05)
    raise AssertionError(f"pid {proc.pid} did not lock {workdir} within {timeout} s")


def _snapshot(workdir):
    """{path: bytes} of every file under workdir, dot files included."""
    files = {}
    for folder, _, names in os.walk(workdir):
        for name in names:
            path = os.path.join(folder, name)
            with open(path, "rb") as f:
                files[os.path.relpath(path, workdir)] = f.read()
    return files


def _files(workdir):
    """The workdir's file names, the event file's (host, pid, time) reduced to its kind."""
    return sorted("events" if n.startswith("events.out.tfevents") else n for n in _snapshot(workdir))


@pytest.fixture(scope="module")
def lone(tmp_path_factory):
    workdir = tmp_path_factory.mktemp("lone") / "wd"
    r = _train(workdir)
    assert r.returncode == 0, r.stderr[-3000:]
    return workdir


@pytest.mark.subprocess
def test_a_second_run_on_a_busy_workdir_is_refused_and_the_first_ends_as_if_alone(lone, tmp_path):
    workdir = tmp_path / "wd"
    first = _start(workdir)
    try:
        info = _wait_for_lock(workdir, first)
        # Frozen while it holds the lock, so whatever changes in the workdir meanwhile is the second run's doing.
        os.kill(first.pid, signal.SIGSTOP)
        before = _snapshot(workdir)
        second = _train(workdir)
        after = _snapshot(workdir)
        os.kill(first.pid, signal.SIGCONT)
        out, err = first.communicate(timeout=600)
    finally:
        first.kill()
    since = workdir_lib._clock(info["since"])  # HH:MM (with the date on another day)
    assert info["host"] == socket.gethostname()
    assert second.returncode == 2 and second.stdout == ""  # not even the run's header
    line = (
        f"error: {workdir} is in use by pid {first.pid} on {info['host']} since {since}; one run per workdir: "
        "wait for it to end or stop it, or pass another --workdir."
    )
    assert second.stderr.strip().splitlines() == [line]
    assert after == before and json.loads(after[".lock"])["pid"] == first.pid

    assert first.returncode == 0, err[-3000:]
    assert f"step {TOTAL}/{TOTAL}" in out
    assert_same_checkpoints(workdir / "checkpoints", lone / "checkpoints", atol=0)
    assert _files(workdir) == _files(lone) and ".lock" not in os.listdir(workdir)  # one event file; lock gone


@pytest.mark.subprocess
def test_kill_9_leaves_no_stale_lock(tmp_path):
    workdir = tmp_path / "wd"
    proc = _start(workdir, "--gin_param=train_and_evaluate.total_steps=100000")
    try:
        _wait_for_lock(workdir, proc)
        proc.send_signal(signal.SIGKILL)
        proc.wait(timeout=60)
    finally:
        proc.kill()
    assert proc.returncode == -signal.SIGKILL
    assert workdir_lib.holder(workdir / ".lock")["pid"] == proc.pid  # the file stays, no longer locked
    r = _train(workdir)
    assert r.returncode == 0, r.stderr[-3000:]
    assert f"done at step {TOTAL}" in r.stdout and not (workdir / ".lock").exists()


@pytest.mark.subprocess
def test_only_the_chief_of_a_multi_worker_run_locks_the_workdir(tmp_path):
    workdir = tmp_path / "wd"
    ports = []
    for _ in range(2):
        with socket.socket() as s:
            s.bind(("127.0.0.1", 0))
            ports.append(s.getsockname()[1])
    hosts = [f"127.0.0.1:{p}" for p in ports]
    procs = []
    try:
        for index in range(2):
            config = {"cluster": {"worker": hosts}, "task": {"type": "worker", "index": index}}
            # TF_CPP_MIN_LOG_LEVEL set: the quiet start-up runs an op, after which collectives cannot be set up.
            env = {**ENV, "TF_CONFIG": json.dumps(config), "TF_CPP_MIN_LOG_LEVEL": "3"}
            procs.append(
                _start(workdir, "--strategy=multi_worker", "--gin_param=train_and_evaluate.total_steps=2", env=env)
            )
        _wait_for_lock(workdir, procs[0])  # the chief, worker 0; worker 1 shares the workdir unlocked
        results = [p.communicate(timeout=600) for p in procs]
    finally:
        for p in procs:
            p.kill()
    for p, (_, err) in zip(procs, results, strict=True):
        assert p.returncode == 0, err[-3000:]
    assert not (workdir / ".lock").exists()


def test_one_holder_at_a_time_and_nothing_left_after(tmp_path):
    with workdir_lib.hold(str(tmp_path)):
        info = workdir_lib.holder(tmp_path / ".lock")
        assert (info["pid"], info["host"]) == (os.getpid(), socket.gethostname())
        busy = f"^{re.escape(str(tmp_path))} is in use by pid {os.getpid()} on "
        with pytest.raises(workdir_lib.WorkdirInUse, match=busy), workdir_lib.hold(str(tmp_path)):
            pass
        assert workdir_lib.holder(tmp_path / ".lock") == info  # the refused one changed nothing
    assert os.listdir(tmp_path) == []
    (tmp_path / ".lock").write_text('{"host": "gone", "pid": 1, "since": "2020-01-01T00:00:00+00:00"}')
    with workdir_lib.hold(str(tmp_path)):  # a killed run's file, not locked: taken over
        assert workdir_lib.holder(tmp_path / ".lock")["pid"] == os.getpid()
    assert os.listdir(tmp_path) == []


def test_a_holder_that_has_not_written_its_details_yet_is_still_refused(tmp_path):
    import fcntl

    fd = os.open(tmp_path / ".lock", os.O_RDWR | os.O_CREAT)
    try:
        fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
        busy = r"is in use by another run \(.*\.lock\); one run"
        with pytest.raises(workdir_lib.WorkdirInUse, match=busy), workdir_lib.hold(str(tmp_path)):
            pass
    finally:
        os.close(fd)


def test_without_file_locks_a_run_goes_on_with_one_warning(tmp_path, monkeypatch, capsys):
    def no_locks(fd, op):
        raise OSError(errno.ENOLCK, os.strerror(errno.ENOLCK))

    monkeypatch.setattr(workdir_lib.fcntl, "flock", no_locks)
    with workdir_lib.hold(str(tmp_path)):
        assert workdir_lib.holder(tmp_path / ".lock")["pid"] == os.getpid()  # still says who runs there
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 1 and err[0].startswith(f"warning: cannot lock {tmp_path / '.lock'} (No locks available)")
    assert os.listdir(tmp_path) == []


def test_a_start_before_today_shows_its_date():
    assert workdir_lib._clock("2020-01-31T12:03:00+00:00").startswith("2020-01-3")
    now = datetime.datetime.now().astimezone()
    assert workdir_lib._clock(now.isoformat(timespec="seconds")) == now.strftime("%H:%M")
