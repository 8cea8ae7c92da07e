"""Shared test set-up: quiet TensorFlow, seeded Keras, the parity fixtures' folder."""

import os

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")

import keras
import pytest

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))


@pytest.fixture(autouse=True)
def _seeded():
    keras.utils.set_random_seed(0)
    yield
    keras.config.set_dtype_policy("float32")


@pytest.fixture(scope="session")
def parity_dir():
    """The official-code fixtures: $PGN_PARITY_DIR or ../shared/parity beside the checkout."""
    path = os.environ.get("PGN_PARITY_DIR", os.path.join(ROOT, "..", "shared", "parity"))
    assert os.path.isfile(os.path.join(path, "fixture.py")), (
        f"Parity fixtures not found at {path}; set PGN_PARITY_DIR to the folder with fixture.py"
    )
    return os.path.abspath(path)
