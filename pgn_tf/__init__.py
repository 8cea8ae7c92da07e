"""pgn_tf: Penalty Gradient Normalization (PGN) for GANs in TensorFlow 2 / Keras 3."""

import os

# oneDNN's CPU kernels: 2-3x faster convolutions and their gradients on the 2-core development CPU
# (README, Performance). TensorFlow turns them on by itself only on some CPUs; this takes effect
# when pgn_tf is imported before TensorFlow (as by every pgn_tf command). TF_ENABLE_ONEDNN_OPTS=0 opts out.
os.environ.setdefault("TF_ENABLE_ONEDNN_OPTS", "1")

from pgn_tf import console

if console.tool_run():  # before anything imports TensorFlow
    console.quiet_startup()

from pgn_tf.normalization import (
    PGNDiscriminator,
    gradient_normalize,
    normalize,
    penalty_normalize,
)
from pgn_tf.penalties import gradient_penalty, r1_penalty

__version__ = "0.1.0"

__all__ = [
    "PGNDiscriminator",
    "gradient_normalize",
    "gradient_penalty",
    "normalize",
    "penalty_normalize",
    "r1_penalty",
]
