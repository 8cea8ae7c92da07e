"""Data parallelism with TensorFlow's own strategies: MirroredStrategy on logical CPUs, two workers on 127.0.0.1."""

import json
import os
import signal
import socket
import subprocess
import sys
import textwrap

import numpy as np
import pytest
import tensorflow as tf
from conftest import TINY_QUICKSTART, assert_same_checkpoints

from pgn_tf import distribute, train

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
SMALL = [
    *TINY_QUICKSTART,
    "--gin_param=train_and_evaluate.sample_every=1",
    # XLA compiles only single-device steps; compare the same (plain tf.function) arithmetic.
    "--gin_param=train_and_evaluate.jit_compile=False",
]


def _env(**extra):
    return {**os.environ, "TF_CPP_MIN_LOG_LEVEL": "3", **extra}


def _train(args, env=None):
    return subprocess.Popen(
        [sys.executable, "-m", "pgn_tf.train", *args],
        cwd=ROOT,
        env=env or _env(),
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
    )


def _finish(proc, timeout=400):
    out, err = proc.communicate(timeout=timeout)
    assert proc.returncode == 0, err[-3000:]
    return out


# The equivalence tests run in float64, where summation order (one device or two, this CPU's kernels or
# another's) changes results by ~1e-16 per operation: a float32 trajectory through Adam amplifies that to
# ~1e-4 on some CPUs, which would hide nothing real and still fail at random across machines.
FLOAT64 = "--gin_param=train_and_evaluate.precision='float64'"
EXACT = 1e-9  # float64 rounding through 2 training steps, with room for a wrong sum to stand out (>= 1e-6)


@pytest.mark.subprocess
@pytest.mark.parametrize("baseline", ["pgn", "sn+gp1", "r3", "pgn+ada"])
def test_two_replicas_compute_the_single_device_step(tmp_path, baseline):
    """Mirrored over 2 logical CPUs == one device on the same global batches (n_dis 2, CR, BN, EMA, samples).

    sn+gp1: the SN critic's power-iteration vectors and the penalty's interpolation weights split too.
    r3: RpGAN's generator step pairs each fake with a real (a generator batch twice the critic's), R1 + R2.
    pgn+ada: every augmentation draw splits too, and ADA moves p after step 1 from the whole batch's signs.
    """
    common = [*SMALL, FLOAT64, "--gin_param=train_and_evaluate.total_steps=2", "--gin_param=train_and_evaluate.n_dis=2",
              "--gin_param=train_and_evaluate.cr=1.0", "--gin_param=train_and_evaluate.ema_decay=0.5"]  # fmt: skip
    if baseline == "sn+gp1":
        common += ["--gin_param=train_and_evaluate.normalization='sn'", "--gin_param=train_and_evaluate.penalty='gp1'"]
    if baseline == "r3":
        common += ["--gin_file=gin_configs/baselines/r3.gin", "--gin_param=train_and_evaluate.batch_size_G=16"]
    if baseline == "pgn+ada":
        common += ["--gin_param=train_and_evaluate.augment='color,translation,cutout'",
                   "--gin_param=train_and_evaluate.augment_p='ada'", "--gin_param=train_and_evaluate.ada_interval=1",
                   "--gin_param=train_and_evaluate.ada_kimg=0.05"]  # fmt: skip
    one = _train([*common, f"--workdir={tmp_path / 'one'}"])
    two = _train([*common, f"--workdir={tmp_path / 'two'}", "--strategy=mirrored", "--cpu_replicas=2"])
    out_one, out_two = _finish(one), _finish(two)
    assert "step 2/2" in out_one and "step 2/2" in out_two
    assert_same_checkpoints(tmp_path / "one" / "checkpoints", tmp_path / "two" / "checkpoints", atol=EXACT)
    # The progress line reports the global batch's losses, as on one device (printed to 4 digits).
    last = [line.split("|")[0] for line in (out_one, out_two) for line in line.splitlines() if "step 2/2" in line]
    one_values, two_values = ([float(x) for x in line.split()[3::2]] for line in last)
    np.testing.assert_allclose(one_values, two_values, rtol=0, atol=1.5e-4)  # one unit of the last digit
    assert os.listdir(tmp_path / "two" / "samples")


CONDITIONAL = textwrap.dedent(
    """
    import sys
    import numpy as np
    from pgn_tf import cli, distribute, train_lib
    distribute.split_cpu(2)
    cli.parse_gin(["cifar_biggan.gin"], ["train_and_evaluate.dataset_fn = @data.digits", "biggan.generator.width = 0.0625",
        "biggan.critic.width = 0.0625", "train_and_evaluate.batch_size_D = 8", "train_and_evaluate.batch_size_G = 8",
        "train_and_evaluate.n_dis = 1", "train_and_evaluate.total_steps = 1", "train_and_evaluate.sample_every = 1000",
        "train_and_evaluate.save_every = 1000", "train_and_evaluate.log_every = 1",
        "train_and_evaluate.precision = 'float64'"])
    weights = []
    for name in ("default", "mirrored"):
        exp = train_lib.train_and_evaluate(sys.argv[1] + "/" + name, strategy=distribute.make_strategy(name))
        gan = exp.gan
        weights.append([v.numpy() for m in (gan.generator, gan.discriminator, gan.ema_generator) for v in m.weights])
    print("MAXDIFF", max(float(np.max(np.abs(a - b))) for a, b in zip(*weights)), len(weights[0]))
    """
)


@pytest.mark.subprocess
def test_two_replicas_match_for_a_conditional_biggan(tmp_path):
    """Labels (real and sampled) split like images; conditional BatchNorm synchronised (in float64, as above)."""
    proc = subprocess.run(
        [sys.executable, "-c", CONDITIONAL, str(tmp_path)],
        cwd=ROOT,
        env=_env(),
        capture_output=True,
        text=True,
        check=False,
    )
    assert proc.returncode == 0, proc.stderr[-3000:]
    line = next(x for x in proc.stdout.splitlines() if x.startswith("MAXDIFF"))
    diff, count = float(line.split()[1]), int(line.split()[2])
    assert count > 50 and diff < EXACT, line


def _free_ports(n):
    socks = [socket.socket() for _ in range(n)]
    for s in socks:
        s.bind(("127.0.0.1", 0))
    ports = [s.getsockname()[1] for s in socks]
    for s in socks:
        s.close()
    return ports


def _workers(workdir, total_steps):
    procs = _start_workers(workdir, total_steps, save_every=2)
    try:
        return [_finish(p) for p in procs]
    finally:
        for p in procs:
            p.kill()


@pytest.mark.subprocess
def test_two_workers_on_localhost_agree_and_resume(tmp_path):
    wd = tmp_path / "wd"
    chief, other = _workers(wd, 3)
    assert "step 3/3" in chief and "step" not in other  # only the chief reports
    # Both end with the same weights; the chief wrote the run's files, the other worker only its checkpoint.
    assert_same_checkpoints(wd / "checkpoints", wd / "workers" / "1" / "checkpoints", atol=0)
    assert sorted(os.listdir(wd / "workers" / "1")) == ["checkpoints"]
    assert os.listdir(wd / "samples") and (wd / "operative_config.gin").exists()
    assert len([f for f in os.listdir(wd) if f.startswith("events.out.tfevents")]) == 1
    # A restarted job resumes from the chief's checkpoint on every worker.
    chief, other = _workers(wd, 4)
    for out in (chief, other):
        assert "at step 3" in out
    assert "step 4/4" in chief
    assert_same_checkpoints(wd / "checkpoints", wd / "workers" / "1" / "checkpoints", atol=0)
    assert tf.train.latest_checkpoint(str(wd / "checkpoints")).endswith("ckpt-4")


@pytest.mark.subprocess
def test_batches_that_do_not_split_over_the_replicas_are_refused(tmp_path):
    proc = subprocess.run(
        [sys.executable, "-m", "pgn_tf.train", *SMALL, f"--workdir={tmp_path / 'wd'}", "--strategy=mirrored",
         "--cpu_replicas=3"],
        cwd=ROOT, env=_env(), capture_output=True, text=True, check=False,
    )  # fmt: skip
    assert proc.returncode == 2 and "Traceback" not in proc.stderr
    errors = [line for line in proc.stderr.splitlines() if line.startswith("error:")]
    assert errors == [
        "error: train_and_evaluate.batch_size_D = 8 does not split over 3 replicas; use a multiple of 3."
    ], proc.stderr[-2000:]
    assert not os.path.exists(tmp_path / "wd")


BAD_TF_CONFIG = {
    "not json": ("{'cluster': ", "TF_CONFIG is not valid JSON"),
    "no task": ('{"cluster": {"worker": ["127.0.0.1:1"]}}', 'TF_CONFIG needs a "cluster"'),
    "index out of range": (
        '{"cluster": {"worker": ["127.0.0.1:1"]}, "task": {"type": "worker", "index": 1}}',
        "TF_CONFIG task index 1 is not in 0..0",
    ),
    "unknown job": ('{"cluster": {"worker": ["a:1"]}, "task": {"type": "chief", "index": 0}}', "task type 'chief'"),
    "host without port": ('{"cluster": {"worker": ["a"]}, "task": {"type": "worker", "index": 0}}', "host:port"),
    "unset": (None, "TF_CONFIG is not set"),
}


@pytest.mark.parametrize("case", sorted(BAD_TF_CONFIG))
def test_bad_tf_config_is_one_line_and_exit_2(case, tmp_path, monkeypatch, capsys):
    value, message = BAD_TF_CONFIG[case]
    if value is None:
        monkeypatch.delenv("TF_CONFIG", raising=False)
    else:
        monkeypatch.setenv("TF_CONFIG", value)
    assert train.run(["quickstart.gin"], [], str(tmp_path / "wd"), strategy="multi_worker") == 2
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 1 and err[0].startswith("error: ") and message in err[0], err
    assert not os.path.exists(tmp_path / "wd")


def test_zero_cpu_replicas_is_refused(tmp_path, capsys):
    assert train.run(["quickstart.gin"], [], str(tmp_path / "wd"), strategy="mirrored", cpu_replicas=0) == 2
    assert capsys.readouterr().err.strip() == "error: --cpu_replicas must be positive, got 0."


def test_a_good_tf_config_parses(monkeypatch):
    config = {
        "cluster": {"chief": ["h0:2222"], "worker": ["h1:2222", "h2:2222"]},
        "task": {"type": "worker", "index": 1},
    }
    monkeypatch.setenv("TF_CONFIG", json.dumps(config))
    assert distribute.tf_config() == config


def test_split_rows_gives_each_replica_its_rows_of_every_critic_step():
    # 3 critic steps of 4 rows over 2 replicas: replica r gets rows [2r, 2r + 2) of each step's slice.
    split = distribute.split_rows(tf.range(12), n_dis=3, replicas=2)
    np.testing.assert_array_equal(split.numpy(), [[0, 1, 4, 5, 8, 9], [2, 3, 6, 7, 10, 11]])
    images = tf.reshape(tf.range(12 * 2 * 2 * 3), [12, 2, 2, 3])
    np.testing.assert_array_equal(distribute.split_rows(images, 1, 4).numpy()[3], images.numpy()[9:12])


def _start_workers(workdir, total_steps, save_every=1000):
    hosts = [f"127.0.0.1:{p}" for p in _free_ports(2)]
    args = [*SMALL, f"--workdir={workdir}", "--strategy=multi_worker",
            f"--gin_param=train_and_evaluate.save_every={save_every}",
            f"--gin_param=train_and_evaluate.total_steps={total_steps}"]  # fmt: skip
    procs = []
    for index in range(2):
        config = {"cluster": {"worker": hosts}, "task": {"type": "worker", "index": index}}
        procs.append(_train(args, _env(TF_CONFIG=json.dumps(config))))
    return procs


@pytest.mark.subprocess
def test_a_preempted_worker_and_its_peer_save_the_same_step_and_both_resume(tmp_path):
    """SIGTERM to one worker: TensorFlow's PreemptionCheckpointHandler has both save one agreed step, then stop."""
    wd = tmp_path / "wd"
    chief, other = _start_workers(wd, 500)
    try:
        for line in chief.stdout:
            if line.startswith("step 3/"):
                other.send_signal(signal.SIGTERM)
                break
        (_, chief_err), (_, other_err) = chief.communicate(timeout=400), other.communicate(timeout=400)
    finally:
        for p in (chief, other):
            p.kill()
    assert chief.returncode == other.returncode == 143, (chief_err[-2000:], other_err[-2000:])
    saved = tf.train.latest_checkpoint(str(wd / "checkpoints"))
    step = int(saved.rsplit("-", 1)[1])
    assert 3 < step < 500
    assert chief_err.strip().splitlines()[-1] == (
        f"stopped with a preempted worker at step {step}; saved {saved}; run the same command to resume"
    )
    mine = wd / "workers" / "1" / "checkpoints" / f"ckpt-{step}"
    assert other_err.strip().splitlines()[-1] == (
        f"stopped by SIGTERM at step {step}; saved {mine}; run the same command to resume"
    )
    assert_same_checkpoints(saved, mine, atol=0)
    procs = _start_workers(wd, step + 2)
    try:
        outs = [_finish(p) for p in procs]
    finally:
        for p in procs:
            p.kill()
    assert all(f"at step {step}." in out for out in outs) and f"step {step + 2}/{step + 2}" in outs[0]
    assert_same_checkpoints(wd / "checkpoints", wd / "workers" / "1" / "checkpoints", atol=0)


@pytest.mark.subprocess
def test_a_plain_users_mirrored_run_splits_the_cpu(tmp_path):
    """Without TF_CPP_MIN_LOG_LEVEL the quiet console loads TensorFlow early; it must not initialise the devices."""
    env = {k: v for k, v in os.environ.items() if k != "TF_CPP_MIN_LOG_LEVEL"}
    proc = _train([*SMALL, "--gin_param=train_and_evaluate.total_steps=1", f"--workdir={tmp_path / 'wd'}",
                   "--strategy=mirrored", "--cpu_replicas=2"], env)  # fmt: skip
    assert "(2 replicas)" in _finish(proc)
