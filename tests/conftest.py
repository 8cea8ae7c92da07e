"""Shared test set-up: quiet TensorFlow, seeded Keras, the parity fixtures' folder, the shipped classifiers."""

import os
import shutil

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")
os.environ.setdefault("TF_ENABLE_ONEDNN_OPTS", "1")  # as every pgn_tf command sets it, before keras imports TF

import keras
import pytest

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
# The quickstart at 1/16 width and batch 8, logging every step: CLI runs of a few seconds.
TINY_QUICKSTART = [
    "--gin_file=gin_configs/quickstart.gin",
    "--gin_param=dcgan.generator.width=0.0625",
    "--gin_param=dcgan.critic.width=0.0625",
    "--gin_param=train_and_evaluate.batch_size_D=8",
    "--gin_param=train_and_evaluate.batch_size_G=8",
    "--gin_param=train_and_evaluate.log_every=1",
]


@pytest.fixture(autouse=True)
def _seeded():
    keras.utils.set_random_seed(0)
    yield
    keras.config.set_dtype_policy("float32")


@pytest.fixture(scope="session")
def parity_dir():
    """The official-code fixtures: $PGN_PARITY_DIR, else the ones shipped in tests/data/parity/shipped."""
    path = os.environ.get("PGN_PARITY_DIR", os.path.join(ROOT, "tests", "data", "parity", "shipped"))
    assert os.path.isfile(os.path.join(path, "fixture.py")), (
        f"Parity fixtures not found at {path}; set PGN_PARITY_DIR to the folder with fixture.py"
    )
    return os.path.abspath(path)


@pytest.fixture(scope="session", autouse=True)
def _cache_dir(tmp_path_factory):
    """One classifier cache per test process, never the user's ~/.cache (the CLIs the tests start inherit it).

    It starts with the weights the published tables were scored with (shipped beside them in docs/benchmark), so
    that only the classifiers' own tests train one, in a cache of their own.
    """
    from pgn_tf.eval import digits_classifier, mnist_classifier

    path = str(tmp_path_factory.mktemp("pgn_tf_cache"))
    for name, folder in (
        (f"digits_classifier_v{digits_classifier.VERSION}_seed0.weights.h5", "remedy/e3"),
        (f"mnist_classifier_v{mnist_classifier.VERSION}_seed0.weights.h5", "stacked_mnist"),
    ):
        shipped = os.path.join(ROOT, "docs", "benchmark", folder, name)
        if os.path.isfile(shipped):  # a bumped VERSION has no shipped weights yet: the tests train them
            shutil.copy(shipped, os.path.join(path, name))
    os.environ["PGN_TF_CACHE"] = path
    return path


def load_tool(name):
    """tools/<name>.py as a module (the tools are scripts, not part of the package).

    tools/ goes on this test process's sys.path, as a script's own folder is when it runs, so that the tool's
    `import common` (tools/common.py) resolves without the tools editing sys.path.
    """
    import importlib.util
    import sys

    tools = os.path.join(ROOT, "tools")
    if tools not in sys.path:
        sys.path.insert(0, tools)
    spec = importlib.util.spec_from_file_location(name, os.path.join(tools, f"{name}.py"))
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def checkpoint_values(path):
    """{name: value} of every numeric variable of a checkpoint (a prefix such as DIR/ckpt-4, or DIR for its latest)."""
    import numpy as np
    import tensorflow as tf

    path = str(path)
    if os.path.isdir(path):
        path = tf.train.latest_checkpoint(path)
    reader = tf.train.load_checkpoint(path)
    values = {name: np.asarray(reader.get_tensor(name)) for name in reader.get_variable_to_shape_map()}
    return {name: v for name, v in values.items() if v.dtype.kind in "fiu"}


def assert_same_checkpoints(a, b, atol):
    """Two checkpoints hold the same variables (G, EMA-G, D, both optimizers, BatchNorm statistics) within atol."""
    import numpy as np

    # save_counter counts saves, which a stopped and resumed run makes more of: not the run's state.
    va, vb = ({k: v for k, v in checkpoint_values(p).items() if not k.startswith("save_counter")} for p in (a, b))
    assert sorted(va) == sorted(vb)
    assert any("generator" in name and "moving_mean" in name for name in va)  # BatchNorm statistics compared too
    for name in va:
        np.testing.assert_allclose(va[name], vb[name], rtol=0, atol=atol, err_msg=name)


def make_fake_inception(path):
    """A SavedModel with the GAN-evaluation Inception's interface and a cheap deterministic body.

    images [N, 299, 299, 3] in [-1, 1] -> {"logits": [N, 1008], "pool_3": [N, 2048]},
    callable and as the "default" signature (input "images"), like the TF-Hub module.
    """
    import numpy as np
    import tensorflow as tf

    rng = np.random.default_rng(0)

    class FakeInception(tf.Module):
        def __init__(self):
            super().__init__()
            self.w_pool = tf.Variable(rng.standard_normal((7 * 7 * 3, 2048)).astype(np.float32) * 0.2)
            self.w_logits = tf.Variable(rng.standard_normal((2048, 1008)).astype(np.float32) * 0.05)

        @tf.function(input_signature=[tf.TensorSpec([None, 299, 299, 3], tf.float32, name="images")])
        def __call__(self, images):
            x = tf.image.resize(images, (7, 7), method="area")
            pool = tf.nn.relu(tf.matmul(tf.reshape(x, (-1, 7 * 7 * 3)), self.w_pool))
            return {"logits": tf.matmul(pool, self.w_logits), "pool_3": pool}

    model = FakeInception()
    tf.saved_model.save(model, path, signatures={"default": model.__call__})
    return path


@pytest.fixture(scope="session")
def fake_inception(tmp_path_factory):
    return make_fake_inception(str(tmp_path_factory.mktemp("inception") / "fake"))
