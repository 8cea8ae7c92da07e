"""The run's settings: one frozen config from gin, and runs written by earlier code still restore and resume."""

import shutil

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
