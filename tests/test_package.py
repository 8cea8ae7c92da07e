"""The package and its commands' process set-up: `import pgn_tf` loads no TensorFlow and changes nothing."""

import json
import os
import subprocess
import sys

import pytest
from conftest import ROOT

# As for a new user, without the variables the commands' set-up may touch. This process has loaded
# TensorFlow, so ENV holds those TensorFlow sets for itself on import (TF2_BEHAVIOR, KMP_*, ...).
ENV = {k: v for k, v in os.environ.items() if k not in ("TF_CPP_MIN_LOG_LEVEL", "TF_ENABLE_ONEDNN_OPTS")}

IMPORT_PACKAGE = """
import json, os, sys

class Unread(list):  # an argv that fails when read
    def _fail(self, *args):
        raise AssertionError("import pgn_tf read sys.argv")
    __getitem__ = __iter__ = __len__ = __contains__ = _fail

env, argv = dict(os.environ), sys.argv
sys.argv = Unread()
import pgn_tf
sys.argv = argv
light = "tensorflow" not in sys.modules and "keras" not in sys.modules
unchanged = dict(os.environ) == env
import keras, tensorflow  # they set variables of their own (TF2_BEHAVIOR, KMP_*, ...)
env = dict(os.environ)
exports = {n: getattr(pgn_tf, n) for n in pgn_tf.__all__}
unchanged = unchanged and dict(os.environ) == env
from pgn_tf import normalization, penalties
same = [f is getattr(normalization if hasattr(normalization, n) else penalties, n) for n, f in exports.items()]
print(json.dumps({"light": light, "same": all(same), "unchanged": unchanged, "dir": dir(pgn_tf)}))
"""


def _probe(code, *argv):
    proc = subprocess.run(
        [sys.executable, "-c", code, *argv], capture_output=True, text=True, cwd=ROOT, env=ENV, check=False
    )
    assert proc.returncode == 0, proc.stderr[-3000:]
    return json.loads(proc.stdout.strip().splitlines()[-1])


@pytest.mark.subprocess
def test_importing_pgn_tf_loads_no_tensorflow_reads_no_argv_and_changes_no_environment_variable():
    out = _probe(IMPORT_PACKAGE, "--verbose")
    assert out["light"], "import pgn_tf loaded TensorFlow or Keras"
    assert out["unchanged"], "import pgn_tf, or its exports, changed an environment variable"
    assert out["same"], "an export is not the object of its module"
    assert {"PGNDiscriminator", "penalty_normalize", "r1_penalty", "__version__"} <= set(out["dir"])


@pytest.mark.subprocess
@pytest.mark.parametrize("argv0, set_up", [("-c", False), ("/usr/bin/pgn-train", True)])
def test_a_command_sets_up_its_process_only_when_it_runs(argv0, set_up):
    """pgn_tf.train as a library changes nothing; as the pgn-train console script it turns oneDNN on, quietly."""
    code = f"""
import json, os, sys
sys.argv[0] = {argv0!r}
env = dict(os.environ)
import pgn_tf.train
print(json.dumps({{k: os.environ.get(k) for k in set(env) | set(os.environ) if env.get(k) != os.environ.get(k)}}))
"""
    changed = _probe(code)
    assert changed == ({"TF_ENABLE_ONEDNN_OPTS": "1", "TF_CPP_MIN_LOG_LEVEL": "3"} if set_up else {})


@pytest.mark.subprocess
def test_the_commands_help_is_quiet():
    """python -m pgn_tf.train --help: the flags on stdout (absl exits 1 after help), no TensorFlow lines on stderr."""
    proc = subprocess.run(
        [sys.executable, "-m", "pgn_tf.train", "--help"], capture_output=True, text=True, cwd=ROOT, env=ENV, check=False
    )
    assert proc.returncode == 1 and proc.stderr == "", proc.stderr[-3000:]
    assert "--gin_file" in proc.stdout
