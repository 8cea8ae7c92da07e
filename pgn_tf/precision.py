"""Numeric precision of a run: float32, Keras' mixed policies, or float64 for exact comparisons."""

import contextlib

import keras

# float64 is for computations that must agree to rounding on any CPU (equivalence tests, parity):
# in float32, two summation orders (a second replica, another CPU's kernels) differ visibly after a few Adam steps.
PRECISIONS = ("float32", "mixed_bfloat16", "mixed_float16", "float64")


@contextlib.contextmanager
def scope(name):
    """Models built within compute in `name`; Keras' global policy and floatx are put back after (models keep theirs).

    float64 sets floatx too: the models' Input layers take floatx, and
    would otherwise round their inputs (and the input gradient) to float32.
    The mixed policies keep floatx float32 (their variables' dtype).
    """
    before = keras.config.dtype_policy(), keras.config.floatx()
    keras.config.set_dtype_policy(name)
    keras.config.set_floatx("float64" if name == "float64" else "float32")
    try:
        yield
    finally:
        keras.config.set_dtype_policy(before[0])
        keras.config.set_floatx(before[1])
