"""Training data behind one contract: sources (TFDS, image folders, digits) read by index -> seeded tf.data in [-1, 1].

Every dataset function in SOURCES takes (batch_size, seed, start_step) and returns a repeated dataset of
`(images [batch_size, S, S, 3] float32 in [-1, 1], labels [batch_size] int32)`. Underneath, a source knows
its length and returns uint8 records for a batch of indices, held in memory or streamed from a decoded
on-disk cache (`cache.py`); `source.pipeline` builds the order (a seeded permutation per epoch), the crops
and the flips (seeded by position) once on top of any source, so a run resumed at step s with
start_step = s sees exactly the batches an uninterrupted run sees, and streaming changes where the
bytes come from, never which batch a step sees.
"""

import functools

import numpy as np

from pgn_tf.data import images
from pgn_tf.data.cache import DiskSource
from pgn_tf.data.folder import folder_source, image_folder
from pgn_tf.data.mnist import mnist, mnist_arrays, mnist_source
from pgn_tf.data.source import (
    MEMORY_BUDGET,
    ArraySource,
    SourceInfo,
    check_num_classes,
    pipeline,
    source_of,
)
from pgn_tf.data.tfds_sources import (
    LSUN_CATEGORIES,
    REFERENCE_DATASETS,
    celeb_a_hq,
    cifar10,
    host_reachable,
    lsun,
    reference_source,
    stl10,
    tfds,
    tfds_source,
)
from pgn_tf.errors import DataError

__all__ = [
    "LSUN_CATEGORIES", "MEMORY_BUDGET", "REFERENCE_DATASETS", "SOURCES", "ArraySource", "DataError",
    "DiskSource", "SourceInfo", "arrays", "celeb_a_hq", "check_num_classes", "cifar10", "digits", "digits_arrays",
    "digits_source", "folder_source", "host_reachable", "image_folder", "is_named", "lsun", "mnist", "mnist_arrays",
    "mnist_source", "named", "pipeline",
    "reference_source", "source_of", "stl10", "tfds", "tfds_source",
]  # fmt: skip

# The one-string forms of your own data: prefix -> (the dataset function, the argument the rest of the string is).
NAMED = {"folder:": (image_folder, "path"), "tfds:": (tfds, "name")}
NAMED_FORMS = " or ".join(f'"{prefix}{arg.upper()}"' for prefix, (_, arg) in NAMED.items())  # for messages


def _split(spec):
    """(function, {argument: rest}) of a one-string spec, else None."""
    for prefix, (fn, arg) in NAMED.items():
        if isinstance(spec, str) and spec.startswith(prefix) and spec[len(prefix) :]:
            return fn, {arg: spec[len(prefix) :]}
    return None


def is_named(spec):
    """Whether `named` takes spec."""
    return _split(spec) is not None


def named(spec, size):
    """The dataset function a one-string spec names, at side `size`: "folder:PATH" (`image_folder`, its other
    arguments at their defaults) or "tfds:NAME" (`tfds`, split "train"). How `train_and_evaluate.dataset_fn` takes
    your own data in one binding; the run passes the critic's input side as size.

    Raises:
      DataError: a spec of neither form.
    """
    split = _split(spec)
    if split is None:
        raise DataError(f"unknown dataset {spec!r}; give a configurable (e.g. @data.cifar10), {NAMED_FORMS}.")
    fn, kwargs = split
    return functools.partial(fn, **kwargs, size=size)


def digits_arrays(size=32):
    """scikit-learn's handwritten digits as uint8 [1797, size, size, 3] (grey over RGB) and labels [1797]."""
    from sklearn.datasets import load_digits

    d = load_digits()
    grey = np.round(d.images / 16.0 * 255.0).astype(np.uint8)[..., None]
    return images.resize_batch(np.repeat(grey, 3, axis=-1), size), d.target


def digits_source(size=32):
    """The digits as an in-memory source (10 classes)."""
    x, y = digits_arrays(size)
    return ArraySource(x, y, SourceInfo("digits", size, 10, tuple(str(i) for i in range(10))))


def digits(batch_size, seed=0, start_step=0, size=32, random_flip=False):
    """scikit-learn's handwritten digits (1,797 8x8 images, 10 classes), offline.

    Brought to size x size by bilinear resizing, grey repeated over RGB. No
    flips by default: mirrored digits are not digits.
    """
    return pipeline(digits_source(size), batch_size, seed, start_step, random_flip)


# Every gin-configurable dataset function; each is registered with denylist batch_size, seed, start_step.
SOURCES = (digits, mnist, cifar10, stl10, celeb_a_hq, lsun, tfds, image_folder)


def arrays(name, split=None, data_dir=None, download=True):
    """All images of a dataset split as uint8 [N, S, S, 3] at the size the models train on (for statistics).

    name: "digits", "mnist" (32 px, padded) or a key of REFERENCE_DATASETS; split: a TFDS split (default: the
    one training uses).
    """
    if name == "digits":
        return digits_arrays(32)[0]
    if name == "mnist":
        return mnist_source(32, split=split or "train", data_dir=data_dir, download=download).images
    if name not in REFERENCE_DATASETS:
        raise DataError(f"unknown dataset {name!r}; choose one of {['digits', 'mnist', *REFERENCE_DATASETS]}.")
    source = reference_source(name, split, data_dir, download)
    return source.read(np.arange(len(source)))[0]
