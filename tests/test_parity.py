"""The port against numbers from the official PyTorch code (fixtures in tests/data/parity)."""

import glob
import os
import shutil
import subprocess
import sys

import numpy as np
import pytest
from conftest import ROOT

from pgn_tf import parity, torch_port


def _fixtures(parity_dir):
    paths = sorted(glob.glob(os.path.join(parity_dir, "*.npz")))
    assert len(paths) >= 2, f"expected the shipped fixtures in {parity_dir}"
    return paths


@pytest.mark.subprocess
def test_check_parity_cli_passes_on_shipped_fixtures(parity_dir):
    paths = _fixtures(parity_dir)
    proc = subprocess.run(
        [sys.executable, os.path.join(ROOT, "tools", "check_parity.py")] + paths,
        capture_output=True,
        text=True,
        timeout=600,
        check=False,
    )
    lines = [line for line in proc.stdout.splitlines() if line.strip()]
    assert proc.returncode == 0, proc.stdout + proc.stderr
    assert len(lines) == len(paths) and all(line.startswith("PASS ") for line in lines), proc.stdout
    assert "dcgan.32/bce" in proc.stdout and "resnet.32/hinge" in proc.stdout


def test_float64_lands_far_inside_tolerance(parity_dir):
    """Without our float32 noise only PyTorch's is left: a few % of the tolerance."""
    for path in _fixtures(parity_dir):
        _, _, checks = parity.check_fixture(path, dtype="float64")
        worst = max(checks, key=lambda c: c.ratio)
        assert worst.ratio < 0.15, (path, checks)


def test_a_layout_bug_fails(parity_dir, monkeypatch):
    """A conv kernel loaded with kh and kw swapped must not pass."""
    monkeypatch.setattr(torch_port, "_conv_from_torch", lambda w: np.transpose(w, (3, 2, 1, 0)))
    path = os.path.join(parity_dir, "dcgan32_seed11.npz")
    _, _, checks = parity.check_fixture(path)
    assert max(c.ratio for c in checks) > 10, checks


@pytest.mark.subprocess
def test_cli_errors(tmp_path):
    tool = os.path.join(ROOT, "tools", "check_parity.py")
    proc = subprocess.run(
        [sys.executable, tool, str(tmp_path / "none.npz")], capture_output=True, text=True, check=False
    )
    assert proc.returncode == 2
    assert (
        proc.stderr.strip().splitlines()[-1]
        == f"ERROR {tmp_path / 'none.npz'}: No parity fixture at {tmp_path / 'none.npz'}."
    )


EXACT = sorted(glob.glob(os.path.join(ROOT, "tests", "data", "parity", "*_f64.npz")))


def test_exact_fixtures_cover_every_architecture():
    archs = {str(np.load(p)["arch"]) for p in EXACT}
    assert archs == {"dcgan.32", "dcgan.48", "resnet.32", "resnet.48", "resnet.128", "biggan.32"}


@pytest.mark.parametrize("path", EXACT, ids=os.path.basename)
def test_float64_official_fixtures_match_exactly(path, parity_dir, tmp_path):
    """Fixtures made by the official code in float64: no rounding left on either side."""
    shutil.copy(os.path.join(parity_dir, "fixture.py"), tmp_path)
    local = shutil.copy(path, tmp_path)
    _, _, checks = parity.check_fixture(local, dtype="float64")
    assert max(c.ratio for c in checks) < 1e-3, checks
