"""The run's settings: one frozen config from gin, and runs written by earlier code still restore and resume."""

import shutil
import subprocess
import sys

import pytest
from conftest import ROOT, assert_same_checkpoints

from pgn_tf import train

OLD_RUN = f"{ROOT}/tests/data/old_run"


def test_a_run_written_before_the_refactor_restores_and_resumes(tmp_path, capsys):
    """tests/data/old_run (README there): its operative config parses, ckpt-2 restores, step 3 is the old code's."""
    wd = tmp_path / "wd"
    shutil.copytree(OLD_RUN, wd, ignore=shutil.ignore_patterns("step3", "README.md"))
    code = train.run([str(wd / "operative_config.gin")], ["train_and_evaluate.total_steps = 3"], str(wd))
    out, err = capsys.readouterr()
    assert code == 0, err
    assert f"Resuming from {wd}/checkpoints/ckpt-2 at step 2." in out
    assert_same_checkpoints(wd / "checkpoints" / "ckpt-3", f"{OLD_RUN}/step3/ckpt-3", atol=1e-9)


def test_the_gin_roots_defaults_are_the_configs():
    """train_and_evaluate's signature (the gin contract) and RunConfig.make agree on every default.

    Adam and the Inception loader are gin's configurable copies at the root (so that their bindings apply) and
    the originals in the config; the four components have no default (gin.REQUIRED / a TypeError).
    """
    import dataclasses
    import inspect

    import gin

    from pgn_tf import configurables, optimizers, train_lib
    from pgn_tf.config import LoopConfig, RunConfig, inception_features

    signature = inspect.signature(train_lib.settings).parameters
    loop_fields = {f.name: f.default for f in dataclasses.fields(LoopConfig)}
    run_fields = {f.name: f.default for f in dataclasses.fields(RunConfig) if f.name != "loop"}
    assert set(signature) == set(loop_fields) | set(run_fields)  # each setting is a field, once
    copies = {configurables.Adam: optimizers.Adam, configurables.load_inception: inception_features}
    for name, default in {**loop_fields, **run_fields}.items():
        given = signature[name].default
        if given is gin.REQUIRED:
            assert default is dataclasses.MISSING, name
        else:
            assert copies.get(given, given) == default, name
    with pytest.raises(TypeError, match="dataset_fn"):
        RunConfig.make(generator_fn=print, critic_fn=print, loss_fn=print)


@pytest.mark.parametrize(
    "bad, message",
    [
        ({"total_steps": "ten"}, "train_and_evaluate.total_steps must be an integer >= 1, got 'ten' (str)."),
        ({"ema_decay": 1.5}, "train_and_evaluate.ema_decay must be a number >= 0 and <= 1, got 1.5 (float)."),
        ({"lr_D": 0}, "train_and_evaluate.lr_D must be a number > 0, got 0 (int)."),
        ({"jit_compile": 1}, "train_and_evaluate.jit_compile must be True or False, got 1 (int)."),
        ({"accumulation": 3}, "batch_size_D = 64 does not split into accumulation = 3 micro-batches"),
    ],
)
def test_a_bad_setting_is_one_config_error_naming_its_binding(bad, message):
    import gin

    from pgn_tf import data, errors, losses, train_lib

    gin.clear_config()
    parts = {"dataset_fn": data.digits, "generator_fn": print, "critic_fn": print, "loss_fn": losses.get}
    with pytest.raises(errors.ConfigError) as info:
        train_lib.settings(**parts, **bad)
    assert message in errors.first_line(info.value)


def test_hold_denominator_needs_a_denominator():
    from pgn_tf.config import LoopConfig
    from pgn_tf.errors import ConfigError

    assert LoopConfig(normalization="gn", hold_denominator=True).hold_denominator
    for normalization in ("sn", "none"):
        with pytest.raises(ConfigError, match=f"needs a denominator.*not '{normalization}'"):
            LoopConfig(hold_denominator=True, normalization=normalization)
    with pytest.raises(ConfigError, match="hold_denominator must be True or False"):
        LoopConfig(hold_denominator="yes")


def test_pgns_interventions_need_pgn_and_center_one_whole_batch():
    from pgn_tf.config import LoopConfig
    from pgn_tf.errors import ConfigError

    for setting in ({"pgn_scale": 2.0}, {"pgn_center": True}):
        with pytest.raises(ConfigError, match="needs normalization \"pgn\", not 'gn'"):
            LoopConfig(normalization="gn", **setting)
    centred = LoopConfig(pgn_center=True)
    centred.check_replicas(1)
    with pytest.raises(ConfigError, match="pgn_center = True takes the mean over a whole batch: it runs on one device"):
        centred.check_replicas(2)
    LoopConfig(pgn_scale="sqrt_d").check_replicas(2)


@pytest.mark.subprocess
def test_parse_gin_is_quiet_outside_absl(tmp_path):
    """gin logs each folder it searches for an include to Python's root logger; a plain script sees none of it."""
    code = "from pgn_tf.cli import parse_gin; parse_gin(['quickstart.gin'], [])"
    r = subprocess.run([sys.executable, "-c", code], check=False, capture_output=True, text=True, cwd=str(tmp_path))
    assert r.returncode == 0 and "Path not found" not in r.stderr, r.stderr
