"""pgn_tf: Penalty Gradient Normalization (PGN) for GANs in TensorFlow 2 / Keras 3."""

from pgn_tf.normalization import (
    PGNDiscriminator,
    gradient_normalize,
    normalize,
    penalty_normalize,
)

__version__ = "0.1.0"

__all__ = ["PGNDiscriminator", "gradient_normalize", "normalize", "penalty_normalize"]
