"""Long runs and faults: kill -9 anywhere, SIGTERM / SIGINT, divergence, damaged checkpoints, a full disk, bad bindings.

The runs are real processes of `python -m pgn_tf.train` (with op determinism
on, so runs compare to 1e-6); faults are injected from outside the package:
a signal, or a SIGKILL sent by a patch at the moment under test.
"""

import glob
import json
import os
import shutil
import signal
import subprocess
import sys
import textwrap

import gin
import numpy as np
import pytest
import tensorflow as tf
from conftest import ROOT, TINY_QUICKSTART, assert_same_checkpoints, checkpoint_values

from pgn_tf import faults, train, train_lib
from pgn_tf.eval import evaluator

TOTAL = 12
ARGS = [
    *TINY_QUICKSTART,
    "--gin_param=train_and_evaluate.save_every=4",
    "--gin_param=train_and_evaluate.eval_every=8",
    "--gin_param=train_and_evaluate.num_images=20",
    f"--gin_param=train_and_evaluate.total_steps={TOTAL}",
    # float64: a resumed run must give the uninterrupted run's weights to rounding (EXACT), on any CPU.
    "--gin_param=train_and_evaluate.precision='float64'",
    # Augmented, with ADA's p moving every 3 steps (so a resume at step 4 restores an interval half-way): the
    # draws and p must resume exactly too.
    "--gin_param=train_and_evaluate.augment='color,translation,cutout'",
    "--gin_param=train_and_evaluate.augment_p='ada'",
    "--gin_param=train_and_evaluate.ada_interval=3",
    "--gin_param=train_and_evaluate.ada_kimg=0.05",
]
EXACT = 1e-9

# Runs pgn_tf.train as `python -m` would, deterministically, with one fault injected by $FAULT at step $AT:
# step: SIGKILL inside the traced step AT (after the G update, before EMA); save: SIGKILL once ckpt-AT is written but before the checkpoint list names it;
# eval: SIGKILL while EMA-G of step AT is scored (after G's scores).
DRIVER = textwrap.dedent(
    """
    import os, runpy, signal, sys
    import tensorflow as tf
    tf.config.experimental.enable_op_determinism()
    fault, at = os.environ.get("FAULT", ""), int(os.environ.get("AT", "0"))
    def die():
        sys.stdout.flush()
        os.kill(os.getpid(), signal.SIGKILL)
    if fault == "step":
        from pgn_tf.gan import PGNGAN
        update_ema = PGNGAN._update_ema
        def check(step):
            if int(step) == at:
                die()
            return 0
        def ema(self):  # inside the traced step: after the critic and generator updates, before the EMA's
            tf.py_function(check, [self.step], tf.int32)
            update_ema(self)
        PGNGAN._update_ema = ema
    elif fault == "save":
        from tensorflow.python.checkpoint import checkpoint_management as cm
        record = cm.update_checkpoint_state_internal
        def update(save_dir, model_checkpoint_path, *args, **kwargs):
            if save_dir.endswith("checkpoints") and model_checkpoint_path.endswith(f"ckpt-{at}"):
                assert tf.io.gfile.exists(model_checkpoint_path + ".index")
                die()
            return record(save_dir, model_checkpoint_path, *args, **kwargs)
        cm.update_checkpoint_state_internal = update
    elif fault == "eval":
        from pgn_tf.eval import evaluator
        score = evaluator.Evaluator.__call__
        def call(self, gan, ema=False):
            if ema and int(gan.step.numpy()) == at:
                die()
            return score(self, gan, ema)
        evaluator.Evaluator.__call__ = call
    sys.argv = ["pgn_tf.train", *sys.argv[1:]]
    runpy.run_module("pgn_tf.train", run_name="__main__")
    """
)


def _start(workdir, fault="", at=0, extra=()):
    env = {**os.environ, "TF_CPP_MIN_LOG_LEVEL": "3", "FAULT": fault, "AT": str(at)}
    return subprocess.Popen(
        [sys.executable, "-c", DRIVER, *ARGS, f"--workdir={workdir}", *extra],
        cwd=ROOT,
        env=env,
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
    )


def _run(workdir, fault="", at=0, extra=()):
    proc = _start(workdir, fault, at, extra)
    out, err = proc.communicate(timeout=600)
    return proc.returncode, out, err


def _steps_logged(out):
    return [int(line.split()[1].split("/")[0]) for line in out.splitlines() if line.startswith("step ")]


@pytest.fixture(scope="module")
def uninterrupted(tmp_path_factory):
    workdir = tmp_path_factory.mktemp("uninterrupted") / "wd"
    code, out, err = _run(workdir)
    assert code == 0, err[-3000:]
    assert _steps_logged(out) == list(range(1, TOTAL + 1))
    return workdir


@pytest.mark.subprocess
@pytest.mark.parametrize("fault,at,resumes_at", [("step", 6, 4), ("save", 8, 4), ("eval", 8, 4)])
def test_kill_9_then_restart_ends_with_the_uninterrupted_weights(fault, at, resumes_at, uninterrupted, tmp_path):
    workdir = tmp_path / "wd"
    code, out, _ = _run(workdir, fault, at)
    assert code == -signal.SIGKILL
    assert max(_steps_logged(out)) == at - (fault == "step")  # killed where intended
    if fault == "save":  # the files of ckpt-8 were complete; the list still ended at ckpt-4
        assert os.path.exists(workdir / "checkpoints" / f"ckpt-{at}.index")
    assert tf.train.latest_checkpoint(str(workdir / "checkpoints")).endswith(f"ckpt-{resumes_at}")
    code, out, err = _run(workdir)
    assert code == 0, err[-3000:]
    assert f"at step {resumes_at}." in out and _steps_logged(out) == list(range(resumes_at + 1, TOTAL + 1))
    assert_same_checkpoints(workdir / "checkpoints", uninterrupted / "checkpoints", atol=EXACT)
    evals = [json.loads(line)["step"] for line in (workdir / "eval.jsonl").read_text().splitlines()]
    assert evals[-1] == 8 and evals.count(8) == 1 + (fault == "save")  # saved after its evaluation, so scored twice


@pytest.mark.subprocess
@pytest.mark.parametrize("sig", [signal.SIGTERM])  # SIGINT takes the same handler (faults.StopSignals.SIGNALS)
def test_a_signal_saves_the_step_reached_and_a_restart_loses_nothing(sig, uninterrupted, tmp_path):
    from pgn_tf import faults

    assert set(faults.StopSignals.SIGNALS) == {signal.SIGTERM, signal.SIGINT}  # Ctrl-C stops the same way
    workdir = tmp_path / "wd"
    proc = _start(workdir)
    seen = []
    for line in proc.stdout:  # signal once training runs, mid-run
        if line.startswith("step "):
            seen.append(line)
            if len(seen) == 3:
                proc.send_signal(sig)
                proc.send_signal(sig)  # a second one while it stops changes nothing
    rest, err = proc.communicate(timeout=600)
    assert proc.returncode == 128 + sig, err[-3000:]
    out = "".join(seen) + rest
    stopped = max(_steps_logged(out))
    assert 3 <= stopped < TOTAL
    name = signal.Signals(sig).name
    last = err.strip().splitlines()[-1]
    assert last == (
        f"stopped by {name} at step {stopped}; saved {workdir}/checkpoints/ckpt-{stopped}; run the same command to resume"
    )
    assert tf.train.latest_checkpoint(str(workdir / "checkpoints")).endswith(f"ckpt-{stopped}")
    code, again, err = _run(workdir)
    assert code == 0, err[-3000:]
    first, second = _steps_logged(out), _steps_logged(again)
    assert first + second == list(range(1, TOTAL + 1))  # no step logged twice, none missing
    tb_steps = []
    for event_file in glob.glob(str(workdir / "events.out.tfevents.*")):
        for event in tf.compat.v1.train.summary_iterator(event_file):
            tb_steps += [event.step for v in event.summary.value if v.tag == "train/d_loss"]
    assert sorted(tb_steps) == list(range(1, TOTAL + 1))
    assert_same_checkpoints(workdir / "checkpoints", uninterrupted / "checkpoints", atol=EXACT)


def _all_checkpoints(workdir):
    return sorted(
        p[: -len(".index")] for p in glob.glob(str(workdir / "checkpoints" / "**" / "*.index"), recursive=True)
    )


@pytest.mark.subprocess
def test_a_diverging_run_stops_with_one_line_and_only_finite_checkpoints(tmp_path):
    workdir = tmp_path / "wd"
    code, _, err = _run(workdir, extra=["--gin_param=train_and_evaluate.total_steps=8"])
    assert code == 0, err[-3000:]
    blow_up = ["--gin_param=train_and_evaluate.lr_D=1e30", "--gin_param=train_and_evaluate.lr_G=1e30"]
    code, out, err = _run(workdir, extra=blow_up)
    assert code == faults.EXIT_DIVERGED, err[-3000:]
    lines = err.strip().splitlines()
    assert (
        lines[-1].startswith("error: training diverged at step ")
        and "the last finite checkpoint is ckpt-8" in lines[-1]
    )
    assert "Traceback" not in err
    step = int(lines[-1].split("at step ")[1].split()[0])
    assert 8 < step < TOTAL and all(s < step for s in _steps_logged(out))  # stopped at once, before logging it
    paths = _all_checkpoints(workdir)
    assert any("best" in p for p in paths) and len(paths) >= 3
    for path in paths:
        for name, value in checkpoint_values(path).items():
            assert np.isfinite(value).all() or name.startswith("best_metric"), (path, name)  # inf: no score yet


@pytest.fixture
def _clear_gin():
    gin.clear_config()
    yield
    gin.clear_config()


def test_no_checkpoint_is_written_with_a_non_finite_tensor_and_nan_scores_are_null(tmp_path, _clear_gin):
    from pgn_tf import callbacks

    train.parse_gin(["quickstart.gin"], ["dcgan.generator.width=0.0625", "dcgan.critic.width=0.0625"])
    exp = train_lib.build(train_lib.settings(), str(tmp_path))
    assert exp.checkpoints.save(exp.checkpoints.manager, 1).endswith("ckpt-1")
    weight = exp.gan.discriminator.critic.trainable_variables[0]
    weight.assign(tf.tensor_scatter_nd_update(weight, [[0, 0, 0, 0]], [np.inf]))
    with pytest.raises(faults.Diverged, match=r"at step 2 \(1 tensors hold non-finite values, e.g. 1 in critic/"):
        exp.checkpoints.save(exp.checkpoints.manager, 2)
    assert exp.checkpoints.manager.checkpoints == [str(tmp_path / "checkpoints" / "ckpt-1")]
    assert not glob.glob(str(tmp_path / "checkpoints" / "ckpt-2*"))

    class NaNScores:
        num_images = 4
        feature_net = type("Net", (), {"name": "digits_classifier"})
        described = evaluator.Evaluator.described

        def __call__(self, gan, ema):
            return {"IS": 1.5, "FID": float("nan")}

    best = tf.Variable(np.inf, dtype=tf.float64)
    writer = tf.summary.create_file_writer(str(tmp_path))
    cb = callbacks.Evaluate(
        NaNScores(), 1, writer, str(tmp_path), exp.checkpoints.save, exp.checkpoints.best_manager, best
    )
    cb.set_model(exp.gan)
    cb.on_train_batch_end(0)
    record = json.loads((tmp_path / "eval.jsonl").read_text(), parse_constant=lambda c: pytest.fail(c))
    assert record["FID"] is None and record["FID_ema"] is None and record["IS"] == 1.5
    assert not os.path.exists(exp.checkpoints.best_manager.directory)  # a NaN is never the best score


def _damage(kind, prefix, other):
    data = prefix + ".data-00000-of-00001"
    if kind == "truncated data":
        with open(data, "r+b") as f:
            f.truncate(os.path.getsize(data) // 2)
    elif kind == "random bytes":
        size = os.path.getsize(data)
        with open(data, "wb") as f:
            f.write(np.random.default_rng(0).bytes(size))
    elif kind == "missing data file":
        os.remove(data)
    elif kind == "another model's checkpoint":
        for suffix in (".index", ".data-00000-of-00001"):
            shutil.copy(other + suffix, prefix + suffix)


DAMAGE = {
    "truncated data": "Read less bytes than requested",
    "random bytes": "checksum does not match",
    "missing data file": "No such file or directory",
    "another model's checkpoint": "incompatible tensor with shape",
}


@pytest.fixture(scope="module")
def two_checkpoints(tmp_path_factory):
    """A run with ckpt-4 and ckpt-8, and a checkpoint of a wider model."""
    root = tmp_path_factory.mktemp("damage")
    code, _, err = _run(root / "wd", extra=["--gin_param=train_and_evaluate.total_steps=8"])
    assert code == 0, err[-3000:]
    wide = ["--gin_param=dcgan.critic.width=0.125", "--gin_param=train_and_evaluate.total_steps=4"]
    code, _, err = _run(root / "wide", extra=wide)
    assert code == 0, err[-3000:]
    return root


def _snapshot(workdir):
    return {
        os.path.relpath(p, workdir): open(p, "rb").read()
        for p in glob.glob(f"{workdir}/**", recursive=True)
        if os.path.isfile(p)
    }


@pytest.mark.parametrize("kind", sorted(DAMAGE))
def test_a_damaged_checkpoint_is_one_line_and_changes_nothing(kind, two_checkpoints, tmp_path, capsys, _clear_gin):
    workdir = tmp_path / "wd"
    shutil.copytree(two_checkpoints / "wd", workdir)
    prefix = str(workdir / "checkpoints" / "ckpt-8")
    _damage(kind, prefix, str(two_checkpoints / "wide" / "checkpoints" / "ckpt-4"))
    before = _snapshot(workdir)
    params = [a.split("=", 1)[1] for a in ARGS if a.startswith("--gin_param=")]
    assert train.run(["quickstart.gin"], params, str(workdir)) == 2
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 1 and err[0].startswith(f"error: cannot restore checkpoint {prefix} ("), err
    assert DAMAGE[kind] in err[0] and f"move {prefix}.* aside to resume from ckpt-4, or use a new --workdir." in err[0]
    assert _snapshot(workdir) == before
    for moved in glob.glob(prefix + ".*"):  # the way out the line gives
        shutil.move(moved, tmp_path)
    gin.clear_config()
    assert train.run(["quickstart.gin"], params, str(workdir)) == 0
    assert "Resuming from " + str(workdir / "checkpoints" / "ckpt-4") + " at step 4." in capsys.readouterr().out


def test_a_damaged_checkpoint_list_is_one_line(tmp_path, capsys, _clear_gin):
    (tmp_path / "checkpoints").mkdir()
    (tmp_path / "checkpoints" / "checkpoint").write_bytes(b"\x00\xffnot a list")
    assert train.run(["quickstart.gin"], [], str(tmp_path)) == 2
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 1 and "cannot read the checkpoint list" in err[0], err


BAD_BINDINGS = {
    "train_and_evaluate.total_steps='ten'": "total_steps must be an integer >= 1, got 'ten' (str)",
    "train_and_evaluate.total_steps=1.5": "total_steps must be an integer >= 1, got 1.5 (float)",
    "train_and_evaluate.seed=-1": "seed must be an integer >= 0, got -1",
    "train_and_evaluate.num_classes=0": "num_classes must be an integer >= 1, got 0",
    "train_and_evaluate.lr_D=-2e-4": "lr_D must be a number > 0, got -0.0002",
    "train_and_evaluate.lr_G='fast'": "lr_G must be a number > 0, got 'fast' (str)",
    "train_and_evaluate.ema_decay=1.5": "ema_decay must be a number >= 0 and <= 1, got 1.5",
    "train_and_evaluate.cr=True": "cr must be a number >= 0, got True (bool)",
    "train_and_evaluate.best_by='fid'": "best_by must be one of ('IS', 'FID', 'KID', 'precision', 'recall', ",
    "train_and_evaluate.metrics=('IS',)": "best_by = 'FID' is not among train_and_evaluate.metrics ('IS',)",
    "train_and_evaluate.metrics=('FID', 'modes')": "metrics must be a non-empty tuple of ('IS', 'FID', ",
    "train_and_evaluate.accumulation=0": "accumulation must be an integer >= 1, got 0",
    "train_and_evaluate.precision='bf16'": "precision must be one of ('float32', 'mixed_bfloat16', 'mixed_float16', 'float64')",
    "train_and_evaluate.jit_compile=1": "jit_compile must be True or False, got 1 (int)",
    "train_and_evaluate.fid_stats=3": "fid_stats must be a path or None, got 3 (int)",
    "train_and_evaluate.dataset_fn='digits'": 'dataset_fn must be a configurable (e.g. @data.cifar10), "folder:PATH"',
    "train_and_evaluate.dataset_fn='folder:'": "\"tfds:NAME\", got 'folder:'",
    "train_and_evaluate.dataset_fn=3": 'dataset_fn must be a configurable (e.g. @data.cifar10), "folder:PATH" or',
    "train_and_evaluate.pgn_scale=0": 'pgn_scale must be a number > 0 or "sqrt_d", got 0 (int)',
    "train_and_evaluate.pgn_center=1": "pgn_center must be True or False, got 1 (int)",
    "train_and_evaluate.pgn_center=True\ntrain_and_evaluate.accumulation=2": "pgn_center = True takes the mean over "
    "a whole batch: it needs accumulation = 1, not 2.",
    "train_and_evaluate.augment='color,flip'": "augment must be a comma-separated subset of ('color', 'translation', "
    "'cutout') (or \"\" for none), got 'color,flip' (str)",
    "train_and_evaluate.augment='color,color'": "augment must be a comma-separated subset of",
    "train_and_evaluate.pgn_center=True\ntrain_and_evaluate.cr=10.0": "pgn_center = True centres each critic call "
    "on its own batch: CR compares augmented reals",
    "train_and_evaluate.pgn_center=True\ntrain_and_evaluate.loss_fn=@losses.rpgan": "pgn_center = True centres each "
    "critic call on its own batch: the rpgan loss's generator step would compare fakes and their partner reals",
    "train_and_evaluate.pgn_center=True\ntrain_and_evaluate.penalty='r1'": "pgn_center = True centres each critic "
    "call on its own batch: the r1 penalty's critic calls would be centred apart from the loss's",
    "train_and_evaluate.translation_ratio=1.5": "translation_ratio must be a number in (0, 1), got 1.5 (float)",
    "train_and_evaluate.cutout_ratio=0": "cutout_ratio must be a number in (0, 1), got 0 (int)",
    "train_and_evaluate.augment_p=1.2": 'augment_p must be a number in [0, 1] or "ada", got 1.2 (float)',
    "train_and_evaluate.augment_p='ada'": "augment_p = 'ada' needs a policy: set train_and_evaluate.augment",
    # ADA reads the critic's sign on reals, which a Wasserstein critic does not have.
    "train_and_evaluate.augment='cutout'\ntrain_and_evaluate.augment_p='ada'\n"
    "train_and_evaluate.loss_fn=@losses.wasserstein": 'augment_p = "ada" reads the sign of the critic on reals, '
    "which the wasserstein loss does not give: use a fixed augment_p, or a loss such as hinge or bce.",
}


@pytest.mark.parametrize("binding", sorted(BAD_BINDINGS))
def test_every_bad_binding_is_one_line_naming_it(binding, tmp_path, capsys, _clear_gin):
    assert train.run(["quickstart.gin"], [binding], str(tmp_path / "wd")) == 2
    out, err = capsys.readouterr()
    err = err.strip().splitlines()
    assert len(err) == 1 and err[0].startswith("error: train_and_evaluate.") and BAD_BINDINGS[binding] in err[0], err
    assert out == ""  # no run header before a config that does not run
    assert not os.path.exists(tmp_path / "wd")


def _tiny_filesystems():
    """Whether this machine lets a process mount a small tmpfs in its own user and mount namespace."""
    if not shutil.which("unshare"):
        return False
    probe = ["unshare", "--user", "--map-root-user", "--mount", "sh", "-c", "mount -t tmpfs -o size=64k none /mnt"]
    return subprocess.run(probe, capture_output=True, check=False).returncode == 0


@pytest.mark.subprocess
@pytest.mark.skipif(not _tiny_filesystems(), reason="needs unshare and unprivileged mounts for a small real tmpfs")
def test_a_full_disk_is_one_line_keeps_the_saved_checkpoints_and_resumes(tmp_path):
    """A real full filesystem: a tmpfs with room for one more checkpoint than the run has, not two."""
    quiet = ["--gin_param=train_and_evaluate.eval_every=1000", "--gin_param=train_and_evaluate.sample_every=1000"]
    seed = tmp_path / "seed"
    code, _, err = _run(seed, extra=[*quiet, "--gin_param=train_and_evaluate.total_steps=4"])
    assert code == 0, err[-3000:]
    used = sum(os.path.getsize(p) for p in glob.glob(f"{seed}/**", recursive=True) if os.path.isfile(p))
    checkpoint = sum(os.path.getsize(p) for p in glob.glob(str(seed / "checkpoints" / "ckpt-4.*")))
    size = used + 3 * checkpoint // 2 + 64 * 1024
    after, mnt = tmp_path / "after", tmp_path / "mnt"
    mnt.mkdir()
    script = (
        f"mount -t tmpfs -o size={size} none {mnt} && cp -a {seed} {mnt}/wd && "
        f'{sys.executable} -c "$DRIVER" "$@" --workdir={mnt}/wd {" ".join(quiet)}; '
        f"code=$?; cp -a {mnt}/wd {after}; exit $code"
    )
    proc = subprocess.run(
        ["unshare", "--user", "--map-root-user", "--mount", "sh", "-c", script, "sh", *ARGS],
        cwd=ROOT,
        env={**os.environ, "TF_CPP_MIN_LOG_LEVEL": "3", "DRIVER": DRIVER},
        capture_output=True,
        text=True,
        check=False,
    )
    assert proc.returncode == faults.EXIT_DISK_FULL, proc.stderr[-3000:]
    last = proc.stderr.strip().splitlines()[-1]
    assert last.startswith(f"error: no space left on the device while saving {mnt}/wd/checkpoints/ckpt-12;"), last
    assert "the saved checkpoints are intact (latest: " in last and "Traceback" not in proc.stderr
    listed = tf.train.get_checkpoint_state(str(after / "checkpoints")).all_model_checkpoint_paths
    assert [os.path.basename(p) for p in listed] == ["ckpt-4", "ckpt-8"]
    assert not glob.glob(str(after / "checkpoints" / "ckpt-12*"))  # the failed save's pieces are gone
    for name, value in checkpoint_values(after / "checkpoints" / "ckpt-8").items():
        assert np.isfinite(value).all() or name.startswith("best_metric")
    # With space again (the run's files moved to a roomy disk), the same command resumes and finishes.
    moved = tmp_path / "roomy"
    shutil.copytree(after, moved)
    with open(moved / "checkpoints" / "checkpoint") as f:
        state = f.read().replace(f"{mnt}/wd", str(moved))
    (moved / "checkpoints" / "checkpoint").write_text(state)
    code, out, err = _run(moved, extra=quiet)
    assert code == 0, err[-3000:]
    assert "at step 8." in out and f"step {TOTAL}/{TOTAL}" in out


def test_a_relative_workdir_resumes_and_exports(tmp_path, monkeypatch, capsys, _clear_gin):
    """Checkpoint paths in the list are relative to the working folder then: not joined twice."""
    from pgn_tf import export

    monkeypatch.chdir(tmp_path)
    params = [a.split("=", 1)[1] for a in TINY_QUICKSTART if a.startswith("--gin_param=")]
    assert train.run(["quickstart.gin"], [*params, "train_and_evaluate.total_steps=2"], "wd") == 0
    gin.clear_config()
    assert train.run(["quickstart.gin"], [*params, "train_and_evaluate.total_steps=3"], "wd") == 0
    assert "Resuming from wd/checkpoints/ckpt-2 at step 2." in capsys.readouterr().out
    gin.clear_config()
    assert export.run("wd", "latest", False, None, []) == 0
    assert os.path.isdir(tmp_path / "wd" / "export" / "3")
