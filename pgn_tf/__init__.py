"""pgn_tf: Penalty Gradient Normalization (PGN) for GANs in TensorFlow 2 / Keras 3."""

import importlib

# Loaded on first use (PEP 562), so that `import pgn_tf` loads no TensorFlow and changes nothing in the
# process: the commands set the process up themselves first (console.setup_process).
_EXPORTS = {
    "PGNDiscriminator": "pgn_tf.normalization",
    "gradient_normalize": "pgn_tf.normalization",
    "normalize": "pgn_tf.normalization",
    "penalty_normalize": "pgn_tf.normalization",
    "gradient_penalty": "pgn_tf.penalties",
    "r1_penalty": "pgn_tf.penalties",
}

__version__ = "0.1.0"

__all__ = [
    "PGNDiscriminator",
    "gradient_normalize",
    "gradient_penalty",
    "normalize",
    "penalty_normalize",
    "r1_penalty",
]


def __getattr__(name):
    if name in _EXPORTS:
        value = getattr(importlib.import_module(_EXPORTS[name]), name)
        globals()[name] = value  # later look-ups skip __getattr__
        return value
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")


def __dir__():
    return sorted(set(globals()) | set(__all__))
