"""SavedModel export for TF Serving: signatures through saved_model_cli and a fresh process, bounds, bad input."""

import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import gin
import numpy as np
import pytest
from conftest import ROOT, TINY_QUICKSTART

from pgn_tf import export, train, train_lib

SMALL = ["dcgan.generator.width=0.0625", "dcgan.critic.width=0.0625", "train_and_evaluate.batch_size_D=8",
         "train_and_evaluate.batch_size_G=8", "train_and_evaluate.log_every=2"]  # fmt: skip


def _run(*args):
    proc = subprocess.run([*args], check=False, capture_output=True, text=True, cwd=ROOT, timeout=600)
    return proc


@pytest.fixture(scope="module")
def trained(tmp_path_factory):
    wd = str(tmp_path_factory.mktemp("export") / "wd")
    gin.clear_config()
    assert train.run(["quickstart.gin"], [*SMALL, "train_and_evaluate.total_steps=2"], wd) == 0
    return wd


@pytest.mark.subprocess
def test_export_serves_through_saved_model_cli_and_a_fresh_process(trained, tmp_path):
    r = _run(sys.executable, "-m", "pgn_tf.export", f"--workdir={trained}")
    assert r.returncode == 0, r.stderr
    version = os.path.join(trained, "export", "2")  # the checkpoint's step is the version
    assert os.path.isfile(os.path.join(version, "saved_model.pb"))

    show = _run("saved_model_cli", "show", "--dir", version, "--all")
    assert show.returncode == 0, show.stderr
    for name in ("serving_default", "generate", "limits"):
        assert f"signature_def['{name}']" in show.stdout
    assert "DT_UINT8" in show.stdout and "shape: (-1, 32, 32, 3)" in show.stdout

    out = tmp_path / "out"
    inputs = {"z": np.ones((2, 128), np.float32), "seed": np.int64(7), "count": np.int32(3)}
    for key, value in inputs.items():
        np.save(tmp_path / f"{key}.npy", value)
    r = _run("saved_model_cli", "run", "--dir", version, "--tag_set", "serve", "--signature_def", "serving_default",
             "--inputs", f"z={tmp_path / 'z.npy'}", "--outdir", str(out))  # fmt: skip
    assert r.returncode == 0, r.stderr
    images = np.load(out / "images.npy")
    assert images.shape == (2, 32, 32, 3) and images.dtype == np.uint8
    r = _run("saved_model_cli", "run", "--dir", version, "--tag_set", "serve", "--signature_def", "generate",
             "--inputs", f"seed={tmp_path / 'seed.npy'};count={tmp_path / 'count.npy'}",
             "--outdir", str(tmp_path / "gen"))  # fmt: skip
    assert r.returncode == 0, r.stderr
    assert np.load(tmp_path / "gen" / "images.npy").shape == (3, 32, 32, 3)

    check = f"""
import numpy as np, tensorflow as tf
m = tf.saved_model.load({version!r})
serve, gen = m.signatures["serving_default"], m.signatures["generate"]
z = tf.constant(np.random.default_rng(0).standard_normal((4, 128)), tf.float32)
a, b = serve(z=z)["images"].numpy(), serve(z=z)["images"].numpy()
assert a.dtype == np.uint8 and a.shape == (4, 32, 32, 3) and (a == b).all()
assert (serve(z=z[:1])["images"].numpy()[0] == a[0]).all()  # inference-mode BatchNorm: no batch coupling
g1, g2 = gen(seed=tf.constant(7, tf.int64), count=tf.constant(3)), gen(seed=tf.constant(7, tf.int64), count=tf.constant(3))
assert (g1["images"].numpy() == g2["images"].numpy()).all()
assert (serve(z=g1["z"])["images"].numpy() == g1["images"].numpy()).all()
assert not (gen(seed=tf.constant(8, tf.int64), count=tf.constant(3))["images"].numpy() == g1["images"].numpy()).all()
ones = serve(z=tf.ones((2, 128)))["images"].numpy()
assert (ones == np.load({str(out / "images.npy")!r})).all()  # saved_model_cli and Python agree
print("ok")
"""
    r = _run(sys.executable, "-c", check)
    assert r.returncode == 0 and r.stdout.strip().endswith("ok"), r.stderr

    again = _run(sys.executable, "-m", "pgn_tf.export", f"--workdir={trained}")  # version 2 exists: refused
    errors = [line for line in again.stderr.splitlines() if line.startswith("error:")]
    assert again.returncode == 2 and len(errors) == 1 and "exists already" in errors[0]


def test_export_bad_input(trained, tmp_path, capsys):
    assert export.run(str(tmp_path / "missing")) == 2
    assert "does not exist" in capsys.readouterr().err
    gin.clear_config()
    blocker = tmp_path / "file"
    blocker.write_text("x")
    assert export.run(trained, export_dir=str(blocker / "export")) == 2
    assert "cannot write the export to" in capsys.readouterr().err
    for bad in (0, -1):
        assert export.run(trained, max_count=bad) == 2
        assert f"--max_count must be a positive integer (images per request), got {bad}." in capsys.readouterr().err
    gin.clear_config()
    assert export.run(trained, checkpoint="nope") == 2
    assert "checkpoint nope does not exist" in capsys.readouterr().err
    empty = tmp_path / "empty"
    empty.mkdir()
    (empty / "operative_config.gin").write_text((Path(trained) / "operative_config.gin").read_text())
    gin.clear_config()
    assert export.run(str(empty)) == 2
    assert "no checkpoint in" in capsys.readouterr().err


def test_conditional_export_takes_labels(tmp_path):
    import tensorflow as tf

    gin.clear_config()
    train.parse_gin(["cifar_biggan.gin"], ["biggan.generator.width=0.125", "biggan.critic.width=0.125"])
    exp = train_lib.build(train_lib.settings(), str(tmp_path / "wd"))
    path = export.export(exp.gan, str(tmp_path / "export"))
    m = tf.saved_model.load(path)
    serve = m.signatures["serving_default"]
    z = tf.random.normal((3, 128))
    a = serve(z=z, labels=tf.constant([0, 1, 2]))["images"].numpy()
    b = serve(z=z, labels=tf.constant([0, 1, 5]))["images"].numpy()
    assert a.shape == (3, 32, 32, 3) and (a[:2] == b[:2]).all() and not (a[2] == b[2]).all()
    out = m.signatures["generate"](seed=tf.constant(1, tf.int64), count=tf.constant(4))
    assert out["labels"].dtype == tf.int32 and out["labels"].shape == (4,)


def test_a_torch_state_dict_becomes_an_export(tmp_path):
    import tensorflow as tf

    from pgn_tf import models, torch_port

    source = models.build_generator("dcgan.32", z_dim=16, width=0.125)
    state = torch_port.state_dict(source)  # what an official checkpoint's ema_G holds, in PyTorch layout
    g = models.build_generator("dcgan.32", z_dim=16, width=0.125)
    torch_port.load_state_dict(g, state)
    export.archive(g, z_dim=16).write_out(str(tmp_path / "1"), verbose=False)
    z = tf.random.normal((2, 16))
    served = tf.saved_model.load(str(tmp_path / "1")).signatures["serving_default"](z=z)["images"].numpy()
    expected = np.round((source(z, training=False).numpy() + 1.0) * 127.5).clip(0, 255).astype(np.uint8)
    np.testing.assert_array_equal(served, expected)


BOUNDS_CHECK = """
import sys
import numpy as np, tensorflow as tf
plain, conditional, bound = tf.saved_model.load(sys.argv[1]), tf.saved_model.load(sys.argv[2]), int(sys.argv[3])

def refused(call, *words):
    try:
        call()
    except tf.errors.InvalidArgumentError as e:
        assert all(w in e.message for w in words), e.message
        return
    raise AssertionError(f"not refused: {words}")

def seed_count(count):
    return dict(seed=tf.constant(7, tf.int64), count=tf.constant(count, tf.int32))

for m, classes in ((plain, 0), (conditional, 10)):
    limits = {k: int(v) for k, v in m.signatures["limits"]().items()}
    assert limits == {"max_count": bound, "z_dim": 128, "num_classes": classes}, limits
    gen = m.signatures["generate"]
    for count in (0, -1, bound + 1, 2**31 - 1):  # the largest would need a terabyte if it were allocated
        refused(lambda: gen(**seed_count(count)), f"count must be in [1, {bound}]", str(count))
    assert gen(**seed_count(bound))["images"].shape == (bound, 32, 32, 3)
    assert gen(**seed_count(1))["images"].shape == (1, 32, 32, 3)
    serve = m.signatures["serving_default"]
    y = {"labels": tf.zeros([3], tf.int32)} if classes else {}
    refused(lambda: serve(z=tf.zeros((3, 127)), **y), "z must be [N, 128]", "3 127")
    refused(lambda: serve(z=tf.zeros((bound + 1, 128)), **(y and {"labels": tf.zeros([bound + 1], tf.int32)})),
            f"the rows of z must be in [1, {bound}]")
    assert serve(z=tf.zeros((bound, 128)), **(y and {"labels": tf.zeros([bound], tf.int32)}))["images"].shape[0] == bound

serve = conditional.signatures["serving_default"]
z = tf.constant(np.random.default_rng(0).standard_normal((2, 128)), tf.float32)
for labels in ([0, -1], [10, 3]):
    refused(lambda: serve(z=z, labels=tf.constant(labels)), "labels must be in [0, 10)", " ".join(map(str, labels)))
refused(lambda: serve(z=z, labels=tf.constant([1])), "one class per row of z")
good = serve(z=z, labels=tf.constant([0, 9]))["images"].numpy()
assert good.shape == (2, 32, 32, 3) and good.dtype == np.uint8
print("ok")
"""


@pytest.mark.subprocess
def test_an_export_refuses_requests_outside_its_bounds_in_a_fresh_process(trained, tmp_path):
    r = _run(sys.executable, "-m", "pgn_tf.export", f"--workdir={trained}", f"--export_dir={tmp_path / 'plain'}",
             "--max_count=5")  # fmt: skip
    assert r.returncode == 0, r.stderr
    gin.clear_config()
    train.parse_gin(["cifar_biggan.gin"], ["biggan.generator.width=0.125", "biggan.critic.width=0.125"])
    exp = train_lib.build(train_lib.settings(), str(tmp_path / "wd"))
    conditional = export.export(exp.gan, str(tmp_path / "conditional"), max_count=5)
    r = _run(sys.executable, "-c", BOUNDS_CHECK, str(tmp_path / "plain" / "2"), conditional, "5")
    assert r.returncode == 0 and r.stdout.strip().endswith("ok"), r.stderr[-3000:]


@pytest.mark.subprocess
def test_export_reads_a_workdir_while_a_run_holds_it_and_trains(tmp_path):
    """No lock for export: the checkpoint list names a checkpoint only once its files are complete."""
    from pgn_tf import workdir as workdir_lib

    workdir = tmp_path / "wd"
    args = [*TINY_QUICKSTART, "--gin_param=train_and_evaluate.total_steps=100000",
            "--gin_param=train_and_evaluate.save_every=5"]  # fmt: skip
    proc = subprocess.Popen([sys.executable, "-m", "pgn_tf.train", *args, f"--workdir={workdir}"], cwd=ROOT,
                            stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)  # fmt: skip
    try:
        deadline = time.monotonic() + 300
        while not (workdir / "checkpoints" / "checkpoint").exists():
            assert proc.poll() is None and time.monotonic() < deadline, proc.stderr.read()[-3000:]
            time.sleep(0.1)
        r = _run(sys.executable, "-m", "pgn_tf.export", f"--workdir={workdir}")
        still_training = proc.poll() is None
        holder = workdir_lib.holder(workdir / ".lock")
        proc.send_signal(signal.SIGTERM)
        _, err = proc.communicate(timeout=300)
    finally:
        proc.kill()
    assert r.returncode == 0, r.stderr
    assert still_training and holder["pid"] == proc.pid
    version = r.stdout.strip().rsplit("/", 1)[1]
    assert r.stdout.startswith(f"Exported EMA-G of {workdir / 'checkpoints' / 'ckpt-'}{version} to ")
    assert os.path.isfile(workdir / "export" / version / "saved_model.pb")
    assert proc.returncode == 128 + signal.SIGTERM, err[-3000:]  # the run went on until stopped
