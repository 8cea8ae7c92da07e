"""pgn_tf: Penalty Gradient Normalization for GANs in TensorFlow 2 / Keras 3."""

import setuptools

setuptools.setup(
    name="pgn_tf",
    version="0.1.0",
    description="Penalty Gradient Normalization (PGN) GANs in TensorFlow 2 / Keras 3",
    packages=setuptools.find_packages(include=["pgn_tf", "pgn_tf.*"]),
    python_requires=">=3.10",
    install_requires=[
        "tensorflow>=2.16",
        "keras>=3",
        "gin-config",
        "absl-py",
        "numpy",
    ],
)
